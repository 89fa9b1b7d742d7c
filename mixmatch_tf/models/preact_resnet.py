"""PreAct ResNet-18 as the official mixup (CIFAR) and DivideMix code define it.

``ResNet18()`` in LiJunnan1992/DivideMix ``PreResNet.py`` and in
facebookresearch/mixup-cifar10 ``models/resnet.py`` is the same network (the two
files differ only in ``ResNet18``'s ``num_classes`` argument, fixed at 10 in mixup's):

* stem: 3x3 conv (64, no bias), BN, ReLU;
* four stages of two pre-activation blocks (64, 128, 256, 512 channels; strides 1,
  2, 2, 2). A block computes ``out = relu(bn1(x))``; its shortcut is taken from
  ``out``, not from ``x``: the identity of ``out`` when the shape is kept, a 1x1
  conv (no bias, no BN) of ``out`` otherwise. Then ``conv2(relu(bn2(conv1(out))))``
  is added. (He et al.'s own pre-activation block adds the raw ``x``; the papers'
  numbers come from the official code, which we follow.)
* no BN + ReLU after the last block: its output goes straight to the pooling;
* ``avg_pool2d(out, 4)``, flatten, linear (with bias) to the classes.

Convolutions pad one pixel on every side, as PyTorch's ``padding=1`` does; for a
stride-2 3x3 conv of an even-sized map Keras's ``"same"`` would pad (0, 1) instead
and sample a grid shifted by one pixel, so those convs get an explicit
``ZeroPadding2D(1)`` and ``"valid"`` padding.

Pooling: the official ``avg_pool2d(out, 4)`` equals global average pooling when
the last stage is 4x4, i.e. for 25-32 pixel inputs (CIFAR's 32x32). Outside that
range the official code raises (under 25 pixels the map is smaller than the
window; from 57 pixels it flattens 2x2 or more windows into a 2048+ vector that
does not fit the linear layer) or, for 33-56 pixels, silently averages only the
top-left 4x4 corner. We use global average pooling, which agrees at 32x32 and
keeps every position at other sizes.

Batch norm is PyTorch's ``nn.BatchNorm2d``: epsilon 1e-5, momentum 0.1 in
PyTorch's convention (the weight of the batch), i.e. Keras momentum 0.9. One real
difference remains: PyTorch averages the unbiased batch variance (x n / (n - 1),
n = batch x height x width) into the running variance, Keras the biased one. The
running variance is thus smaller by a factor (n - 1) / n in steady state, at most
about 1e-3 relative: in the last stage (4x4 maps of 32x32 inputs) n = 1024 for
DivideMix's 64-image label-guessing passes (train mode), 4096 for its 256 mixed
images, 2048 for mixup's batches of 128; larger n elsewhere. The rule is pinned in
``tests/test_parity.py``. Initialisation
follows PyTorch's defaults: conv and linear weights and the linear bias uniform in
+-1/sqrt(fan_in), BN gamma 1 and beta 0.

``tests/test_parity.py`` checks this model against a NumPy re-implementation of
the official PyTorch module (inference and training mode, including the
batch-norm updates).

References:
  He et al., Identity Mappings in Deep Residual Networks, 2016;
  LiJunnan1992/DivideMix ``PreResNet.py``; facebookresearch/mixup-cifar10.
"""
import math

import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

# PyTorch's default for conv and linear weights: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
TORCH_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
BN_EPSILON = 1e-5


def _conv(x, filters, kernel, stride, name):
    """PyTorch's ``nn.Conv2d(padding=kernel // 2, bias=False)``."""
    padding = "same"  # equals padding kernel // 2 on every side at stride 1, and for 1x1 convs
    if stride != 1 and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                               kernel_initializer=TORCH_INIT, name=name)(x)


def _preact_block(x, filters, stride, sync_bn, name):
    out = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=f"{name}_bn1")(x)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    # The official block takes its shortcut from the activated `out` (see the module docstring).
    shortcut = out
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(out, filters, 1, stride, f"{name}_shortcut")
    out = _conv(out, filters, 3, stride, f"{name}_conv1")
    out = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=f"{name}_bn2")(out)
    out = keras.layers.ReLU(name=f"{name}_relu2")(out)
    out = _conv(out, filters, 3, 1, f"{name}_conv2")
    return keras.layers.Add(name=f"{name}_add")([shortcut, out])


@register_model("preact_resnet18")
def preact_resnet18(input_shape, num_classes, dropout=0.0, sync_bn=False, blocks=(2, 2, 2, 2)):
    """Stages: ``stem``, ``layer1``..``layer4``, ``head``."""
    stages = []
    inp = keras.Input(input_shape)
    x = _conv(inp, 64, 3, 1, "stem_conv")
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    stages.append(keras.Model(inp, x, name="stem"))
    shape = x.shape[1:]
    for i, (filters, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        inp = keras.Input(shape)
        x = inp
        for j in range(n):
            x = _preact_block(x, filters, (1 if i == 0 else 2) if j == 0 else 1, sync_bn,
                              f"l{i + 1}b{j + 1}")
        stages.append(keras.Model(inp, x, name=f"layer{i + 1}"))
        shape = x.shape[1:]
    inp = keras.Input(shape)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(inp)
    bound = 1.0 / math.sqrt(shape[-1])  # nn.Linear's default bias init
    head = classifier_head(x, num_classes, dropout, TORCH_INIT,
                           bias_initializer=keras.initializers.RandomUniform(-bound, bound))
    stages.append(keras.Model(inp, head, name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name="preact_resnet18")
