"""Arrays a run draws once and must reuse on every resume (noisy labels, label splits)."""
import json
import os

import numpy as np


def load_or_make(path, settings, make, hint):
    """The arrays saved at ``path``, or ``make()``'s arrays saved there first.

    The file records ``settings``; a file made with other settings is an error
    (never silently replaced). It is written atomically (temporary file, rename).

    Args:
      path: the ``.npz`` file in the run folder.
      settings: JSON-able dict of what the arrays were made from.
      make: ``() -> dict of arrays``, called only when the file does not exist.
      hint: how to fix a mismatch, for the error message.

    Returns:
      dict of arrays.
    """
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            saved = json.loads(str(f["settings"]))
            arrays = {k: f[k] for k in f.files if k != "settings"}
        if saved != settings:
            raise ValueError(f"{path} was made with {saved}, not {settings}; {hint}")
        return arrays
    arrays = make()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, settings=np.asarray(json.dumps(settings, sort_keys=True)), **arrays)
    os.replace(tmp, path)
    return arrays
