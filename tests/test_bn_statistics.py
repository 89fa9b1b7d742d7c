"""Batch-norm statistics: precise estimation by hand, the EMA network's statistics,
the collapse warning, and DivideMix's guessing passes updating the statistics."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf.methods import common
from mixmatch_tf.training import RunConfig, Trainer
from mixmatch_tf.methods import semi as results


def _bn_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(epsilon=1e-3),
                              keras.layers.Dense(2), keras.layers.BatchNormalization()])
    rng = np.random.RandomState(seed)
    bn1, dense, _ = model.layers
    bn1.gamma.assign(rng.uniform(0.5, 2.0, 3))
    bn1.beta.assign(rng.normal(size=3))
    dense.kernel.assign(rng.normal(size=(3, 2)))
    dense.bias.assign(rng.normal(size=2))
    return model


def test_estimate_bn_statistics_hand_computed():
    model = _bn_mlp()
    bn1, dense, bn2 = model.layers
    rng = np.random.RandomState(1)
    batches = [rng.normal(2.0, 3.0, (n, 3)).astype(np.float32) for n in (5, 7, 4)]
    # by hand: layer 2 sees the dense layer applied to batch-normalised inputs
    # (batch statistics, as in training); the moving statistics become the mean
    # and biased variance of each layer's input over all 16 examples
    gamma, beta = bn1.gamma.numpy(), bn1.beta.numpy()
    hidden = []
    for x in batches:
        z = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) + beta
        hidden.append(z @ dense.kernel.numpy() + dense.bias.numpy())
    inputs, hidden = np.concatenate(batches), np.concatenate(hidden)
    momentum = bn2.momentum
    common.estimate_bn_statistics(model, [tf.constant(b) for b in batches])
    np.testing.assert_allclose(bn1.moving_mean, inputs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn1.moving_variance, inputs.var(0), rtol=1e-5)
    np.testing.assert_allclose(bn2.moving_mean, hidden.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn2.moving_variance, hidden.var(0), rtol=1e-4)
    assert bn2.momentum == momentum  # restored
    # deterministic: a second estimate gives the very same statistics
    before = [v.numpy() for v in model.non_trainable_variables]
    common.estimate_bn_statistics(model, [tf.constant(b) for b in batches])
    for a, b in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())


def test_collapse_warning():
    assert results.effective_classes([5, 0, 0]) == pytest.approx(1.0)
    assert results.effective_classes([2, 2, 2, 2]) == pytest.approx(4.0)
    text = results.collapse_warning([100, 0, 0, 0, 0], [20, 20, 20, 20, 20])
    assert "class 0 takes 100%" in text and "5.0" in text
    assert results.collapse_warning([30, 20, 20, 15, 15], [20, 20, 20, 20, 20]) is None
    # a trained network that itself predicts one class gives no warning
    assert results.collapse_warning([100, 0, 0], [99, 1, 0]) is None


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory, digits):
    # 300 steps with EMA decay 0.99 on the digits: the EMA weights are still some way
    # from the student's.
    trainer = Trainer("supervised", digits, RunConfig(
        model_dir=str(tmp_path_factory.mktemp("supervised")), seed=0, log_every_seconds=1e9),
        config=dict(num_labeled=50, train_steps=300, eval_every=300, ema_decay=0.99))
    return trainer, trainer.fit()


def test_ema_network_serves_what_the_student_learned(supervised_run):
    # With batch-norm statistics averaged together with the weights (the old form)
    # the EMA network of this run scored 28.0% against the student's 11.8%, and with
    # decay 0.999 it predicted one class (89.8%). Statistics estimated for the EMA
    # weights let it serve what the student learned.
    _, metrics = supervised_run
    last = metrics["evals"][-1]
    assert last["student_test_error"] < 20.0
    assert last["test_error"] <= last["student_test_error"] + 2.0
    assert "warning" not in last
    assert metrics["student_test_error"] == last["student_test_error"]


def test_evaluation_warns_when_the_evaluated_network_collapses(supervised_run, digits):
    trainer, _ = supervised_run
    head = trainer.state["ema"].layers[-1].layers[-2]  # the dense layer of the head
    bias = np.zeros(head.bias.shape, np.float32)
    bias[3] = 1e4  # every image -> class 3
    head.bias.assign(bias)
    record = trainer.evaluate(details=True)
    assert record["test_error"] == pytest.approx(100.0 * np.mean(digits.test_labels != 3))
    assert record["student_test_error"] < 20.0
    assert "class 3 takes 100%" in record["warning"]


class _CountTrainingCalls(keras.layers.Layer):
    """Identity that counts its training-mode calls in a non-trainable variable,
    as batch norm updates its moving statistics."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     name="calls")

    def call(self, x, training=False):
        if training:
            self.calls.assign_add(1.0)
        return x


