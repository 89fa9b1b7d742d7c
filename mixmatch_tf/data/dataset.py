"""What a data set is to a run: one protocol, two kinds, and the checks every loader runs.

A data set tells a run its name, classes, example shape, sizes, labels, training
augmentation (``augment.POLICIES``), how a served image is brought to its size
(``resize``), the images its normalisation statistics come from, the loader
arguments that rebuild it (``options``) and -- ``sources`` -- the tf.data
sources a run reads: ``ImageData`` holds its arrays in memory, ``StreamedData``
names files (a folder) or a TFDS split that ``streaming`` reads as training
consumes them. ``training/`` asks only this, never which kind it has.

The loaders by format (``arrays``, ``folders``, ``tfds``; ``load.load_dataset``
picks by name) check their input with the functions here before any training
starts: a corrupt image, a non-finite feature or an out-of-range label is
reported with its file (or index) and value (``tf.one_hot`` would turn an
out-of-range label into an all-zero row without a word).
"""
import dataclasses
import hashlib
import os
from typing import Optional

import numpy as np

from mixmatch_tf.data import augment
from mixmatch_tf.data.pipeline import ArraySource
from mixmatch_tf.data.preprocess import Normalization
from mixmatch_tf.data.streaming import FileSource, TfdsSource

TEST_FRACTION = 0.2


# Training images decoded to estimate per-channel normalisation statistics.
STATISTICS_SAMPLE = 256


DEFAULT_IMAGE_SIZE = 224


# Classes a data set may have when its labels number them (ImageNet-21k has 21,841):
# a larger id is a typo that would build a classifier head of that many outputs.
MAX_CLASSES = 100_000


# --stream=auto streams a folder when its decoded images would take more than this
# share of the machine's memory.
MEMORY_FRACTION = 0.25


class DataNotPreparedError(FileNotFoundError):
    """A TFDS data set is not in --data_dir."""


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
      benchmark: one of the papers' data sets: methods default to the papers'
        settings on it; on any other data set, to settings sized to it
        (``methods.base.Method.data_defaults``).
      train_files: the file each training image was read from (a folder), for
        reports that name examples (label issues); None for arrays.
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
    benchmark: bool = False
    train_files: Optional[np.ndarray] = None

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

    # How a served image of another size is brought to the training size.
    resize = augment.RESIZE_STRETCH

    def statistics_images(self):
        """The images normalisation statistics are computed from: all training images."""
        return self.train_images

    def options(self):
        """The loader's arguments that rebuild this data set (saved in run.json): in memory."""
        return {"stream": "false", "augmentation": self.augmentation}

    def fingerprint(self):
        """None: an in-memory data set is identified by its labels' fingerprint."""
        return None

    @property
    def input_dtype(self):
        """The dtype of one example as the served model takes it."""
        return self.train_images.dtype.name

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
        labels = self.train_labels if train_labels is None else train_labels
        images = self.train_images
        if len(labels) > self.num_train:
            images = np.concatenate([images, self.unlabeled_images])
        return (ArraySource(images, labels, normalization, augmentation=self.augmentation,
                            padding=padding),
                ArraySource(self.test_images, self.test_labels, normalization))


# ------------------------------------------------------------------------ the data
@dataclasses.dataclass
class TfdsSplits:
    """Where a streamed TFDS data set is: name, data folder, splits."""
    name: str
    data_dir: Optional[str]
    train_split: str
    test_split: str


