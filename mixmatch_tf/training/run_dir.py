"""The run folder: its files, its identity, its lock and its checkpoints.

One owner for everything in ``model_dir``:
  run.json             settings of the run (its identity is checked on resume)
  lock                 pid and host of the trainer writing the folder
  noisy_labels.npz     the run's noisy labels, if any (reused on resume)
  labeled_indices.npz  the labeled split of a semi-supervised run (reused on resume)
  ckpt/                tf.train.CheckpointManager checkpoints
  train/, eval/        TensorBoard summaries (written by the trainer)
  evals.json           the evaluation history
  train_metrics.json   the last training metrics, saved with every checkpoint
  metrics.json         the results contract, written at the end

Nothing is written before everything that can be checked was checked: the run
files a new run needs are made in a private staging folder first and moved in
by ``commit`` once the trainer has built the method.
"""
import atexit
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from mixmatch_tf.data import noise as noise_lib
from mixmatch_tf.data import splits
from mixmatch_tf.data.preprocess import Normalization
from mixmatch_tf.methods.base import ALL_LABELS, get_method
from mixmatch_tf.settings import ConfigError, legacy_values
from mixmatch_tf.training import results
from mixmatch_tf.training.config import RunConfig

RUN_FILE = "run.json"
EVALS_FILE = "evals.json"
METRICS_FILE = "metrics.json"
TRAIN_METRICS_FILE = "train_metrics.json"
LOCK_FILE = "lock"
CKPT_DIR = "ckpt"
# Folder inside ckpt/ where unreadable checkpoints are moved (never deleted).
UNREADABLE_DIR = "unreadable"

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
_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


def noise_mapping(run, data):
    """The class mapping of ``run.noise_mapping`` on ``data``'s classes, or None."""
    if not run.noise_mapping:
        return None
    try:
        return noise_lib.parse_mapping(run.noise_mapping, list(data.class_names))
    except ValueError as e:
        raise ConfigError("noise_mapping", str(e)) from None


class RunFolderError(RuntimeError):
    """The run folder cannot be used as it is; the message names the file and the fix."""


class RunLockedError(RunFolderError):
    """Another live trainer holds the run folder's lock."""


def labels_fingerprint(labels):
    """A cheap fingerprint of a label array: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest()[:16]


def read_json(path, default=None):
    """``results.read_json`` whose errors name the file."""
    try:
        return results.read_json(path, default)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise RunFolderError(f"{path} is unreadable ({e}); repair or remove that file") from None


def _jsonable(obj):
    """``obj`` as it reads back from JSON (tuples become lists, NumPy scalars numbers)."""
    return json.loads(json.dumps(obj, default=results._jsonable))


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


# ---------------------------------------------------------------------- lock
def _process_start(pid):
    """The kernel's start time of ``pid`` (Linux), to tell a reused pid apart; else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def _alive(holder):
    """Whether the lock holder (same host) still runs."""
    pid = holder.get("pid")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OverflowError):  # no such pid can exist: a stale lock
        return False
    if os.path.isdir("/proc"):
        start = _process_start(pid)
        if start is None:  # a zombie: killed, not yet reaped
            return False
        return holder.get("start") in (None, start)
    return True


class RunLock:
    """A lock file naming the pid and host of the trainer writing a run folder.

    Created atomically with its content (written aside, then hard-linked into
    place). A lock of a dead process on this host (killed, even with kill -9)
    is taken over with a warning; a live holder, or one on another host, is
    refused naming it. The same process may take its own lock again.
    """

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        self.held = False
        self._me = {"pid": os.getpid(), "host": socket.gethostname(),
                    "start": _process_start(os.getpid())}

    def holder(self):
        """The lock file's holder: {} without a lock file, None when it is unreadable
        or not a holder (a JSON object), as a lock left half-written would be."""
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) and holder else None

    def acquire(self):
        me = dict(self._me, since=time.time())
        for _ in range(5):
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(me, f)
            try:
                os.link(tmp, self.path)
                self.held = True
                atexit.register(self.release)
                return
            except FileExistsError:
                pass
            finally:
                os.remove(tmp)
            holder = self.holder()
            if holder == {}:
                continue  # released meanwhile
            if holder is not None and (holder.get("pid"), holder.get("host")) == (
                    me["pid"], me["host"]):
                self.held = True
                return
            if holder is not None and (holder.get("host") != me["host"] or _alive(holder)):
                raise RunLockedError(
                    f"{os.path.dirname(self.path)} is in use by pid {holder.get('pid')} on host "
                    f"{holder.get('host')} (lock file {self.path}); wait for it to end, or "
                    "delete the lock file if that process no longer runs")
            logging.warning("Taking over the lock %s of %s, which no longer runs", self.path,
                            "an unreadable holder" if holder is None else
                            f"pid {holder.get('pid')} on host {holder.get('host')}")
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        raise RunLockedError(f"could not take the lock {self.path}; another trainer keeps "
                             "taking it")

    def release(self):
        if self.held:
            self.held = False
            holder = self.holder()
            if holder and (holder.get("pid"), holder.get("host")) == (self._me["pid"],
                                                                      self._me["host"]):
                os.remove(self.path)


