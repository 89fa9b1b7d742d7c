"""The results contract: ``metrics.json`` and the evaluation history."""
import json
import os

import numpy as np


def write_json(path, obj):
    """Writes JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v)}")


def summarize(evals):
    """Error summaries of an evaluation history [{"step", "test_error"}, ...].

    Each paper's own statistic: the mixup paper reports the median test error of
    the last 10 epochs, MixMatch the median of the last 20 evaluations, DivideMix
    (and the Co-teaching re-runs of its tables) the mean of the last 10 epochs.
    """
    errors = [e["test_error"] for e in evals]
    if not errors:
        return {}
    return {
        "test_error": errors[-1],
        "best_test_error": min(errors),
        "mean_last_10_test_error": float(np.mean(errors[-10:])),
        "median_last_10_test_error": float(np.median(errors[-10:])),
        "median_last_20_test_error": float(np.median(errors[-20:])),
    }
