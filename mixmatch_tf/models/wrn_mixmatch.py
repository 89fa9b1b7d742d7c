"""Wide ResNet-28 exactly as the official MixMatch code builds it.

16-channel stem convolution, three stages of four pre-activation residual blocks
with ``filters << stage`` channels (32/64/128 for WRN-28-2), leaky ReLU of slope
0.1, batch norm with momentum 0.999 (official) and epsilon 1e-3 (TF1 default),
convolutions with biases and He fan-out normal initialisation, a Glorot-normal dense layer.
About 1.47M weights with ``filters=32``; the paper's "large" model uses 135.

As in ``ResNet.classifier``: each block is BN, leaky ReLU, 3x3 conv (stride 2 in
the first block of stages 2+), BN, leaky ReLU, 3x3 conv; only the first block of
the first stage (``activate_before_residual``) takes its shortcut from the
activated input, the others from the raw input; the shortcut is a 1x1 conv (with
bias, same stride) exactly when the width changes; the head is BN, leaky ReLU,
global average pooling, dense (with bias). Convolutions use TF's "same" padding,
as ``tf.layers.conv2d`` does. The official classifier standardises its input
``(x - mean) / std`` itself; here the data pipeline does it
(``mixmatch_tf.data.preprocess``).

Batch norm: ``tf.layers.batch_normalization(momentum=0.999)`` uses TF's momentum
convention (the weight of the old value), the same as Keras. One real difference:
TF1 picks the fused kernel for these 4-D inputs, which averages the unbiased batch
variance (x n / (n - 1), n = batch x height x width) into the moving variance;
Keras averages the biased one. In steady state the moving variance is smaller by
1 / (n - 1): 2.4e-4 relative in the last stage (8x8 maps, batches of 64,
n = 4096), less elsewhere.

``default_scales`` floors log2 of the image size where the official default
(``ilog2``) takes the ceiling; they agree on powers of two. For STL-10's 96x96 the
official default would be 5, but the paper's STL-10 runs pass ``--scales=4``
(``runs/table2.sh``), which is what ours gives.

``tests/test_parity.py`` checks both models against a NumPy re-implementation of
the official TF1 classifier (inference and training mode, with the batch-norm
updates).

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
    """Stages of downscaling: floor(log2(size)) - 2, at least 1 (3 for 32x32 images,
    4 for STL-10's 96x96 as in the paper's runs; see the module docstring)."""
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
