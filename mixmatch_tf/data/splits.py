"""Labeled subsets for semi-supervised learning, saved per run.

A random class-balanced draw, or -- where the data set's distributors define
labeled folds and the run asks for that many labels (STL-10, 1000) -- one of
those folds, as the official MixMatch code does.
"""
import os

import numpy as np

from mixmatch_tf.data import sources
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


def labeled_fold(data, num_labeled, seed, label_fold=None, folds_file=None):
    """The predefined labeled fold a run uses, or None for a random draw.

    The official MixMatch code takes STL-10's 1000 labels from the distribution's
    ``fold_indices.txt`` (``scripts/create_split.py``: line ``seed`` of the file for
    ``--dataset=stl10.<seed>@1000``; ``runs/table2.sh`` runs seeds 1-5), and draws
    other label counts at random. So does this: a data set with
    ``sources.PREDEFINED_FOLDS`` uses fold ``seed % count`` (or ``label_fold``) when
    ``num_labeled`` is the fold size.

    Args:
      data: the ``ImageData``.
      num_labeled: labeled examples asked for.
      seed: the run seed.
      label_fold: None (the seed's fold), a fold number, or -1 (a random draw
        even where folds exist).
      folds_file: the distribution's folds file (needed when a fold is used).

    Returns:
      None, or (fold number, sorted int64 indices into the training set).

    Raises:
      sources.LabelFoldsError: naming the setting to fix.
    """
    spec = sources.PREDEFINED_FOLDS.get(data.name)
    if label_fold == -1:
        return None
    if spec is None or num_labeled != spec.size:
        if label_fold is not None:
            have = (f"its {spec.count} folds hold {spec.size} labels each" if spec
                    else "it has no predefined folds")
            raise sources.LabelFoldsError(
                "label_fold", f"is {label_fold} but {data.name} with --num_labeled={num_labeled} "
                f"has no fold to use ({have})")
        return None
    if not folds_file:
        raise sources.LabelFoldsError(
            "label_folds_file",
            f"{data.name} with {num_labeled} labels uses the data set's predefined folds, as the "
            f"official MixMatch code, but TFDS does not carry them: pass "
            f"--label_folds_file=DIR/stl10_binary/{spec.file} from {spec.url} ({spec.images} of "
            f"the same archive must sit beside it), or --label_fold=-1 for a random "
            "class-balanced draw instead")
    folds = sources.read_label_folds(data, folds_file)
    fold = seed % len(folds) if label_fold is None else label_fold
    if not 0 <= fold < len(folds):
        raise sources.LabelFoldsError(
            "label_fold", f"must be in [0, {len(folds)}) (the folds of {folds_file}) or -1, "
            f"got {fold}")
    if len(folds[fold]) != num_labeled:
        raise sources.LabelFoldsError(
            "label_fold", f"fold {fold} of {folds_file} holds {len(folds[fold])} indices, not "
            f"--num_labeled={num_labeled}")
    return fold, np.sort(folds[fold])


def labeled_split_for_run(labels, num_labeled, num_classes, seed, model_dir, fold=None):
    """The run's labeled indices, made once and reloaded from ``model_dir/labeled_indices.npz``.

    Args:
      fold: None for a class-balanced random draw with ``seed``, or (fold number,
        indices) from ``labeled_fold``.
    """
    settings = {"num_labeled": int(num_labeled), "seed": int(seed), "num_train": int(len(labels))}
    if fold is not None:
        settings["label_fold"] = int(fold[0])

    def make():
        if fold is not None:
            return {"indices": np.asarray(fold[1], np.int64)}
        return {"indices": labeled_subset(labels, num_labeled, num_classes, seed)}

    def check(arrays):
        indices = arrays.get("indices")
        if indices is None or indices.ndim != 1 or not len(indices):
            return "'indices' must be a vector of training indices"
        if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0 \
                or indices.max() >= len(labels):
            return f"'indices' must be training indices in [0, {len(labels)})"
        if len(np.unique(indices)) != len(indices):
            return "'indices' holds an index twice"
        return None
    return load_or_make(
        os.path.join(model_dir, SPLIT_FILE), settings, make,
        "use a new --model_dir or the original --num_labeled, --seed and --label_fold",
        check)["indices"]
