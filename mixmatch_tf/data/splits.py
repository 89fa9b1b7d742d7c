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


def per_class_counts(num_labeled, num_classes, seed):
    """How many labeled examples each class gets: ``num_labeled // num_classes``,
    and one more for ``num_labeled % num_classes`` classes drawn with ``seed``
    (from a stream of their own, so that a multiple of the class count draws what
    it always drew)."""
    counts = np.full(num_classes, num_labeled // num_classes, np.int64)
    extra = num_labeled % num_classes
    if extra:
        counts[np.random.RandomState([seed, 1]).permutation(num_classes)[:extra]] += 1
    return counts


def describe_counts(counts, class_names=None):
    """'3 for classes 0, 4, 7; 2 for the others' (or '5 per class')."""
    names = class_names or [str(c) for c in range(len(counts))]
    low = int(counts.min())
    high = [names[c] for c in np.flatnonzero(counts > low)]
    if not high:
        return f"{low} per class"
    return f"{low + 1} for class{'es' if len(high) > 1 else ''} {', '.join(high)}; {low} for the others"


def labeled_subset(labels, num_labeled, num_classes, seed, class_names=None):
    """A class-balanced labeled subset of ``num_labeled`` examples drawn with ``seed``:
    ``per_class_counts`` of each class, as balanced as the count allows.

    Raises:
      ValueError (about ``num_labeled``) when some class would get no labeled
      example, or a class has fewer examples than it is to give.
    """
    labels = np.asarray(labels)
    names = list(class_names or [str(c) for c in range(num_classes)])
    if num_labeled < num_classes:
        raise ValueError(f"must be at least the {num_classes} classes (one labeled example "
                         f"each), got {num_labeled}: class(es) "
                         f"{', '.join(names[num_labeled:][:5])}... would have none")
    counts = per_class_counts(num_labeled, num_classes, seed)
    rng = np.random.RandomState(seed)
    chosen = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < counts[c]:
            raise ValueError(f"asks for {counts[c]} labeled examples of class {names[c]!r} but "
                             f"it has only {len(idx)}")
        chosen.append(idx[rng.permutation(len(idx))[:counts[c]]])
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


def labeled_split_for_run(labels, num_labeled, num_classes, seed, model_dir, fold=None,
                          class_names=None):
    """The run's labeled indices, made once and reloaded from ``model_dir/labeled_indices.npz``.

    Args:
      fold: None for a class-balanced random draw with ``seed``, or (fold number,
        indices) from ``labeled_fold``.
      class_names: for the messages (the counts per class are logged when the
        count is not a multiple of the classes).
    """
    settings = {"num_labeled": int(num_labeled), "seed": int(seed), "num_train": int(len(labels))}
    if fold is not None:
        settings["label_fold"] = int(fold[0])

    def make():
        if fold is not None:
            return {"indices": np.asarray(fold[1], np.int64)}
        if num_labeled % num_classes:
            from absl import logging
            logging.info("%d labels over %d classes: %s", num_labeled, num_classes,
                         describe_counts(per_class_counts(num_labeled, num_classes, seed),
                                         class_names))
        return {"indices": labeled_subset(labels, num_labeled, num_classes, seed, class_names)}

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
