"""The run folder's checkpoints: which are intact, the newest one, and repairs."""
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from mixmatch_tf.training.folder import UNREADABLE_DIR, RunFolderError

_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


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


def checkpoint_tops(prefix):
    """The names at the top of the checkpoint ``prefix``'s object graph (``step``,
    ``state_division``, ...)."""
    return {name.split("/")[0]
            for name in tf.train.load_checkpoint(prefix).get_variable_to_shape_map()}


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
