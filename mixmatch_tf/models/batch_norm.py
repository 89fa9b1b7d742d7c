"""Keras's BatchNormalization, run by TensorFlow's fused kernel when it trains.

Keras 3 computes a training-mode batch norm on the TensorFlow backend from
separate ops -- ``tf.nn.moments`` (mean, squared difference, mean) and
``tf.nn.batch_normalization`` (rsqrt, multiplies, adds) -- and their gradients,
about a dozen passes over every activation map of a step. TensorFlow's
``FusedBatchNormV3`` (oneDNN's batch norm on CPUs, cuDNN's on GPUs) does the
forward in one kernel and the backward (``FusedBatchNormGradV3``) in another.

The numbers are Keras's: the same normalisation with the biased batch variance,
the same epsilon (the raw op is called directly: ``tf.nn.fused_batch_norm``
would raise epsilons under 1.001e-5 to that value), the same moving-average
update. The fused kernel returns the unbiased batch variance (x n / (n - 1), the
TF1 rule); it is scaled back by (n - 1) / n before the moving variance takes it,
so the moving statistics follow Keras's rule, which ``tests/test_parity.py``
pins. Everything else -- inference, ``synchronized`` (cross-replica moments),
masks, renorm, other axes or ranks, other backends -- runs Keras's own code.
The layer has Keras's variables and config, so checkpoints of either load in
the other.
"""
import keras
import tensorflow as tf


class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a fused training-mode kernel (NHWC)."""

    def _fused(self, inputs, training, mask):
        return (training and self.trainable and mask is None and not self.synchronized
                and not self.renorm and self.scale and self.center
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # statistics in float32, as Keras computes them
        empty = tf.constant([], tf.float32)
        y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32),
            mean=empty, variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        shape = tf.shape(x)
        n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
        variance = unbiased_variance * ((n - 1.0) / tf.maximum(n, 1.0))
        momentum = self.momentum
        self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * momentum
                                + mean * (1.0 - momentum))
        self.moving_variance.assign(tf.cast(self.moving_variance, tf.float32) * momentum
                                    + variance * (1.0 - momentum))
        return tf.cast(y, self.compute_dtype)
