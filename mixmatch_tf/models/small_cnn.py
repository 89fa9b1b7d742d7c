"""A small CNN that suits 8x8 images such as the bundled digits (about 66k weights)."""
import keras

from mixmatch_tf.models.registry import batch_norm, classifier_head, register_model


def _conv_bn_relu(x, filters, sync_bn, name):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(0.9, 1e-5, sync_bn, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_model("small_cnn", min_size=2)  # the 2x2 max pool has no padding
def small_cnn(input_shape, num_classes, width=32, dropout=0.0, sync_bn=False):
    """conv-BN-ReLU x2, max-pool, conv-BN-ReLU x2, global average pool, dense.

    Convolutions are 3x3, "same", without bias (``width`` channels, then
    ``2 * width``); batch norm has Keras momentum 0.9 (PyTorch's 0.1) and epsilon
    1e-5; the max pool is 2x2 with stride 2; the dense layer has a bias.
    ``tests/test_parity.py`` checks the model against this definition.

    Stages: ``block1`` (full resolution), ``block2`` (half), ``head``.
    """
    inp = keras.Input(input_shape)
    x = _conv_bn_relu(inp, width, sync_bn, "b1a")
    x = _conv_bn_relu(x, width, sync_bn, "b1b")
    x = keras.layers.MaxPooling2D(2, name="b1_pool")(x)
    block1 = keras.Model(inp, x, name="block1")

    inp2 = keras.Input(block1.output.shape[1:])
    y = _conv_bn_relu(inp2, 2 * width, sync_bn, "b2a")
    y = _conv_bn_relu(y, 2 * width, sync_bn, "b2b")
    y = keras.layers.GlobalAveragePooling2D(name="b2_pool")(y)
    block2 = keras.Model(inp2, y, name="block2")

    inp3 = keras.Input(block2.output.shape[1:])
    head = keras.Model(inp3, classifier_head(inp3, num_classes, dropout, "glorot_uniform"),
                       name="head")
    return keras.Sequential([keras.Input(input_shape), block1, block2, head], name="small_cnn")
