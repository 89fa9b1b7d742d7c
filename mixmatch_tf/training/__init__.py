"""The method-agnostic trainer."""
from mixmatch_tf.training.strategy import make_strategy, split_cpu
from mixmatch_tf.training.trainer import NonFiniteLossError, RunConfig, Trainer, load_run
