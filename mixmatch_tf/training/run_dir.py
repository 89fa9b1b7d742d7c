"""The run folder of one trainer: a run ready to build, new or resumed, in one call.

``RunDir.opening`` reads and checks run.json (``identity``), decides the labels and
the labeled split (``data.run_labels``) and, once the trainer has built the method,
writes the folder. Nothing is written before everything that can be checked was
checked: the run files a new run needs are made in a private staging folder first
and moved in by ``commit``. The folder's layout is ``folder.py``; its lock,
checkpoints and records have their own modules.
"""
import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import run_labels
from mixmatch_tf.data.preprocess import Normalization
from mixmatch_tf.methods.base import get_method
from mixmatch_tf.training import identity
from mixmatch_tf.training import precision as precision_lib
from mixmatch_tf.training.checkpoints import checkpoint_numbers, find_checkpoint
from mixmatch_tf.training.config import RunConfig
from mixmatch_tf.training.folder import (CKPT_DIR, EVALS_FILE, RUN_FILE, TRAIN_METRICS_FILE,
                                         RunFolderError, read_json, write_json)
from mixmatch_tf.training.lock import RunLock

@dataclasses.dataclass
class ReadyRun:
    """A run as its folder says it is (``RunDir.opening``).

    Attributes:
      run: the RunConfig, its precision resolved.
      settings: what run.json holds (or will, for a new run).
      normalization: the run's ``Normalization``.
      train_labels: the labels the run trains on (noisy, a label set, or the data's).
      source_labels, labeled, unlabeled: the training source's labels (-1 for
        unlabelled images) and the labeled and unlabeled indices (None, None
        without a labeled split): ``run_labels.training_source``.
    """
    run: RunConfig
    settings: dict
    normalization: Normalization
    train_labels: Optional[np.ndarray]
    source_labels: Optional[np.ndarray]
    labeled: Optional[np.ndarray]
    unlabeled: Optional[np.ndarray]


