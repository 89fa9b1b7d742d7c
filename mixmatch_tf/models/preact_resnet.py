"""PreAct ResNet-18 as used by the official mixup (CIFAR) and DivideMix code.

Stem 3x3 conv (64) + BN + ReLU, four stages of two pre-activation blocks (64, 128,
256, 512 channels; strides 1, 2, 2, 2), global average pooling, dense. Batch norm
and initialisation follow PyTorch's defaults (momentum 0.1 -> Keras 0.9, epsilon
1e-5; weights uniform in +-1/sqrt(fan_in)), so results compare with the
PyTorch references.

References:
  He et al., Identity Mappings in Deep Residual Networks, 2016;
  LiJunnan1992/DivideMix ``PreResNet.py``; facebookresearch/mixup-cifar10.
"""
import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model

TORCH_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _conv(filters, kernel, stride=1, name=None):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               kernel_initializer=TORCH_INIT, name=name)


def _preact_block(x, filters, stride, sync_bn, name):
    out = batch_norm(0.9, 1e-5, sync_bn, name=f"{name}_bn1")(x)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, name=f"{name}_shortcut")(out)
    out = _conv(filters, 3, stride, name=f"{name}_conv1")(out)
    out = batch_norm(0.9, 1e-5, sync_bn, name=f"{name}_bn2")(out)
    out = keras.layers.ReLU(name=f"{name}_relu2")(out)
    out = _conv(filters, 3, name=f"{name}_conv2")(out)
    return keras.layers.Add(name=f"{name}_add")([shortcut, out])


@register_model("preact_resnet18")
def preact_resnet18(input_shape, num_classes, dropout=0.0, sync_bn=False, blocks=(2, 2, 2, 2)):
    """Stages: ``stem``, ``layer1``..``layer4``, ``head``."""
    stages = []
    inp = keras.Input(input_shape)
    x = _conv(64, 3, name="stem_conv")(inp)
    x = batch_norm(0.9, 1e-5, sync_bn, name="stem_bn")(x)
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
    stages.append(keras.Model(inp, classifier_head(x, num_classes, dropout, TORCH_INIT), name="head"))
    return keras.Sequential([keras.Input(input_shape)] + stages, name="preact_resnet18")
