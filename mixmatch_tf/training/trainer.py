"""The method-agnostic Trainer: orchestrates the run folder, the phase loop and the passes.

The trainer knows nothing about any method. It asks the method what it needs
(``labeled_split``, ``model_kwargs``), builds it, then (``fitting.Fitting``) asks it
for phases (``Method.phase``) and runs each under the strategy (``loop.PhaseLoop``),
evaluates through ``Method.predict`` (``passes.Passes``) and checkpoints
everything the method built together with the step counters in the run folder
(``run_dir.RunDir``, which documents the folder's files). Since the data stream
and all in-step randomness are functions of (seed, step), a run killed at any
point and started again with the same command continues the same stream from
its last intact checkpoint.
"""
import dataclasses

import keras
import tensorflow as tf
from absl import logging

from mixmatch_tf.data.preprocess import normalize
from mixmatch_tf.data import as_data
from mixmatch_tf.methods.base import get_method
from mixmatch_tf.settings import check_fits
from mixmatch_tf.training import precision as precision_lib
from mixmatch_tf.training.build import (Counters, make_context, make_truth, method_config,
                                        model_factory, state_variables)
from mixmatch_tf.training.config import RunConfig
from mixmatch_tf.training.fitting import Fitting
from mixmatch_tf.training.loop import NonFiniteLossError, PhaseLoop, StateGuard
from mixmatch_tf.training.passes import Passes
from mixmatch_tf.training.checkpoints import checkpoint_holds, checkpoint_tops
from mixmatch_tf.training.records import Records
from mixmatch_tf.training.run_dir import RunDir, saved_run
from mixmatch_tf.training.strategy import is_chief, make_strategy

__all__ = ["NonFiniteLossError", "RunConfig", "Trainer", "load_run"]


