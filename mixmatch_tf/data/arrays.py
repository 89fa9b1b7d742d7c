"""Arrays: the bundled digits, a user's arrays or ``.npz`` file, CSV and the UCI tabular sets.

Images are held as uint8 arrays ``[N, H, W, C]``, tabular data (mixup is not
only for images) as float32 features ``[N, D]``, with int64 labels.
"""
import dataclasses
import io
import os

import numpy as np

from mixmatch_tf.data import augment
from mixmatch_tf.data.dataset import (TEST_FRACTION, ImageData, check_class_names,
                                      check_features, check_images, check_labels,
                                      memory_budget, numbered_classes, split_off_test,
                                      stratified_split)

DIGITS_TEST_SIZE = 500


DIGITS_SPLIT_SEED = 0


NPZ_KEYS = ("x", "y", "x_test", "y_test", "x_unlabeled", "class_names")


SKLEARN_TABULAR = ("breast_cancer", "wine")


CSV_DELIMITERS = (",", ";", "\t")


def load_digits():
    """The UCI handwritten digits shipped with scikit-learn, as 8x8x1 uint8 images.

    Grey levels 0-16 are rescaled to 0-255 (v * 255 / 16, rounded). The split is
    ``stratified_split(labels, 500, seed=0)``: 500 test and 1297 training images,
    the same on every machine. No network is needed.
    """
    from sklearn import datasets as sk_datasets
    digits = sk_datasets.load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    train, test = stratified_split(labels, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)
    return ImageData(
        name="digits", train_images=images[train], train_labels=labels[train],
        test_images=images[test], test_labels=labels[test], num_classes=10,
        class_names=tuple(str(i) for i in range(10)), augmentation=augment.PAD_CROP)


def _npz_class_names(arrays, path):
    names = np.asarray(arrays["class_names"])
    if names.ndim != 1:
        raise ValueError(f"{path} ['class_names']: must be a vector of names, got shape "
                         f"{names.shape}")
    if names.dtype.kind == "S":  # bytes: UTF-8 text, not "b'cat'"
        try:
            names = [n.decode("utf-8") for n in names]
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} ['class_names']: not UTF-8 text ({e})") from None
    elif names.dtype.kind != "U":
        raise ValueError(f"{path} ['class_names']: must hold strings, got dtype {names.dtype}")
    return check_class_names([str(n) for n in names], f"{path} ['class_names']")


