"""Where the data come from: bundled digits, TFDS, a folder, ``.npz`` and CSV files.

Images are read into memory as uint8 arrays ``[N, H, W, C]``, tabular data
(mixup is not only for images) as float32 features ``[N, D]``, with int64 labels,
all checked before any training starts: a corrupt image, a non-finite feature or
an out-of-range label is reported with its file (or index) and value.
(``tf.one_hot`` would turn an out-of-range label into an all-zero row without a word.)
"""
import dataclasses
import io
import os
from typing import Optional

import numpy as np

from mixmatch_tf.data import augment

DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0
FOLDER_TEST_FRACTION = 0.2
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass
class ImageData:
    """An image classification data set held in memory.

    Attributes:
      name: the data set's name as given on the command line.
      train_images, test_images: uint8 [N, H, W, C].
      train_labels, test_labels: int64 [N], the true labels.
      num_classes: C.
      class_names: C strings.
      augmentation: how training images are cropped and flipped
        (``augment.POLICIES``): ``pad_crop`` (pad H // 8 on each side as the
        method's ``crop_padding`` says, random crop back; no flips, for digits,
        SVHN or text-like images), ``pad_crop_flip`` (also a random horizontal
        flip), ``resized_crop_flip`` (random-resized crop and flip) or ``none``.
      unlabeled_images: extra images without labels (STL-10's unlabelled split).
      coarse_labels: CIFAR-100 superclass of each training example, if known.
      label_sets: alternative training labels by name (CIFAR-N human labels).
    """
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    class_names: tuple
    augmentation: str = augment.PAD_CROP
    unlabeled_images: Optional[np.ndarray] = None
    coarse_labels: Optional[np.ndarray] = None
    label_sets: dict = dataclasses.field(default_factory=dict)

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def tabular(self):
        """True for feature vectors [N, D] (no image augmentation, an MLP by default)."""
        return self.train_images.ndim == 2

    @property
    def num_train(self):
        return int(self.train_images.shape[0])

    streamed = False  # held in memory (see streaming.StreamedData)
    # How a served image of another size is brought to the training size.
    resize = augment.RESIZE_STRETCH

    def statistics_images(self):
        """The images normalisation statistics are computed from: all training images."""
        return self.train_images

    def options(self):
        """The loader's arguments that rebuild this data set (saved in run.json): in memory."""
        return {"stream": "false", "augmentation": self.augmentation}

    @property
    def num_unlabeled(self):
        """Images without labels (the unlabeled pool); they follow the training images
        in a run's training source."""
        return 0 if self.unlabeled_images is None else int(len(self.unlabeled_images))

    def sources(self, normalization, train_labels=None, padding="reflect"):
        """(training source, test source) over the arrays, augmented by ``augmentation``.

        ``train_labels``: the labels to train on, if not the data's (noisy labels);
        with ``num_unlabeled`` more of them (-1), the unlabelled images join the
        training source after the training images. ``padding``: the method's
        ``crop_padding``.
        """
        from mixmatch_tf.data.pipeline import ArraySource
        labels = self.train_labels if train_labels is None else train_labels
        images = self.train_images
        if len(labels) > self.num_train:
            images = np.concatenate([images, self.unlabeled_images])
        return (ArraySource(images, labels, normalization, augmentation=self.augmentation,
                            padding=padding),
                ArraySource(self.test_images, self.test_labels, normalization))