class RunDir:
    """The run folder of one trainer.

    Args:
      model_dir: the folder.
      writer: whether this trainer writes the folder (the chief of a training
        run); readers (``load_run``, other workers) never write into it.
    """

    def __init__(self, model_dir, writer=True):
        self.model_dir = model_dir
        self.ckpt_dir = os.path.join(model_dir, CKPT_DIR)
        self.writer = writer
        self.lock = RunLock(model_dir)
        self._staging = None
        self._staged = []

    def path(self, name):
        return os.path.join(self.model_dir, name)

    def read_json(self, name, default=None):
        return read_json(self.path(name), default)

    def write_json(self, name, obj):
        if self.writer:
            write_json(self.path(name), obj)

    def record_chosen(self, chosen):
        """Adds the settings the method chose from the data (name -> value) to run.json,
        as ``chosen``: a record for the user and tools (a resume reads them from the
        checkpoint, with the rest of the method's state). True when they are new."""
        saved = self.read_json(RUN_FILE)
        if isinstance(saved, dict) and saved.get("chosen") != chosen:
            self.write_json(RUN_FILE, dict(saved, chosen=chosen))
            return self.writer
        return False

    # -- identity -----------------------------------------------------------
    def saved_settings(self):
        """The settings in run.json (``identity.migrate``d), or None for a new run.

        Raises:
          RunFolderError: run.json is unreadable, is not a run's settings or lacks
            a key its format always holds; or it is missing (or null) while the
            folder holds checkpoints -- a run whose identity is lost is never
            resumed under whatever settings are given now.
        """
        path = self.path(RUN_FILE)
        saved = self.read_json(RUN_FILE)
        fix = ("restore it from a copy (or the original run's settings), or use a new "
               "--model_dir")
        if saved is None:
            held = checkpoint_numbers(self.ckpt_dir)
            if held:
                what = "is missing" if not os.path.exists(path) else "holds null"
                raise RunFolderError(
                    f"{path} {what}, but {self.ckpt_dir} holds checkpoints (ckpt-{max(held)}) "
                    f"of the run it describes: a resume cannot tell what they are; {fix}")
            return None
        return identity.migrate(saved, path, fix)

    @contextlib.contextmanager
    def opening(self, method_cls, config, data, run, data_dir=None, commit=True):
        """The run, new or resumed, ready to be built: a ``ReadyRun``. Inside the
        ``with`` the trainer builds the method; at its end the lock is taken and
        run.json (of a new run: ``ready.settings``) and the run files are written
        (``commit``: False for a reader), and nothing when the build failed.

        A resume is checked against run.json first (``identity``); "auto"
        precision becomes the run's (a resumed run keeps its own); the
        normalisation of a resumed run is the saved one (statistics of the data
        it started on), a new run's is made from ``data``.
        """
        saved = self.saved_settings()
        run = dataclasses.replace(run, precision=precision_lib.for_run(
            run.precision, saved, warn=commit))
        settings = identity.run_settings(method_cls.name, config, data, run, data_dir)
        if saved is not None:
            identity.check_identity(saved, settings, self.model_dir)
            normalization = Normalization.from_dict(saved["normalization"])
        else:
            normalization = Normalization.named(run.normalization, data.statistics_images())
        try:
            train_labels = run_labels.train_labels(data, run, self.staged)
            labels, labeled, unlabeled = run_labels.training_source(
                data, train_labels, method_cls.labeled_split(config), run.seed, self.staged)
            ready = ReadyRun(run, dict(settings, normalization=normalization.to_dict()),
                             normalization, train_labels, labels, labeled, unlabeled)
            yield ready
            if commit:
                self.commit(ready.settings, saved)
        finally:
            self.discard_staging()

    # -- run files made before the folder is written ---------------------
    def staged(self, filename, make):
        """``make(folder)`` run against a private copy of ``model_dir/filename``.

        ``make`` loads the file from ``folder`` if it is there or writes it
        there (``data.run_files.load_or_make``); a new file is moved into the run
        folder by ``commit``, so a refused start leaves nothing behind.
        """
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="mixmatch_tf_staging_")
        existing = self.path(filename)
        copy = os.path.join(self._staging, filename)
        if os.path.exists(existing):
            shutil.copyfile(existing, copy)
        else:
            self._staged.append(filename)
        try:
            return make(self._staging)
        except ValueError as e:  # name the run folder's file, not the private copy
            if copy in str(e) and e.args:
                e.args = (str(e).replace(copy, existing),) + e.args[1:]
            raise

    def commit(self, settings, saved):
        """Takes the lock, then writes run.json (a new run) and the staged run files."""
        if self.writer:
            os.makedirs(self.model_dir, exist_ok=True)
            self.lock.acquire()
            if saved is None:
                write_json(self.path(RUN_FILE), settings)
            for name in self._staged:
                src = os.path.join(self._staging, name)
                if os.path.exists(src):
                    tmp = self.path(f".{name}.tmp{os.getpid()}")
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, self.path(name))
        self.discard_staging()

    def discard_staging(self):
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging, self._staged = None, []

    def release(self):
        self.lock.release()

    # -- checkpoints --------------------------------------------------------
    def latest_checkpoint(self):
        return find_checkpoint(self.ckpt_dir, repair=self.writer)

    # -- results --------------------------------------------------------------
    def read_evals(self, step):
        """The evaluation history up to ``step`` (later entries belong to lost work)."""
        return [e for e in self.read_json(EVALS_FILE, []) if e["step"] <= step]

    def read_train_metrics(self, step):
        """The training metrics saved with the checkpoint of ``step``, or {}."""
        saved = self.read_json(TRAIN_METRICS_FILE, {})
        return saved if saved.get("step") == step else {}

    def checkpoint_manager(self, checkpoint, keep, private=False):
        """The CheckpointManager saving ``checkpoint`` (after ``latest_checkpoint``).

        Every worker saves (saving may need collectives), but only the writer into
        the run folder; the others (``private``) write to a private folder that is
        deleted after each save.
        """
        save_dir = tempfile.mkdtemp(prefix="mixmatch_tf_worker_") if private else self.ckpt_dir
        return tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=keep)

    def save_checkpoint(self, manager, step):
        path = manager.save(checkpoint_number=step)
        if manager.directory != self.ckpt_dir:
            shutil.rmtree(manager.directory, ignore_errors=True)
        return path

    def last_good(self):
        """The checkpoint the state file names (for error messages)."""
        return tf.train.latest_checkpoint(self.ckpt_dir) or "none (no checkpoint was saved yet)"


def saved_run(model_dir):
    """(settings, method class, Config, RunConfig) of the run saved in ``model_dir``."""
    saved = RunDir(model_dir, writer=False).saved_settings()
    if saved is None:
        raise FileNotFoundError(f"{model_dir} holds no run ({RUN_FILE} is missing); pass the "
                                "--model_dir of a training run")
    method_cls = get_method(saved["method"])  # run.json's config is complete (migrate)
    config = method_cls.Config(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in saved["config"].items()})
    run = RunConfig(model_dir=model_dir, seed=saved["seed"], noise_type=saved["noise_type"],
                    noise_rate=saved["noise_rate"], noise_mapping=saved["noise_mapping"],
                    label_set=saved["label_set"],
                    normalization=saved["normalization_kind"], sync_bn=saved["sync_bn"],
                    precision=saved.get("precision", "float32"))
    return saved, method_cls, config, run
