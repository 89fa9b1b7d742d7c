"""DenseNet-BC-190 (growth rate 40) for CIFAR, as Huang et al. define it.

After the official code (liuzhuang13/DenseNet ``models/densenet.lua``, CIFAR
branch, with ``DenseConnectLayerStandard``), DenseNet-BC of depth L and growth
rate k:

* stem: 3x3 conv (pad 1, no bias) to 2k channels, nothing else;
* three dense blocks of n = (L - 4) / 6 layers each (31 for L = 190); a layer is
  BN, ReLU, 1x1 conv to 4k channels, BN, ReLU, 3x3 conv (pad 1) to k channels,
  and its output is concatenated after its input (``nn.Concat`` of the identity,
  then the new features), so a block adds n * k channels;
* between blocks a transition: BN, ReLU, 1x1 conv to floor(c * 0.5) channels
  (compression 0.5, the "C"), 2x2 average pooling with stride 2;
* after the last block BN, ReLU, average pooling over the 8x8 map, dense (with
  bias). We pool globally, which is the same at CIFAR's 32x32.

No convolution has a bias (the official code drops them under cuDNN >= 4).
Initialisation as there: convolutions N(0, 2 / (k * k * out_channels)) (fan-out),
BN gamma 1 and beta 0, the dense layer Torch 7's U(+-1/sqrt(fan_in)) with a zero
bias. Batch norm is Torch's: epsilon 1e-5, momentum 0.9 in Keras's convention (0.1
in Torch's). The official dropout option (0 with data augmentation, as the mixup
paper trains) is left out; ``dropout`` here is the registry's, before the classifier.

DenseNet-BC-190-40 has 25,624,430 weights at 10 classes (25,821,620 at 100), the
paper's "25.6M", counted as torchvision counts ``parameters()`` (kernels, BN gamma
and beta, dense kernel and bias; not the BN moving statistics);
``tests/test_models.py`` pins both by building and by formula, and
``tests/test_parity.py`` checks the definition against a NumPy re-implementation
of the official one on a reduced configuration of the same builder (depth 22,
growth 5, where the compression has to round down), inference and training mode,
batch-norm updates included.

Images need at least 4x4 pixels (two 2x2 poolings without padding).

Stages (for hidden-layer mixup): ``stem``, ``block1`` (dense block 1),
``block2`` (transition 1, dense block 2), ``block3`` (transition 2, dense block 3),
``head``; like a ResNet stage, each stage after the first starts by downsampling.

References:
  Huang et al., Densely Connected Convolutional Networks, CVPR 2017;
  liuzhuang13/DenseNet ``models/densenet.lua``, ``models/DenseConnectLayer.lua``.
"""
import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

BN_MOMENTUM = 0.9  # Torch momentum 0.1
BN_EPSILON = 1e-5
CONV_INIT = keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                               distribution="untruncated_normal")
# Torch 7's nn.Linear: U(+-1/sqrt(fan_in)).
DENSE_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _bn_relu_conv(x, filters, kernel, sync_bn, name):
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    # Stride 1 only: "same" is the official padding of kernel // 2 on every side.
    return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                               kernel_initializer=CONV_INIT, name=f"{name}_conv")(x)


def _dense_layer(x, growth_rate, sync_bn, name):
    y = _bn_relu_conv(x, 4 * growth_rate, 1, sync_bn, f"{name}_1")  # the bottleneck ("B")
    y = _bn_relu_conv(y, growth_rate, 3, sync_bn, f"{name}_2")
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, compression, sync_bn, name):
    x = _bn_relu_conv(x, int(x.shape[-1] * compression), 1, sync_bn, name)
    return keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)


def densenet_bc(input_shape, num_classes, depth=190, growth_rate=40, compression=0.5,
                dropout=0.0, sync_bn=False, name="densenet_bc_190"):
    """DenseNet-BC of ``depth`` layers for CIFAR (see the module docstring).

    Returns:
      A ``keras.Sequential`` of ``stem``, ``block1``..``block3`` and ``head``.
    """
    if (depth - 4) % 6:
        raise ValueError(f"a DenseNet-BC's depth is 6n + 4, got {depth}")
    n = (depth - 4) // 6
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(2 * growth_rate, 3, padding="same", use_bias=False,
                            kernel_initializer=CONV_INIT, name="stem_conv")(inp)
    stages = [keras.Model(inp, x, name="stem")]
    for b in range(1, 4):
        inp = keras.Input(stages[-1].output.shape[1:])
        x = inp
        if b > 1:
            x = _transition(x, compression, sync_bn, f"t{b - 1}")
        for i in range(1, n + 1):
            x = _dense_layer(x, growth_rate, sync_bn, f"b{b}l{i}")
        stages.append(keras.Model(inp, x, name=f"block{b}"))
    inp = keras.Input(stages[-1].output.shape[1:])
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name="head_bn")(inp)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    stages.append(keras.Model(inp, classifier_head(x, num_classes, dropout, DENSE_INIT),
                              name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name=name)


@register_model("densenet_bc_190", min_size=4)  # two 2x2 poolings without padding
def densenet_bc_190(input_shape, num_classes, dropout=0.0, sync_bn=False, depth=190,
                    growth_rate=40):
    """DenseNet-BC-190, growth rate 40 (Huang et al. 2017): 25,624,430 weights at 10
    classes.

    ``depth`` and ``growth_rate`` let the parity tests run a reduced configuration.
    """
    return densenet_bc(input_shape, num_classes, depth, growth_rate, dropout=dropout,
                       sync_bn=sync_bn, name="densenet_bc_190")
