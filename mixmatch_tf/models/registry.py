"""The model registry."""
import keras

_MODELS = {}


def register_model(name):
    """Decorator: registers ``fn(input_shape, num_classes, **kwargs) -> keras.Model``."""
    def wrap(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn
    return wrap


def model_names():
    return tuple(sorted(_MODELS))


def build_model(name, input_shape, num_classes, **kwargs):
    """Builds a registered model. Unknown names list the known ones."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(model_names())}")
    return _MODELS[name](tuple(input_shape), int(num_classes), **kwargs)


def split_stages(model):
    """The stages of a shipped model (for hidden-layer mixing), or a clear error."""
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"hidden-layer mixing needs a keras.Sequential of stages; "
                         f"{model.name!r} is a {type(model).__name__}")
    return list(model.layers)


def batch_norm(momentum, epsilon, sync_bn, name=None):
    """BatchNormalization; synchronized across replicas when ``sync_bn``."""
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                           synchronized=sync_bn, name=name)


def classifier_head(features, num_classes, dropout, kernel_initializer, name="head",
                    bias_initializer="zeros"):
    """Dropout (optional) then a dense layer giving float32 logits.

    The final cast keeps logits and losses in float32 under mixed precision.
    """
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(features) if dropout else features
    x = keras.layers.Dense(num_classes, kernel_initializer=kernel_initializer,
                           bias_initializer=bias_initializer, name=f"{name}_dense")(x)
    return keras.layers.Activation("linear", dtype="float32", name=f"{name}_logits")(x)


def forward_flops(model):
    """Multiply-adds x 2 of one example's forward pass through conv and dense layers.

    Batch norm, activations and additions are left out (a few percent); used to
    report achieved FLOP/s against the machine's matmul ceiling.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            _, h, w, cout = layer.output.shape
            total += 2 * kh * kw * cin * cout * h * w // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)