def stratified_split(labels, num_test, seed):
    """A reproducible class-stratified split of ``range(len(labels))``.

    Each class c gives floor(num_test * n_c / N) test examples; the examples left
    over go, one each, to the classes with the largest fractional parts (ties to
    the smaller class id). Within a class the test examples are the first ones of
    a permutation drawn with ``np.random.RandomState(seed)``, whose stream NumPy
    keeps stable across versions.

    Returns:
      (train_indices, test_indices), both sorted int64 arrays.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = num_test * counts / counts.sum()
    take = np.floor(quota).astype(int)
    order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]), i))
    for i in order[: num_test - take.sum()]:
        take[i] += 1
    rng = np.random.RandomState(seed)
    test = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(labels == c)
        test.extend(idx[rng.permutation(len(idx))[:k]])
    test = np.sort(np.asarray(test, np.int64))
    train = np.setdiff1d(np.arange(len(labels), dtype=np.int64), test)
    return train, test


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


# name -> (train split, test split, unlabeled split, augmentation, extra label keys)
TFDS_DATASETS = {
    "cifar10": ("train", "test", None, augment.PAD_CROP_FLIP, ()),
    "cifar100": ("train", "test", None, augment.PAD_CROP_FLIP, ()),
    "svhn_cropped": ("train", "test", None, augment.PAD_CROP, ()),
    "stl10": ("train", "test", "unlabelled", augment.PAD_CROP_FLIP, ()),
    "cifar10_n": ("train", "test", None, augment.PAD_CROP_FLIP,
                  ("aggre_label", "worse_label", "random_label1", "random_label2",
                   "random_label3")),
    "cifar100_n": ("train", "test", None, augment.PAD_CROP_FLIP, ("noise_label",)),
}


class DataNotPreparedError(FileNotFoundError):
    """A TFDS data set is not in --data_dir."""


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
    import hashlib
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


def _tfds_split(builder, split, keys):
    import tensorflow_datasets as tfds
    parts = {k: [] for k in keys}
    ds = builder.as_dataset(split=split, shuffle_files=False).batch(4096)
    for batch in tfds.as_numpy(ds):
        for k in keys:
            parts[k].append(batch[k])
    return {k: np.concatenate(v) if v else np.zeros([0]) for k, v in parts.items()}


def load_tfds(name, data_dir):
    """A TFDS data set read from ``data_dir`` (never downloaded here).

    Raises:
      DataNotPreparedError: naming the data set, the folder and how to prepare it.
    """
    import tensorflow_datasets as tfds
    train_split, test_split, unlabeled_split, augmentation, extra_keys = TFDS_DATASETS[name]
    builder = tfds.builder(name, data_dir=data_dir)
    try:
        label_keys = ["label"] + (["coarse_label"] if "coarse_label" in builder.info.features else [])
        train = _tfds_split(builder, train_split, ["image"] + label_keys + list(extra_keys))
        test = _tfds_split(builder, test_split, ["image", "label"])
        unlabeled = (_tfds_split(builder, unlabeled_split, ["image"])["image"]
                     if unlabeled_split else None)
    except AssertionError as e:
        if "could not find data" not in str(e):
            raise
        folder = data_dir or "~/tensorflow_datasets"
        manual = (" It needs a manual download first; see "
                  f"https://www.tensorflow.org/datasets/catalog/{name}."
                  if name.endswith("_n") else "")
        raise DataNotPreparedError(
            f"Data set {name!r} is not prepared in {folder!r} (--data_dir). This machine "
            f"cannot download it. On a machine with internet run\n"
            f"  python -c \"import tensorflow_datasets as tfds; "
            f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"\n"
            f"(or `tfds build {name} --data_dir=DIR`), then copy DIR here and pass "
            f"--data_dir=DIR.{manual}") from None
    label_feature = builder.info.features["label"]
    return ImageData(
        name=name, train_images=train["image"].astype(np.uint8),
        train_labels=train["label"].astype(np.int64),
        test_images=test["image"].astype(np.uint8), test_labels=test["label"].astype(np.int64),
        num_classes=int(label_feature.num_classes), class_names=tuple(label_feature.names),
        augmentation=augmentation, unlabeled_images=unlabeled,
        coarse_labels=train.get("coarse_label"),
        label_sets={k: train[k].astype(np.int64) for k in extra_keys})


def _check_images(images, where):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{where}: images must be [N, H, W] or [N, H, W, C] with C in "
                         f"1, 3, 4; got shape {images.shape}")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
            i = int(np.flatnonzero(~np.isfinite(images).all(axis=(1, 2, 3)))[0])
            bad = images[i][~np.isfinite(images[i])][0]
            raise ValueError(f"{where}: image {i} has a pixel that is {bad}; images must be "
                             "uint8 pixels 0-255")
        if not np.issubdtype(images.dtype, np.integer):
            raise ValueError(
                f"{where}: images must be uint8 pixels 0-255, got dtype {images.dtype} "
                f"with values in [{images.min()}, {images.max()}]; scale and cast them "
                "with (x * 255).round().astype('uint8') if they are in [0, 1]")
        bad = np.flatnonzero((images < 0).any(axis=(1, 2, 3)) | (images > 255).any(axis=(1, 2, 3)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{where}: image {i} has pixel values outside 0-255 "
                             f"(min {images[i].min()}, max {images[i].max()})")
        images = images.astype(np.uint8)
    return images


# Classes a data set may have when its labels number them (ImageNet-21k has 21,841):
# a larger id is a typo that would build a classifier head of that many outputs.
MAX_CLASSES = 100_000


def numbered_classes(labels, where):
    """Class names "0".."max" of labels that number the classes, checked to be few
    enough to be real."""
    top = int(np.max(labels)) if len(labels) else 0
    if top >= MAX_CLASSES:
        index = int(np.argmax(labels))
        raise ValueError(f"{where}: label {top} (at {index}) would make {top + 1} classes; at "
                         f"most {MAX_CLASSES} are supported (class ids are 0..C-1: is it a "
                         "typo?)")
    return tuple(str(i) for i in range(max(0, top) + 1))


def check_labels(labels, num_classes, where):
    """Returns int64 labels, or raises naming the first bad index and value."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be a vector of class ids, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            bad = int(np.flatnonzero(np.mod(np.asarray(labels, float), 1) != 0)[0]) \
                if np.issubdtype(labels.dtype, np.number) else 0
            raise ValueError(f"{where}: label at index {bad} is {labels[bad]!r}; labels must be "
                             f"integer class ids in [0, {num_classes})")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{where}: label at index {i} is {labels[i]}, outside [0, {num_classes}) "
                         f"({bad.size} bad labels in all)")
    return labels.astype(np.int64)


