"""A two-component 1-D Gaussian mixture fitted by EM, with TFP distributions.

DivideMix models the per-sample losses with ``sklearn.mixture.GaussianMixture(
n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)``. This is the same EM
in TensorFlow: the mixture is a ``tfd.MixtureSameFamily`` of ``tfd.Normal``s,
the E-step its component posteriors, the M-step sklearn's updates (responsibility
mass + 10 eps, variances + reg_covar), stopping when the mean log-likelihood
changes by less than ``tol``, followed by a final E-step.

The start is deterministic (sklearn's default draws a random k-means start): a
1-D 2-means from the smallest and largest value, turned into weights, means and
variances exactly as sklearn turns its k-means labels into a start. Given the
same start, sklearn and this code give the same posteriors.

References:
  Li, Socher, Hoi, DivideMix, ICLR 2020 (section 3.1); Arazo et al., 2019.
"""
import collections

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

GMM = collections.namedtuple("GMM", ["weights", "means", "variances", "n_iter", "converged"])


def mixture(weights, means, variances):
    """The TFP mixture of two Normals with these parameters."""
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(probs=weights),
        components_distribution=tfd.Normal(loc=means, scale=tf.sqrt(variances)))


def _log_responsibilities(x, weights, means, variances):
    """(mean log-likelihood, log posteriors [N, 2]) of ``x`` under the mixture."""
    dist = mixture(weights, means, variances)
    joint = dist.components_distribution.log_prob(x[:, None]) + tf.math.log(weights)
    log_norm = dist.log_prob(x)
    return tf.reduce_mean(log_norm), joint - log_norm[:, None]


def _m_step(x, resp, reg_covar):
    eps = 10 * np.finfo(np.float64).eps
    nk = tf.reduce_sum(resp, axis=0) + eps
    means = tf.reduce_sum(resp * x[:, None], axis=0) / nk
    variances = tf.reduce_sum(resp * tf.square(x[:, None] - means), axis=0) / nk + reg_covar
    return nk / tf.reduce_sum(nk), means, variances


def initial_parameters(x, reg_covar=5e-4, kmeans_iter=20):
    """A deterministic start: 1-D 2-means from (min, max), as one-hot responsibilities.

    Returns float64 tensors (weights [2], means [2], variances [2]).
    """
    return _initial_parameters(tf.convert_to_tensor(np.asarray(x, np.float64).reshape(-1)),
                               tf.constant(float(reg_covar), tf.float64), tf.constant(kmeans_iter))


@tf.function(reduce_retracing=True)
def _initial_parameters(x, reg_covar, kmeans_iter):
    centers = tf.stack([tf.reduce_min(x), tf.reduce_max(x)])
    step, moved = tf.constant(0), tf.constant(True)
    while step < kmeans_iter and moved:  # Lloyd's steps until the centres stop moving
        hard = tf.cast(tf.abs(x - centers[1]) < tf.abs(x - centers[0]), tf.int32)
        resp = tf.one_hot(hard, 2, dtype=tf.float64)
        count = tf.reduce_sum(resp, axis=0)
        new = tf.where(count > 0, tf.reduce_sum(resp * x[:, None], 0) / tf.maximum(count, 1.0),
                       centers)
        moved = tf.reduce_any(new != centers)
        centers, step = new, step + 1
    hard = tf.cast(tf.abs(x - centers[1]) < tf.abs(x - centers[0]), tf.int32)
    return _m_step(x, tf.one_hot(hard, 2, dtype=tf.float64), reg_covar)


@tf.function(reduce_retracing=True)
def _fit(x, weights, means, variances, max_iter, tol, reg_covar):
    lower_bound = tf.constant(-np.inf, tf.float64)
    n_iter = tf.constant(0)
    converged = tf.constant(False)
    while n_iter < max_iter and not converged:
        prev = lower_bound
        lower_bound, log_resp = _log_responsibilities(x, weights, means, variances)
        weights, means, variances = _m_step(x, tf.exp(log_resp), reg_covar)
        n_iter += 1
        converged = tf.abs(lower_bound - prev) < tol
    return weights, means, variances, n_iter, converged


def fit_gmm(x, max_iter=10, tol=1e-2, reg_covar=5e-4, init=None):
    """Fits the 2-component mixture to 1-D data by EM.

    Args:
      x: float array [N] (the normalised per-sample losses).
      max_iter, tol, reg_covar: sklearn's meaning and DivideMix's values.
      init: optional (weights, means, variances) start; default ``initial_parameters``.

    Returns:
      A ``GMM`` of float64 NumPy arrays (weights, means, variances) plus n_iter, converged.
    """
    x = tf.convert_to_tensor(np.asarray(x, np.float64).reshape(-1))
    w, m, v = init if init is not None else _initial_parameters(
        x, tf.constant(float(reg_covar), tf.float64), tf.constant(20))
    out = _fit(x, tf.constant(w, tf.float64), tf.constant(m, tf.float64),
               tf.constant(v, tf.float64), tf.constant(int(max_iter)),
               tf.constant(float(tol), tf.float64), tf.constant(float(reg_covar), tf.float64))
    w, m, v, n, c = (t.numpy() for t in out)
    return GMM(w, m, v, int(n), bool(c))


def posteriors(x, gmm):
    """Component posteriors [N, 2] of ``x`` under a fitted ``GMM``."""
    x = tf.convert_to_tensor(np.asarray(x, np.float64).reshape(-1))
    return _posteriors(x, tf.constant(gmm.weights), tf.constant(gmm.means),
                       tf.constant(gmm.variances)).numpy()


@tf.function(reduce_retracing=True)
def _posteriors(x, weights, means, variances):
    return tf.exp(_log_responsibilities(x, weights, means, variances)[1])


def clean_probability(losses, max_iter=10, tol=1e-2, reg_covar=5e-4):
    """DivideMix's clean probability: posterior of the smaller-mean component.

    Returns:
      (float64 [N] probabilities, the fitted GMM).
    """
    gmm = fit_gmm(losses, max_iter, tol, reg_covar)
    return posteriors(losses, gmm)[:, int(np.argmin(gmm.means))], gmm
