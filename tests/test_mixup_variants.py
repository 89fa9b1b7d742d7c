"""The mixup paper's ablations: hand-checked ops and every variant training."""
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.methods.mixup import same_class_partner
from mixmatch_tf.training import RunConfig, Trainer


def test_knn_table_hand_values():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    table = ops.knn_table(x, 2).numpy()
    assert table[0].tolist() == [1, 2] and table[3].tolist() == [4, 2]
    assert table[2].tolist() == [1, 0]
    same = ops.knn_table(x, 5, labels=np.array([0, 0, 0, 1, 1]), chunk=2).numpy()
    assert same.shape == (5, 1) and same[3, 0] == 4 and same[0, 0] == 1


def test_same_class_partner_stays_in_class():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2], np.int64)
    order = tf.constant(np.argsort(labels, kind="stable"), tf.int64)
    counts = np.bincount(labels)
    start = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]), tf.int64)
    partners = same_class_partner(tf.range(8, dtype=tf.int64), order, start,
                                  tf.constant(counts, tf.int64), tf.constant(labels),
                                  tf.constant([3, 4], tf.int64)).numpy()
    np.testing.assert_array_equal(labels[partners], labels)


def test_label_smoothing_and_gaussian_noise():
    np.testing.assert_allclose(ops.smooth_labels(tf.constant([[0.0, 1.0, 0.0, 0.0]]), 0.2),
                               [[0.05, 0.85, 0.05, 0.05]], rtol=1e-6)
    x = tf.zeros([1000])
    a = ops.gaussian_noise(x, 0.5, tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(a, ops.gaussian_noise(x, 0.5, tf.constant([1, 2], tf.int64)))
    assert abs(float(tf.math.reduce_std(a)) - 0.5) < 0.05


VARIANTS = [
    ("mixup", {"mix_targets": False}),                            # mix inputs only (AC + RP)
    ("mixup", {"mix_targets": False, "same_class": True}),        # SC + RP
    ("mixup", {"pairing": "knn", "knn_k": 20}),                   # AC + KNN
    ("mixup", {"pairing": "knn", "same_class": True, "mix_targets": False}),  # SC + KNN
    ("mixup", {"mix_layer": 1}),                                  # hidden representations
    ("mixup", {"num_mixed": 3}),                                  # Dirichlet, 3 examples
    ("mixup", {"mix_targets": False, "label_smoothing": 0.1}),    # inputs + label smoothing
    ("erm", {"label_smoothing": 0.1}),                            # label smoothing
    ("erm", {"input_noise": 0.1}),                                # Gaussian vicinity
    ("erm", {"dropout": 0.5}),                                    # + dropout
]


@pytest.mark.parametrize("method,config", VARIANTS)
def test_every_variant_trains(tmp_path, one_replica, digits, method, config):
    tr = Trainer(method, digits, RunConfig(model_dir=str(tmp_path)),
                 config=dict(config, train_steps=3, eval_every=3), strategy=one_replica)
    before = [w.copy() for w in tr.state["net"].get_weights()]
    m = tr.fit()
    assert np.isfinite(m["train_metrics"]["loss"])
    assert any(not np.allclose(a, b) for a, b in zip(before, tr.state["net"].get_weights()))


def test_hidden_mixing_checks_the_layer_and_runs_on_two_replicas(tmp_path, one_replica,
                                                                two_replicas, digits):
    with pytest.raises(ConfigError, match="mix_layer: must be below the 3 stages"):
        Trainer("mixup", digits, RunConfig(model_dir=str(tmp_path / "a")),
                config={"mix_layer": 3}, strategy=one_replica)
    m = Trainer("mixup", digits, RunConfig(model_dir=str(tmp_path / "b")),
                config={"mix_layer": 2, "train_steps": 2, "eval_every": 2},
                strategy=two_replicas).fit()
    assert np.isfinite(m["train_metrics"]["loss"])


def test_incompatible_switches_are_refused(tmp_path, one_replica, digits):
    with pytest.raises(ConfigError, match="num_mixed"):
        Trainer("mixup", digits, RunConfig(model_dir=str(tmp_path)),
                config={"num_mixed": 3, "pairing": "knn"}, strategy=one_replica)


def _square_stages():
    """A Sequential of three stages, each squaring its input: every stage is
    nonlinear, so mixing after a different stage gives different numbers."""
    import keras
    from mixmatch_tf.models import split_stages
    net = keras.Sequential([keras.Input((1,))] + [
        keras.layers.Lambda(lambda h: h * h, name=f"stage{k}") for k in (1, 2, 3)])
    return split_stages(net)


@pytest.mark.parametrize("layer,logits", [
    # stage 1: [1, 4]; mixed (lam 0.25, partners swapped): [3.25, 1.75]; squared twice
    (1, [[111.56640625], [9.37890625]]),
    # stages 1-2: [1, 16]; mixed: [12.25, 4.75]; squared once
    (2, [[150.0625], [22.5625]]),
])
def test_hidden_mixing_mixes_exactly_the_output_of_stage_k(layer, logits):
    from mixmatch_tf.methods.mixup import forward_mixed
    x = tf.constant([[1.0], [2.0]])
    y = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    out, y_mix = forward_mixed(_square_stages(), x, y, layer, tf.constant(0.25),
                               tf.constant([1, 0]))
    np.testing.assert_array_equal(out, logits)
    np.testing.assert_array_equal(y_mix, [[0.25, 0.75], [0.75, 0.25]])


def test_preact_resnet18_has_the_five_latent_layers_of_the_ablation_table():
    """Layers 1-5 are the outputs of stem, layer1..layer4; 6 would mix the logits."""
    from mixmatch_tf.methods.base import Context, get_method
    from mixmatch_tf.models import build_model, split_stages
    cls = get_method("mixup")

    def method(layer):
        ctx = Context(num_classes=10, image_shape=(32, 32, 3), train_labels=np.zeros(8, np.int64),
                      seed=0, model_fn=lambda: build_model("preact_resnet18", (32, 32, 3), 10))
        return cls(cls.Config(mix_layer=layer), ctx)

    net = method(5).build()["net"]
    names = [s.name for s in split_stages(net)]
    assert names == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    with pytest.raises(ConfigError, match="mix_layer: must be below the 6 stages"):
        method(6).build()


def test_the_imagenet_schedule_in_epochs_and_no_decay_of_batch_norm(one_replica):
    """The mixup paper's ImageNet recipe on a run of 10 steps per epoch: warm-up 0.1 -> 0.4
    over 5 epochs, /10 after epochs 30, 60, 80; weight decay skips BN's gamma and beta."""
    import keras
    from mixmatch_tf.methods import get_method
    from mixmatch_tf.methods.base import Context
    from mixmatch_tf.methods.common import sgd_update
    cls = get_method("mixup")
    config = cls.Config(batch_size=1024, learning_rate=0.4, lr_warmup_epochs=5,
                        lr_warmup_from=0.1, epochs=90, lr_decay_epochs=(30, 60, 80),
                        weight_decay_bn=False, mixup_alpha=0.2)
    method = cls(config, Context(num_classes=10, image_shape=(8, 8, 3),
                                 train_labels=np.zeros(10240, np.int64), seed=0,
                                 model_fn=None))
    steps = (0, 25, 49, 50, 299, 300, 600, 800, 899)
    lrs = [float(method.learning_rate(s)) for s in steps]
    np.testing.assert_allclose(lrs, [0.1, 0.25, 0.394, 0.4, 0.4, 0.04, 4e-3, 4e-4, 4e-4],
                               rtol=1e-5)
    assert method.total_steps() == 900
    # weight decay 0.5, a zero loss: the kernel moves by lr * wd * w, BN's gamma and beta not
    with one_replica.scope():
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense"),
                                keras.layers.BatchNormalization(name="bn")])
        opt = keras.optimizers.SGD(learning_rate=1.0)
        opt.build(net.trainable_variables)
    before = [v.numpy().copy() for v in net.trainable_variables]

    def step():
        with tf.GradientTape() as tape:
            loss = 0.0 * tf.reduce_sum(net(tf.ones([1, 3]), training=True))
        sgd_update(tape, loss, net, opt, 0.5, decay_batch_norm=False)
    one_replica.run(tf.function(step))
    for v, b in zip(net.trainable_variables, before):
        expected = b if v.name in ("gamma", "beta") else 0.5 * b
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6, err_msg=v.path)
