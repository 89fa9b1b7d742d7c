"""Stateless seeds derived from a run seed and any number of integers."""
import tensorflow as tf


def make_seed(seed, *salts):
    """Returns a stateless RNG seed derived from ``seed`` and ``salts``.

    The same arguments always give the same seed, on any device and in any
    process, so a resumed run draws exactly what the interrupted one would have.

    Args:
      seed: int or scalar integer tensor, the run seed.
      *salts: ints or scalar integer tensors (a stream id, a step, a view, ...).

    Returns:
      int64 tensor of shape [2], usable as the ``seed`` of ``tf.random.stateless_*``
      ops and of TFP samplers.
    """
    out = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
    for salt in salts:
        out = tf.random.experimental.stateless_fold_in(out, tf.cast(salt, tf.int64))
    return out