NPZ_KEYS = ("x", "y", "x_test", "y_test", "x_unlabeled", "class_names")


def check_class_names(names, where):
    """Class names as a tuple of str: each non-empty and all distinct, or a ValueError.

    Any other text is kept as it is (exports serve it exactly, see serving/export.py).
    """
    names = tuple(names)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: class name {i} is {name!r}; class names must be "
                             "non-empty text")
    seen = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{where}: class names {seen[name]} and {i} are both {name!r}; "
                             "class names must be distinct")
        seen[name] = i
    return names


def _split_off_test(labels, test_fraction, seed, where):
    """A stratified hold-out of at least one example (and at least one left to train)."""
    n = len(labels)
    if n < 2:
        raise ValueError(f"{where}: {n} example(s); at least two are needed (one to train on "
                         "and one to test on), or give a separate test set")
    num_test = min(n - 1, max(1, int(round(test_fraction * n))))
    return stratified_split(labels, num_test, seed)


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


def load_npz(path, test_fraction=FOLDER_TEST_FRACTION, seed=0):
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
                name="arrays", test_fraction=FOLDER_TEST_FRACTION, seed=0, where=None):
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
            pool = _check_features(arrays["x_unlabeled"], f"{where} ['x_unlabeled']")
            if pool.shape[1] != data.train_images.shape[1]:
                raise ValueError(f"{where}: 'x_unlabeled' rows have {pool.shape[1]} features "
                                 f"but 'x' rows {data.train_images.shape[1]}")
            data = dataclasses.replace(data, unlabeled_images=pool)
        return data
    x = _check_images(arrays["x"], f"{where} ['x']")
    y = check_labels(arrays["y"], c, f"{where} ['y']")
    if len(x) != len(y):
        raise ValueError(f"{where}: 'x' has {len(x)} images but 'y' has {len(y)} labels")
    extra = {}
    for key in ("x_test", "x_unlabeled"):
        if key in arrays:
            extra[key] = _check_images(arrays[key], f"{where} [{key!r}]")
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
        train, test = _split_off_test(y, test_fraction, seed, where)
        train_x, train_y, test_x, test_y = x[train], y[train], x[test], y[test]
    return ImageData(name=name, train_images=train_x, train_labels=train_y, test_images=test_x,
                     test_labels=test_y, num_classes=c, class_names=class_names,
                     augmentation=augment.PAD_CROP, unlabeled_images=extra.get("x_unlabeled"))