# --------------------------------------------------------------- checkpoints
def _checkpoint_problem(prefix):
    """Why the checkpoint ``prefix`` cannot be restored (None when every tensor reads)."""
    if not os.path.exists(prefix + ".index"):
        return "its files are missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 -- whatever the reader raises, it cannot restore
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return None


def checkpoint_holds(prefix, name):
    """Whether the checkpoint ``prefix`` holds the variable saved as ``name``."""
    return tf.train.load_checkpoint(prefix).has_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")


def checkpoint_numbers(ckpt_dir):
    """The numbers of the checkpoints whose files are in ``ckpt_dir`` (intact or not)."""
    if not os.path.isdir(ckpt_dir):
        return set()
    return {int(m.group(1)) for m in map(_CKPT_FILE.match, os.listdir(ckpt_dir)) if m}


def find_checkpoint(ckpt_dir, repair=False):
    """The newest intact checkpoint of ``ckpt_dir`` (its prefix), or None if there is none.

    Checkpoints are found from the files on disk and the ``checkpoint`` state
    file together, so a corrupt state file does not hide them. A missing,
    truncated or corrupt newer checkpoint is skipped with one log line saying
    which and why.

    Args:
      ckpt_dir: the checkpoint folder.
      repair: (the writing trainer only) move unreadable checkpoints into
        ``ckpt/unreadable/`` and rewrite the state file to list the intact ones,
        so the CheckpointManager neither counts nor deletes by a broken list.

    Raises:
      RunFolderError: the folder holds checkpoints and none of them is intact.
    """
    if not os.path.isdir(ckpt_dir):
        return None
    numbers = checkpoint_numbers(ckpt_dir)
    state_file = os.path.join(ckpt_dir, "checkpoint")
    state_problem = None
    if os.path.exists(state_file):
        state = tf.train.get_checkpoint_state(ckpt_dir)
        if state is None or not state.model_checkpoint_path:
            state_problem = f"the state file {state_file} is corrupt"
        else:
            for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
                m = re.match(r"^ckpt-(\d+)$", os.path.basename(path))
                if m:
                    numbers.add(int(m.group(1)))
    if not numbers:
        if state_problem:
            logging.warning("%s and no checkpoint file exists: starting afresh", state_problem)
        return None
    skipped = []
    chosen = None
    for n in sorted(numbers, reverse=True):
        prefix = os.path.join(ckpt_dir, f"ckpt-{n}")
        problem = _checkpoint_problem(prefix)
        if problem is None:
            chosen = prefix
            break
        skipped.append((n, problem))
    if chosen is None:
        raise RunFolderError(
            f"{ckpt_dir} holds checkpoints but none is intact ("
            + "; ".join(f"ckpt-{n}: {why}" for n, why in skipped)
            + "); restore a checkpoint there, or move the run folder away to start afresh")
    if skipped or state_problem:
        why = "; ".join([state_problem] if state_problem else []
                        + [f"ckpt-{n}: {p}" for n, p in skipped])
        logging.warning("Resuming from %s, the newest intact checkpoint (%s)", chosen, why)
    if repair:
        _repair(ckpt_dir, chosen, [n for n, _ in skipped],
                sorted(n for n in numbers if n <= int(chosen.rsplit("-", 1)[1])))
    return chosen


def _repair(ckpt_dir, chosen, broken, kept):
    """Moves broken checkpoints aside and rewrites the state file (see find_checkpoint)."""
    for name in os.listdir(ckpt_dir):
        m = _CKPT_FILE.match(name)
        if m and int(m.group(1)) in broken:
            aside = os.path.join(ckpt_dir, UNREADABLE_DIR)
            os.makedirs(aside, exist_ok=True)
            os.replace(os.path.join(ckpt_dir, name), os.path.join(aside, name))
        elif name.endswith("_temp") and name.startswith("ckpt-"):
            # a save killed midway; never a checkpoint, and in the way of the next save
            shutil.rmtree(os.path.join(ckpt_dir, name), ignore_errors=True)
    paths = [os.path.join(ckpt_dir, f"ckpt-{n}") for n in kept
             if os.path.exists(os.path.join(ckpt_dir, f"ckpt-{n}.index"))]
    # With the times the CheckpointManager reads, --keep_checkpoints holds after the
    # rewrite: a state file without them makes it keep every checkpoint it finds
    # (it deletes only those saved after its "last preserved" time).
    times = [os.path.getmtime(p + ".index") for p in paths]
    tf.compat.v1.train.update_checkpoint_state(
        ckpt_dir, chosen, paths, all_model_checkpoint_timestamps=times,
        last_preserved_timestamp=min(times, default=0.0) - 1.0)


