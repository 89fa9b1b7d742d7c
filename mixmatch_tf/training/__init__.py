"""The method-agnostic trainer: the run folder (``run_dir``), the phase loop (``loop``),
the evaluation passes (``passes``) and the ``Trainer`` orchestrating them."""
from mixmatch_tf.training.config import RunConfig
from mixmatch_tf.training.loop import NonFiniteLossError
from mixmatch_tf.training.folder import RunFolderError
from mixmatch_tf.training.lock import RunLockedError
from mixmatch_tf.training.strategy import make_strategy, split_cpu
from mixmatch_tf.training.trainer import Trainer, load_run
