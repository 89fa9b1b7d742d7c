"""Methods, one file each, registered by name.

Every module of this package is imported here, so a method file registers
itself (``@register``) the moment it exists: there is no list to keep.
"""
import importlib
import pkgutil

from mixmatch_tf.methods.base import (Context, LabeledSplit, Method, Phase, TrainConfig,
                                      get_method, method_names, register)
from mixmatch_tf.settings import ALL_LABELS, ConfigError, resolve_config

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
del _module
