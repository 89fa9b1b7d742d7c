"""The run folder's layout: its file names, its JSON files and its error.

One run folder (``model_dir``) holds:
  run.json             settings of the run (its identity is checked on resume: run_dir.py)
  lock                 pid and host of the trainer writing the folder (lock.py)
  noisy_labels.npz     the run's noisy labels, if any (reused on resume)
  labeled_indices.npz  the labeled split of a semi-supervised run (reused on resume)
  ckpt/                tf.train.CheckpointManager checkpoints (checkpoints.py)
  train/, eval/        TensorBoard summaries (records.py)
  evals.json           the evaluation history (records.py)
  train_metrics.json   the last training metrics, saved with every checkpoint
  metrics.json         the results contract, written at the end
"""
import json
import os

import numpy as np

RUN_FILE = "run.json"
EVALS_FILE = "evals.json"
METRICS_FILE = "metrics.json"
TRAIN_METRICS_FILE = "train_metrics.json"
LOCK_FILE = "lock"
CKPT_DIR = "ckpt"
# Folder inside ckpt/ where unreadable checkpoints are moved (never deleted).
UNREADABLE_DIR = "unreadable"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as it is; the message names the file and the fix."""


def write_json(path, obj):
    """Writes JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=to_json)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    """The JSON in ``path`` (``default`` when there is no such file); a file that does
    not parse is a ``RunFolderError`` naming it."""
    if not os.path.exists(path):
        return default
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise RunFolderError(f"{path} is unreadable ({e}); repair or remove that file") from None


def to_json(v):
    """NumPy scalars and arrays as JSON values (``json.dump``'s ``default``)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v)}")
