"""The model registry."""
import keras

from mixmatch_tf.models.batch_norm import BatchNormalization

_MODELS = {}
# name -> (input rank, minimum height and width): what each model accepts.
_INPUTS = {}


class ModelInputError(ValueError):
    """The data do not fit the model; ``field`` is the setting to change (``model``)."""

    def __init__(self, message, field="model"):
        super().__init__(message)
        self.field = field


def register_model(name, input_rank=3, min_size=1):
    """Decorator: registers ``fn(input_shape, num_classes, **kwargs) -> keras.Model``.

    Args:
      input_rank: rank of one example the model takes: 3 for images [H, W, C],
        1 for feature vectors [D].
      min_size: the smallest height and width (images) it runs on, e.g. 2 for a
        network whose 2x2 max pool has no padding.
    """
    def wrap(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        _INPUTS[name] = (input_rank, min_size)
        return fn
    return wrap


def model_names():
    return tuple(sorted(_MODELS))


def models_for(input_shape):
    """Names of the registered models that accept examples of ``input_shape``."""
    return tuple(n for n in model_names() if _fit_problem(n, tuple(input_shape)) is None)


def _fit_problem(name, input_shape):
    rank, min_size = _INPUTS[name]
    if len(input_shape) != rank:
        kind = {1: "feature vectors [D]", 3: "images [H, W, C]"}.get(rank, f"rank-{rank} inputs")
        return f"takes {kind}"
    if rank == 3 and min(input_shape[:2]) < min_size:
        return f"needs images of at least {min_size}x{min_size} pixels"
    return None


def check_model_input(name, input_shape):
    """Raises ModelInputError unless model ``name`` runs on examples of ``input_shape``.

    Called when the model is chosen, so a misfit is one sentence naming the model,
    the data shape and the models that fit, not a Keras shape error after start-up.
    """
    if name not in _MODELS:
        raise ModelInputError(f"unknown model {name!r}; valid: {', '.join(model_names())}")
    input_shape = tuple(int(d) for d in input_shape)
    problem = _fit_problem(name, input_shape)
    if problem:
        fits = ", ".join(models_for(input_shape)) or "none"
        raise ModelInputError(f"{name!r} {problem}, but the data's examples have shape "
                              f"{list(input_shape)}; models that fit: {fits}")


def build_model(name, input_shape, num_classes, **kwargs):
    """Builds a registered model. Unknown names list the known ones; a model that
    does not fit ``input_shape`` is a ModelInputError (``check_model_input``)."""
    check_model_input(name, input_shape)
    return _MODELS[name](tuple(input_shape), int(num_classes), **kwargs)


def split_stages(model):
    """The stages of a shipped model (for hidden-layer mixing), or a clear error."""
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"hidden-layer mixing needs a keras.Sequential of stages; "
                         f"{model.name!r} is a {type(model).__name__}")
    return list(model.layers)


def batch_norm(momentum, epsilon, sync_bn, name=None, gamma_initializer="ones"):
    """BatchNormalization (fused kernel when it trains, ``models.batch_norm``);
    synchronized across replicas when ``sync_bn``.

    ``gamma_initializer``: e.g. zeros for the last batch norm of a residual branch
    (Goyal et al. 2017), so each block starts as the identity.
    """
    return BatchNormalization(momentum=momentum, epsilon=epsilon, synchronized=sync_bn,
                              name=name, gamma_initializer=gamma_initializer)


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