def test_dividemix_guessing_passes_update_statistics_as_the_official_code(digits, one_replica):
    # Official Train_cifar.py: net.train(), net2.eval(); the guesses on u1, u2, x1, x2
    # run under no_grad in training mode (they move the BN statistics), then the
    # mixed batch: five updates of the trained network per step, none of the peer.
    from mixmatch_tf.methods import dividemix
    from mixmatch_tf.methods.base import Context

    def model_fn(index=0):
        return keras.Sequential([keras.Input((8, 8, 1)), _CountTrainingCalls(),
                                 keras.layers.Flatten(), keras.layers.Dense(10)])
    n = 64
    ctx = Context(num_classes=10, image_shape=(8, 8, 1), train_labels=digits.train_labels[:n],
                  seed=0, model_fn=model_fn)
    method = dividemix.DivideMix(dividemix.Config(batch_size=8), ctx)
    with one_replica.scope():
        state = method.build()
    state["division"]["ramp"].assign([10.0, 0.0, 20.0])
    rng = np.random.RandomState(0)
    batch = {"labeled": {"image": tf.constant(rng.normal(size=(8, 2, 8, 8, 1)), tf.float32),
                         "label": tf.constant(rng.randint(0, 10, 8), tf.int64),
                         "clean_prob": tf.constant(rng.uniform(size=8), tf.float32)},
             "unlabeled": {"image": tf.constant(rng.normal(size=(8, 2, 8, 8, 1)), tf.float32)}}

    @tf.function
    def step():
        return one_replica.run(lambda: method.train_step(state, batch, tf.constant(0, tf.int64), k=1))
    step()
    calls = lambda net: float(net.layers[0].calls.numpy())  # noqa: E731
    assert calls(state["net1"]) == 5.0
    assert calls(state["net2"]) == 0.0


def test_ema_statistics_on_two_replicas_are_those_of_one_device(tmp_path, digits, two_replicas):
    # The estimate runs in the cross-replica context: every replica's copy of the EMA
    # network's statistics must be the statistics a single device computes for the
    # same weights over the same images (small CNN: batch norm in every block).
    from mixmatch_tf.models import build_model
    trainer = Trainer("supervised", digits, RunConfig(
        model_dir=str(tmp_path / "two"), seed=0, log_every_seconds=1e9, precision="float32"),
        config=dict(num_labeled=50, train_steps=4, eval_every=4, ema_decay=0.5),
        strategy=two_replicas)
    trainer.fit()
    ema = trainer.state["ema"]
    single = build_model("small_cnn", digits.image_shape, digits.num_classes)
    single.set_weights(ema.get_weights())
    sample = trainer.method.bn_sample()
    common.estimate_bn_statistics(single, [trainer.context.fetch_images(sample[i:i + 256])
                                           for i in range(0, len(sample), 256)])
    for v, expected in zip(ema.non_trainable_variables, single.non_trainable_variables):
        mirrored = v.value  # the tf.Variable behind the Keras variable
        copies = mirrored.values if hasattr(mirrored, "values") else [mirrored]
        assert len(copies) == 2
        for copy in copies:
            np.testing.assert_allclose(copy.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
