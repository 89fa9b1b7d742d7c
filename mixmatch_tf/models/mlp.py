"""A multi-layer perceptron for tabular data and 2-D toy problems."""
import keras

from mixmatch_tf.models.registry import classifier_head, register_model


@register_model("mlp", input_rank=1)
def mlp(input_shape, num_classes, hidden=(128, 128), dropout=0.0, sync_bn=False):
    """Dense (with bias) + ReLU layers, one stage each (``dense1``, ...), then ``head``
    (dense with bias). ``tests/test_parity.py`` checks the model against this definition.

    ``sync_bn`` is accepted for a uniform interface; the MLP has no batch norm.
    """
    del sync_bn
    stages, shape = [], tuple(input_shape)
    for i, units in enumerate(hidden):
        inp = keras.Input(shape)
        x = keras.layers.Dense(units, name=f"dense{i + 1}")(inp)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        stages.append(keras.Model(inp, x, name=f"dense{i + 1}"))
        shape = (units,)
    inp = keras.Input(shape)
    stages.append(keras.Model(inp, classifier_head(inp, num_classes, dropout, "glorot_uniform"),
                              name="head"))
    return keras.Sequential([keras.Input(tuple(input_shape))] + stages, name="mlp")
