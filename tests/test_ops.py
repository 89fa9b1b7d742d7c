"""Ops against hand-computed values, eagerly, in tf.function and in Dataset.map."""
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf import ops


def run_all_ways(fn, *args):
    """fn(*args) eagerly, inside tf.function, and inside Dataset.map; all must agree."""
    eager = fn(*args)
    graph = tf.function(fn)(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(args).map(lambda *a: fn(*a))))
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), eager, graph)
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), eager, mapped)
    return eager


def test_mixup_hand_values():
    x = tf.constant([[0.0, 10.0], [4.0, 2.0], [8.0, 6.0]])
    y = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    perm = tf.constant([2, 0, 1])
    xm, ym = run_all_ways(ops.mixup, x, y, tf.constant(0.75), perm)
    # row 0: 0.75*[0,10] + 0.25*[8,6] = [2, 9]; row 1: 0.75*[4,2] + 0.25*[0,10] = [3, 4]
    np.testing.assert_allclose(xm, [[2.0, 9.0], [3.0, 4.0], [7.0, 5.0]])
    np.testing.assert_allclose(ym, [[0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])


def test_mixup_per_example_lambda():
    x = tf.constant([[1.0], [3.0]])
    y = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    xm, ym = ops.mixup(x, y, tf.constant([1.0, 0.25]), tf.constant([1, 0]))
    np.testing.assert_allclose(xm, [[1.0], [0.25 * 3 + 0.75 * 1]])
    np.testing.assert_allclose(ym, [[1.0, 0.0], [0.75, 0.25]])


def test_mixup_many_matches_three_way_hand_values():
    x = tf.constant([[1.0], [2.0], [4.0]])
    y = tf.eye(3)
    perms = tf.constant([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    w = tf.constant([0.5, 0.3, 0.2])
    xm, ym = ops.mixup_many(x, y, w, perms)
    np.testing.assert_allclose(xm[:, 0], [0.5 * 1 + 0.3 * 2 + 0.2 * 4, 0.5 * 2 + 0.3 * 4 + 0.2 * 1,
                                          0.5 * 4 + 0.3 * 1 + 0.2 * 2])
    np.testing.assert_allclose(ym[0], [0.5, 0.3, 0.2])


def test_max_lambda():
    np.testing.assert_allclose(ops.max_lambda(tf.constant([0.2, 0.5, 0.9])), [0.8, 0.5, 0.9])


def test_sample_beta_is_seeded_and_has_the_right_moments():
    # TFP picks its gamma sampler per context (eager/tf.function vs tf.data), so
    # each context is checked on its own: same seed -> same draw, right moments.
    seed = ops.make_seed(3, 1)
    draw = lambda s: ops.sample_beta(0.75, [20000], s)  # noqa: E731
    mapped = lambda s: next(iter(tf.data.Dataset.from_tensors(s).map(draw)))  # noqa: E731
    for fn in (draw, tf.function(draw), mapped):
        a = fn(seed).numpy()
        np.testing.assert_array_equal(a, fn(seed))
        assert np.all((a >= 0) & (a <= 1))
        # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1
        assert abs(np.mean(a) - 0.5) < 0.01
        assert abs(np.var(a) - 1.0 / (4 * 2.5)) < 0.005
        assert not np.allclose(a, fn(ops.make_seed(3, 2)))


def test_sample_dirichlet_sums_to_one():
    w = ops.sample_dirichlet(1.0, 3, [100], ops.make_seed(0))
    assert w.shape == (100, 3)
    np.testing.assert_allclose(tf.reduce_sum(w, -1), np.ones(100), rtol=1e-5)


def test_sample_permutation_is_a_permutation():
    p = ops.sample_permutation(50, ops.make_seed(1))
    assert sorted(p.numpy().tolist()) == list(range(50))


def test_sample_permutation_is_the_same_eagerly_traced_and_under_xla():
    """One sampler: XLA compiles it and draws the very permutation of a plain trace."""
    for n, seed in ((50, ops.make_seed(1)), (1000, ops.make_seed(7, 3))):
        eager = ops.sample_permutation(n, seed).numpy()
        traced = tf.function(lambda s, n=n: ops.sample_permutation(n, s))(seed).numpy()
        xla = tf.function(lambda s, n=n: ops.sample_permutation(n, s), jit_compile=True)(seed)
        assert sorted(eager.tolist()) == list(range(n))
        np.testing.assert_array_equal(eager, traced)
        np.testing.assert_array_equal(eager, xla.numpy())


def test_sample_permutation_is_uniform():
    """Each of the 3! = 6 permutations of 3 items about 1/6 of the time over 1200 seeds."""
    counts = {}
    for i in range(1200):
        key = tuple(ops.sample_permutation(3, tf.constant([i, 11], tf.int64)).numpy())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    assert all(abs(c - 200) < 4 * np.sqrt(1200 / 6 * 5 / 6) for c in counts.values()), counts


def test_sharpen_hand_values():
    p = tf.constant([[0.6, 0.4], [0.5, 0.5]])
    out = run_all_ways(lambda q: ops.sharpen(q, 0.5), p)
    # T = 0.5 squares: [0.36, 0.16] / 0.52
    np.testing.assert_allclose(out, [[0.36 / 0.52, 0.16 / 0.52], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(ops.sharpen(p, 1.0), p, rtol=1e-6)


def test_guess_labels_averages_views_and_stops_gradient():
    probs = tf.Variable([[[0.2, 0.8]], [[0.6, 0.4]]])
    with tf.GradientTape() as tape:
        g = ops.guess_labels(probs)
    np.testing.assert_allclose(g, [[0.4, 0.6]])
    assert tape.gradient(g, probs) is None


def test_co_refine_hand_values():
    y = tf.constant([[1.0, 0.0]])
    out = ops.co_refine(y, tf.constant([0.7]), tf.constant([[0.2, 0.8]]))
    np.testing.assert_allclose(out, [[0.7 + 0.3 * 0.2, 0.3 * 0.8]])


def test_losses_hand_values():
    logits = tf.constant([[0.0, np.log(3.0)]])  # softmax = [0.25, 0.75]
    np.testing.assert_allclose(ops.cross_entropy(logits, tf.constant([1])), [-np.log(0.75)],
                               rtol=1e-6)
    np.testing.assert_allclose(ops.soft_cross_entropy(logits, tf.constant([[0.5, 0.5]])),
                               [-(0.5 * np.log(0.25) + 0.5 * np.log(0.75))], rtol=1e-6)
    np.testing.assert_allclose(ops.squared_error(tf.constant([[0.25, 0.75]]),
                                                 tf.constant([[1.0, 0.0]])),
                               [(0.75 ** 2 + 0.75 ** 2) / 2], rtol=1e-6)
    h = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(ops.entropy(logits), [h], rtol=1e-6)
    np.testing.assert_allclose(ops.neg_entropy(logits), [-h], rtol=1e-6)


def test_prior_penalty_hand_values():
    mean = tf.constant([0.5, 0.25, 0.25])
    expected = sum(1 / 3 * np.log((1 / 3) / m) for m in (0.5, 0.25, 0.25))
    np.testing.assert_allclose(ops.prior_penalty(mean), expected, rtol=1e-6)
    np.testing.assert_allclose(ops.prior_penalty(tf.constant([0.5, 0.5])), 0.0, atol=1e-7)


def test_linear_rampup_and_step_decay():
    np.testing.assert_allclose([ops.linear_rampup(s, 100) for s in (0, 25, 100, 400)],
                               [0.0, 0.25, 1.0, 1.0])
    np.testing.assert_allclose(ops.linear_rampup(30, 16, start=10), 1.0)
    np.testing.assert_allclose(ops.linear_rampup(18, 16, start=10), 0.5)
    np.testing.assert_allclose(ops.linear_rampup(5, 0), 1.0)
    lrs = [float(ops.step_decay(s, 0.1, [100, 150])) for s in (0, 99, 100, 149, 150, 10 ** 6)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_warmup_then_step_decay_hand_values():
    # Goyal et al. / mixup on ImageNet, in steps: 0.1 -> 0.4 over 5, /10 after 30, 60, 80
    steps = (0, 1, 4, 5, 29, 30, 59, 60, 80, 10 ** 6)
    lrs = [float(ops.warmup_step_decay(s, 0.4, [30, 60, 80], 0.1, 5, 0.1)) for s in steps]
    np.testing.assert_allclose(lrs, [0.1, 0.16, 0.34, 0.4, 0.4, 0.04, 0.04, 0.004, 4e-4, 4e-4],
                               rtol=1e-5)
    np.testing.assert_allclose(float(ops.warmup_step_decay(7, 0.1, [5])), 0.01, rtol=1e-6)


@pytest.mark.parametrize("salts", [(), (1,), (1, 2, 3)])
def test_make_seed_is_deterministic(salts):
    a = ops.make_seed(7, *salts)
    b = tf.function(lambda: ops.make_seed(7, *salts))()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, ops.make_seed(8, *salts))
