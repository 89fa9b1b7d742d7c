"""Ramp-ups and learning-rate schedules as pure functions of the step."""
import tensorflow as tf


def linear_rampup(step, length, start=0):
    """clip((step - start) / length, 0, 1); 1 everywhere when length <= 0.

    References:
      MixMatch (lambda_u over 16,384 steps); DivideMix (over 16 epochs after warm-up).
    """
    step = tf.cast(step, tf.float32) - tf.cast(start, tf.float32)
    if isinstance(length, (int, float)) and length <= 0:
        return tf.ones_like(step)
    return tf.clip_by_value(step / tf.cast(length, tf.float32), 0.0, 1.0)


def step_decay(step, base_lr, boundaries, factor=0.1):
    """base_lr * factor ** (number of boundaries <= step).

    Args:
      step: scalar int tensor.
      base_lr: float.
      boundaries: increasing step numbers at which the rate is multiplied by factor.
    """
    step = tf.cast(step, tf.int64)
    count = tf.zeros([], tf.float32)
    for b in boundaries:
        count += tf.cast(step >= int(b), tf.float32)
    return tf.cast(base_lr, tf.float32) * tf.pow(tf.cast(factor, tf.float32), count)


def warmup_step_decay(step, base_lr, boundaries, factor=0.1, warmup_steps=0, warmup_from=0.0):
    """Linear warm-up to ``base_lr``, then ``step_decay``.

    For ``step < warmup_steps`` the rate is ``warmup_from + (base_lr - warmup_from) *
    step / warmup_steps`` (it reaches ``base_lr`` at ``warmup_steps``); from there on
    ``step_decay(step, base_lr, boundaries, factor)``.

    References:
      Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, 2017
      (gradual warm-up from 0.1 to 0.1 * k / 256 over 5 epochs; the mixup paper's
      ImageNet schedule: 0.1 -> 0.4 for batches of 1,024).
    """
    decayed = step_decay(step, base_lr, boundaries, factor)
    if not warmup_steps:
        return decayed
    t = tf.cast(step, tf.float32) / float(warmup_steps)
    ramp = warmup_from + (base_lr - warmup_from) * t
    return tf.where(tf.cast(step, tf.int64) < int(warmup_steps), tf.cast(ramp, tf.float32),
                    decayed)
