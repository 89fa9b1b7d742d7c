"""Methods, one file each, registered by name."""
from mixmatch_tf.methods.base import (ConfigError, Context, Method, Phase, TrainConfig,
                                      get_method, method_names, register, resolve_config)
from mixmatch_tf.methods import (erm, mean_teacher, mixmatch, mixup, mixup_ssl,  # noqa: F401
                                 pi_model, pseudo_label, supervised, vat)