def _decode_images(paths):
    """uint8 [N, H, W, C]: the images at ``paths``, decoded in parallel by tf.data.

    Every image must have the first's size and channels (grey + alpha read as
    grey); when one does not, or does not decode, ``_decode_one_by_one`` names it.
    """
    import tensorflow as tf
    from mixmatch_tf.data import streaming
    first = tf.io.decode_image(tf.io.read_file(paths[0]), expand_animations=False)
    native = tuple(int(d) for d in first.shape)  # ensure_shape refuses any other
    channels = streaming.folder_channels(native[-1])

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return tf.ensure_shape(image, native)[..., :channels]
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(paths, str)).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    out = np.empty((len(paths),) + native[:2] + (channels,), np.uint8)
    try:
        done = 0
        for batch in dataset.as_numpy_iterator():
            out[done:done + len(batch)] = batch
            done += len(batch)
    except tf.errors.OpError:
        return _decode_one_by_one(paths)  # names the file that does not decode or fit
    return out


def _decode_one_by_one(paths):
    """``_decode_images`` one file at a time, naming the first that does not decode or
    whose size or channels differ from the first's."""
    import tensorflow as tf
    from mixmatch_tf.data import streaming
    images, shapes = [], {}
    for path in paths:
        try:
            img = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise ValueError(f"{path}: cannot decode image ({e.message.splitlines()[0]})") from None
        img = img[..., :streaming.folder_channels(img.shape[-1])]  # grey + alpha: grey
        shapes.setdefault(img.shape, path)
        if len(shapes) > 1:
            (s0, p0), (s1, p1) = list(shapes.items())[:2]
            raise ValueError(f"images differ in shape: {p0} is {s0}, {p1} is {s1}; "
                             "resize them to one size first, or stream them from the "
                             "files (--stream=true), which crops every image to "
                             "--image_size")
        images.append(img)
    return np.stack(images).astype(np.uint8)


def _read_image_folder(root, reserved=()):
    """Reads class sub-folders of ``root``: returns (images, labels, class_names).

    The listing and its rules (class folders, image extensions, links, the
    ``reserved`` names) are the streamed reader's (``streaming.list_image_folder``);
    this decodes every file (``_decode_images``).
    """
    from mixmatch_tf.data import streaming
    paths, labels, classes = streaming.list_image_folder(root, reserved)
    return _decode_images(paths), np.asarray(labels, np.int64), tuple(classes)


def load_folder(path, test_fraction=FOLDER_TEST_FRACTION, seed=0):
    """A folder of class sub-folders of images (PNG, JPEG, BMP, GIF), read into memory.

    With ``path/train`` and ``path/test`` (or ``path/val``, the ImageNet layout)
    sub-folders, those are the splits; otherwise a stratified ``test_fraction`` of
    ``path`` is held out for testing. Images in ``path/unlabeled/`` (not a class)
    are the unlabeled pool of semi-supervised methods.
    """
    from mixmatch_tf.data import streaming
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image folder {path!r} does not exist")
    train_dir, test_dir = streaming.folder_splits(path)
    pool = streaming.list_unlabeled(path)
    if test_dir is not None:
        x, y, names = _read_image_folder(train_dir)
        xt, yt, names_t = _read_image_folder(test_dir)
        if names_t != names:
            raise ValueError(f"{test_dir}: class folders {names_t} differ from {train_dir}: {names}")
    else:
        x_all, y_all, names = _read_image_folder(path, (streaming.UNLABELED_FOLDER,))
        train, test = _split_off_test(y_all, test_fraction, seed, path)
        x, y, xt, yt = x_all[train], y_all[train], x_all[test], y_all[test]
    unlabeled = None
    if len(pool):
        unlabeled = _decode_images(pool)
        if unlabeled.shape[1:] != x.shape[1:]:
            raise ValueError(f"{os.path.join(path, streaming.UNLABELED_FOLDER)}: its images are "
                             f"{list(unlabeled.shape[1:])} but the labeled ones "
                             f"{list(x.shape[1:])}; give them one size")
    return ImageData(name="folder:" + path, train_images=x, train_labels=y, test_images=xt,
                     test_labels=yt, num_classes=len(names), class_names=names,
                     augmentation=streaming.FOLDER_AUGMENTATION, unlabeled_images=unlabeled)


