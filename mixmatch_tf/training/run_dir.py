"""The run folder of one trainer: its identity (run.json) and its run files.

A resume must train what the folder holds: run.json records the settings that
define the run (``IDENTITY_KEYS``), checked on every start. Nothing is written
before everything that can be checked was checked: the run files a new run needs
are made in a private staging folder first and moved in by ``commit`` once the
trainer has built the method. The folder's layout is ``folder.py``; its lock,
checkpoints and records have their own modules.
"""
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import noise as noise_lib
from mixmatch_tf.data import run_labels
from mixmatch_tf.data.preprocess import Normalization
from mixmatch_tf.methods.base import get_method
from mixmatch_tf.settings import ConfigError, legacy_values
from mixmatch_tf.training.checkpoints import checkpoint_numbers, find_checkpoint
from mixmatch_tf.training.config import RunConfig
from mixmatch_tf.training.folder import (CKPT_DIR, EVALS_FILE, RUN_FILE, TRAIN_METRICS_FILE,
                                         RunFolderError, read_json, to_json, write_json)
from mixmatch_tf.training.lock import RunLock

# run.json's format: 3 writes every identity key below and "format"; a run.json
# without "format" was written by an older version, which wrote at least
# LEGACY_REQUIRED (the keys of the first version; later ones are compared where present).
RUN_FORMAT = 3
# The keys each format added, with the value runs of older formats behaved as: an
# older run.json is read as if it held them (one migration, in ``saved_settings``).
ADDED_IN_FORMAT = {3: {"noise_mapping": None}}
LEGACY_REQUIRED = ("method", "config", "dataset", "seed", "noise_type", "noise_rate",
                   "label_set", "normalization_kind", "sync_bn", "image_shape", "num_classes",
                   "class_names", "normalization")
# Run settings that define what is trained; a resume must not change them.
IDENTITY_KEYS = ("method", "config", "dataset", "seed", "noise_type", "noise_rate",
                 "noise_mapping", "label_set", "normalization_kind", "sync_bn", "precision", "num_classes",
                 "class_names", "image_shape", "labels_fingerprint", "files_fingerprint",
                 "augmentation")
# The flag a user changes to fix a difference in each identity key.
_FLAG_OF = {"normalization_kind": "normalization", "num_classes": "dataset",
            "class_names": "dataset", "image_shape": "dataset", "labels_fingerprint": "dataset",
            "files_fingerprint": "dataset"}


