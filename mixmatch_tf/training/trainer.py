"""The method-agnostic Trainer: strategy, tf.function loop, checkpoints, evaluation.

The trainer knows nothing about any method. It asks the method for phases
(``Method.phase``), builds each phase's input with ``distribute_datasets_from_function``,
runs the phase's per-replica step under ``strategy.run`` several steps per
``tf.function`` call, evaluates through ``Method.predict``, and checkpoints
everything the method built together with the step counters. Since the data
stream and all in-step randomness are functions of (seed, step), a run killed
at any point and started again with the same command continues the same stream
from its last checkpoint.

Files in ``model_dir``:
  run.json             settings of the run (checked on resume, read by evaluate/export)
  noisy_labels.npz     the run's noisy labels, if any (reused on resume)
  ckpt/                tf.train.CheckpointManager checkpoints
  train/, eval/        TensorBoard summaries
  evals.json           the evaluation history
  metrics.json         the results contract, written at the end
"""
import dataclasses
import os
import shutil
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mixmatch_tf.data import noise as noise_lib
from mixmatch_tf.data import splits
from mixmatch_tf.data.pipeline import ArraySource, eval_dataset, train_dataset
from mixmatch_tf.data.preprocess import Normalization, normalize
from mixmatch_tf.data.sources import ImageData, load_dataset
from mixmatch_tf.methods.base import (ConfigError, Context, check, check_finite, check_fits,
                                      get_method, resolve_config)
from mixmatch_tf.models import build_model
from mixmatch_tf.ops import mixing
from mixmatch_tf.training import results
from mixmatch_tf.training.strategy import is_chief, make_strategy

