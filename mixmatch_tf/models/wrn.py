"""Wide ResNet-28 exactly as the official MixMatch code builds it.

16-channel stem convolution, three stages of four pre-activation residual blocks
with ``filters << stage`` channels (32/64/128 for WRN-28-2), leaky ReLU of slope
0.1, batch norm with momentum 0.999 and epsilon 1e-3 (TF1 defaults), convolutions
with biases and He fan-out normal initialisation, a Glorot-normal dense layer.
About 1.47M weights with ``filters=32``; the paper's "large" model uses 135.

References:
  Zagoruyko & Komodakis, Wide Residual Networks, 2016; google-research/mixmatch
  ``libml/models.py``.
"""
import math

import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

BN_MOMENTUM = 0.999
BN_EPSILON = 1e-3


def _conv(filters, kernel, stride=1, name=None):
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                               kernel_initializer=init, name=name)


def _bn_lrelu(x, sync_bn, name):
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_lrelu")(x)


def _residual(x0, filters, stride, activate_before_residual, sync_bn, name):
    x = _bn_lrelu(x0, sync_bn, f"{name}_a")
    if activate_before_residual:
        x0 = x
    x = _conv(filters, 3, stride, name=f"{name}_conv1")(x)
    x = _bn_lrelu(x, sync_bn, f"{name}_b")
    x = _conv(filters, 3, name=f"{name}_conv2")(x)
    if x0.shape[-1] != filters:
        x0 = _conv(filters, 1, stride, name=f"{name}_shortcut")(x0)
    return keras.layers.Add(name=f"{name}_add")([x0, x])


def default_scales(input_shape):
    """Stages of downscaling as the official code picks them: log2(width) - 2
    (3 for 32x32 images, 4 for STL-10's 96x96, at least 1)."""
    return max(1, int(math.log2(min(input_shape[0], input_shape[1]))) - 2)


@register_model("wrn28_2")
def wrn28_2(input_shape, num_classes, dropout=0.0, sync_bn=False):
    """WRN-28-2 of the MixMatch paper (filters 32)."""
    return wrn28(input_shape, num_classes, filters=32, dropout=dropout, sync_bn=sync_bn)


@register_model("wrn28_large")
def wrn28_large(input_shape, num_classes, dropout=0.0, sync_bn=False):
    """The MixMatch paper's "larger model" for CIFAR-100 (135 filters, ~26M weights)."""
    return wrn28(input_shape, num_classes, filters=135, dropout=dropout, sync_bn=sync_bn,
                 name="wrn28_large")


def wrn28(input_shape, num_classes, filters=32, scales=None, repeat=4, dropout=0.0,
          sync_bn=False, name="wrn28_2"):
    """Stages: ``stem``, ``stage1``..``stage{scales}``, ``head``; ``scales`` defaults to
    ``default_scales(input_shape)``."""
    scales = scales or default_scales(input_shape)
    stages = []
    inp = keras.Input(input_shape)
    stages.append(keras.Model(inp, _conv(16, 3, name="stem_conv")(inp), name="stem"))
    shape = stages[-1].output.shape[1:]
    for scale in range(scales):
        inp = keras.Input(shape)
        width = filters << scale
        x = _residual(inp, width, 2 if scale else 1, scale == 0, sync_bn, f"s{scale + 1}b1")
        for i in range(repeat - 1):
            x = _residual(x, width, 1, False, sync_bn, f"s{scale + 1}b{i + 2}")
        stages.append(keras.Model(inp, x, name=f"stage{scale + 1}"))
        shape = x.shape[1:]
    inp = keras.Input(shape)
    x = _bn_lrelu(inp, sync_bn, "head")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    stages.append(keras.Model(inp, classifier_head(x, num_classes, dropout, "glorot_normal"),
                              name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name=name)
