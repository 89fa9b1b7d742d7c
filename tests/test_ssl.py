"""Semi-supervised learning: MixMatch's pieces by hand, the baselines, splits, replicas."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data import splits
from mixmatch_tf.methods import ConfigError, common, method_names
from mixmatch_tf.ops.interleave import interleave, interleave_offsets
from mixmatch_tf.training import RunConfig, Trainer

SSL = ["mixmatch", "supervised", "pi_model", "pseudo_label", "mean_teacher", "vat", "mixup_ssl"]


def test_all_ssl_methods_are_registered():
    assert set(SSL) <= set(method_names())


def test_interleave_hand_values_and_round_trip():
    assert interleave_offsets(64, 2) == [0, 21, 42, 64]
    assert interleave_offsets(6, 2) == [0, 2, 4, 6]
    a, b, c = (tf.constant([[v] * 1 for v in range(k * 6, k * 6 + 6)]) for k in range(3))
    out = interleave([a, b, c], 6)
    np.testing.assert_array_equal(out[0][:, 0], [0, 1, 8, 9, 16, 17])
    np.testing.assert_array_equal(out[1][:, 0], [6, 7, 2, 3, 10, 11])
    np.testing.assert_array_equal(out[2][:, 0], [12, 13, 14, 15, 4, 5])
    back = interleave(out, 6)
    for x, y in zip(back, (a, b, c)):
        np.testing.assert_array_equal(x, y)


def _tiny_model(bn=True):
    layers = [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, padding="same")]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Flatten(), keras.layers.Dense(3)]
    return keras.Sequential(layers)


def test_weight_decay_touches_kernels_only():
    model = _tiny_model()
    for v in model.weights:
        v.assign(tf.ones_like(v))
    common.decay_kernels(model, 0.25)
    for v in model.weights:
        expected = 0.75 if v.path.endswith("kernel") else 1.0
        np.testing.assert_allclose(v.numpy(), expected, err_msg=v.path)


def test_ema_update_hand_values():
    model, ema = _tiny_model(), _tiny_model()
    for v in model.weights:
        v.assign(tf.fill(v.shape, 3.0))
    for v in ema.weights:
        v.assign(tf.fill(v.shape, 1.0))
    common.ema_update(ema, model, 0.9)
    for v in ema.trainable_variables:
        np.testing.assert_allclose(v.numpy(), 0.9 * 1.0 + 0.1 * 3.0, rtol=1e-6)
    # batch-norm statistics are not averaged (they are estimated for the EMA weights)
    assert ema.non_trainable_variables
    for v in ema.non_trainable_variables:
        np.testing.assert_allclose(v.numpy(), 1.0, err_msg=v.path)


def test_ema_decay_hand_values():
    # min(decay, (1 + t) / (10 + t)), tf.train.ExponentialMovingAverage's num_updates form
    for t, expected in ((1, 2 / 11), (2, 3 / 12), (890, 0.99), (8990, 0.999), (10 ** 6, 0.999)):
        np.testing.assert_allclose(common.ema_decay(0.999, t), expected, rtol=1e-6, err_msg=t)
    np.testing.assert_allclose(common.ema_decay(0.99, 5000), 0.99, rtol=1e-6)
    assert common.ema_decay(0.999, 1, warmup=False) == 0.999  # the official constant decay
    # a constant 0.999 keeps 13.5% of the initial weights after 2,000 updates; the
    # warmed-up decay keeps (by the product of its decays) a negligible share
    kept = np.prod([float(common.ema_decay(0.999, t)) for t in range(1, 2001)])
    np.testing.assert_allclose(0.999 ** 2000, 0.1352, atol=1e-4)
    assert kept < 1e-3


@pytest.mark.parametrize("warmup", [True, False])
def test_ssl_update_applies_the_warmed_up_ema_decay(warmup):
    from mixmatch_tf.methods import base, supervised
    keras.utils.set_random_seed(4)
    ctx = base.Context(num_classes=3, image_shape=(4, 4, 1), train_labels=np.zeros(8, np.int64),
                       seed=5, model_fn=lambda: _tiny_model(bn=False))
    method = supervised.Supervised(supervised.Config(train_steps=10, ema_decay=0.999,
                                                     ema_warmup=warmup), ctx)
    state = method.build()
    init = [w.copy() for w in state["ema"].get_weights()]
    x = tf.random.stateless_normal([4, 4, 4, 1], [1, 2])
    batch = {"labeled": {"image": x, "label": tf.constant([0, 1, 2, 0])}}
    method.train_step(state, batch, tf.constant(0, tf.int64))  # the first update: t = 1
    decay = 2 / 11 if warmup else 0.999
    for e, i, w in zip(state["ema"].get_weights(), init, state["student"].get_weights()):
        np.testing.assert_allclose(e, decay * i + (1 - decay) * w, rtol=1e-5, atol=1e-7)


def test_call_without_stat_updates_keeps_bn_statistics():
    model = _tiny_model()
    x = tf.random.stateless_normal([8, 4, 4, 1], [1, 2]) * 3 + 1
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    out = common.call_without_stat_updates(model, x)
    np.testing.assert_allclose(out, model(x, training=True), rtol=1e-5, atol=1e-6)
    model(x, training=True)  # plain call: the statistics move
    after_plain = [v.numpy() for v in model.non_trainable_variables]
    model.non_trainable_variables[0].assign(before[0])
    model.non_trainable_variables[1].assign(before[1])
    tf.function(lambda z: common.call_without_stat_updates(model, z))(x)
    for v, b in zip(model.non_trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), b)
    assert any(not np.array_equal(a, b) for a, b in zip(after_plain, before))


def test_global_mixup_is_the_same_for_one_and_two_replicas(one_replica, two_replicas):
    x1 = tf.reshape(tf.range(8, dtype=tf.float32), [4, 2])
    x2 = tf.reshape(tf.range(100, 108, dtype=tf.float32), [4, 2])
    y1, y2 = tf.one_hot([0, 1, 2, 0], 3), tf.one_hot([1, 1, 2, 2], 3)
    seed = ops.make_seed(5, 1)

    def run(strategy):
        r = strategy.num_replicas_in_sync

        def value(ctx, t):
            b = t.shape[0] // r
            return t[ctx.replica_id_in_sync_group * b:(ctx.replica_id_in_sync_group + 1) * b]
        parts = [strategy.experimental_distribute_values_from_function(
            lambda ctx, t=t: value(ctx, t)) for t in (x1, x2, y1, y2)]
        out = strategy.run(tf.function(lambda a, b, c, d: common.global_mixup(
            [a, b], [c, d], 0.75, seed)), args=tuple(parts))
        return [tf.concat(strategy.experimental_local_results(t), 0).numpy()
                for t in tf.nest.flatten(out)]
    one, two = run(one_replica), run(two_replicas)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # and it is MixUp of the concatenation with max(lambda, 1 - lambda) per example
    lam_seed, perm_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    lam = ops.max_lambda(ops.sample_beta(0.75, [8], lam_seed))
    xm, ym = ops.mixup(tf.concat([x1, x2], 0), tf.concat([y1, y2], 0), lam,
                       ops.sample_permutation(8, perm_seed))
    np.testing.assert_allclose(np.concatenate(one[:2]), xm, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate(one[2:]), ym, rtol=1e-6)


def test_labeled_subset_is_balanced_seeded_and_checked(digits):
    idx = splits.labeled_subset(digits.train_labels, 40, 10, seed=3)
    assert np.bincount(digits.train_labels[idx]).tolist() == [4] * 10
    np.testing.assert_array_equal(idx, splits.labeled_subset(digits.train_labels, 40, 10, seed=3))
    assert not np.array_equal(idx, splits.labeled_subset(digits.train_labels, 40, 10, seed=4))
    with pytest.raises(ValueError, match="of class '0' but it has only"):
        splits.labeled_subset(digits.train_labels, 2000, 10, seed=0)


def test_a_label_count_that_is_no_multiple_of_the_classes_is_as_balanced_as_it_can_be(digits):
    """23 labels over 10 classes: 2 of each and one more of 3 classes (drawn with the seed,
    apart from the draw of the examples, so 20 labels draw what they always drew)."""
    counts = splits.per_class_counts(23, 10, seed=0)
    assert sorted(counts.tolist()) == [2] * 7 + [3] * 3
    idx = splits.labeled_subset(digits.train_labels, 23, 10, seed=0)
    assert np.bincount(digits.train_labels[idx], minlength=10).tolist() == counts.tolist()
    twenty = splits.labeled_subset(digits.train_labels, 20, 10, seed=0)
    assert set(twenty) <= set(idx)  # the same permutations, one more of three classes
    three = [str(c) for c in np.flatnonzero(counts == 3)]
    assert splits.describe_counts(counts) == f"3 for classes {', '.join(three)}; 2 for the others"
    assert splits.describe_counts(splits.per_class_counts(20, 10, 0)) == "2 per class"
    assert not np.array_equal(counts, splits.per_class_counts(23, 10, seed=1))


def test_bad_num_labeled_is_a_config_error(tmp_path, one_replica, digits):
    with pytest.raises(ConfigError, match="num_labeled: must be at least the 10 classes \\(one "
                                          "labeled example each\\), got 5"):
        Trainer("mixmatch", digits, RunConfig(model_dir=str(tmp_path)), config={"num_labeled": 5},
                strategy=one_replica)


def test_split_is_saved_and_the_unlabeled_pool_excludes_labeled(tmp_path, one_replica, digits):
    tr = Trainer("mixmatch", digits, RunConfig(model_dir=str(tmp_path), seed=2),
                 config={"num_labeled": 30, "train_steps": 1}, strategy=one_replica)
    lab, unl = tr.context.labeled_indices, tr.context.unlabeled_indices
    assert len(lab) == 30 and len(np.intersect1d(lab, unl)) == 0
    assert len(lab) + len(unl) == digits.num_train
    assert (tmp_path / splits.SPLIT_FILE).exists()
    both = Trainer("mixmatch", digits, RunConfig(model_dir=str(tmp_path / "b"), seed=2),
                   config={"num_labeled": 30, "unlabeled_includes_labeled": True},
                   strategy=one_replica)
    assert len(both.context.unlabeled_indices) == digits.num_train


def test_no_step_reads_the_test_split(tmp_path, one_replica, digits):
    import dataclasses
    rng = np.random.RandomState(0)
    poisoned = dataclasses.replace(
        digits, test_images=rng.randint(0, 256, digits.test_images.shape).astype(np.uint8),
        test_labels=rng.randint(0, 10, len(digits.test_labels)))
    weights = []
    for name, data in (("clean", digits), ("poisoned", poisoned)):
        tr = Trainer("mixmatch", data, RunConfig(model_dir=str(tmp_path / name)),
                     config={"train_steps": 6, "eval_every": 3, "num_labeled": 20},
                     strategy=one_replica)
        tr.fit()
        weights.append(tr.state["student"].get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_kl_from_logits_hand_values_in_both_directions():
    from mixmatch_tf.methods import vat
    p, q = np.log([[0.5, 0.5]]), np.log([[0.9, 0.1]])
    # KL(p || q) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1); KL(q || p) = 0.9 ln 1.8 + 0.1 ln 0.2
    np.testing.assert_allclose(vat.kl_from_logits(p, q), [0.5108256], rtol=1e-5)
    np.testing.assert_allclose(vat.kl_from_logits(q, p), [0.3680642], rtol=1e-5)


def test_vat_loss_is_kl_of_the_perturbed_student_from_the_clean_teacher():
    # Official vat.py: loss_vat = kl_divergence_from_logits(logits_student, logits_teacher)
    # = KL(Categorical(student) || Categorical(teacher)), student on u + r_adv.
    from mixmatch_tf.methods import base, vat
    keras.utils.set_random_seed(3)
    net = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(3)])
    ctx = base.Context(num_classes=3, image_shape=(2, 2, 1), train_labels=np.zeros(8, np.int64),
                       seed=5, model_fn=lambda: net)
    method = vat.VAT(vat.Config(train_steps=10, ema_decay=0.0, vat_eps=2.0), ctx)
    state = method.build()
    u = tf.random.stateless_normal([4, 2, 2, 1], [1, 2])
    batch = {"labeled": {"image": u, "label": tf.constant([0, 1, 2, 0])},
             "unlabeled": {"image": u[:, None]}}
    step = tf.constant(3, tf.int64)
    clean = net(u).numpy()
    r_adv = vat.adversarial_direction(net, u, clean, 2.0, 1e-6, ops.make_seed(5, 2, step, 0))
    adv = net(u + r_adv).numpy()
    p_student, p_teacher = tf.nn.softmax(adv).numpy(), tf.nn.softmax(clean).numpy()
    official = np.mean(np.sum(p_student * (np.log(p_student) - np.log(p_teacher)), -1))
    reversed_ = np.mean(np.sum(p_teacher * (np.log(p_teacher) - np.log(p_student)), -1))
    assert abs(official - reversed_) > 1e-3  # the two directions differ on this case
    out = method.train_step(state, batch, step)
    np.testing.assert_allclose(out["loss_u"], official, rtol=1e-4)
