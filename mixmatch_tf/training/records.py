"""What a run records as it trains, and the results contract: the evaluation
history, the last training metrics, TensorBoard summaries and ``metrics.json``."""
import numpy as np
import tensorflow as tf
from absl import logging

from mixmatch_tf.training.folder import EVALS_FILE, METRICS_FILE, TRAIN_METRICS_FILE


def run_record(method_name, data, run, config, steps, wall_seconds, num_replicas,
               unreadable=0):
    """What metrics.json says about the run itself (before the method's own entries).

    ``unreadable``: training rows whose file could not be read or decoded, each
    replaced by another example of its batch (counted every time it is drawn; 0
    for data held in memory).
    """
    out = {"method": method_name, "dataset": data.name, "seed": run.seed, "steps": steps,
           "wall_seconds": wall_seconds, "noise_type": run.noise_type,
           "noise_rate": run.noise_rate, "model": config.model, "config": config.to_dict(),
           "num_replicas": num_replicas, "precision": run.precision,
           "unreadable_images": unreadable}
    return out


def summarize(evals):
    """Error summaries of an evaluation history [{"step", "test_error"}, ...].

    Each paper's own statistic: the mixup paper reports the median test error of
    the last 10 epochs, MixMatch the median of the last 20 evaluations, DivideMix
    (and the Co-teaching re-runs of its tables) the mean of the last 10 epochs.
    """
    errors = [e["test_error"] for e in evals]
    if not errors:
        return {}
    out = {
        "test_error": errors[-1],
        "best_test_error": min(errors),
        "mean_last_10_test_error": float(np.mean(errors[-10:])),
        "median_last_10_test_error": float(np.median(errors[-10:])),
        "median_last_20_test_error": float(np.median(errors[-20:])),
    }
    # The last evaluation's other errors: top-5 (more than 10 classes, ImageNet's
    # second number) and a method's own (``Method.extra_evaluations``: an EMA's student).
    out.update({k: v for k, v in evals[-1].items()
                if k.endswith("_test_error") and k != "test_error"})
    return out


class Records:
    """What a run records as it trains: the evaluation history, the last training
    metrics and TensorBoard summaries; persisted by the folder's writer only.

    Args:
      run_dir: the ``RunDir``.
      step: the global step the run (re)starts at; records of later steps
        belong to lost work and are dropped.
    """

    def __init__(self, run_dir, step):
        self.run_dir = run_dir
        self.evals = run_dir.read_evals(step)
        self.train_metrics = run_dir.read_train_metrics(step)
        self._writers = {n: tf.summary.create_file_writer(run_dir.path(n)) if run_dir.writer
                         else tf.summary.create_noop_writer() for n in ("train", "eval")}

    def scalars(self, writer, step, values):
        with self._writers[writer].as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)

    def phase_summaries(self, step, phase_name, values):
        """A phase's start-of-phase summaries (e.g. a division's statistics): numbers as
        training scalars, logged in one line; arrays as histograms."""
        values = values or {}
        scalars = {k: v for k, v in values.items() if np.ndim(v) == 0}
        if scalars:
            self.scalars("train", step, scalars)
            logging.info("%s: %s", phase_name, ", ".join(
                f"{k} {v:.4g}" for k, v in sorted(scalars.items())))
        arrays = {k: v for k, v in values.items() if np.ndim(v) > 0 and np.size(v)}
        with self._writers["train"].as_default(step=step):
            for k, v in arrays.items():
                tf.summary.histogram(k, np.asarray(v, np.float32))

    def image(self, name, step, image, description):
        """One uint8 image [H, W, C] with its markdown ``description`` (training writer)."""
        with self._writers["train"].as_default(step=step):
            tf.summary.image(name, image[None], description=description)

    def evaluated_at(self, step):
        return bool(self.evals) and self.evals[-1]["step"] == step

    def add_eval(self, step, phase_name, record):
        """Adds an evaluation: ``record`` holds ``test_error`` and optionally
        ``top5_test_error``, ``unreadable_test_images``, a method's own numbers
        (``Method.extra_evaluations``) and a ``warning`` (``Trainer.evaluate``)."""
        self.evals = [e for e in self.evals if e["step"] != step]
        self.evals.append(dict(step=step, phase=phase_name, **record))
        error = record["test_error"]
        others = {k: v for k, v in record.items()
                  if k != "test_error" and isinstance(v, (int, float))}
        self.scalars("eval", step, dict(others, test_error=error, test_accuracy=100.0 - error))
        self.run_dir.write_json(EVALS_FILE, self.evals)
        errors = {k: v for k, v in others.items() if k.endswith("_test_error")}
        logging.info("step %d: test error %.2f%%%s", step, error, "".join(
            f", {k.removesuffix('_test_error').replace('_', '-')} {v:.2f}%"
            for k, v in sorted(errors.items())))
        if "warning" in record:
            logging.warning("step %d: %s", step, record["warning"])

    def add_train_metrics(self, step, metrics, unreadable=0):
        """The last call's mean training metrics; ``unreadable``: the training rows
        whose image could not be read so far, a scalar of its own once there is one."""
        self.train_metrics = dict(metrics, step=step)
        self.scalars("train", step, metrics)
        if unreadable:
            self.scalars("train", step, {"unreadable_images": float(unreadable)})

    def before_checkpoint(self):
        """Saves the training metrics; called before each checkpoint, so a checkpoint
        never lacks its metrics (``RunDir.read_train_metrics``)."""
        self.run_dir.write_json(TRAIN_METRICS_FILE, self.train_metrics)

    def write_metrics(self, out):
        """metrics.json: ``out`` with the evaluation history, its summary and the
        last training metrics."""
        out = dict(out, evals=self.evals, train_metrics=self.train_metrics)
        out.update(summarize(self.evals))
        self.run_dir.write_json(METRICS_FILE, out)
        return out
