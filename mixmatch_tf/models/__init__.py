"""Keras models by name.

Every shipped model is a ``keras.Sequential`` of stages (stem, residual stages,
head), so hidden-layer mixing at stage k can run ``model.layers[:k]``, mix, and
run the rest. Any other Keras model mapping images to logits can be passed to
the Python API instead of a name.
"""
from mixmatch_tf.models.registry import (ModelInputError, build_model, check_model_input,
                                         forward_flops, model_names, register_model,
                                         split_stages)
from mixmatch_tf.models import (densenet, mlp, preact_resnet, resnet, small_cnn,  # noqa: F401
                                wide_resnet, wrn)  # (registration)