def load_npz(path, test_fraction=TEST_FRACTION, seed=0):
    """A user's ``.npz`` with ``x`` (uint8 images, or float features [N, D]) and ``y``.

    Optional keys: ``x_test`` and ``y_test``, together (else a stratified
    ``test_fraction`` of the examples is held out), ``x_unlabeled`` (images without
    labels: the unlabeled pool of semi-supervised methods) and ``class_names`` (else
    classes are 0..max(y)); ``from_arrays`` checks them. Any other key is refused,
    since it would be ignored.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
        arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile / format errors: name the file
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r}; the file must hold 'x' (images) "
                             f"and 'y' (labels), found {sorted(arrays)}")
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown arrays {unknown} would be ignored; valid keys: "
                         f"{', '.join(NPZ_KEYS)}")
    if "class_names" in arrays:
        arrays["class_names"] = _npz_class_names(arrays, path)
    return from_arrays(**arrays, name="npz:" + path, test_fraction=test_fraction, seed=seed,
                       where=path)


def from_arrays(x, y, x_test=None, y_test=None, x_unlabeled=None, class_names=None,
                name="arrays", test_fraction=TEST_FRACTION, seed=0, where=None):
    """A data set from arrays in memory, checked as every loader checks its input.

    Args:
      x: uint8 images [N, H, W] or [N, H, W, C] (C of 1, 3 or 4), or float
        feature vectors [N, D] (tabular data: an MLP, no augmentation).
      y: class ids 0..C-1 [N] (whole numbers, also as floats).
      x_test, y_test: a test set, both or neither; without one a stratified
        ``test_fraction`` of ``x`` is held out, drawn with ``seed``.
      x_unlabeled: examples without labels, of ``x``'s shape: the unlabeled pool
        of semi-supervised methods (``num_labeled="all"`` trains on every label of
        ``y`` and these).
      class_names: C names; default "0".."max label".
      name: the data set's name in run.json and the export.
      where: how messages name the input (the file of an ``npz:``).

    Returns:
      ``ImageData`` (augmented with ``pad_crop``, the npz default: pass
      ``augmentation`` to ``dataclasses.replace`` or ``load_dataset`` for another).
    """
    where = where or name
    arrays = {k: v for k, v in (("x", x), ("y", y), ("x_test", x_test), ("y_test", y_test),
                                ("x_unlabeled", x_unlabeled)) if v is not None}
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, lack = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise ValueError(f"{where}: has {have!r} but not {lack!r}; give both (a test set) or "
                         "neither (a stratified part of 'x' is held out)")
    for key in ("x", "y", "x_test", "y_test", "x_unlabeled"):
        if key in arrays and (np.asarray(arrays[key]).ndim == 0 or len(arrays[key]) == 0):
            raise ValueError(f"{where} [{key!r}]: holds no examples (shape "
                             f"{np.shape(arrays[key])}); it needs at least one")
    for key in ("y", "y_test"):
        y = np.asarray(arrays.get(key, np.zeros(1, np.int64)))
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise ValueError(f"{where} [{key!r}]: labels must be integer class ids, got dtype "
                             f"{y.dtype}")
        bad = np.flatnonzero(~np.isfinite(y.ravel()) | (np.mod(y.ravel(), 1) != 0)) \
            if np.issubdtype(y.dtype, np.floating) else []
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"{where} [{key!r}]: label at index {i} is {y.ravel()[i]}; labels "
                             "must be whole-number class ids")
    if class_names is not None:
        class_names = check_class_names([str(n) for n in class_names],
                                        f"{where} ['class_names']")
    else:
        y_all = np.concatenate([np.ravel(arrays["y"]), np.ravel(arrays.get("y_test", []))])
        class_names = numbered_classes(y_all, f"{where} ['y', 'y_test'] (index into both)")
    c = len(class_names)
    x_rank = np.asarray(arrays["x"]).ndim
    for key in ("x_test", "x_unlabeled"):
        if key in arrays:
            rank = np.asarray(arrays[key]).ndim
            if rank != x_rank and not {x_rank, rank} <= {3, 4}:
                raise ValueError(f"{where}: {key!r} has shape {np.shape(arrays[key])} but 'x' "
                                 f"{np.shape(arrays['x'])}; its examples must have the shape "
                                 "of the training examples")
    if x_rank == 2:  # feature vectors: tabular data
        data = tabular_data(name, arrays["x"], arrays["y"], class_names, test_fraction,
                            seed, arrays.get("x_test"), arrays.get("y_test"))
        if "x_unlabeled" in arrays:
            pool = check_features(arrays["x_unlabeled"], f"{where} ['x_unlabeled']")
            if pool.shape[1] != data.train_images.shape[1]:
                raise ValueError(f"{where}: 'x_unlabeled' rows have {pool.shape[1]} features "
                                 f"but 'x' rows {data.train_images.shape[1]}")
            data = dataclasses.replace(data, unlabeled_images=pool)
        return data
    x = check_images(arrays["x"], f"{where} ['x']")
    y = check_labels(arrays["y"], c, f"{where} ['y']")
    if len(x) != len(y):
        raise ValueError(f"{where}: 'x' has {len(x)} images but 'y' has {len(y)} labels")
    extra = {}
    for key in ("x_test", "x_unlabeled"):
        if key in arrays:
            extra[key] = check_images(arrays[key], f"{where} [{key!r}]")
            if extra[key].shape[1:] != x.shape[1:]:
                raise ValueError(f"{where}: {key!r} images are {list(extra[key].shape[1:])} but "
                                 f"'x' images are {list(x.shape[1:])}; they must have the size "
                                 "and channels of the training images")
    if "x_test" in arrays:
        xt = extra["x_test"]
        yt = check_labels(arrays["y_test"], c, f"{where} ['y_test']")
        if len(xt) != len(yt):
            raise ValueError(f"{where}: 'x_test' has {len(xt)} images but 'y_test' has {len(yt)}")
        train_x, train_y, test_x, test_y = x, y, xt, yt
    else:
        train, test = split_off_test(y, test_fraction, seed, where)
        train_x, train_y, test_x, test_y = x[train], y[train], x[test], y[test]
    return ImageData(name=name, train_images=train_x, train_labels=train_y, test_images=test_x,
                     test_labels=test_y, num_classes=c, class_names=class_names,
                     augmentation=augment.PAD_CROP, unlabeled_images=extra.get("x_unlabeled"))


def tabular_data(name, x, y, class_names, test_fraction=TEST_FRACTION, seed=0,
                 x_test=None, y_test=None):
    """ImageData of float32 feature vectors, split (stratified) unless a test set is given."""
    class_names = check_class_names(class_names, name)
    x = check_features(x, name)
    y = check_labels(y, len(class_names), name)
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} feature rows but {len(y)} labels")
    if x_test is None:
        train, test = split_off_test(y, test_fraction, seed, name)
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    else:
        x_test = check_features(x_test, name + " (test)")
        y_test = check_labels(y_test, len(class_names), name + " (test)")
        if x_test.ndim != 2 or x_test.shape[1] != x.shape[1]:
            raise ValueError(f"{name}: test features have shape {list(x_test.shape)} but the "
                             f"training features {list(x.shape)}; both need {x.shape[1]} "
                             "features per row")
        if len(x_test) != len(y_test):
            raise ValueError(f"{name} (test): {len(x_test)} feature rows but {len(y_test)} "
                             "labels")
    return ImageData(name=name, train_images=x, train_labels=y, test_images=x_test,
                     test_labels=y_test, num_classes=len(class_names),
                     class_names=tuple(class_names), augmentation=augment.NO_AUGMENTATION)


def load_sklearn_tabular(name):
    """A UCI data set that scikit-learn ships (no network): breast_cancer or wine.

    A fixed stratified 20% of the rows is the test set (``stratified_split`` seed 0).
    """
    from sklearn import datasets as sk_datasets
    bunch = getattr(sk_datasets, f"load_{name}")()
    return tabular_data(name, bunch.data, bunch.target, [str(c) for c in bunch.target_names])


def _parse_csv(text, delimiter):
    """[(line number, cells)] of the non-blank rows of ``text`` read with ``delimiter``."""
    import csv
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, [c.strip() for c in cells]))
    except csv.Error as e:
        raise ValueError(f"line {reader.line_num}: {e}") from None
    return rows


def _numeric_rows(rows):
    """Whether every row has one width >= 2 and numeric features (the label may be text)."""
    widths = {len(cells) for _, cells in rows}
    return (len(widths) == 1 and widths.pop() >= 2
            and all(_is_number(v) for _, cells in rows for v in cells[:-1]))


def _explain_csv(path, text):
    """Names the first offending line under the delimiter that splits line 2 the most."""
    best = max(CSV_DELIMITERS, key=lambda d: len(_parse_csv(text, d)[1][1])
               if len(_parse_csv(text, d)) >= 2 else 0)
    rows = _parse_csv(text, best)
    if len(rows) < 2 or len(rows[1][1]) < 2:
        return
    width = len(rows[1][1])
    for line, cells in rows[1:]:
        if len(cells) != width:
            raise ValueError(f"{path}, line {line}: {len(cells)} cells, but line "
                             f"{rows[1][0]} has {width} (delimiter {best!r})")
        for j, v in enumerate(cells[:-1]):
            if not _is_number(v):
                raise ValueError(f"{path}, line {line}, column {j + 1}: {v!r} is not a number; "
                                 "features must be numbers (the label is the last column)")


def load_csv(path, test_fraction=TEST_FRACTION, seed=0):
    """Tabular data from a CSV file: numeric feature columns, the label in the last column.

    Read with Python's csv reader (quoted fields allowed), as UTF-8 with or without
    a byte-order mark. The delimiter is whichever of ``,`` ``;`` and tab reads every
    row after the first as equally many cells (at least two) with numeric features;
    a file that reads so with none or with several of them is refused. The first row
    is a header when its features (or, with numeric labels, its label) are not all
    numbers -- judged by the data, so a header whose first column name is a number
    is still a header and a first data row is never dropped.

    Labels are either all whole numbers >= 0 (class ids; classes 0..max) or all text
    (class names, sorted to ids); a fractional, empty or non-finite label, or a mix
    of numbers and names (the minority kind is named), is refused with its line number. A stratified
    ``test_fraction`` (at least one row) is held out.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CSV file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save it as UTF-8") from None
    parsed = {}
    for d in CSV_DELIMITERS:
        try:
            rows = _parse_csv(text, d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if len(rows) >= 2 and _numeric_rows(rows[1:]):
            parsed[d] = rows
    if not parsed:
        _explain_csv(path, text)
    if len(parsed) != 1:
        names = {",": "comma", ";": "semicolon", "\t": "tab"}
        found = "several: " + ", ".join(names[d] for d in parsed) if parsed else "none"
        raise ValueError(
            f"{path}: cannot tell the delimiter ({found} of comma, semicolon, tab gives every "
            "row after the first the same number of cells, at least two, with numeric "
            "features); expected numeric feature columns and the label last, one row per "
            "line, with at least two data rows")
    rows = next(iter(parsed.values()))
    first = rows[0][1]
    width = len(rows[1][1])
    # The kind most rows after the first have (ties: ids), so the odd one out is named.
    kinds = [_is_number(cells[-1]) for _, cells in rows[1:] if cells[-1]]
    numeric_labels = 2 * sum(kinds) >= len(kinds)
    header = (len(first) != width or not all(_is_number(v) for v in first[:-1])
              or (numeric_labels and not _is_number(first[-1])))
    if header:
        rows = rows[1:]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs at least two data rows, found {len(rows)}")
    features = []
    for line, cells in rows:
        values = [float(v) for v in cells[:-1]]
        bad = [j for j, v in enumerate(values) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"{path}, line {line}: feature {bad[0] + 1} is "
                             f"{cells[bad[0]]!r}; features must be finite numbers")
        features.append(values)
    x = np.asarray(features, np.float32)
    raw = [(line, cells[-1]) for line, cells in rows]
    for line, v in raw:
        if not v:
            raise ValueError(f"{path}, line {line}: the label (last column) is empty")
        if _is_number(v) != numeric_labels:
            kind = "class ids (numbers)" if numeric_labels else "class names (text)"
            raise ValueError(f"{path}, line {line}: label {v!r}, but the other labels are "
                             f"{kind}; use one kind for every row")
    if numeric_labels:
        for line, v in raw:
            number = float(v)
            if not np.isfinite(number) or number != int(number) or number < 0:
                raise ValueError(f"{path}, line {line}: label {v!r} is not a class id; class "
                                 "ids are whole numbers >= 0 (or use class names)")
        y = np.asarray([int(float(v)) for _, v in raw], np.int64)
        top = int(np.argmax(y))
        names = list(numbered_classes(y, f"{path}, line {raw[top][0]}"))
    else:
        names = sorted({v for _, v in raw})
        index = {n: i for i, n in enumerate(names)}
        y = np.asarray([index[v] for _, v in raw], np.int64)
    return tabular_data("csv:" + path, x, y, names, test_fraction, seed)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def from_tf_dataset(dataset, test=None, unlabeled=None, class_names=None, name="tf.data",
                    test_fraction=TEST_FRACTION, seed=0, max_bytes=None):
    """A data set from a finite ``tf.data.Dataset``, read into memory once.

    Args:
      dataset: elements ``(image, label)`` or ``{"image": ..., "label": ...}`` (as TFDS
        gives them), one example or a batch each; uint8 images (or float feature
        vectors) and class ids, as ``from_arrays`` takes them.
      test: the same for a test set; without one a stratified ``test_fraction`` of
        ``dataset`` is held out, drawn with ``seed``.
      unlabeled: a dataset of images (or ``{"image": ...}``) without labels: the
        unlabeled pool.
      class_names, name: as ``from_arrays``.
      max_bytes: the most its images may take in memory (a quarter of the
        machine's memory by default); a larger dataset is refused, saying what to
        pass instead (a folder of images, or a TFDS name: they stream).

    Raises:
      ValueError: a dataset that repeats forever, elements of another form, or
        more images than ``max_bytes``.
    """
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    x, y = _materialize(dataset, name, True, budget)
    arrays = {"x": x, "y": y}
    if test is not None:
        arrays["x_test"], arrays["y_test"] = _materialize(test, f"{name} (test)", True, budget)
    if unlabeled is not None:
        arrays["x_unlabeled"], _ = _materialize(unlabeled, f"{name} (unlabeled)", False, budget,
                                                x.ndim - 1)
    return from_arrays(**arrays, class_names=class_names, name=name,
                       test_fraction=test_fraction, seed=seed, where=name)


def _materialize(dataset, where, labeled, budget, example_rank=None):
    """(examples, labels or None) of a finite dataset, as NumPy arrays."""
    import tensorflow as tf
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(f"{where}: the dataset repeats forever (.repeat()); pass it before "
                         ".repeat(): it is read once, into memory")
    form = ("(image, label) pairs or {'image', 'label'} dicts" if labeled
            else "images or {'image'} dicts")
    xs, ys, total = [], [], 0
    for element in dataset.as_numpy_iterator():
        if isinstance(element, dict):
            if "image" not in element or (labeled and "label" not in element):
                raise ValueError(f"{where}: elements must be {form}; got a dict of "
                                 f"{sorted(element)}")
            image, label = element["image"], element.get("label")
        elif isinstance(element, tuple) and len(element) == (2 if labeled else 1):
            image, label = element[0], element[1] if labeled else None
        elif not labeled and not isinstance(element, (tuple, dict)):
            image, label = element, None
        else:
            raise ValueError(f"{where}: elements must be {form}; got "
                             f"{type(element).__name__} of {len(element)}")
        image = np.asarray(image)
        batched = (np.ndim(label) == 1) if labeled else (image.ndim == (example_rank or 3) + 1)
        xs.append(image if batched else image[None])
        if labeled:
            ys.append(np.asarray(label).reshape(-1))
        total += image.nbytes
        if total > budget:
            raise ValueError(f"{where}: more than {budget / 2**30:.1f} GiB of images, too many "
                             "to hold in memory: write them as a folder of images "
                             "(--dataset=folder:PATH) or pass a TFDS name, which stream from "
                             "their files")
    if not xs:
        raise ValueError(f"{where}: the dataset is empty")
    return np.concatenate(xs), (np.concatenate(ys) if labeled else None)
