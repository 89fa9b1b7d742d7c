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


def run_record(method_name, data, run, config, steps, wall_seconds, num_replicas,
               unreadable=0):
    """What metrics.json says about the run itself (before the method's own entries).

    ``unreadable``: training rows whose file could not be read or decoded, each
    replaced by another example of its batch (counted every time it is drawn; 0
    for data held in memory).
    """
    out = {"method": method_name, "dataset": data.name, "seed": run.seed, "steps": steps,
           "wall_seconds": wall_seconds, "noise_type": run.noise_type,
           "noise_rate": run.noise_rate, "model": config.model, "config": config.to_dict(),
           "num_replicas": num_replicas, "precision": run.precision,
           "unreadable_images": unreadable}
    return out


def summarize(evals):
    """Error summaries of an evaluation history [{"step", "test_error"}, ...].

    Each paper's own statistic: the mixup paper reports the median test error of
    the last 10 epochs, MixMatch the median of the last 20 evaluations, DivideMix
    (and the Co-teaching re-runs of its tables) the mean of the last 10 epochs.
    """
    errors = [e["test_error"] for e in evals]
    if not errors:
        return {}
    out = {
        "test_error": errors[-1],
        "best_test_error": min(errors),
        "mean_last_10_test_error": float(np.mean(errors[-10:])),
        "median_last_10_test_error": float(np.median(errors[-10:])),
        "median_last_20_test_error": float(np.median(errors[-20:])),
    }
    if "student_test_error" in evals[-1]:  # the trained network, where an EMA is evaluated
        out["student_test_error"] = evals[-1]["student_test_error"]
    if "top5_test_error" in evals[-1]:  # more than 10 classes (ImageNet's second number)
        out["top5_test_error"] = evals[-1]["top5_test_error"]
    return out


def effective_classes(counts):
    """exp(entropy) of a histogram of predicted classes: C when the predictions
    spread evenly over C classes, 1 when every prediction is one class."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() <= 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def collapse_warning(served, trained, ratio=0.5):
    """A warning when the served network's predictions collapse onto few classes
    while the trained network's do not, else None.

    Args:
      served, trained: per-class counts of the test predictions of the network
        that evaluation and export use (an EMA) and of the trained network.
      ratio: warn when the served network's effective number of classes is
        below ``ratio`` times the trained network's.
    """
    s, t = effective_classes(served), effective_classes(trained)
    if t < 2.0 or s >= ratio * t:
        return None
    served = np.asarray(served, np.float64)
    top = int(np.argmax(served))
    return (f"predictions collapse: the evaluated network spreads its test predictions over "
            f"{s:.1f} effective classes (class {top} takes {served[top] / served.sum():.0%}), "
            f"the trained network over {t:.1f}; the evaluated network (an EMA) does not "
            "serve what the trained one learned")
