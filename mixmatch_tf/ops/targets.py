"""Targets for unlabeled and noisy examples: sharpening, guessing, co-refinement."""
import tensorflow as tf


def sharpen(p, temperature):
    """Sharpen(p, T)_i = p_i^(1/T) / sum_j p_j^(1/T).

    Computed in log space so small probabilities do not underflow at small T.

    Args:
      p: float tensor [..., C] of probabilities.
      temperature: positive float T; T -> 0 gives a one-hot argmax.

    References:
      MixMatch, equation (7).
    """
    logp = tf.math.log(tf.maximum(p, 1e-30)) / temperature
    return tf.nn.softmax(logp, axis=-1)


def guess_labels(probs, axis=0):
    """Mean of predicted class probabilities over augmentations (and networks).

    Args:
      probs: float tensor holding several predictions for the same examples
        stacked along ``axis``, e.g. [K, B, C].

    Returns:
      float tensor without ``axis``, with gradients stopped.

    References:
      MixMatch, Algorithm 1 line 7; DivideMix, Algorithm 1 line 20 (co-guessing).
    """
    return tf.stop_gradient(tf.reduce_mean(probs, axis=axis))


def co_refine(labels_onehot, clean_prob, probs):
    """Refined label w * y + (1 - w) * p for labeled examples.

    Args:
      labels_onehot: float [B, C], the given (possibly noisy) labels.
      clean_prob: float [B], w, the other network's clean probability.
      probs: float [B, C], the network's own prediction averaged over augmentations.

    References:
      DivideMix, equation (3).
    """
    w = tf.reshape(tf.cast(clean_prob, probs.dtype), [-1, 1])
    return tf.stop_gradient(w * labels_onehot + (1.0 - w) * probs)


def smooth_labels(labels_onehot, epsilon):
    """(1 - eps) y + eps / C: label smoothing.

    References:
      Szegedy et al., Rethinking the Inception Architecture, 2016 (an ablation of mixup).
    """
    c = tf.cast(tf.shape(labels_onehot)[-1], labels_onehot.dtype)
    return (1.0 - epsilon) * labels_onehot + epsilon / c