class Trainer(Fitting):
    """Trains one method on one data set, resumably.

    Everything that can be checked (settings, data, label set, splits, the model
    against the data, the identity of a run to resume) is checked before anything
    is written into ``run.model_dir``; then the trainer takes the folder's lock.

    Args:
      method: registered method name or Method subclass.
      data: what the run trains on (``data.as_data``): a data set (``ImageData``,
        ``StreamedData``), a data set name for ``load_dataset``, arrays ``(x, y)``
        or ``(x, y, x_unlabeled)`` (``data.from_arrays``), or a finite
        ``tf.data.Dataset`` of ``(image, label)`` (``data.from_tf_dataset``).
      run: a ``RunConfig``.
      config: method settings overriding the defaults (dict), or a ready Config.
      strategy: a tf.distribute strategy; ``make_strategy()`` when None.
      model: optional Keras model (or a function returning a new one) mapping
        float images [B, H, W, C] to logits, instead of the config's model name.
      data_dir: TFDS folder when ``data`` is a name.
      data_options: keyword arguments of ``load_dataset`` when ``data`` is a name
        (``stream``, ``image_size``).
      read_only: open an existing run without writing into it or locking it
        (``load_run``: evaluation and export, also while it trains).
    """

    def __init__(self, method, data, run: RunConfig, config=None, strategy=None, model=None,
                 data_dir=None, read_only=False, data_options=None):
        self.method_cls = get_method(method) if isinstance(method, str) else method
        self.data = as_data(data, data_dir, data_options)
        self.run, self.data_dir, self.read_only = run, data_dir, read_only
        self.config = method_config(self.method_cls, self.data, config, model)
        self.strategy = strategy or make_strategy()
        self.chief = is_chief(self.strategy)
        check_fits(self.config, self.data.image_shape, self.strategy.num_replicas_in_sync,
                   named_model=model is None)
        self.run_dir = RunDir(run.model_dir, writer=self.chief and not read_only)
        with self.run_dir.opening(self.method_cls, self.config, self.data, run, data_dir,
                                  commit=not read_only) as ready:
            self.run, self.settings = ready.run, ready.settings
            self.normalization, self.train_labels = ready.normalization, ready.train_labels
            self._build(model, ready)
            ready.settings = self.settings  # with the precision the networks compute in
        self._restore()

    def _build(self, model, ready):
        self._model_given = model is not None
        keras.utils.set_random_seed(self.run.seed)
        data, run = self.data, self.run
        self.source, self.test_source = data.sources(self.normalization, ready.source_labels,
                                                     padding=self.method_cls.crop_padding)
        self.passes = Passes(self.strategy, self.normalization, self.source, self.test_source,
                             data.num_train, run.eval_batch_size)
        kwargs = dict(self.method_cls.model_kwargs(self.config), sync_bn=run.sync_bn)
        self.context = make_context(
            data, run, self.train_labels, ready.labeled, ready.unlabeled, self.map_train_set,
            model_factory(model, self.config.model, data.image_shape, data.num_classes, kwargs,
                          run.precision, run.seed),
            self.strategy.num_replicas_in_sync, self.passes.fetch_images)
        self.truth = make_truth(data, run, self.train_labels)
        self.method = self.method_cls(self.config, self.context)
        with self.strategy.scope():
            self.state = self.method.build()
        if model is not None:
            self._record_computed_precision()
        self.counters = c = Counters()
        self.step = c.step
        self.loop = PhaseLoop(self.strategy, self.state, c.step, c.phase_step, run.jit_compile,
                              unreadable=c.unreadable, last_good=self.run_dir.last_good)
        self.guard = StateGuard(self.checkpoint_variables())

    def _record_computed_precision(self):
        """A user's network may pin its layers' dtypes: the run records the precision
        its networks compute in (``precision.computed_precision``), said when it is
        not the one asked for."""
        net = self.method.networks(self.state)[0]
        computed = precision_lib.computed_precision(net, self.data.image_shape)
        if computed is None or computed == self.run.precision:
            return
        logging.warning("the model computes in %s, not in the run's precision %s (its layers "
                        "pin their dtypes); the run records %s", computed, self.run.precision,
                        computed)
        self.run = dataclasses.replace(self.run, precision=computed)
        self.settings = dict(self.settings, precision=computed)

    def _restore(self):
        self.restored_from = self.run_dir.latest_checkpoint()
        # Checkpoints of in-memory runs from before every run counted unreadable images
        # lack the count: restored without it (it stays 0).
        self.checkpoint = self.counters.checkpoint(
            self.method, self.state, unreadable=not self.restored_from
            or checkpoint_holds(self.restored_from, "unreadable"))
        if self.restored_from:
            # A method state entry added since the checkpoint was written (DivideMix's
            # chosen settings) keeps the value the method built it with: that of the
            # run's config, which the older version trained with.
            held = checkpoint_tops(self.restored_from)
            # (variables only: a network's weights may be saved under another path)
            missing = [k for k, v in self.state.items() if f"state_{k}" not in held
                       and all(isinstance(x, tf.Variable) for x in tf.nest.flatten(v))]
            restoring = self.checkpoint if not missing else self.counters.checkpoint(
                self.method, {k: v for k, v in self.state.items() if k not in missing},
                unreadable="unreadable" in held)
            restoring.restore(self.restored_from).assert_existing_objects_matched()
            if missing:
                logging.info("%s holds no %s (written by an older version): as built",
                             self.restored_from, ", ".join(missing))
            logging.info("Resumed from %s at step %d", self.restored_from, int(self.step))
        self.manager = self.run_dir.checkpoint_manager(
            self.checkpoint, self.run.keep_checkpoints,
            private=not (self.run_dir.writer or self.read_only))
        self.records = Records(self.run_dir, int(self.step))

    def checkpoint_variables(self):
        """Every variable of the method's state (networks, optimizers, method state)."""
        return state_variables(self.state)

    # ----------------------------------------------------------- inference
    def map_train_set(self, fn):
        """``fn(batch)`` per replica over the un-augmented training set (``Passes``)."""
        return self.passes.map_train_set(fn)

    def train_probabilities(self):
        """The served predictor's class probabilities of every training example
        (un-augmented, in index order); its pass is compiled once per Trainer."""
        if getattr(self, "_probabilities", None) is None:
            self._probabilities = lambda b: self.method.predict(self.state, b["image"])
        self.method.prepare_predict(self.state)
        return self.map_train_set(self._probabilities)

    def evaluate(self, details=False):
        """Test error (%) of the method's predictor with the current weights.

        With ``details``, a dict: ``test_error`` and, where the method serves
        another network than the one it trains (an EMA), the trained network's
        ``student_test_error`` and a ``warning`` when the served network's
        predictions collapse onto few classes while the trained network's do not.
        """
        self.method.prepare_predict(self.state)
        record = self.passes.evaluation(self.method, self.state, details)
        return record if details else record["test_error"]

    def predict(self, images):
        """Class probabilities for uint8 images [B, H, W, C] (the served predictor)."""
        return self.method.predict(self.state, normalize(images, self.normalization))

    def export(self, export_base, model_name=None, **options):
        """Writes a SavedModel into ``<export_base>/<model_name>/<new version>/``
        (``serving.export.export_run``; the chief only, None elsewhere)."""
        from mixmatch_tf.serving.export import export_run
        if not self.chief:
            return None
        return export_run(self.method, self.state, self.normalization, self.data, export_base,
                          model_name, **options)


def load_run(model_dir, data_dir=None, strategy=None, data=None):
    """Opens the Trainer of an existing run read-only, from ``model_dir/run.json`` and
    its newest intact checkpoint (for evaluation and export)."""
    saved, method_cls, config, run = saved_run(model_dir)
    trainer = Trainer(method_cls, data if data is not None else saved["dataset"], run,
                      config=config, strategy=strategy, read_only=True,
                      data_dir=data_dir if data_dir is not None else saved.get("data_dir"),
                      data_options=saved.get("data_options"))
    if trainer.restored_from is None:
        raise FileNotFoundError(f"{model_dir} has no checkpoint yet")
    return trainer
