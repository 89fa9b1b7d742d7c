"""Bottleneck ResNets and ResNeXts for ImageNet, as the mixup paper's Table 1 trains them.

ResNet-50 and ResNet-101 (He et al. 2016) in the form Goyal et al. 2017 trained
them, and ResNeXt-101 32x4d / 64x4d (Xie et al. 2017), built by one function,
``bottleneck_resnet``; a ResNeXt is a bottleneck ResNet whose 3x3 convolution is
grouped. The definition is the one of torchvision's ``resnet50``, ``resnet101``
and ``resnext101_64x4d`` (``ResNet(Bottleneck, ...)``), which for ResNeXts equals
the "form (c)" block of Xie et al.'s own code (facebookresearch/ResNeXt
``models/resnext.lua``):

* stem: 7x7 conv, stride 2, 64 channels (no bias), BN, ReLU, 3x3 max pool, stride 2;
* four stages (``layer1``..``layer4``) of 3, 4, 6, 3 (ResNet-50) or 3, 4, 23, 3
  (the 101s) bottleneck blocks with ``planes`` = 64, 128, 256, 512; the first block
  of stages 2-4 has stride 2;
* a block: 1x1 conv to ``width`` channels, BN, ReLU; 3x3 conv with the block's
  stride, in ``groups`` groups, BN, ReLU; 1x1 conv to ``4 * planes``, BN; plus the
  shortcut; ReLU. The shortcut is the identity, or a 1x1 conv (same stride) + BN
  when the stride or the width changes (He et al.'s option B). ``width`` is
  ``planes`` for a ResNet and ``floor(planes * d / 64) * C`` for a ResNeXt of
  cardinality C and bottleneck width d ("CxDd": 32x4d gives 128 in ``layer1``,
  64x4d 256);
* global average pooling and a dense layer (with bias) to the classes.

The Goyal et al. details: the stride-2 convolution of a block is its 3x3 one, not
its first 1x1 (as in fb.resnet.torch, Xie et al.'s code and torchvision; He et
al.'s Caffe models stride the 1x1, which torchvision calls v1 and this form v1.5);
the last BN of every block starts with gamma 0, so that each residual branch starts
as zero and the block as the identity (``zero_init_residual``); convolutions are
initialised He-normal with fan-out (Caffe2's MSRAFill, as torchvision and both
official Torch codes do), the dense layer N(0, 0.01) with zero bias. Xie et al.'s
code starts every gamma at 1; the mixup paper trains its ResNeXts with the same
Goyal et al. procedure as its ResNets, so they get the zero gamma too
(``zero_init_residual=False`` gives Xie et al.'s start). Batch norm is PyTorch's
and Caffe2's: epsilon 1e-5, momentum 0.9 in Keras's convention (0.1 in
PyTorch's); the unbiased-variance difference of the moving variance is described
in ``preact_resnet.py``.

Padding is PyTorch's: ``padding = k // 2`` on every side. For a stride-2
convolution of an even-sized map Keras's ``"same"`` would pad (k // 2 - 1, k // 2)
instead, sampling another grid, so the stem's 7x7, the stride-2 3x3s and the max
pool get an explicit ``ZeroPadding2D`` and ``"valid"`` padding. PyTorch pads the
max pool with -inf; zeros are the same there because it follows a ReLU (every
input >= 0).

Size, counted as torchvision counts ``parameters()``: every trainable weight
(convolution kernels, BN gamma and beta, the dense kernel and bias), not the BN
moving statistics. At 1000 classes: ResNet-50 25,557,032; ResNet-101 44,549,160;
ResNeXt-101 32x4d 44,177,704 (the count of the ResNeXt paper's model as ported
by Cadene's pretrainedmodels); ResNeXt-101 64x4d 83,455,272 (torchvision).
``tests/test_models.py`` pins these by building and by formula.

Any image of at least 32x32 pixels runs (the global pooling does not care about
the size); 32 is the network's total stride, below which the last stages see
nothing but 1x1 maps made mostly of padding. ``tests/test_parity.py`` checks the
definition against a NumPy re-implementation of torchvision's module on reduced
configurations of the same builder (fewer blocks, narrower stages) at small
inputs, inference and training mode, batch-norm updates included.

Stages (for hidden-layer mixup): ``stem``, ``layer1``..``layer4``, ``head``; mixup's
``mix_layer`` k = 1 mixes the output of the stem, 2-5 the outputs of the stages.

References:
  He et al., Deep Residual Learning for Image Recognition, CVPR 2016;
  Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, 2017;
  Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017;
  torchvision ``models/resnet.py``; facebookresearch/ResNeXt ``models/resnext.lua``.
"""
import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

BN_MOMENTUM = 0.9  # PyTorch / Caffe2 momentum 0.1
BN_EPSILON = 1e-5
EXPANSION = 4  # a bottleneck block outputs 4 * planes channels
PLANES = (64, 128, 256, 512)
MIN_SIZE = 32
# He et al. 2015, fan-out (MSRAFill): N(0, 2 / (k * k * out_channels)); Keras counts a
# grouped kernel's fan-out as PyTorch does (k * k * out_channels).
HE_FAN_OUT = keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                                distribution="untruncated_normal")
DENSE_INIT = keras.initializers.RandomNormal(0.0, 0.01)  # Goyal et al.


