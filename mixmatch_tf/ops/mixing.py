"""Mixing weights and convex combinations of examples (mixup and its relatives).

References:
  Zhang, Cisse, Dauphin, Lopez-Paz. mixup: Beyond Empirical Risk Minimization. ICLR 2018.
  Berthelot et al. MixMatch: A Holistic Approach to Semi-Supervised Learning. NeurIPS 2019.
"""
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

def _tfp_seed(seed):
    """TFP's stateless samplers take int32 seeds; wrap int64 ones deterministically."""
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), 0x7FFFFFFF), tf.int32)


def sample_beta(alpha, shape, seed):
    """Draws mixing weights lambda ~ Beta(alpha, alpha) with TFP.

    Args:
      alpha: positive float, the concentration of both Beta parameters.
      shape: sample shape: ``[]`` for one weight per batch, ``[B]`` per example.
      seed: stateless seed, int tensor of shape [2].

    Returns:
      float32 tensor of ``shape`` with values in [0, 1].
    """
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    lam = tfd.Beta(alpha, alpha).sample(shape, seed=_tfp_seed(seed))
    # Beta samples can round to exactly 0 or 1 in float32 for small alpha; that is
    # a valid weight, but NaN (possible when both gammas underflow) is not.
    return tf.where(tf.math.is_nan(lam), tf.ones_like(lam), lam)


def sample_dirichlet(alpha, num_components, shape, seed):
    """Draws convex weights w ~ Dirichlet(alpha, ..., alpha) over ``num_components``.

    Returns:
      float32 tensor of shape ``shape + [num_components]`` whose last axis sums to 1.
    """
    conc = tf.fill([num_components], tf.cast(alpha, tf.float32))
    return tfd.Dirichlet(conc).sample(shape, seed=_tfp_seed(seed))


def sample_permutation(n, seed):
    """A uniformly random permutation of ``range(n)`` (int32 [n]).

    The stable argsort of ``n`` stateless full-range int32 draws of the Philox
    generator: the same permutation eagerly, traced and compiled with XLA (XLA
    has no kernel for ``StatelessShuffle``, and the "auto" generator and float
    draws differ under XLA). Ties (probability about n^2 / 2^33) keep index
    order, a negligible departure from uniformity.
    """
    keys = tf.random.stateless_uniform([n], seed, dtype=tf.int32, minval=None, maxval=None,
                                       alg="philox")
    return tf.argsort(keys, stable=True)


def max_lambda(lam):
    """lambda' = max(lambda, 1 - lambda): keeps the mix closer to the first input.

    References:
      MixMatch, equation (9).
    """
    return tf.maximum(lam, 1.0 - lam)


def _broadcast_weight(lam, x):
    """Reshapes a scalar or per-example weight [B] to broadcast against ``x``."""
    lam = tf.cast(lam, x.dtype)
    if lam.shape.rank == 0:
        return lam
    return tf.reshape(lam, [-1] + [1] * (x.shape.rank - 1))


def mix(a, b, lam):
    """lam * a + (1 - lam) * b with lam a scalar or one weight per example."""
    lam = _broadcast_weight(lam, a)
    return lam * a + (1.0 - lam) * b


def mixup(x, y, lam, perm):
    """Mixes each example with its partner ``perm[i]`` of the same batch.

    Args:
      x: float tensor [B, ...], the inputs.
      y: float tensor [B, C], one-hot or soft targets.
      lam: float scalar or [B], the weight of the example itself.
      perm: int tensor [B], the partner of each example.

    Returns:
      (x_mixed, y_mixed) with x_mixed[i] = lam x[i] + (1 - lam) x[perm[i]] and
      the same for y.

    References:
      mixup, equation in section 2.
    """
    return (mix(x, tf.gather(x, perm), lam), mix(y, tf.gather(y, perm), lam))


def mixup_many(x, y, weights, perms):
    """Convex combination of k examples: sum_j w_j * x[perms[j]].

    Args:
      x: float tensor [B, ...].
      y: float tensor [B, C].
      weights: float tensor [k] (one combination per batch) or [B, k].
      perms: int tensor [k, B]; use the identity as perms[0] to keep each example
        as the first component.

    Returns:
      (x_mixed, y_mixed).

    References:
      mixup, section 3.1 (combinations of 3 or more examples with Dirichlet weights).
    """
    k = perms.shape[0]
    x_out = 0.0
    y_out = 0.0
    for j in range(k):
        w = weights[..., j]
        x_out += _broadcast_weight(w, x) * tf.gather(x, perms[j])
        y_out += _broadcast_weight(w, y) * tf.gather(y, perms[j])
    return x_out, y_out


def gaussian_noise(x, stddev, seed):
    """x + N(0, stddev^2) per element: the Gaussian vicinity of Chapelle et al. (2000).

    References:
      mixup, section 2 and the ablation table ("add Gaussian noise to inputs").
    """
    return x + stddev * tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype)


def knn_table(features, k, labels=None, chunk=2048):
    """Indices of the k nearest neighbours (Euclidean) of every row, itself excluded.

    Args:
      features: float [N, D] (e.g. flattened pixels).
      k: neighbours per example; reduced to what exists (N - 1, or the smallest
        class size - 1 with ``labels``).
      labels: optional int [N]: neighbours are then searched within each class.
      chunk: rows per matmul block (memory is chunk x N).

    Returns:
      int32 [N, k'] with k' = min(k, available).

    References:
      mixup, the ablation table ("KNN: mix between k-nearest neighbors (k=200)").
    """
    x = tf.convert_to_tensor(features, tf.float32)
    n = int(x.shape[0])
    if labels is not None:
        counts = tf.math.bincount(tf.cast(labels, tf.int32))
        k = min(k, int(tf.reduce_min(tf.boolean_mask(counts, counts > 0))) - 1)
    k = max(1, min(k, n - 1))
    sq = tf.reduce_sum(tf.square(x), axis=1)
    lab = None if labels is None else tf.convert_to_tensor(labels)
    rows = []
    for start in range(0, n, chunk):
        block = x[start:start + chunk]
        d = sq[start:start + chunk, None] - 2.0 * tf.matmul(block, x, transpose_b=True) + sq[None]
        ids = tf.range(start, start + int(block.shape[0]))
        d = tf.tensor_scatter_nd_update(
            d, tf.stack([tf.range(int(block.shape[0])), ids], 1), tf.fill([int(block.shape[0])],
                                                                           float("inf")))
        if lab is not None:
            other = tf.not_equal(lab[start:start + chunk, None], lab[None])
            d = tf.where(other, tf.fill(tf.shape(d), float("inf")), d)
        rows.append(tf.math.top_k(-d, k=k).indices)
    return tf.concat(rows, 0)
