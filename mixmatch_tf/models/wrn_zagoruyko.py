"""WideResNet-28-10 as Zagoruyko & Komodakis define it, for the mixup paper's CIFAR runs.

The mixup paper's Figure 3 trains "WideResNet-28-10" and cites Zagoruyko &
Komodakis 2016; its ERM error on CIFAR-10 (3.8%) is the WRN paper's. So this is
the WRN paper's network, after its official code (szagoruyko/wide-residual-networks,
``models/wide-resnet.lua`` that produced the paper's numbers, and the equivalent
``pytorch/resnet.py``), not ``wrn_mixmatch.py``'s WRN-28 of the MixMatch code widened to 10.
The two differ in more than the width:

=====================  ===========================  ==============================
                       this file (Zagoruyko)        ``wrn_mixmatch.py`` (MixMatch, TF1)
=====================  ===========================  ==============================
activation             ReLU                         leaky ReLU, slope 0.1
batch norm             momentum 0.9 (Torch 0.1),    momentum 0.999, epsilon 1e-3
                       epsilon 1e-5
convolution biases     none                         every convolution
shortcut of a block    from the activated input     from the raw input, except the
that changes width     (BN-ReLU before the split)   first block of stage 1
padding                Torch's: 1 on every side     TF "SAME" (asymmetric at
                                                    stride 2)
stage widths           16k, 32k, 64k                32, 64, 128 (filters << stage)
initialisation         conv N(0, 2 / fan_in); BN    conv N(0, 2 / fan_out) + bias
                       gamma U(0, 1); dense         0; BN gamma 1; Glorot dense
                       U(+-1/sqrt(fan_in)), bias 0
=====================  ===========================  ==============================

WRN-d-k (d = 6n + 4): 3x3 stem conv to 16 channels; three groups of n blocks with
16k, 32k, 64k channels, strides 1, 2, 2; a block computes ``o1 = relu(bn0(x))``,
``z = conv1(relu(bn1(conv0(o1))))`` (3x3 convs, the first with the block's
stride) and returns ``z + x`` when the width is kept, else ``z + convdim(o1)``
(a 1x1 conv with the block's stride); then BN, ReLU, average pooling over the 8x8
map, dense (with bias). We pool globally, which is the same at CIFAR's 32x32.
WRN-28-10 has n = 4 and 36,479,194 weights at 10 classes (36,536,884 at 100), the
WRN paper's "36.5M", counted as torchvision counts ``parameters()`` (kernels, BN
gamma and beta, dense kernel and bias; not the BN moving statistics);
``tests/test_models.py`` pins both by building and by formula.

The initialisation is the official code's: ``MSRinit`` draws convolutions
N(0, 2 / (3 * 3 * in_channels)), Torch 7's ``nn.SpatialBatchNormalization`` starts
gamma uniform in [0, 1) and beta 0 (the PyTorch port keeps ``torch.rand``), and
``nn.Linear`` U(+-1/sqrt(fan_in)) with the bias zeroed by ``FCinit``. The WRN
paper's dropout between the two convolutions of a block is not used by the mixup
paper and is left out; ``dropout`` here is the registry's, before the classifier.

``tests/test_parity.py`` checks this definition against a NumPy re-implementation
of the official PyTorch function on a reduced configuration of the same builder
(WRN-16-2 at 32x32), inference and training mode, batch-norm updates included.

Stages (for hidden-layer mixup): ``stem``, ``group1``..``group3``, ``head``.

References:
  Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016;
  szagoruyko/wide-residual-networks ``models/wide-resnet.lua``, ``pytorch/resnet.py``.
"""
import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

BN_MOMENTUM = 0.9  # Torch momentum 0.1
BN_EPSILON = 1e-5
CONV_INIT = keras.initializers.VarianceScaling(2.0, mode="fan_in",
                                               distribution="untruncated_normal")
GAMMA_INIT = keras.initializers.RandomUniform(0.0, 1.0)  # Torch 7's BN default
# Torch 7's nn.Linear: U(+-1/sqrt(fan_in)).
DENSE_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _conv(x, filters, kernel, stride, name):
    """Torch's ``SpatialConvolution`` with ``pad = kernel // 2``, no bias."""
    padding = "same"  # equals kernel // 2 on every side at stride 1, and for 1x1 convs
    if stride != 1 and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                               kernel_initializer=CONV_INIT, name=name)(x)


def _bn_relu(x, sync_bn, name):
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, sync_bn, name=f"{name}_bn",
                   gamma_initializer=GAMMA_INIT)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _block(x, filters, stride, sync_bn, name):
    o1 = _bn_relu(x, sync_bn, f"{name}_0")
    z = _conv(o1, filters, 3, stride, f"{name}_conv0")
    z = _conv(_bn_relu(z, sync_bn, f"{name}_1"), filters, 3, 1, f"{name}_conv1")
    # A block that changes the width projects the activated input, one that keeps
    # it adds the raw input (official code; see the table in the module docstring).
    shortcut = x if x.shape[-1] == filters else _conv(o1, filters, 1, stride, f"{name}_convdim")
    return keras.layers.Add(name=f"{name}_add")([z, shortcut])


def wide_resnet(input_shape, num_classes, depth=28, widen_factor=10, dropout=0.0, sync_bn=False,
                name="wrn28_10"):
    """WRN-``depth``-``widen_factor`` (see the module docstring).

    Returns:
      A ``keras.Sequential`` of ``stem``, ``group1``..``group3`` and ``head``.
    """
    if (depth - 4) % 6:
        raise ValueError(f"a WRN's depth is 6n + 4, got {depth}")
    n = (depth - 4) // 6
    inp = keras.Input(input_shape)
    stages = [keras.Model(inp, _conv(inp, 16, 3, 1, "stem_conv"), name="stem")]
    for g, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
        inp = keras.Input(stages[-1].output.shape[1:])
        x = inp
        for b in range(n):
            x = _block(x, width * widen_factor, stride if b == 0 else 1, sync_bn,
                       f"g{g + 1}b{b + 1}")
        stages.append(keras.Model(inp, x, name=f"group{g + 1}"))
    inp = keras.Input(stages[-1].output.shape[1:])
    x = _bn_relu(inp, sync_bn, "head")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    stages.append(keras.Model(inp, classifier_head(x, num_classes, dropout, DENSE_INIT),
                              name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name=name)


@register_model("wrn28_10")
def wrn28_10(input_shape, num_classes, dropout=0.0, sync_bn=False, depth=28, widen_factor=10):
    """WideResNet-28-10 (Zagoruyko & Komodakis 2016): 36,479,194 weights at 10 classes.

    ``depth`` and ``widen_factor`` let the parity tests run a reduced configuration.
    """
    return wide_resnet(input_shape, num_classes, depth, widen_factor, dropout, sync_bn,
                       name="wrn28_10")