def _check_features(x, where):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{where}: features must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise ValueError(f"{where}: feature {j} of row {i} is {x[i, j]}; features must be finite")
    return x


def tabular_data(name, x, y, class_names, test_fraction=FOLDER_TEST_FRACTION, seed=0,
                 x_test=None, y_test=None):
    """ImageData of float32 feature vectors, split (stratified) unless a test set is given."""
    class_names = check_class_names(class_names, name)
    x = _check_features(x, name)
    y = check_labels(y, len(class_names), name)
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} feature rows but {len(y)} labels")
    if x_test is None:
        train, test = _split_off_test(y, test_fraction, seed, name)
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    else:
        x_test = _check_features(x_test, name + " (test)")
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


SKLEARN_TABULAR = ("breast_cancer", "wine")


def load_sklearn_tabular(name):
    """A UCI data set that scikit-learn ships (no network): breast_cancer or wine.

    A fixed stratified 20% of the rows is the test set (``stratified_split`` seed 0).
    """
    from sklearn import datasets as sk_datasets
    bunch = getattr(sk_datasets, f"load_{name}")()
    return tabular_data(name, bunch.data, bunch.target, [str(c) for c in bunch.target_names])


CSV_DELIMITERS = (",", ";", "\t")


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


def load_csv(path, test_fraction=FOLDER_TEST_FRACTION, seed=0):
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


# TFDS image data sets that are only streamed (their images differ in size):
# name -> (train split, test split).
STREAMED_TFDS = {"imagenet2012": ("train", "validation")}


def dataset_names():
    return (("digits",) + tuple(TFDS_DATASETS) + tuple(STREAMED_TFDS) + SKLEARN_TABULAR
            + ("folder:PATH", "npz:PATH", "csv:PATH"))


def _tfds_should_stream(name, data_dir, budget=None):
    """--stream=auto for a TFDS data set: (stream?, why), from its metadata only."""
    import tensorflow_datasets as tfds
    from mixmatch_tf.data import streaming
    builder = tfds.builder(name, data_dir=data_dir)
    shape = builder.info.features["image"].shape
    if None in shape:
        return True, "its images differ in size"
    try:
        n = sum(split.num_examples for split in builder.info.splits.values())
    except (KeyError, AttributeError):
        return False, "its size is unknown (not prepared)"
    decoded = n * int(np.prod(shape))
    budget = streaming.memory_budget() if budget is None else budget
    return decoded > budget, (f"{n} images of {'x'.join(map(str, shape))} take "
                              f"{decoded / 2**30:.2f} GiB decoded; budget "
                              f"{budget / 2**30:.1f} GiB")


def _refuse_image_size(spec, image_size, why):
    if image_size is not None:
        raise ValueError(f"--image_size={image_size} sets the crop size of streamed data, but "
                         f"{spec} is held in memory ({why}); add --stream=true to stream it")