RUN_FILE = "run.json"
EVALS_FILE = "evals.json"
METRICS_FILE = "metrics.json"
# Run settings that define what is trained; a resume must not change them.
IDENTITY_KEYS = ("method", "config", "dataset", "seed", "noise_type", "noise_rate",
                 "label_set", "normalization_kind", "sync_bn")


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the run stopped without saving."""


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
        units, TPUs, recent GPUs) or "mixed_float16" (GPUs; with loss scaling).
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
    precision: str = "float32"
    jit_compile: bool = False
    export_dir: Optional[str] = None
    stop_at_step: Optional[int] = None

    def __post_init__(self):
        check(bool(self.model_dir), "model_dir", "is required")
        check_finite(self)
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


def _model_factory(model, name, image_shape, num_classes, dropout, sync_bn):
    """A function making fresh networks: from a name, a factory or a Keras model."""
    if model is None:
        return lambda: build_model(name, image_shape, num_classes, dropout=dropout,
                                   sync_bn=sync_bn)
    if isinstance(model, keras.Model):
        # Variables must be created under the strategy: each network is a clone
        # built where the method builds it, starting from the given weights.
        def clone():
            copy = keras.models.clone_model(model)
            copy.build((None,) + tuple(image_shape))
            copy.set_weights(model.get_weights())
            return copy
        return clone
    if callable(model):
        return model
    raise TypeError(f"model must be a keras.Model or a function returning one, got {type(model)}")


class Trainer:
    """Trains one method on one data set, resumably.

    Args:
      method: registered method name or Method subclass.
      data: an ``ImageData`` or a data set name for ``load_dataset``.
      run: a ``RunConfig``.
      config: method settings overriding the defaults (dict), or a ready Config.
      strategy: a tf.distribute strategy; ``make_strategy()`` when None.
      model: optional Keras model (or a function returning a new one) mapping
        float images [B, H, W, C] to logits, instead of the config's model name.
      data_dir: TFDS folder when ``data`` is a name.
    """

    def __init__(self, method, data, run: RunConfig, config=None, strategy=None, model=None,
                 data_dir=None):
        self.method_cls = get_method(method) if isinstance(method, str) else method
        self.data = data if isinstance(data, ImageData) else load_dataset(data, data_dir)
        self.run = run
        self.data_dir = data_dir
        if config is None or isinstance(config, dict):
            config = resolve_config(self.method_cls, self.data.name, config or {})
        self.config = config
        self.strategy = strategy or make_strategy()
        self.chief = is_chief(self.strategy)
        if self.config.model is None and model is None:
            default = "mlp" if self.data.tabular else self.method_cls.default_model
            self.config = dataclasses.replace(self.config, model=default)
        self._check_label_set()
        check_fits(self.config, self.data.image_shape, self.strategy.num_replicas_in_sync,
                   named_model=model is None)
        self._prepare_run_dir()
        self._build(model)

    # ------------------------------------------------------------------ setup
    def _check_label_set(self):
        if self.run.label_set and self.run.label_set not in self.data.label_sets:
            valid = ", ".join(self.data.label_sets) or "none for this data set"
            raise ConfigError("label_set", f"{self.run.label_set!r} is not a label set of "
                              f"{self.data.name}; valid: {valid}")

    def _run_settings(self):
        return {
            "method": self.method_cls.name, "config": self.config.to_dict(),
            "dataset": self.data.name, "seed": self.run.seed, "noise_type": self.run.noise_type,
            "noise_rate": self.run.noise_rate, "label_set": self.run.label_set,
            "normalization_kind": self.run.normalization, "sync_bn": self.run.sync_bn,
            "data_dir": self.data_dir, "image_shape": list(self.data.image_shape),
            "num_classes": self.data.num_classes, "class_names": list(self.data.class_names),
        }

    def _prepare_run_dir(self):
        os.makedirs(self.run.model_dir, exist_ok=True)
        settings = self._run_settings()
        path = os.path.join(self.run.model_dir, RUN_FILE)
        saved = results.read_json(path)
        if saved is not None:
            diff = [k for k in IDENTITY_KEYS if saved.get(k) != settings.get(k)]
            if diff:
                k = diff[0]
                raise ConfigError(k if k != "config" else "model_dir",
                                  f"{self.run.model_dir} holds a run with {k}={saved.get(k)!r}, "
                                  f"not {settings.get(k)!r}; use a new --model_dir or the "
                                  "original settings to resume it")
            self.normalization = Normalization.from_dict(saved["normalization"])
        else:
            self.normalization = Normalization.named(self.run.normalization,
                                                     self.data.train_images)
            settings["normalization"] = self.normalization.to_dict()
            if self.chief:
                results.write_json(path, settings)
        self.settings = dict(settings, normalization=self.normalization.to_dict())

    def _train_labels(self):
        if self.run.label_set:
            return self.data.label_sets[self.run.label_set]
        if self.run.noise_type and self.run.noise_rate > 0:
            return noise_lib.noisy_labels_for_run(self.data, self.run.noise_type,
                                                  self.run.noise_rate, self.run.seed,
                                                  self.run.model_dir)
        return self.data.train_labels

    def _split(self):
        """(images, labels, labeled indices, unlabeled indices) of the training source.

        Semi-supervised configs (those with ``num_labeled``) get a class-balanced
        labeled subset saved in the run folder; the unlabeled pool is the rest of
        the training set (or all of it), plus any extra unlabeled images (STL-10).
        """
        data, labels = self.data, self.train_labels
        if not hasattr(self.config, "num_labeled"):
            return data.train_images, labels, None, None
        try:
            fold = splits.labeled_fold(data, self.config.num_labeled, self.run.seed,
                                       getattr(self.config, "label_fold", None),
                                       getattr(self.config, "label_folds_file", None))
            labeled = splits.labeled_split_for_run(labels, self.config.num_labeled,
                                                   data.num_classes, self.run.seed,
                                                   self.run.model_dir, fold=fold)
        except ValueError as e:
            raise ConfigError(getattr(e, "field", "num_labeled"), str(e)) from None
        pool = np.arange(data.num_train, dtype=np.int64)
        if not self.config.unlabeled_includes_labeled:
            pool = np.setdiff1d(pool, labeled)
        images = data.train_images
        if data.unlabeled_images is not None and len(data.unlabeled_images):
            extra = len(data.unlabeled_images)
            images = np.concatenate([images, data.unlabeled_images])
            labels = np.concatenate([labels, np.full(extra, -1, np.int64)])
            pool = np.concatenate([pool, data.num_train + np.arange(extra, dtype=np.int64)])
        return images, labels, labeled, pool

    def _build(self, model):
        keras.utils.set_random_seed(self.run.seed)
        keras.mixed_precision.set_global_policy(self.run.precision)
        data = self.data
        self.train_labels = self._train_labels()
        images, labels, labeled, unlabeled = self._split()
        self.source = ArraySource(images, labels, self.normalization, pad=data.pad,
                                  flip=data.flip, padding=self.method_cls.crop_padding)
        self.test_source = ArraySource(data.test_images, data.test_labels, self.normalization)
        replicas = self.strategy.num_replicas_in_sync
        self.context = Context(
            num_classes=data.num_classes, image_shape=data.image_shape,
            train_labels=self.train_labels, seed=self.run.seed,
            model_fn=_model_factory(model, self.config.model, data.image_shape,
                                    data.num_classes, getattr(self.config, "dropout", 0.0),
                                    self.run.sync_bn),
            num_replicas=replicas, map_train_set=self.map_train_set,
            clean_labels=data.train_labels, labeled_indices=labeled,
            unlabeled_indices=unlabeled, noise_type=self.run.noise_type,
            noise_rate=self.run.noise_rate, train_images=data.train_images,
            fetch_images=self._fetch_images)
        self.method = self.method_cls(self.config, self.context)
        with self.strategy.scope():
            self.state = self.method.build()
        # Counters are host variables, updated between replica steps.
        with tf.device("/cpu:0"):
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.phase_index = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_index")
            self.phase_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_step")
            self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed")
        trackables = {f"state_{k}": v for k, v in self.state.items()}
        rng = [layer.seed_generator.state for net in self.method.networks(self.state)
               for layer in net._flatten_layers() if hasattr(layer, "seed_generator")]
        self.checkpoint = tf.train.Checkpoint(
            step=self.step, phase_index=self.phase_index, phase_step=self.phase_step,
            elapsed=self.elapsed, rng=rng, **trackables)
        self.ckpt_dir = ckpt_dir = os.path.join(self.run.model_dir, "ckpt")
        # Every worker saves (saving may need collectives), but only the chief into
        # model_dir; the others write to a private folder that is deleted again.
        save_dir = ckpt_dir if self.chief else tempfile.mkdtemp(prefix="mixmatch_tf_worker_")
        self.manager = tf.train.CheckpointManager(self.checkpoint, save_dir,
                                                  max_to_keep=self.run.keep_checkpoints)
        self.restored_from = tf.train.latest_checkpoint(ckpt_dir)
        if self.restored_from:
            self.checkpoint.restore(self.restored_from).assert_existing_objects_matched()
            logging.info("Resumed from %s at step %d", self.restored_from, int(self.step))
        evals = results.read_json(os.path.join(self.run.model_dir, EVALS_FILE), [])
        self.evals = [e for e in evals if e["step"] <= int(self.step)]
        self._loops = {}
        self._map_fns = {}
        self._eval_fn = None
        self._train_batches = None
        self.train_metrics = {}
        self._finite_fn = None
        self._writers = None

    # --------------------------------------------------------------- helpers
    def _writer(self, name):
        if self._writers is None:
            if self.chief:
                self._writers = {n: tf.summary.create_file_writer(
                    os.path.join(self.run.model_dir, n)) for n in ("train", "eval")}
            else:
                self._writers = {n: tf.summary.create_noop_writer() for n in ("train", "eval")}
        return self._writers[name]

    def _distribute(self, make):
        return self.strategy.distribute_datasets_from_function(make)

    def _loop(self, phase):
        """The compiled multi-step loop of a phase (cached by phase name)."""
        if phase.name in self._loops:
            return self._loops[phase.name]
        strategy, state, step_fn = self.strategy, self.state, phase.step_fn

        def replica_fn(batch, step):
            with mixing.xla_compatible(self.run.jit_compile):  # runs while tracing only
                out = step_fn(state, batch, step)
            if "loss" not in out:
                raise ValueError(f"the train step of phase {phase.name!r} must return 'loss'")
            return {k: tf.cast(v, tf.float32) for k, v in out.items()}
        if self.run.jit_compile:
            replica_fn = tf.function(replica_fn, jit_compile=True)

        def one_step(iterator):
            out = strategy.run(replica_fn, args=(next(iterator), self.step.read_value()))
            out = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                   for k, v in out.items()}
            self.step.assign_add(1)
            self.phase_step.assign_add(1)
            return out

        @tf.function
        def loop(iterator, n):
            sums = one_step(iterator)
            finite = tf.math.is_finite(sums["loss"])
            count = tf.constant(1, tf.int32)
            while count < n and finite:
                m = one_step(iterator)
                finite = tf.math.is_finite(m["loss"])
                sums = {k: sums[k] + m[k] for k in sums}
                count += 1
            return {k: v / tf.cast(count, tf.float32) for k, v in sums.items()}, finite

        self._loops[phase.name] = loop
        return loop

    def _fetch_images(self, indices):
        return self.source.fetch(tf.constant(np.asarray(indices, np.int64)))["image"]

    def map_train_set(self, fn):
        """Runs ``fn(batch) -> [b, ...]`` per replica over the un-augmented training set.

        ``batch`` holds normalised ``image``, ``label`` and ``index``. Returns the
        outputs as a NumPy array in training-index order, whatever the number of
        replicas or workers. The distributed uint8 batches are made once and kept.
        """
        strategy, norm = self.strategy, self.normalization
        if fn not in self._map_fns:
            @tf.function
            def step(batch):
                def replica(b):
                    return fn(dict(b, image=normalize(b["image"], norm))), b["index"], b["mask"]
                out = strategy.run(replica, args=(batch,))
                return tuple(strategy.gather(v, axis=0) for v in out)
            self._map_fns[fn] = step
        n = self.data.num_train
        if self._train_batches is None:
            self._train_batches = list(self._distribute(lambda ctx: eval_dataset(
                self.source, self.run.eval_batch_size, indices=np.arange(n), input_context=ctx,
                raw=True)))
        out = None
        for batch in self._train_batches:
            values, index, mask = (t.numpy() for t in self._map_fns[fn](batch))
            if out is None:
                out = np.zeros((n,) + values.shape[1:], values.dtype)
            out[index[mask]] = values[mask]
        return out

    def evaluate(self, details=False):
        """Test error (%) of the method's predictor with the current weights.

        With ``details``, returns a dict: ``test_error``, and where the method
        serves another network than the one it trains (an EMA), the trained
        network's ``student_test_error`` and a ``warning`` when the served
        network's predictions collapse onto few classes while the trained
        network's do not (``results.collapse_warning``).

        The distributed uint8 test batches are made once and kept: building a
        distributed iterator costs more than evaluating a small test set.
        """
        strategy, method, state, norm = self.strategy, self.method, self.state, self.normalization
        classes = self.data.num_classes
        if self._eval_fn is None:
            def counts(probs, b):
                pred = tf.argmax(probs, axis=-1)
                hit = tf.logical_and(tf.equal(pred, b["label"]), b["mask"])
                spread = tf.reduce_sum(tf.one_hot(pred, classes, dtype=tf.float64)
                                       * tf.cast(b["mask"], tf.float64)[:, None], axis=0)
                return tf.reduce_sum(tf.cast(hit, tf.float64)), spread

            @tf.function
            def step(batch):
                def replica(b):
                    images = normalize(b["image"], norm)
                    out = counts(method.predict(state, images), b)
                    reference = method.reference_predict(state, images)
                    if reference is not None:
                        out += counts(reference, b)
                    return out + (tf.reduce_sum(tf.cast(b["mask"], tf.float64)),)
                out = strategy.run(replica, args=(batch,))
                return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in out]
            self._eval_fn = step
            self._test_batches = list(self._distribute(
                lambda ctx: eval_dataset(self.test_source, self.run.eval_batch_size,
                                         input_context=ctx, raw=True)))
        method.prepare_predict(state)
        sums = None
        for batch in self._test_batches:
            out = [v.numpy() for v in self._eval_fn(batch)]
            sums = out if sums is None else [a + b for a, b in zip(sums, out)]
        count = float(sums[-1])
        error = 100.0 * (1.0 - float(sums[0]) / count)
        if not details:
            return error
        out = {"test_error": error}
        if len(sums) == 5:
            out["student_test_error"] = 100.0 * (1.0 - float(sums[2]) / count)
            warning = results.collapse_warning(sums[1], sums[3])
            if warning:
                out["warning"] = warning
        return out

    def _record_eval(self, phase_name):
        record = self.evaluate(details=True)
        error = record["test_error"]
        step = int(self.step)
        self.evals = [e for e in self.evals if e["step"] != step]
        self.evals.append(dict(step=step, phase=phase_name, **record))
        with self._writer("eval").as_default(step=step):
            tf.summary.scalar("test_error", error)
            tf.summary.scalar("test_accuracy", 100.0 - error)
            if "student_test_error" in record:
                tf.summary.scalar("student_test_error", record["student_test_error"])
        if self.chief:
            results.write_json(os.path.join(self.run.model_dir, EVALS_FILE), self.evals)
        student = record.get("student_test_error")
        logging.info("step %d: test error %.2f%%%s", step, error,
                     "" if student is None else f" (trained network {student:.2f}%)")
        if "warning" in record:
            logging.warning("step %d: %s", step, record["warning"])
        return error

    def _non_finite(self, what, phase_name):
        kept = tf.train.latest_checkpoint(self.ckpt_dir) or "none (no checkpoint was saved yet)"
        raise NonFiniteLossError(
            f"{what} at step {int(self.step)} (phase {phase_name!r}); stopped without saving. "
            f"Last good checkpoint: {kept}")

    def _state_is_finite(self):
        if self._finite_fn is None:
            floats = [v for v in self.checkpoint_variables() if tf.as_dtype(v.dtype).is_floating]
            self._finite_fn = tf.function(lambda: tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(v)) for v in floats]))
        return bool(self._finite_fn())

    def checkpoint_variables(self):
        """Every variable of the method's state (networks, optimizers, method state)."""
        seen, out = set(), []
        for value in tf.nest.flatten(self.state):
            variables = value.variables if hasattr(value, "variables") else [value]
            for v in variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def _save(self, started, base_elapsed, phase_name):
        """Saves a checkpoint, unless a weight went NaN/Inf (the last good one is kept)."""
        if not self._state_is_finite():
            self._non_finite("a weight became NaN or Inf", phase_name)
        self.elapsed.assign(base_elapsed + time.time() - started)
        path = self.manager.save(checkpoint_number=int(self.step))
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path

    # ------------------------------------------------------------------ fit
    def fit(self):
        """Trains to the end (or resumes and finishes) and writes metrics.json.

        Returns the metrics; with ``stop_at_step`` reached first, only
        ``{"steps", "complete": False}`` after saving a checkpoint.
        """
        started, base_elapsed = time.time(), float(self.elapsed.numpy())
        eval_every = self.method.eval_every()
        total = self.method.total_steps()
        stop_at = self.run.stop_at_step
        last_log, rate_window = 0.0, []
        while True:
            if stop_at is not None and int(self.step) >= stop_at:
                self._save(started, base_elapsed, "stop")
                return {"steps": int(self.step), "complete": False}
            index, done = int(self.phase_index), int(self.phase_step)
            phase = self.method.phase(index, self.state, fresh=(done == 0),
                                      start_step=int(self.step) - done)
            if phase is None:
                break
            if done >= phase.steps:
                self.phase_index.assign_add(1)
                self.phase_step.assign(0)
                continue
            salt = index if phase.salt is None else phase.salt
            dist = self._distribute(lambda ctx, p=phase, d=done, s=salt: train_dataset(
                self.source, p.streams, seed=self.run.seed, salt=s, start_step=d,
                transform=p.transform, input_context=ctx))
            iterator = iter(dist)
            loop = self._loop(phase)
            if phase.summaries:
                with self._writer("train").as_default(step=int(self.step)):
                    for k, v in phase.summaries.items():
                        tf.summary.scalar(k, v)
                logging.info("%s: %s", phase.name, ", ".join(
                    f"{k} {v:.4g}" for k, v in sorted(phase.summaries.items())))
            while int(self.phase_step) < phase.steps:
                step = int(self.step)
                if stop_at is not None and step >= stop_at:
                    self._save(started, base_elapsed, phase.name)
                    return {"steps": step, "complete": False}
                n = phase.steps - int(self.phase_step)
                if stop_at is not None:
                    n = min(n, stop_at - step)
                n = min(n, self.run.steps_per_call,
                        self.run.checkpoint_every - step % self.run.checkpoint_every)
                if eval_every:
                    n = min(n, eval_every - step % eval_every)
                t0 = time.time()
                metrics, finite = loop(iterator, tf.constant(n, tf.int32))
                if not bool(finite):
                    self._non_finite(f"loss became {float(metrics['loss'])}", phase.name)
                metrics = {k: float(v) for k, v in metrics.items()}
                self.train_metrics = dict(metrics, step=int(self.step))
                step = int(self.step)
                rate_window = (rate_window + [(n, time.time() - t0)])[-20:]
                with self._writer("train").as_default(step=step):
                    for k, v in metrics.items():
                        tf.summary.scalar(k, v)
                now = time.time()
                if now - last_log >= self.run.log_every_seconds:
                    last_log = now
                    logging.info(self._progress(phase, metrics, rate_window, total))
                if eval_every and step % eval_every == 0:
                    self._record_eval(phase.name)
                if step % self.run.checkpoint_every == 0:
                    self._save(started, base_elapsed, phase.name)
            self.phase_index.assign_add(1)
            self.phase_step.assign(0)
            if phase.evaluate_at_end and (not self.evals or self.evals[-1]["step"] != int(self.step)):
                self._record_eval(phase.name)
            self._save(started, base_elapsed, phase.name)
        if not self.evals or self.evals[-1]["step"] != int(self.step):
            self._record_eval("final")
        self._save(started, base_elapsed, "final")
        metrics = dict(self.write_metrics(), complete=True)
        if self.run.export_dir:
            metrics["export_path"] = self.export(self.run.export_dir)
        return metrics

    def _progress(self, phase, metrics, window, total):
        steps = sum(n for n, _ in window)
        secs = sum(t for _, t in window)
        rate = steps / secs if secs > 0 else float("nan")
        step = int(self.step)
        eta = ""
        if total and rate == rate and rate > 0:
            remaining = max(0, total - step) / rate
            eta = f" | ETA {int(remaining // 60)}:{int(remaining % 60):02d}"
        of = f"/{total}" if total else ""
        shown = " ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        return (f"step {step}{of} [{phase.name} {int(self.phase_step)}/{phase.steps}] | {shown} "
                f"| {rate:.1f} steps/s{eta}")

    def write_metrics(self):
        out = {
            "method": self.method_cls.name, "dataset": self.data.name, "seed": self.run.seed,
            "steps": int(self.step), "wall_seconds": float(self.elapsed.numpy()),
            "noise_type": self.run.noise_type, "noise_rate": self.run.noise_rate,
            "model": self.config.model, "config": self.config.to_dict(),
            "num_replicas": self.strategy.num_replicas_in_sync, "evals": self.evals,
            "train_metrics": self.train_metrics,
        }
        out.update(results.summarize(self.evals))
        out.update(self.train_errors())
        out.update(self.method.diagnostics(self.state))
        if self.chief:
            results.write_json(os.path.join(self.run.model_dir, METRICS_FILE), out)
        return out

    def _predict_batch(self, batch):
        return self.method.predict(self.state, batch["image"])

    def train_errors(self):
        """Training error (%) of the final predictor on the examples whose labels are
        real and on those whose labels were corrupted (against the corrupted label):
        the mixup paper's measure of memorisation. Empty without label noise."""
        corrupted = ~self.context.label_is_true
        if not corrupted.any():
            return {}
        self.method.prepare_predict(self.state)
        pred = self.map_train_set(self._predict_batch).argmax(axis=-1)
        real = ~corrupted
        return {
            "train_error_real": 100.0 * float(np.mean(pred[real] != self.data.train_labels[real])),
            "train_error_corrupted": 100.0 * float(np.mean(pred[corrupted]
                                                           != self.train_labels[corrupted])),
        }

    # ---------------------------------------------------------------- export
    def predict(self, images):
        """Class probabilities for uint8 images [B, H, W, C] (the served predictor)."""
        return self.method.predict(self.state, normalize(images, self.normalization))

    def export(self, export_base, model_name=None, **options):
        """Writes a SavedModel into ``<export_base>/<model_name>/<new version>/``.

        ``model_name`` defaults to the data set's name made folder-safe; ``options``
        go to ``mixmatch_tf.serving.export_saved_model`` (``top_k``,
        ``serving_base_path``, ``serve_versions``). Test images serve as warm-up
        requests.
        """
        from mixmatch_tf.serving.export import export_saved_model, model_name_for_dataset
        if not self.chief:
            return None
        self.method.prepare_predict(self.state)
        return export_saved_model(self.method, self.state, self.normalization,
                                  self.data.image_shape, self.data.class_names, export_base,
                                  model_name=model_name or model_name_for_dataset(self.data.name),
                                  sample_images=self.data.test_images,
                                  input_dtype=self.data.train_images.dtype.name, **options)


def load_run(model_dir, data_dir=None, strategy=None, data=None):
    """Rebuilds the Trainer of an existing run from ``model_dir/run.json`` and its
    latest checkpoint (for evaluation and export)."""
    saved = results.read_json(os.path.join(model_dir, RUN_FILE))
    if saved is None:
        raise FileNotFoundError(f"{model_dir} holds no run ({RUN_FILE} is missing); pass the "
                                "--model_dir of a training run")
    run = RunConfig(model_dir=model_dir, seed=saved["seed"], noise_type=saved["noise_type"],
                    noise_rate=saved["noise_rate"], label_set=saved["label_set"],
                    normalization=saved["normalization_kind"], sync_bn=saved["sync_bn"])
    method_cls = get_method(saved["method"])
    config = method_cls.Config(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in saved["config"].items()})
    trainer = Trainer(method_cls, data if data is not None else saved["dataset"], run,
                      config=config, strategy=strategy,
                      data_dir=data_dir if data_dir is not None else saved.get("data_dir"))
    if trainer.restored_from is None:
        raise FileNotFoundError(f"{model_dir} has no checkpoint yet")
    return trainer
