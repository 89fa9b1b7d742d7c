"""Methods, one file each, registered by name."""
from mixmatch_tf.methods.base import (ConfigError, Context, Method, Phase, TrainConfig,
                                      get_method, method_names, register, resolve_config)
from mixmatch_tf.methods import (coteaching, dividemix, erm, mean_teacher,  # noqa: F401
                                 mixmatch, mixup, mixup_ssl, pi_model, pseudo_label,
                                 supervised, vat)