# ---------------------------------------------------------------- the folder
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
            results.write_json(self.path(name), obj)

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
            "noise_mapping": (noise_lib.format_mapping(noise_mapping(run, data))
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

    # -- run files made before the folder is written -----------------------
    def train_labels(self, data, run):
        """The labels the run trains on: a label set, the run's noisy labels, or the data's."""
        if data.train_labels is None and (run.noise_type or run.label_set):
            flag = "noise_type" if run.noise_type else "label_set"
            raise ConfigError(flag, f"{data.name} is streamed from TFDS records, which hold "
                              "each label with its image: labels cannot be replaced before "
                              "training (stream a folder of images, or --stream=false)")
        if run.label_set:
            if run.label_set not in data.label_sets:
                valid = ", ".join(data.label_sets) or "none for this data set"
                raise ConfigError("label_set", f"{run.label_set!r} is not a label set of "
                                  f"{data.name}; valid: {valid}")
            return data.label_sets[run.label_set]
        if run.noise_type and run.noise_rate > 0:
            return self.staged(noise_lib.NOISE_FILE, lambda folder: (
                noise_lib.noisy_labels_for_run(data, run.noise_type, run.noise_rate,
                                               run.seed, folder, noise_mapping(run, data))))
        return data.train_labels

    def training_source(self, data, labels, split, seed):
        """(labels, labeled indices, unlabeled indices) of the training source.

        With a ``LabeledSplit`` the run trains on a class-balanced labeled subset
        saved in the run folder; the unlabeled pool is the rest of the training
        set (or all of it), plus the data's unlabelled images (STL-10's, an npz's
        ``x_unlabeled``, a folder's ``unlabeled/``). With ``num_labeled="all"`` every
        training label is used and the unlabelled images are the pool. Without a
        split, every training image is labeled and there is no unlabeled pool.
        Unlabelled images get the label -1, after the training labels; the data's
        ``sources`` put their images there.
        """
        if split is None:
            return labels, None, None
        if labels is None:
            raise ConfigError("num_labeled", f"{data.name} is streamed from TFDS records, "
                              "which hold each label with its image: a labeled subset needs "
                              "every label first (stream a folder of images, or "
                              "--stream=false)")
        extra = data.num_unlabeled
        if split.num_labeled == ALL_LABELS:
            labeled = np.arange(data.num_train, dtype=np.int64)
            if not extra and not split.unlabeled_includes_labeled:
                raise ConfigError("num_labeled", f"all: every label of {data.name} is used, so "
                                  "the unlabeled pool is its unlabelled images, and it has "
                                  "none; give some (an npz's x_unlabeled, a folder's "
                                  "unlabeled/ sub-folder) or a number of labels")
        else:
            try:
                fold = splits.labeled_fold(data, split.num_labeled, seed, split.label_fold,
                                           split.label_folds_file)
                labeled = self.staged(splits.SPLIT_FILE, lambda folder: (
                    splits.labeled_split_for_run(labels, split.num_labeled, data.num_classes,
                                                 seed, folder, fold=fold,
                                                 class_names=list(data.class_names))))
            except ValueError as e:
                raise ConfigError(getattr(e, "field", "num_labeled"), str(e)) from None
        # Every label given (a random draw has one of each class by construction, a
        # distributor's fold is taken as it is): a class without one cannot be learned.
        missing = (np.setdiff1d(np.arange(data.num_classes), labels[labeled])
                   if split.num_labeled == ALL_LABELS else [])
        if len(missing):
            names = ", ".join(repr(data.class_names[c]) for c in missing[:5])
            raise ConfigError("num_labeled", f"class {names} has no labeled example to learn "
                              f"it from ({len(missing)} of {data.num_classes} classes); label "
                              "at least one image of every class")
        pool = np.arange(data.num_train, dtype=np.int64)
        if not split.unlabeled_includes_labeled:
            pool = np.setdiff1d(pool, labeled)
        if extra:
            labels = np.concatenate([labels, np.full(extra, -1, np.int64)])
            pool = np.concatenate([pool, data.num_train + np.arange(extra, dtype=np.int64)])
        return labels, labeled, pool

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
                results.write_json(self.path(RUN_FILE), settings)
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
        ``top5_test_error``, ``unreadable_test_images``, ``student_test_error`` and a
        ``warning`` (``Trainer.evaluate``)."""
        self.evals = [e for e in self.evals if e["step"] != step]
        self.evals.append(dict(step=step, phase=phase_name, **record))
        error = record["test_error"]
        scalars = {"test_error": error, "test_accuracy": 100.0 - error}
        for key in ("student_test_error", "top5_test_error", "unreadable_test_images"):
            if key in record:
                scalars[key] = record[key]
        self.scalars("eval", step, scalars)
        self.run_dir.write_json(EVALS_FILE, self.evals)
        student = record.get("student_test_error")
        top5 = record.get("top5_test_error")
        logging.info("step %d: test error %.2f%%%s%s", step, error,
                     "" if top5 is None else f" (top-5 {top5:.2f}%)",
                     "" if student is None else f" (trained network {student:.2f}%)")
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
        out.update(results.summarize(self.evals))
        self.run_dir.write_json(METRICS_FILE, out)
        return out


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
