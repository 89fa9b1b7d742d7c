"""Arrays a run draws once and must reuse on every resume (noisy labels, label splits)."""
import json
import os
import zipfile

import numpy as np


def load_or_make(path, settings, make, hint, check=None):
    """The arrays saved at ``path``, or ``make()``'s arrays saved there first.

    The file records ``settings``; a file made with other settings is an error
    (never silently replaced). It is written atomically (temporary file, rename).

    Args:
      path: the ``.npz`` file in the run folder.
      settings: JSON-able dict of what the arrays were made from.
      make: ``() -> dict of arrays``, called only when the file does not exist.
      hint: how to fix a mismatch, for the error message.
      check: ``fn(arrays) -> problem or None``: what a file read back must satisfy
        (shapes, ranges), so a damaged or hand-edited file is refused before any
        training, not at a step.

    Returns:
      dict of arrays.
    """
    if os.path.exists(path):
        fix = "restore it from a copy, or use a new --model_dir"
        try:
            with np.load(path, allow_pickle=False) as f:
                saved = json.loads(str(f["settings"]))
                arrays = {k: f[k] for k in f.files if k != "settings"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path} is unreadable ({reason}); {fix}") from None
        if saved != settings:
            raise ValueError(f"{path} was made with {saved}, not {settings}; {hint}")
        problem = check(arrays) if check is not None else None
        if problem:
            raise ValueError(f"{path}: {problem}; {fix}")
        return arrays
    arrays = make()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, settings=np.asarray(json.dumps(settings, sort_keys=True)), **arrays)
    os.replace(tmp, path)
    return arrays