def _conv(x, filters, kernel, stride, name, groups=1):
    """PyTorch's ``nn.Conv2d(padding=kernel // 2, bias=False)``."""
    padding = "same"  # equals kernel // 2 on every side at stride 1, and for 1x1 convs
    if stride != 1 and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, groups=groups,
                               use_bias=False, kernel_initializer=HE_FAN_OUT, name=name)(x)


def _bn(x, sync_bn, name, gamma_initializer="ones"):
    return batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=name,
                      gamma_initializer=gamma_initializer)(x)


def _bottleneck(x, planes, width, stride, groups, zero_init_residual, sync_bn, name):
    out_channels = planes * EXPANSION
    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, stride, f"{name}_down_conv")
        shortcut = _bn(shortcut, sync_bn, f"{name}_down_bn")
    y = _conv(x, width, 1, 1, f"{name}_conv1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(_bn(y, sync_bn, f"{name}_bn1"))
    # The stride sits on the 3x3 convolution (Goyal et al., torchvision's v1.5).
    y = _conv(y, width, 3, stride, f"{name}_conv2", groups=groups)
    y = keras.layers.ReLU(name=f"{name}_relu2")(_bn(y, sync_bn, f"{name}_bn2"))
    y = _conv(y, out_channels, 1, 1, f"{name}_conv3")
    y = _bn(y, sync_bn, f"{name}_bn3", "zeros" if zero_init_residual else "ones")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu3")(y)


def bottleneck_resnet(input_shape, num_classes, blocks, planes=PLANES, groups=1,
                      width_per_group=64, zero_init_residual=True, dropout=0.0, sync_bn=False,
                      name="resnet"):
    """A bottleneck ResNet / ResNeXt (see the module docstring).

    Args:
      blocks: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
      planes: the stages' ``planes`` (outputs are 4x); the stem has ``planes[0]``
        channels, as in every torchvision ResNet.
      groups: cardinality C of the grouped 3x3 convolution (1: a ResNet).
      width_per_group: bottleneck width d of a ResNeXt at ``planes`` 64; the 3x3
        convolution has ``floor(planes * d / 64) * C`` channels (64 and C = 1: a
        ResNet, whose bottleneck is ``planes`` wide).
      zero_init_residual: start the last BN gamma of every block at 0 (Goyal et al.).

    Returns:
      A ``keras.Sequential`` of ``stem``, ``layer1``..``layer4`` and ``head``.
    """
    stages = []
    inp = keras.Input(input_shape)
    x = _conv(inp, planes[0], 7, 2, "stem_conv")
    x = keras.layers.ReLU(name="stem_relu")(_bn(x, sync_bn, "stem_bn"))
    # Zero padding equals PyTorch's -inf padding here: the inputs are ReLU outputs.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    stages.append(keras.Model(inp, x, name="stem"))
    for i, (p, n) in enumerate(zip(planes, blocks)):
        inp = keras.Input(stages[-1].output.shape[1:])
        x = inp
        width = int(p * width_per_group / 64) * groups
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            x = _bottleneck(x, p, width, stride, groups, zero_init_residual, sync_bn,
                            f"l{i + 1}b{j + 1}")
        stages.append(keras.Model(inp, x, name=f"layer{i + 1}"))
    inp = keras.Input(stages[-1].output.shape[1:])
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(inp)
    stages.append(keras.Model(inp, classifier_head(x, num_classes, dropout, DENSE_INIT),
                              name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name=name)


# The registered networks take the builder's size arguments so that the parity tests
# can run reduced configurations of the very function a name builds.

@register_model("resnet50", min_size=MIN_SIZE)
def resnet50(input_shape, num_classes, dropout=0.0, sync_bn=False, blocks=(3, 4, 6, 3),
             planes=PLANES):
    """ResNet-50 (He et al. 2016) as Goyal et al. 2017 trained it: 25,557,032 weights
    at 1000 classes."""
    return bottleneck_resnet(input_shape, num_classes, blocks, planes, dropout=dropout,
                             sync_bn=sync_bn, name="resnet50")


@register_model("resnet101", min_size=MIN_SIZE)
def resnet101(input_shape, num_classes, dropout=0.0, sync_bn=False, blocks=(3, 4, 23, 3),
              planes=PLANES):
    """ResNet-101 (He et al. 2016) as Goyal et al. 2017 trained it: 44,549,160 weights
    at 1000 classes."""
    return bottleneck_resnet(input_shape, num_classes, blocks, planes, dropout=dropout,
                             sync_bn=sync_bn, name="resnet101")


@register_model("resnext101_32x4d", min_size=MIN_SIZE)
def resnext101_32x4d(input_shape, num_classes, dropout=0.0, sync_bn=False,
                     blocks=(3, 4, 23, 3), planes=PLANES, groups=32, width_per_group=4):
    """ResNeXt-101 32x4d (Xie et al. 2017): 44,177,704 weights at 1000 classes."""
    return bottleneck_resnet(input_shape, num_classes, blocks, planes, groups, width_per_group,
                             dropout=dropout, sync_bn=sync_bn, name="resnext101_32x4d")


@register_model("resnext101_64x4d", min_size=MIN_SIZE)
def resnext101_64x4d(input_shape, num_classes, dropout=0.0, sync_bn=False,
                     blocks=(3, 4, 23, 3), planes=PLANES, groups=64, width_per_group=4):
    """ResNeXt-101 64x4d (Xie et al. 2017): 83,455,272 weights at 1000 classes."""
    return bottleneck_resnet(input_shape, num_classes, blocks, planes, groups, width_per_group,
                             dropout=dropout, sync_bn=sync_bn, name="resnext101_64x4d")