def labels_fingerprint(labels):
    """A cheap fingerprint of a label array: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest()[:16]


def _jsonable(obj):
    """``obj`` as it reads back from JSON (tuples become lists, NumPy scalars numbers)."""
    return json.loads(json.dumps(obj, default=to_json))


def identity_difference(saved, settings, config_defaults=None):
    """(name, flag, saved value, new value) of the first identity difference, or None.

    Keys missing from ``saved`` (run folders of older versions) are not compared.
    A config field the saved config lacks (a setting added since) is compared as
    the value the older version behaved as (``config_defaults``: field -> that
    value, ``legacy_values``), None where unknown.
    """
    settings = _jsonable(settings)
    defaults = _jsonable(config_defaults or {})
    for key in IDENTITY_KEYS:
        if key not in saved:
            continue
        old, new = saved[key], settings.get(key)
        if key == "config":
            for field in sorted(set(old) | set(new)):
                before = old[field] if field in old else defaults.get(field)
                if before != new.get(field):
                    return f"config.{field}", field, before, new.get(field)
        elif old != new:
            return key, _FLAG_OF.get(key, key), old, new
    return None


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

    # -- identity -----------------------------------------------------------
    def saved_settings(self):
        """The settings in run.json, or None for a new run.

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
        if not isinstance(saved, dict):
            raise RunFolderError(f"{path} holds a {type(saved).__name__}, not a run's settings "
                                 f"(a JSON object); {fix}")
        if "format" in saved:
            later = {k for fmt, added in ADDED_IN_FORMAT.items()
                     if not isinstance(saved["format"], int) or saved["format"] < fmt
                     for k in added}
            required = tuple(k for k in IDENTITY_KEYS + ("normalization",) if k not in later)
        else:
            required = LEGACY_REQUIRED
        missing = [k for k in required if k not in saved]
        if missing or not isinstance(saved.get("config"), dict):
            what = (f"lacks {', '.join(repr(k) for k in missing)}" if missing
                    else "has no config object")
            raise RunFolderError(f"{path} {what}, which every run.json of its format holds; "
                                 f"{fix}")
        for fmt, added in sorted(ADDED_IN_FORMAT.items()):
            if saved.get("format", 0) < fmt:
                saved = dict(added, **saved)
        return saved

    def resume_or_new(self, settings, data):
        """(saved settings or None, the run's Normalization); a resume is checked first.

        The normalisation of a resumed run is the saved one (statistics of the
        data it started on); a new run's is made from ``data``.
        """
        saved = self.saved_settings()
        if saved is not None:
            self.check_identity(saved, settings)
            return saved, Normalization.from_dict(saved["normalization"])
        return None, Normalization.named(settings["normalization_kind"],
                                         data.statistics_images())

    def check_identity(self, saved, settings):
        """Refuses a resume whose settings differ from the run's, naming the field."""
        saved = dict(saved)
        if "augmentation" not in saved and saved.get("dataset", "").startswith("folder:") \
                and saved.get("data_options", {}).get("stream") == "false":
            # A folder read into memory trained without flips before the policy was named.
            saved["augmentation"] = "pad_crop"
        diff = identity_difference(saved, settings,
                                   legacy_values(get_method(settings["method"]).Config))
        if diff:
            name, flag, old, new = diff
            raise ConfigError(flag, f"{self.model_dir} holds a run with {name}={old!r}, not "
                              f"{new!r}; use a new --model_dir or the original settings to "
                              "resume it")

    def settings(self, method_name, config, data, run, data_dir):
        """The run.json settings of a run (before its normalisation is known)."""
        return {
            "format": RUN_FORMAT, "method": method_name, "config": config.to_dict(),
            "dataset": data.name, "seed": run.seed, "noise_type": run.noise_type,
            "noise_rate": run.noise_rate, "label_set": run.label_set,
            "noise_mapping": (noise_lib.format_mapping(run_labels.noise_mapping(run, data))
                              if run.noise_mapping else None),
            "normalization_kind": run.normalization, "sync_bn": run.sync_bn,
            "precision": run.precision, "data_dir": data_dir,
            "image_shape": list(data.image_shape), "num_classes": data.num_classes,
            "class_names": list(data.class_names),
            # A TFDS stream reads its labels with its examples, never all at once.
            "labels_fingerprint": (labels_fingerprint(data.train_labels)
                                   if data.train_labels is not None else None),
            # What a streamed data set reads (its sorted file list): a resume reads
            # the same files at the same positions of the stream.
            "files_fingerprint": data.fingerprint(),
            # How the training images are cropped and flipped (augment.POLICIES).
            "augmentation": data.augmentation,
            "data_options": data.options(),
        }

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
    method_cls = get_method(saved["method"])
    unknown = sorted(set(saved["config"]) - set(legacy_values(method_cls.Config)))
    if unknown:
        raise RunFolderError(f"{os.path.join(model_dir, RUN_FILE)}: config holds "
                             f"{', '.join(repr(k) for k in unknown)}, not a setting of method "
                             f"{saved['method']!r}; restore the file, or retrain")
    values = dict(legacy_values(method_cls.Config), **saved["config"])
    config = method_cls.Config(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in values.items()})
    run = RunConfig(model_dir=model_dir, seed=saved["seed"], noise_type=saved["noise_type"],
                    noise_rate=saved["noise_rate"], noise_mapping=saved["noise_mapping"],
                    label_set=saved["label_set"],
                    normalization=saved["normalization_kind"], sync_bn=saved["sync_bn"],
                    precision=saved.get("precision", "float32"))
    return saved, method_cls, config, run