def load_dataset(spec, data_dir=None, stream="auto", image_size=None,
                 augmentation=augment.AUTO):
    """Loads a data set by name: ``digits``, a TFDS name, ``folder:PATH``, ``npz:PATH``, ...

    Args:
      spec: the data set's name (``dataset_names``).
      data_dir: the TFDS data folder.
      stream: for folders and TFDS image data sets: ``"true"`` streams the images
        from their files (``streaming.StreamedData``), ``"false"`` reads them into
        memory, ``"auto"`` streams when the images differ in size or, decoded,
        would take more than a quarter of the machine's memory
        (``streaming.should_stream``). Other data sets are always in memory.
      image_size: the crop size of streamed images (default 224).
      augmentation: the training augmentation policy (``augment.POLICIES``), or
        ``"auto"`` for the data set's own: ``pad_crop`` for digits, SVHN and
        ``npz:`` arrays, ``pad_crop_flip`` for CIFAR, STL-10 and folders of
        images of one size (read into memory or streamed alike),
        ``resized_crop_flip`` for images of several sizes (ImageNet),
        ``none`` for feature vectors.
    """
    data = _load(spec, data_dir, stream, image_size)
    if augmentation == augment.AUTO:
        return data
    augment.check_policy(augmentation)
    if data.tabular and augmentation != augment.NO_AUGMENTATION:
        raise ValueError(f"--augmentation={augmentation}: {spec} holds feature vectors, which "
                         f"are not augmented; valid: {augment.AUTO}, "
                         f"{augment.NO_AUGMENTATION}")
    return dataclasses.replace(data, augmentation=augmentation)


def _load(spec, data_dir, stream, image_size):
    from mixmatch_tf.data import streaming
    stream = str(stream).lower()
    if stream not in streaming.STREAM_CHOICES:
        raise ValueError(f"--stream={stream}: must be one of {', '.join(streaming.STREAM_CHOICES)}")
    streamable = spec in TFDS_DATASETS or spec in STREAMED_TFDS or spec.startswith("folder:")
    if stream == "true" and not streamable:
        raise ValueError(f"--stream=true: {spec} is held in memory; streaming is for folder: and "
                         "TFDS image data sets")
    if spec in STREAMED_TFDS:
        if stream == "false":
            raise ValueError(f"--stream=false: {spec}'s images differ in size, so it is streamed "
                             "from its files (cropped to --image_size)")
        return streaming.load_streamed_tfds(spec, data_dir, *STREAMED_TFDS[spec],
                                            image_size=image_size)
    if spec in TFDS_DATASETS:
        train, test, unlabeled, augmentation, extra = TFDS_DATASETS[spec]
        if stream != "auto":
            decide, why = stream == "true", "--stream"
        elif unlabeled or extra:  # only the in-memory path reads them
            decide, why = False, "it has an unlabeled split or label sets"
        else:
            decide, why = _tfds_should_stream(spec, data_dir)
        if decide:
            if unlabeled or extra:
                raise ValueError(f"--stream=true: {spec} has extra splits or label sets, which "
                                 "only the in-memory path reads; use --stream=false")
            return streaming.load_streamed_tfds(spec, data_dir, train, test, image_size,
                                                augmentation)
        _refuse_image_size(spec, image_size, why)
        return load_tfds(spec, data_dir)
    if spec.startswith("folder:"):
        path = spec[len("folder:"):]
        if not os.path.isdir(path):
            raise FileNotFoundError(f"image folder {path!r} does not exist")
        listing = None
        if stream == "auto":
            listing = streaming.list_training_folder(path)
            decide, why = streaming.should_stream(np.concatenate(
                [listing[0], streaming.list_unlabeled(path)]))
        else:
            decide, why = stream == "true", "--stream"
        from absl import logging
        logging.info("%s: %s (%s)", spec, "streamed from its files" if decide
                     else "read into memory", why)
        if decide:
            return streaming.load_streamed_folder(path, image_size, listing=listing)
        _refuse_image_size(spec, image_size, why)
        return load_folder(path)
    if image_size is not None:
        raise ValueError(f"--image_size applies to streamed folder: and TFDS data, not {spec}")
    if spec == "digits":
        return load_digits()
    if spec.startswith("npz:"):
        return load_npz(spec[len("npz:"):])
    if spec in SKLEARN_TABULAR:
        return load_sklearn_tabular(spec)
    if spec.startswith("csv:"):
        return load_csv(spec[len("csv:"):])
    raise ValueError(f"unknown dataset {spec!r}; valid: {', '.join(dataset_names())}")