@dataclasses.dataclass
class StreamedData:
    """An image classification data set read from files while training consumes it.

    It has the attributes of ``ImageData`` that describe the data (name,
    classes, shape, labels) but never pixels: ``train_images`` and ``test_images``
    are None. Exactly one of ``train_files`` (a folder) and ``tfds`` is set.

    Attributes:
      name: the data set's name as given on the command line.
      num_classes, class_names: the classes.
      image_size: the side of the square inputs of images of several sizes
        (training crops and evaluation's central crop); None where every image
        has the size ``frame``.
      num_train, num_test: examples of each split.
      train_files, test_files: file paths (str arrays) of a folder's images.
      train_labels, test_labels: int64 labels of a folder's images; None for
        TFDS (read with each example, never all at once).
      tfds: the TFDS data set, for a TFDS stream.
      augmentation: the training augmentation policy (``augment.POLICIES``).
      frame: (H, W, C) of images that share one size (the network's input, as
        when they are read into memory); None for square ``image_size`` inputs.
      unlabeled_files: images without labels (a folder's ``unlabeled/``): the
        unlabeled pool, after the training files in a run's training source.
      benchmark: as ``ImageData.benchmark`` (ImageNet).
    """
    name: str
    num_classes: int
    class_names: tuple
    image_size: Optional[int]
    num_train: int
    num_test: int
    train_files: Optional[np.ndarray] = None
    test_files: Optional[np.ndarray] = None
    train_labels: Optional[np.ndarray] = None
    test_labels: Optional[np.ndarray] = None
    tfds: Optional[TfdsSplits] = None
    augmentation: str = augment.RESIZED_CROP_FLIP
    frame: Optional[tuple] = None
    unlabeled_files: Optional[np.ndarray] = None
    benchmark: bool = False

    tabular = False
    train_images = None
    test_images = None
    unlabeled_images = None
    coarse_labels = None

    @property
    def label_sets(self):
        return {}

    @property
    def image_shape(self):
        if self.frame is not None:
            return tuple(self.frame)
        return (self.image_size, self.image_size, 3)

    input_dtype = "uint8"

    @property
    def num_unlabeled(self):
        return 0 if self.unlabeled_files is None else int(len(self.unlabeled_files))

    @property
    def resize(self):
        """How evaluation (and the served model) brings an image to ``image_shape``."""
        return augment.RESIZE_STRETCH if self.frame else augment.RESIZE_CENTRAL_CROP

    def options(self):
        """The loader's arguments that rebuild this data set (saved in run.json)."""
        return {"stream": "true", "image_size": self.image_size,
                "augmentation": self.augmentation}

    def fingerprint(self):
        """A fingerprint of what the stream reads: the file list, or the TFDS split."""
        if self.train_files is not None:
            text = "\n".join(self.train_files.tolist())
        else:
            text = f"{self.tfds.name}:{self.tfds.train_split}:{self.num_train}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def sources(self, normalization, train_labels=None, padding="reflect"):
        """(training source, test source) streaming this data set.

        ``train_labels``: the labels to train on, if not the data's (noisy labels);
        a folder only (a TFDS stream reads each label with its image).
        ``padding``: the method's ``crop_padding`` (pad-and-crop policies).
        """
        view = dict(normalization=normalization, image_shape=self.image_shape,
                    resize=self.resize)
        if self.tfds is not None:
            return (TfdsSource(self.tfds, self.tfds.train_split, self.num_train,
                               augmentation=self.augmentation, padding=padding, **view),
                    TfdsSource(self.tfds, self.tfds.test_split, self.num_test, **view))
        labels = self.train_labels if train_labels is None else train_labels
        files = self.train_files
        if len(labels) > self.num_train:  # the unlabeled pool follows the training files
            files = np.concatenate([files, self.unlabeled_files])
        return (FileSource(files, labels, augmentation=self.augmentation, padding=padding,
                           **view),
                FileSource(self.test_files, self.test_labels, **view))

    def statistics_images(self):
        """uint8 [n, H, W, C]: a fixed sample of training images (evaluation transform),
        from which per-channel normalisation statistics are estimated."""
        channels = self.image_shape[-1]
        identity = Normalization(mean=(0.0,) * channels, std=(1.0,) * channels)
        source = self.sources(identity)[0]
        return source.sample_images(STATISTICS_SAMPLE)


def refuse_image_size(name, image_size, why):
    """``--image_size`` sizes streamed images only: refused for a data set held in memory."""
    if image_size is not None:
        raise ValueError(f"--image_size={image_size} sets the crop size of streamed data, but "
                         f"{name} is held in memory ({why}); add --stream=true to stream it")


def memory_budget():
    """Bytes --stream=auto lets a folder's decoded images take: MEMORY_FRACTION of RAM."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(MEMORY_FRACTION * total)


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


def split_off_test(labels, test_fraction, seed, where):
    """A stratified hold-out of at least one example (and at least one left to train)."""
    n = len(labels)
    if n < 2:
        raise ValueError(f"{where}: {n} example(s); at least two are needed (one to train on "
                         "and one to test on), or give a separate test set")
    num_test = min(n - 1, max(1, int(round(test_fraction * n))))
    return stratified_split(labels, num_test, seed)


def check_images(images, where):
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


def check_features(x, where):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{where}: features must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise ValueError(f"{where}: feature {j} of row {i} is {x[i, j]}; features must be finite")
    return x


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
