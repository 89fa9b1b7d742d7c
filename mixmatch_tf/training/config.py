"""``RunConfig``: how to run, apart from the method's own hyperparameters."""
import dataclasses
from typing import Optional

from mixmatch_tf.methods.base import check, check_finite
from mixmatch_tf.training import precision as precision_lib

PRECISIONS = (precision_lib.AUTO,) + precision_lib.PRECISIONS


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How to run, apart from the method's own hyperparameters.

    Attributes:
      model_dir: run folder; an existing run there is resumed.
      seed: run seed (initialisation, data order, augmentation, mixing, noise).
      noise_type: None, "sym" or "asym" synthetic label noise.
      noise_rate: its rate r in [0, 1].
      label_set: train on an alternative label set of the data (CIFAR-N).
      normalization: "per_channel" (training-set statistics) or "symmetric" ([-1, 1]).
      steps_per_call: train steps per tf.function call.
      checkpoint_every: steps between checkpoints (also saved at phase ends).
      keep_checkpoints: checkpoints kept by the CheckpointManager.
      eval_batch_size: global batch size of evaluation passes.
      log_every_seconds: minimum seconds between progress lines.
      sync_bn: synchronise batch-norm statistics across replicas.
      precision: Keras dtype policy: "float32", "mixed_bfloat16" (CPUs with bf16
        instructions, TPUs, recent GPUs) or "mixed_float16" (GPUs; with loss
        scaling); "auto" picks by the hardware, or keeps a resumed run's
        (``training.precision``). The Trainer replaces "auto" by its choice.
      jit_compile: compile the train step with XLA.
      export_dir: export a SavedModel there at the end.
      stop_at_step: stop (checkpointed, resumable) once the global step reaches
        this, e.g. to train in chunks under a time limit; no metrics.json then.
    """
    model_dir: str
    seed: int = 0
    noise_type: Optional[str] = None
    noise_rate: float = 0.0
    label_set: Optional[str] = None
    normalization: str = "per_channel"
    steps_per_call: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_batch_size: int = 500
    log_every_seconds: float = 5.0
    sync_bn: bool = False
    precision: str = precision_lib.AUTO
    jit_compile: bool = False
    export_dir: Optional[str] = None
    stop_at_step: Optional[int] = None

    def __post_init__(self):
        check(bool(self.model_dir), "model_dir", "is required")
        check_finite(self)
        # NumPy's generators (noise, splits) take seeds in [0, 2**32).
        check(0 <= self.seed < 2 ** 32, "seed", f"must be in [0, 2**32 - 1], got {self.seed}")
        check(self.noise_type in (None, "sym", "asym"), "noise_type",
              f"must be sym or asym, got {self.noise_type!r}")
        check(0.0 <= self.noise_rate <= 1.0, "noise_rate",
              f"must be in [0, 1], got {self.noise_rate}")
        check(self.noise_type is not None or self.noise_rate == 0.0, "noise_rate",
              f"is {self.noise_rate} but --noise_type is not set (sym or asym)")
        check(self.noise_type is None or self.label_set is None, "label_set",
              "real noisy labels (--label_set) and synthetic noise (--noise_type) exclude "
              "each other")
        check(self.normalization in ("per_channel", "symmetric"), "normalization",
              f"must be per_channel or symmetric, got {self.normalization!r}")
        for name in ("steps_per_call", "checkpoint_every", "keep_checkpoints", "eval_batch_size"):
            check(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        check(self.precision in PRECISIONS, "precision",
              f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check(self.stop_at_step is None or self.stop_at_step > 0, "stop_at_step",
              f"must be > 0, got {self.stop_at_step}")
