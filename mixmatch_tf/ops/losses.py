"""Per-example losses. Reduce them once, in the method's train step."""
import tensorflow as tf


def cross_entropy(logits, labels):
    """Sparse softmax cross-entropy per example. logits [B, C], labels int [B]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))


def soft_cross_entropy(logits, targets):
    """H(targets, softmax(logits)) per example. logits, targets [B, C] -> [B]."""
    logp = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.reduce_sum(tf.cast(targets, tf.float32) * logp, axis=-1)


def squared_error(probs, targets):
    """||targets - probs||^2 / C per example (the MixMatch L_u, eq. 4). -> [B]."""
    diff = tf.cast(targets, tf.float32) - tf.cast(probs, tf.float32)
    return tf.reduce_mean(tf.square(diff), axis=-1)


def entropy(logits):
    """Entropy of softmax(logits) per example -> [B]."""
    logits = tf.cast(logits, tf.float32)
    p = tf.nn.softmax(logits, axis=-1)
    return -tf.reduce_sum(p * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def neg_entropy(logits):
    """Confidence penalty sum_c p_c log p_c per example (DivideMix warm-up) -> [B]."""
    return -entropy(logits)


def prior_penalty(mean_probs, prior=None):
    """L_reg = sum_c pi_c log(pi_c / mean_probs_c), pi uniform by default.

    Args:
      mean_probs: float [C], the model's mean prediction over the mixed batch.
      prior: float [C] or None for the uniform prior.

    References:
      DivideMix, equation (11); Tanaka et al. 2018.
    """
    mean_probs = tf.cast(mean_probs, tf.float32)
    if prior is None:
        c = tf.cast(tf.shape(mean_probs)[-1], tf.float32)
        prior = tf.ones_like(mean_probs) / c
    return tf.reduce_sum(prior * tf.math.log(prior / tf.maximum(mean_probs, 1e-12)))
