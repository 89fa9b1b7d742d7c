"""Class-balanced labeled subsets for semi-supervised learning, saved per run."""
import os

import numpy as np

from mixmatch_tf.data.run_files import load_or_make

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
    settings = {"num_labeled": int(num_labeled), "seed": int(seed), "num_train": int(len(labels))}
    return load_or_make(
        os.path.join(model_dir, SPLIT_FILE), settings,
        lambda: {"indices": labeled_subset(labels, num_labeled, num_classes, seed)},
        "use a new --model_dir or the original --num_labeled and --seed")["indices"]
