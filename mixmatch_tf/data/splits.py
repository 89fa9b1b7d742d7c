"""Class-balanced labeled subsets for semi-supervised learning, saved per run."""
import json
import os

import numpy as np

SPLIT_FILE = "labeled_indices.npz"


def labeled_subset(labels, num_labeled, num_classes, seed):
    """``num_labeled / num_classes`` examples of every class, drawn with ``seed``.

    Raises:
      ValueError (about ``num_labeled``) when it is not a positive multiple of the
      class count or asks for more examples than a class has.
    """
    labels = np.asarray(labels)
    if num_labeled <= 0 or num_labeled % num_classes:
        raise ValueError(f"must be a positive multiple of the {num_classes} classes (e.g. "
                         f"{num_classes * max(1, num_labeled // num_classes)})")
    per_class = num_labeled // num_classes
    rng = np.random.RandomState(seed)
    chosen = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError(f"asks for {per_class} labeled examples per class but class {c} "
                             f"has only {len(idx)}")
        chosen.append(idx[rng.permutation(len(idx))[:per_class]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def labeled_split_for_run(labels, num_labeled, num_classes, seed, model_dir):
    """Draws (or reloads) the run's labeled indices from ``model_dir/labeled_indices.npz``."""
    path = os.path.join(model_dir, SPLIT_FILE)
    settings = {"num_labeled": int(num_labeled), "seed": int(seed), "num_train": int(len(labels))}
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            saved = json.loads(str(f["settings"]))
            indices = f["indices"]
        if saved != settings:
            raise ValueError(f"{path} was made with {saved}, not {settings}; use a new "
                             "--model_dir or the original --num_labeled and --seed")
        return indices
    indices = labeled_subset(labels, num_labeled, num_classes, seed)
    os.makedirs(model_dir, exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, indices=indices, settings=np.asarray(json.dumps(settings, sort_keys=True)))
    os.replace(tmp, path)
    return indices
