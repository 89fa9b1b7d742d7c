"""Labeled subsets for semi-supervised learning, saved per run.

A random class-balanced draw, or -- where the data set's distributors define
labeled folds and the run asks for that many labels (STL-10, 1000) -- one of
those folds, as the official MixMatch code does.
"""
import dataclasses
import hashlib
import os

import numpy as np

from mixmatch_tf.data.run_files import load_or_make

SPLIT_FILE = "labeled_indices.npz"


@dataclasses.dataclass(frozen=True)
class LabelFolds:
    """Labeled folds defined by a data set's distributors (official SSL splits use them).

    Attributes:
      count, size: number of folds and labeled examples per fold.
      file: the folds file of the distribution: one fold per line, 0-based
        indices into ``images``.
      images: the distribution's training-image file the indices number.
      url: where the distribution is.
    """
    count: int
    size: int
    file: str
    images: str
    url: str


# STL-10's binary distribution holds fold_indices.txt: 10 folds of 1000 of the 5000
# training images. TFDS's stl10 does not carry it (nor an example id to map it).
PREDEFINED_FOLDS = {
    "stl10": LabelFolds(count=10, size=1000, file="fold_indices.txt", images="train_X.bin",
                        url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
}


class LabelFoldsError(ValueError):
    """The predefined folds cannot be used; ``field`` names the setting to fix."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def read_label_folds(data, path):
    """The predefined labeled folds of ``data`` as indices into ``data.train_images``.

    The folds file numbers the training images in the order of the distribution's
    image file (STL-10: ``train_X.bin``), but TFDS stores them in another order (it
    shuffles examples by a hash of their key and keeps no id). So the image file,
    which must sit beside the folds file as in the distribution, is read too and
    each of its images is found among ``data.train_images`` by its pixels.

    Args:
      data: an ``ImageData`` whose name has ``PREDEFINED_FOLDS``.
      path: the folds file.

    Returns:
      list of int64 arrays, one per line of the file, in its order.

    Raises:
      LabelFoldsError: naming the missing or inconsistent file and where to get it.
    """
    spec = PREDEFINED_FOLDS[data.name]
    where = f"{spec.file} and {spec.images} of {spec.url} (folder stl10_binary/)"
    if not os.path.isfile(path):
        raise LabelFoldsError("label_folds_file", f"{path!r} does not exist; it is {where}")
    folds = []
    with open(path, encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                folds.append(np.asarray([int(v) for v in line.split()], np.int64))
            except ValueError:
                raise LabelFoldsError("label_folds_file", f"{path}, line {number}: not a list "
                                      "of integer image indices") from None
            bad = folds[-1][(folds[-1] < 0) | (folds[-1] >= data.num_train)]
            if bad.size:
                raise LabelFoldsError("label_folds_file", f"{path}, line {number}: index "
                                      f"{bad[0]} is outside the {data.num_train} training images")
    if not folds:
        raise LabelFoldsError("label_folds_file", f"{path} holds no folds")
    images_path = os.path.join(os.path.dirname(path), spec.images)
    if not os.path.isfile(images_path):
        raise LabelFoldsError(
            "label_folds_file", f"{images_path} is missing: the fold indices number the images "
            f"of {spec.images}, which must sit beside {os.path.basename(path)} to match them to "
            f"the {data.name} training images; both files are {where}")
    height, width, channels = data.image_shape
    raw = np.fromfile(images_path, np.uint8)
    if raw.size != data.num_train * height * width * channels:
        raise LabelFoldsError(
            "label_folds_file", f"{images_path} holds {raw.size} bytes, not the "
            f"{data.num_train} images of {height}x{width}x{channels} of the {data.name} "
            "training set")
    # The distribution stores each image channel by channel, column-major.
    binary = raw.reshape(-1, channels, width, height).transpose(0, 3, 2, 1)
    positions = {}
    for i, image in enumerate(data.train_images):
        positions.setdefault(hashlib.sha1(image.tobytes()).digest(), []).append(i)
    order = np.empty(len(binary), np.int64)
    for j, image in enumerate(binary):
        found = positions.get(hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest())
        if not found:
            raise LabelFoldsError(
                "label_folds_file", f"image {j} of {images_path} is not among the {data.name} "
                f"training images in --data_dir: the file and the data set differ")
        order[j] = found.pop(0)
    return [order[fold] for fold in folds]


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
    ``PREDEFINED_FOLDS`` uses fold ``seed % count`` (or ``label_fold``) when
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
      LabelFoldsError: naming the setting to fix.
    """
    spec = PREDEFINED_FOLDS.get(data.name)
    if label_fold == -1:
        return None
    if spec is None or num_labeled != spec.size:
        if label_fold is not None:
            have = (f"its {spec.count} folds hold {spec.size} labels each" if spec
                    else "it has no predefined folds")
            raise LabelFoldsError(
                "label_fold", f"is {label_fold} but {data.name} with --num_labeled={num_labeled} "
                f"has no fold to use ({have})")
        return None
    if not folds_file:
        raise LabelFoldsError(
            "label_folds_file",
            f"{data.name} with {num_labeled} labels uses the data set's predefined folds, as the "
            f"official MixMatch code, but TFDS does not carry them: pass "
            f"--label_folds_file=DIR/stl10_binary/{spec.file} from {spec.url} ({spec.images} of "
            f"the same archive must sit beside it), or --label_fold=-1 for a random "
            "class-balanced draw instead")
    folds = read_label_folds(data, folds_file)
    fold = seed % len(folds) if label_fold is None else label_fold
    if not 0 <= fold < len(folds):
        raise LabelFoldsError(
            "label_fold", f"must be in [0, {len(folds)}) (the folds of {folds_file}) or -1, "
            f"got {fold}")
    if len(folds[fold]) != num_labeled:
        raise LabelFoldsError(
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
