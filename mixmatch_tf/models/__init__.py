"""Keras models by name.

Every shipped model is a ``keras.Sequential`` of stages (stem, residual stages,
head), so hidden-layer mixing at stage k can run ``model.layers[:k]``, mix, and
run the rest. Any other Keras model mapping images to logits can be passed to
the Python API instead of a name.

Every module of this package is imported here, so a network file registers itself
(``@register_model``) the moment it exists: there is no list to keep.
"""
import importlib
import pkgutil

from mixmatch_tf.models.registry import (ModelInputError, build_model, check_model_input,
                                         forward_flops, model_names, register_model,
                                         split_stages)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
