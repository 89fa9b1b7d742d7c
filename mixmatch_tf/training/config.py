"""``RunConfig``: how to run, apart from the method's own hyperparameters."""
import dataclasses
from typing import Optional

from mixmatch_tf.settings import bounded, check, check_finite, check_ranges
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
      noise_mapping: the class mapping of asymmetric noise, "FROM:TO,..." in class ids
        or names (default: the data set's own, ``data.noise``).
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
        this, e.g. to train in chunks under a time limit; no metrics.json then,
        unless it is the run's last step (the run then finishes as usual).
    """
    model_dir: str
    seed: int = 0
    noise_type: Optional[str] = None
    noise_rate: float = bounded(0.0, "[0, 1]")
    noise_mapping: Optional[str] = None
    label_set: Optional[str] = None
    normalization: str = "per_channel"
    steps_per_call: int = bounded(50, "[1, 1e6]")
    checkpoint_every: int = bounded(1000, "[1, 1e12]")
    keep_checkpoints: int = bounded(3, "[1, 1e6]")
    eval_batch_size: int = bounded(500, "[1, 65536]")
    log_every_seconds: float = bounded(5.0, "[0, inf)")
    sync_bn: bool = False
    precision: str = precision_lib.AUTO
    jit_compile: bool = False
    export_dir: Optional[str] = None
    stop_at_step: Optional[int] = bounded(None, "[1, 1e12]")

    def __post_init__(self):
        check(bool(self.model_dir), "model_dir", "is required")
        check_finite(self)
        # NumPy's generators (noise, splits) take seeds in [0, 2**32).
        check(0 <= self.seed < 2 ** 32, "seed", f"must be in [0, 2**32 - 1], got {self.seed}")
        check_ranges(self)
        check(self.noise_type in (None, "sym", "asym"), "noise_type",
              f"must be sym or asym, got {self.noise_type!r}")
        check(self.noise_type is not None or self.noise_rate == 0.0, "noise_rate",
              f"is {self.noise_rate} but --noise_type is not set (sym or asym)")
        check(self.noise_mapping is None or self.noise_type == "asym", "noise_mapping",
              "maps classes for asymmetric noise only; add --noise_type=asym")
        check(self.noise_type is None or self.label_set is None, "label_set",
              "real noisy labels (--label_set) and synthetic noise (--noise_type) exclude "
              "each other")
        check(self.normalization in ("per_channel", "symmetric"), "normalization",
              f"must be per_channel or symmetric, got {self.normalization!r}")
        check(self.precision in PRECISIONS, "precision",
              f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
