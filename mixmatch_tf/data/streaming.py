"""Data sets streamed from files: a folder of class sub-folders and TFDS data sets.

The in-memory path (``sources.ImageData``, ``pipeline.ArraySource``) holds every
pixel in host memory; ImageNet's 1.28 M images (about 150 GB decoded at their
sizes) cannot be held so. A streamed data set holds what names the examples --
file paths and labels (a folder), or a TFDS split -- and its sources read,
decode and augment each example inside tf.data as training consumes it.

Guarantees, as for the in-memory path:

* **The same stream after a resume.** Batch ``s`` of a folder stream holds
  positions ``[s B, (s + 1) B)`` of an endless sequence of epoch permutations of
  the file list (``pipeline._index_batches``: stateless, seeded by (run seed,
  phase, stream, epoch)), and the example at row ``i`` of batch ``s`` is cropped
  and flipped with a stateless seed of (run seed, phase, stream, step, i). A run
  resumed at step ``s`` rebuilds the same batches, exactly, when the folder holds
  the same files (the list is sorted, so the order of the file system does not
  matter; its fingerprint is part of the run's identity). A TFDS stream reads the
  split in its stored order (TFDS shuffles examples when it builds a data set) and
  permutes each block of ``TFDS_SHUFFLE_BUFFER`` consecutive records with a
  stateless seed of (run seed, phase, stream, epoch, block); a resume re-reads
  (without decoding) the records of its epoch up to the step, so it is exact too,
  at the cost of that read.
* **Unreadable files do not stop training.** Each file is read and decoded in a
  guarded step (``tf.data``'s ``ignore_errors`` around one example); a file that
  cannot be read or decoded is named in a warning on stderr and its row of the
  batch takes the example of another row of the same batch (deterministically:
  the ``(i mod g)``-th readable row, of ``g``), so the batch keeps its size and
  every later batch its examples. Each batch reports how many rows were replaced
  (``unreadable``), and the trainer adds them up into ``unreadable_images`` of
  metrics.json. In evaluation an unreadable image is left out of the error
  (masked) and counted. A batch none of whose images reads stops the run naming
  its files: that is a broken data set, not a bad file.
* **Per-worker shards.** Every input pipeline (one per worker) produces the
  per-replica slices of the global batch that its replicas train on, and reads
  and decodes only those: with W workers each reads and decodes 1/W of every
  batch (a TFDS stream's records are read by every worker, and each decodes its
  own rows). The slices, their augmentation and their examples do not depend on
  how replicas are spread over workers: two workers of one replica each get the
  very slices that two mirrored replicas of one worker get.
* **Per-replica transforms.** A phase's ``transform`` (mixup of inputs) runs on
  each replica's slice on its own, with a seed of (run seed, phase, step, replica
  slice): mixing partners are drawn within the slice, as data-parallel ImageNet
  trainers mix within each device's batch. The in-memory path mixes the global
  batch instead; here that would make every worker decode the whole batch.

**The same images as in memory.** A folder (or TFDS data set) whose images share
one size is streamed at that size, with its channels, and augmented by the same
policy with the same draws as when it is read into memory (``augment.POLICIES``:
row ``r``, view ``v`` of step ``s`` are cropped and flipped alike either way), so
``--stream`` (which ``auto`` picks by the machine's memory) changes where the
pixels are kept, not what trains; with one replica a phase's ``transform`` is
seeded as the in-memory path seeds it too. Images of several sizes (ImageNet), or
``--image_size``, give square ``image_size`` inputs: by default ImageNet's
augmentation (``augment.resized_crop_box``: a random crop of 8-100% of the area
with aspect ratio in [3/4, 4/3], resized to ``image_size`` squared, and a random
horizontal flip); evaluation resizes the shorter side to
``round(image_size * 256 / 224)`` and takes the central ``image_size`` square.
JPEG crops are decoded with ``decode_and_crop_jpeg`` (only the crop's blocks): the
same pixels as decoding the whole image and cropping, except that with chroma
subsampling (4:2:0, most photos) libjpeg upsamples the colour at the edge of the
decoded window from the window alone, so the crop's first or last column may
differ slightly; it is the faster path, and the stream stays a function of the
seed and the step.
"""
import dataclasses
import hashlib
import os
import sys
from typing import Optional

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import augment as augment_lib
from mixmatch_tf.data.preprocess import normalize
from mixmatch_tf.ops.random import make_seed

AUTOTUNE = tf.data.AUTOTUNE
STREAM_CHOICES = ("auto", "true", "false")
DEFAULT_IMAGE_SIZE = 224
# A TFDS stream permutes blocks of this many consecutive records per epoch, in encoded
# examples (about 1.1 GB of ImageNet JPEGs): the usual ImageNet shuffle buffer's size.
TFDS_SHUFFLE_BUFFER = 10_000
# Training images decoded to estimate per-channel normalisation statistics.
STATISTICS_SAMPLE = 256
# --stream=auto streams a folder when its decoded images would take more than this
# share of the machine's memory.
MEMORY_FRACTION = 0.25
# Files whose sizes --stream=auto looks at (their headers only).
SIZE_SAMPLE = 32
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
EVAL_SPLIT_NAMES = ("test", "val")
# A folder data set's images without labels: PATH/unlabeled/*.png (not a class).
UNLABELED_FOLDER = "unlabeled"
# The policy of a folder whose images share one size, read into memory or streamed:
# random crops and horizontal flips, the usual recipe for photos (--augmentation=
# pad_crop for digits, letters or other images that a mirror changes).
FOLDER_AUGMENTATION = augment_lib.PAD_CROP_FLIP


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

    It has the attributes of ``sources.ImageData`` that describe the data (name,
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
    augmentation: str = augment_lib.RESIZED_CROP_FLIP
    frame: Optional[tuple] = None
    unlabeled_files: Optional[np.ndarray] = None

    streamed = True
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

    @property
    def num_unlabeled(self):
        return 0 if self.unlabeled_files is None else int(len(self.unlabeled_files))

    @property
    def resize(self):
        """How evaluation (and the served model) brings an image to ``image_shape``."""
        return augment_lib.RESIZE_STRETCH if self.frame else augment_lib.RESIZE_CENTRAL_CROP

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
        from mixmatch_tf.data.preprocess import Normalization
        channels = self.image_shape[-1]
        identity = Normalization(mean=(0.0,) * channels, std=(1.0,) * channels)
        source = self.sources(identity)[0]
        return source.sample_images(STATISTICS_SAMPLE)


# --------------------------------------------------------------------------- folders
def _hidden(name):
    return name.startswith(".")


def folder_channels(channels):
    """The channels a folder's images are read with: grey + alpha (2) as grey; grey, RGB
    and RGBA as they are (what ``npz:`` arrays and the served model's bytes take)."""
    return 1 if channels == 2 else channels


def _image_files(folder, inside, outside, what):
    """The image files of ``folder`` (sorted; hidden ones left out), checked: an entry
    with an image extension that is a folder or a broken link is refused; links out
    of ``inside`` are collected in ``outside``."""
    # The directory entries tell folders and links apart without a stat per file
    # (1.28 M of them on a network file system).
    entries = sorted((e for e in os.scandir(folder) if not _hidden(e.name)
                      and e.name.lower().endswith(IMAGE_EXTENSIONS)), key=lambda e: e.name)
    if not entries:
        raise ValueError(f"{folder}: {what} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    paths = []
    for entry in entries:
        path = entry.path
        if entry.is_symlink():
            if not os.path.exists(path):
                raise ValueError(f"{path}: is a broken symbolic link (to "
                                 f"{os.readlink(path)!r})")
            real = os.path.realpath(path)
            if os.path.commonpath([inside, real]) != inside:
                outside.append((path, real))
        if entry.is_dir():
            raise ValueError(f"{path}: is a folder, not an image; {what}s must hold image "
                             "files only (move or rename it)")
        paths.append(path)
    return paths


def _say_outside(root, outside):
    if outside:
        # Followed on purpose: a folder of links into a shared store is the usual way
        # to pick a subset of a shared data set without copying it. Said, since the
        # images read then are not the files under the folder.
        from absl import logging
        logging.warning("%s: %d image(s) are symbolic links to files outside the folder, "
                        "read from their targets (first: %s -> %s)", root, len(outside),
                        *outside[0])


def list_image_folder(root, reserved=()):
    """Paths and labels of the images in the class sub-folders of ``root``, no pixels.

    Class ids follow the sorted sub-folder names, files are sorted within each;
    hidden entries (names starting with a dot) and the ``reserved`` names (the
    ``unlabeled/`` folder) are not classes. Refused as in the in-memory loader: no
    class folders, a class folder without images, an entry with an image
    extension that is a folder or a broken link. Links out of ``root`` are
    followed with one warning.

    Returns:
      (paths: str array [N], labels: int64 [N], class names tuple).
    """
    # Hidden entries (.thumbnails/, .ipynb_checkpoints/, macOS' ._x.png) are not
    # classes or images: file managers and notebooks leave them in data folders.
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not _hidden(e.name)
                     and e.name not in reserved)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders found; expected {root}/<class>/<image>")
    paths, labels, outside = [], [], []
    inside = os.path.realpath(root)
    for c, name in enumerate(classes):
        files = _image_files(os.path.join(root, name), inside, outside, "class folder")
        paths.extend(files)
        labels.extend([c] * len(files))
    _say_outside(root, outside)
    return np.asarray(paths, dtype=object).astype(str), np.asarray(labels, np.int64), \
        tuple(classes)


def list_unlabeled(path):
    """The images of ``path/unlabeled/`` (sorted, str array), none without that folder:
    a folder data set's unlabeled pool for semi-supervised learning."""
    folder = os.path.join(path, UNLABELED_FOLDER)
    if not os.path.isdir(folder):
        return np.zeros([0], str)
    outside = []
    files = _image_files(folder, os.path.realpath(path), outside, "unlabeled folder")
    _say_outside(folder, outside)
    return np.asarray(files, dtype=object).astype(str)


def list_training_folder(path):
    """``list_image_folder`` of a folder data set's training images (``path/train``, or
    ``path`` itself, whose ``unlabeled/`` is then no class)."""
    train_dir, test_dir = folder_splits(path)
    return list_image_folder(train_dir, reserved=() if test_dir else (UNLABELED_FOLDER,))


def folder_splits(path):
    """(train folder, test folder or None): ``path/train`` with ``path/test`` or
    ``path/val`` (the ImageNet layout), else (path, None)."""
    train = os.path.join(path, "train")
    for name in EVAL_SPLIT_NAMES:
        test = os.path.join(path, name)
        if os.path.isdir(train) and os.path.isdir(test):
            return train, test
    return path, None


def image_size_of(path):
    """(height, width, channels) from the file's header (JPEG) or by decoding it;
    None when it cannot be read."""
    try:
        contents = tf.io.read_file(path)
        if bool(tf.io.is_jpeg(contents)):
            return tuple(int(v) for v in tf.io.extract_jpeg_shape(contents))
        return tuple(int(v) for v in tf.shape(
            tf.io.decode_image(contents, expand_animations=False)))
    except (tf.errors.OpError, ValueError):
        return None


def memory_budget():
    """Bytes --stream=auto lets a folder's decoded images take: MEMORY_FRACTION of RAM."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(MEMORY_FRACTION * total)


def sampled_sizes(paths):
    """The distinct (height, width, channels) of up to SIZE_SAMPLE files spread
    evenly over ``paths`` (headers only for JPEGs); unreadable files left out."""
    picks = np.unique(np.linspace(0, len(paths) - 1, min(SIZE_SAMPLE, len(paths))).astype(int))
    return {s for s in (image_size_of(paths[i]) for i in picks) if s is not None}


def should_stream(paths, budget=None):
    """--stream=auto for a folder: (stream?, why).

    Looks at the sizes of up to SIZE_SAMPLE files spread evenly over the listing
    (``sampled_sizes``). Streams when they differ (the in-memory path needs
    one size) or when all images at the sampled size, decoded, would take more
    than ``budget`` bytes (MEMORY_FRACTION of the machine's memory).
    """
    budget = memory_budget() if budget is None else budget
    sizes = sampled_sizes(paths)
    if len(sizes) > 1:
        return True, f"its images differ in size (e.g. {sorted(sizes)[:2]})"
    if not sizes:
        return True, "none of the sampled images could be read"
    h, w, c = sizes.pop()
    decoded = len(paths) * h * w * c
    if decoded > budget:
        return True, (f"{len(paths)} images of {h}x{w}x{c} take {decoded / 2**30:.1f} GiB decoded, "
                      f"over the {budget / 2**30:.1f} GiB budget")
    return False, (f"{len(paths)} images of {h}x{w}x{c} take {decoded / 2**20:.1f} MiB decoded, "
                   f"within the {budget / 2**30:.1f} GiB budget")


def load_streamed_folder(path, image_size=None, test_fraction=0.2, seed=0, listing=None,
                         augmentation=None):
    """A folder of class sub-folders as a ``StreamedData`` (paths and labels only).

    ``path/train`` with ``path/val`` (ImageNet) or ``path/test`` are the splits;
    otherwise a stratified ``test_fraction`` of ``path`` is held out, as the
    in-memory loader does. ``listing``: ``list_image_folder`` of the training
    folder, if the caller has it already.

    Without ``image_size``, a folder whose sampled images share one size is
    streamed at that size with their channels (what the in-memory loader would
    give the network) and ``FOLDER_AUGMENTATION``; images of several sizes, or
    an ``image_size``, give square inputs of that side (default 224) and
    ImageNet's ``resized_crop_flip``. ``augmentation`` overrides the policy.
    """
    from mixmatch_tf.data.sources import _split_off_test as split_off_test
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image folder {path!r} does not exist")
    train_dir, test_dir = folder_splits(path)
    x, y, names = listing if listing is not None else list_training_folder(path)
    if test_dir is not None:
        xt, yt, names_t = list_image_folder(test_dir)
        if names_t != names:
            raise ValueError(f"{test_dir}: class folders {names_t[:5]}... differ from "
                             f"{train_dir}: {names[:5]}...")
    else:
        train, test = split_off_test(y, test_fraction, seed, path)
        x, y, xt, yt = x[train], y[train], x[test], y[test]
    frame = None
    if image_size is None:
        sizes = sampled_sizes(x)
        if len(sizes) == 1:
            h, w, c = sizes.pop()
            frame = (h, w, folder_channels(c))
    if augmentation is None:
        augmentation = FOLDER_AUGMENTATION if frame else augment_lib.RESIZED_CROP_FLIP
    return StreamedData(name="folder:" + path, num_classes=len(names), class_names=names,
                        image_size=None if frame else int(image_size or DEFAULT_IMAGE_SIZE),
                        num_train=len(x), num_test=len(xt), train_files=x, test_files=xt,
                        train_labels=y, test_labels=yt, augmentation=augmentation,
                        frame=frame, unlabeled_files=list_unlabeled(path))


# ------------------------------------------------------------------------------ TFDS
MANUAL_DOWNLOADS = {
    "imagenet2012": (
        "imagenet2012 is built from your own download of ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar (register at https://image-net.org/download-images). Put both "
        "tar files in a folder MANUAL and run\n"
        "  tfds build imagenet2012 --manual_dir=MANUAL --data_dir=DIR\n"
        "(about 150 GB written into DIR, hours of work), then pass --data_dir=DIR. Or extract "
        "the tar files into DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG and train with "
        "--dataset=folder:DIR, which streams the JPEGs without building anything."),
}


def not_prepared_message(name, data_dir):
    folder = data_dir or "~/tensorflow_datasets"
    if name in MANUAL_DOWNLOADS:
        return (f"Data set {name!r} is not prepared in {folder!r} (--data_dir). "
                + MANUAL_DOWNLOADS[name])
    return (f"Data set {name!r} is not prepared in {folder!r} (--data_dir). This machine "
            f"cannot download it. On a machine with internet run\n"
            f"  tfds build {name} --data_dir=DIR\n"
            f"then copy DIR here and pass --data_dir=DIR.")


def _tfds_records(splits, split):
    """The split in its stored order as (encoded image, label), images not decoded."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(splits.name, data_dir=splits.data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()},
                            read_config=tfds.ReadConfig(try_autocache=False))
    return ds.map(lambda ex: (ex["image"], ex["label"]))


def _count(ds):
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda c, _: c + 1))


def load_streamed_tfds(name, data_dir, train_split, test_split, image_size=None,
                       augmentation=augment_lib.RESIZED_CROP_FLIP):
    """A TFDS image data set as a ``StreamedData`` (nothing read but its metadata).

    A data set whose images have one size (its ``image`` feature's shape) is
    streamed at that size, as it would be read into memory; one of several sizes
    (imagenet2012), or an ``image_size``, in square ``image_size`` inputs.

    Raises:
      sources.DataNotPreparedError: the data set is not in ``data_dir``; for
        imagenet2012 the message says how to build it from the manual download.
    """
    import tensorflow_datasets as tfds
    from mixmatch_tf.data.sources import DataNotPreparedError
    splits = TfdsSplits(name, data_dir, train_split, test_split)
    builder = tfds.builder(name, data_dir=data_dir)
    try:
        num_train = _count(_tfds_records(splits, train_split))
        num_test = _count(_tfds_records(splits, test_split))
    except AssertionError as e:
        if "could not find data" not in str(e).lower():
            raise
        raise DataNotPreparedError(not_prepared_message(name, data_dir)) from None
    label = builder.info.features["label"]
    shape = tuple(builder.info.features["image"].shape)
    frame = shape if image_size is None and None not in shape else None
    return StreamedData(name=name, num_classes=int(label.num_classes),
                        class_names=tuple(label.names),
                        image_size=None if frame else int(image_size or DEFAULT_IMAGE_SIZE),
                        num_train=num_train, num_test=num_test, tfds=splits,
                        augmentation=augmentation, frame=frame)


# ------------------------------------------------------------------------- decoding
def eval_image(contents, image_shape, resize):
    """Evaluation's view of an encoded image: uint8 ``image_shape`` (``augment.fit_image``)."""
    rows, cols, channels = image_shape
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    return tf.ensure_shape(augment_lib.fit_image(image, rows, cols, resize), image_shape)


def _resized_crop(contents, seed, image_shape):
    """``augment.resized_crop_flip`` of an encoded image; a JPEG decodes the crop's
    blocks only."""
    rows, cols, channels = image_shape

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents)
        box, flip_seed = augment_lib.resized_crop_plan(seed, shape[0], shape[1])
        crop = tf.image.decode_and_crop_jpeg(contents, box, channels=channels)
        return augment_lib.finish_resized_crop(crop, flip_seed, rows, cols)

    def other():
        image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
        return augment_lib.resized_crop_flip(image, seed, rows, cols)

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(contents), jpeg, other), image_shape)


def train_image(contents, step_seed, row, batch_size, image_shape, resize, policy, padding,
                views=None):
    """Row ``row`` of a step's global batch of ``batch_size``, decoded and augmented
    under ``policy`` as the in-memory path augments it (``augment.augment_row``):
    uint8 ``image_shape``, or [views, *image_shape]."""
    def one_view(view):
        if policy == augment_lib.RESIZED_CROP_FLIP:
            return _resized_crop(contents, augment_lib.row_seed(step_seed, row, view),
                                 image_shape)
        image = eval_image(contents, image_shape, resize)
        return tf.ensure_shape(augment_lib.augment_row(image, step_seed, row, batch_size, policy,
                                                       padding, view), image_shape)
    if views is None:
        return one_view(None)
    return tf.stack([one_view(k) for k in range(views)])


def _warn_unreadable(names):
    """Names the unreadable files on stderr (from inside tf.data, where absl cannot log;
    tf.print keeps the pipeline serialisable, e.g. for the tf.data service)."""
    def warn():
        tf.print("WARNING: unreadable image(s) left out of their batch:",
                 tf.strings.reduce_join(names, separator=", "), output_stream=sys.stderr)
        return tf.constant(True)
    return tf.cond(tf.size(names) > 0, warn, lambda: tf.constant(False))


@dataclasses.dataclass(frozen=True)
class Reader:
    """How a source reads a row: ``read(key) -> encoded bytes``; ``name(keys, indices)``
    -> string [n], what a warning calls the rows."""
    read: object
    name: object


def decode_slice(valid, keys, reader, decode, empty_shape):
    """The readable rows of a slice, decoded in parallel: a dataset of one element.

    Args:
      valid: bool [L], the rows to decode (evaluation padding is not).
      keys: string [L], what ``reader.read`` reads.
      reader: the source's ``Reader``.
      decode: ``(contents, row int64) -> uint8 image`` of ``empty_shape``.
      empty_shape: shape of one decoded example.

    Returns:
      Dataset of one element (positions int64 [g], images uint8 [g, ...]): the
      rows whose bytes read and decoded, in order; an error in one row (a missing
      file, a corrupt or truncated image) drops that row only.
    """
    take = tf.where(valid)[:, 0]
    ds = tf.data.Dataset.from_tensor_slices((take, tf.gather(keys, take)))
    ds = ds.map(lambda r, k: (r, decode(reader.read(k), r)), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    ds = ds.ignore_errors(log_warning=True).batch(tf.maximum(tf.size(keys, tf.int64), 1))
    empty = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64),
                                          tf.zeros([0] + list(empty_shape), tf.uint8)))
    return ds.concatenate(empty).take(1)


def repair_slice(positions, images, names, expected, train):
    """Rows of a slice after ``decode_slice``, unreadable ones replaced or masked.

    Args:
      positions: int64 [g], the rows that decoded; images: uint8 [g, ...].
      names: string [L], the rows' names (for the warning).
      expected: bool [L], the rows that were to be decoded.
      train: replace an unreadable row by the readable row ``i mod g`` (in the
        order of the readable rows): the batch keeps its size, and labels and
        indices follow the images (gather them at the returned source rows).
        Else (evaluation) an unreadable row stays zeros, for the caller to mask.

    Returns:
      (source row of each output row int64 [L], images [L, ...], readable bool
      [L], unreadable rows int32).
    """
    length = tf.shape(names, out_type=tf.int64)[0]
    present = tf.scatter_nd(positions[:, None], tf.ones_like(positions, tf.bool), [length])
    missing = expected & ~present
    with tf.control_dependencies([_warn_unreadable(tf.boolean_mask(names, missing))]):
        unreadable = tf.reduce_sum(tf.cast(missing, tf.int32))
    row = tf.range(length, dtype=tf.int64)
    if not train:
        shape = tf.concat([[length], tf.shape(images, out_type=tf.int64)[1:]], 0)
        return row, tf.scatter_nd(positions[:, None], images, shape), present, unreadable
    good = tf.size(positions, out_type=tf.int64)
    check = tf.debugging.Assert(good > 0, [
        "every image of a batch is unreadable:", tf.strings.reduce_join(names, separator=", ")],
        summarize=8)
    with tf.control_dependencies([check]):
        compact = tf.cumsum(tf.cast(present, tf.int64)) - 1
    order = tf.where(present, compact, row % tf.maximum(good, 1))
    return tf.gather(positions, order), tf.gather(images, order), present, unreadable


def _layout(input_context):
    """(replicas R, replica slices per input pipeline, first slice of this pipeline)."""
    if input_context is None:
        return 1, 1, 0
    replicas = input_context.num_replicas_in_sync
    per = replicas // input_context.num_input_pipelines
    return replicas, per, input_context.input_pipeline_id * per


def _cut(t, lo, per, length):
    """Rows [lo, lo + per * length) of ``t`` as [per, length, ...]."""
    return tf.reshape(t[lo:lo + per * length], tf.concat([[per, length], tf.shape(t)[1:]], 0))


class StreamSource:
    """What the folder and the TFDS sources share: decoding slices, the pipelines.

    A subclass gives ``reader`` (a ``Reader``), ``size`` and the streams of keys:
    ``_train_keys(stream, seed, start_step)`` -- global batches ``(index, key,
    label)`` of B rows from step ``start_step`` on -- and ``_eval_keys(indices)``
    -- the rows ``(index, key, label)`` of an ordered pass.

    Args:
      normalization: applied to the decoded, augmented uint8 images.
      image_shape: (H, W, C) of the images the network gets.
      resize: how an image is brought to ``image_shape`` (``augment.RESIZES``).
      augmentation: the training policy (``augment.POLICIES``).
      padding: how a pad-and-crop policy pads (the method's ``crop_padding``).
    """
    streamed = True

    def __init__(self, normalization, image_shape, resize=augment_lib.RESIZE_CENTRAL_CROP,
                 augmentation=augment_lib.NO_AUGMENTATION, padding="reflect"):
        augment_lib.check_padding(padding)
        self.normalization = normalization
        self.image_shape = tuple(int(d) for d in image_shape)
        self.resize = resize
        self.augmentation = augment_lib.check_policy(augmentation, "augmentation")
        self.padding = padding

    # -- training ----------------------------------------------------------------
    def train_dataset(self, streams, *, seed, salt, start_step=0, transform=None,
                      input_context=None):
        """Per-replica slices of a phase's global batches (as ``pipeline.train_dataset``).

        Each slice is read, decoded, augmented and (``transform``) mixed on its own
        (module docstring); this pipeline makes its replicas' slices only, in
        replica order, step after step. Every slice carries ``unreadable``, the
        number of its rows that took another row's example.
        """
        from mixmatch_tf.data.pipeline import check_batch_divisible
        replicas, per, first = _layout(input_context)
        names = sorted(streams)
        per_stream = []
        for j, name in enumerate(names):
            check_batch_divisible(streams[name].batch_size, replicas)
            per_stream.append(self._stream_slices(streams[name], make_seed(seed, salt, j),
                                                  start_step, replicas, per, first))
        extras = {name: {k: tf.constant(v) for k, v in streams[name].extras.items()}
                  for name in names}

        def assemble(*slices):
            batch = {}
            for name, (_, _, out) in zip(names, slices):
                out = dict(out)
                for k, values in extras[name].items():
                    out[k] = tf.gather(values, out["index"])
                batch[name] = out
            step, replica = slices[0][0], slices[0][1]
            if transform is not None:
                # One replica's slice is the global batch: seeded as in memory.
                salts = (step,) if replicas == 1 else (step, replica)
                batch = transform(batch, make_seed(seed, salt, -1, *salts), self)
            return batch

        ds = tf.data.Dataset.zip(tuple(per_stream))
        ds = ds.map(assemble, num_parallel_calls=AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options).prefetch(AUTOTUNE)

    def _stream_slices(self, stream, stream_seed, start_step, replicas, per, first):
        """(step, replica, slice) of one stream: this pipeline's slices in order."""
        length = stream.batch_size // replicas
        views, image_shape, resize = stream.views, self.image_shape, self.resize
        policy = self.augmentation if stream.augment else augment_lib.NO_AUGMENTATION
        shape = image_shape if views is None else (views,) + image_shape
        steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
        lo = first * length

        def slices(step, batch):
            index, key, label = batch
            return tf.data.Dataset.from_tensor_slices(
                (tf.fill([per], step), tf.range(first, first + per, dtype=tf.int64),
                 _cut(index, lo, per, length), _cut(key, lo, per, length),
                 _cut(label, lo, per, length)))

        def decode_rows(step, replica, index, key, label):
            step_seed = tf.random.experimental.stateless_fold_in(stream_seed, step)
            offset = replica * length  # the slice's first row in the global batch

            def decode(contents, row):
                return train_image(contents, step_seed, offset + row, stream.batch_size,
                                   image_shape, resize, policy, self.padding, views)
            good = decode_slice(tf.ones_like(index, tf.bool), key, self.reader, decode, shape)
            return good.map(lambda pos, img: (step, replica, index, key, label, pos, img))

        def repair(step, replica, index, key, label, pos, images):
            source, images, _, unreadable = repair_slice(
                pos, images, self.reader.name(key, index), tf.ones_like(index, tf.bool),
                train=True)
            out = {"image": normalize(images, self.normalization),
                   "index": tf.gather(index, source), "unreadable": unreadable}
            if stream.with_labels:
                out["label"] = tf.gather(label, source)
            return step, replica, out

        keys = self._train_keys(stream, stream_seed, start_step)
        ds = tf.data.Dataset.zip((steps, keys)).flat_map(slices)
        ds = ds.interleave(decode_rows, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.map(repair, num_parallel_calls=AUTOTUNE, deterministic=True)

    # -- evaluation --------------------------------------------------------------
    def eval_dataset(self, batch_size, indices=None, extras=None, input_context=None, raw=False):
        """An ordered, un-augmented pass padded to whole global batches (as
        ``pipeline.eval_dataset``): ``mask`` is False on padding and on unreadable
        images, and each slice counts its unreadable images in ``unreadable``."""
        replicas, per, first = _layout(input_context)
        batch_size = max(replicas, batch_size - batch_size % replicas)
        length = batch_size // replicas
        lo = first * length
        image_shape, resize = self.image_shape, self.resize
        extras = {k: tf.constant(v) for k, v in (extras or {}).items()}
        rows, n = self._eval_keys(indices)
        padding = -(-n // batch_size) * batch_size - n
        pad = tf.data.Dataset.from_tensors(
            (tf.constant(0, tf.int64), tf.constant(""), tf.constant(-1, tf.int64))).repeat(padding)
        ds = rows.map(lambda i, k, y: (i, k, y, tf.constant(True)))
        ds = ds.concatenate(pad.map(lambda i, k, y: (i, k, y, tf.constant(False))))

        def slices(index, key, label, mask):
            return tf.data.Dataset.from_tensor_slices(tuple(
                _cut(t, lo, per, length) for t in (index, key, label, mask)))

        def decode_rows(index, key, label, mask):
            good = decode_slice(mask, key, self.reader,
                                lambda c, r: eval_image(c, image_shape, resize), image_shape)
            return good.map(lambda pos, img: (index, key, label, mask, pos, img))

        def repair(index, key, label, mask, pos, images):
            _, images, present, unreadable = repair_slice(
                pos, images, self.reader.name(key, index), mask, train=False)
            out = {"image": images if raw else normalize(images, self.normalization),
                   "index": index, "label": label, "mask": mask & present,
                   "unreadable": unreadable}
            for k, values in extras.items():
                out[k] = tf.gather(values, index)
            return out

        ds = ds.batch(batch_size).flat_map(slices)
        ds = ds.interleave(decode_rows, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.map(repair, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)

    def sample_images(self, count):
        """uint8 [n <= count, H, W, C]: evaluation views of up to ``count`` examples
        spread over the source (``_sample_indices``), unreadable ones left out."""
        images = [b["image"].numpy()[b["mask"].numpy()]
                  for b in self.eval_dataset(64, indices=self._sample_indices(count), raw=True)]
        return np.concatenate(images)

    def fetch(self, indices, **unused):
        """Normalised evaluation crops of the examples at ``indices``, eagerly (for
        ``Passes.fetch_images``); unreadable files are left out with a warning."""
        del unused
        if not tf.executing_eagerly():
            raise RuntimeError("a streamed source fetches images eagerly only")
        indices = np.asarray(indices, np.int64)
        parts, index = [], []
        for b in self.eval_dataset(max(1, len(indices)), indices=indices):
            mask = b["mask"].numpy()
            parts.append(b["image"].numpy()[mask])
            index.append(b["index"].numpy()[mask])
        return {"image": tf.constant(np.concatenate(parts)),
                "index": tf.constant(np.concatenate(index))}


class FileSource(StreamSource):
    """Images read from files by index: it holds the paths and labels, never pixels.

    Args:
      paths: str [N], one file per example.
      labels: int [N].
      **view: ``StreamSource``'s arguments.
    """

    def __init__(self, paths, labels, normalization, image_shape, **view):
        super().__init__(normalization, image_shape, **view)
        self.paths = np.asarray(paths).astype(str)
        self.labels = np.asarray(labels, np.int64)
        self.size = len(self.paths)
        with tf.init_scope():
            self._paths = tf.constant(self.paths)
            self._labels = tf.constant(self.labels)
        self.reader = Reader(read=tf.io.read_file, name=lambda keys, indices: keys)

    def _rows(self, indices):
        return (indices, tf.gather(self._paths, indices), tf.gather(self._labels, indices))

    def _train_keys(self, stream, stream_seed, start_step):
        from mixmatch_tf.data.pipeline import _index_batches
        batches = _index_batches(stream.indices, stream.batch_size, stream_seed, start_step)
        return batches.map(self._rows)

    def _eval_keys(self, indices):
        indices = (np.arange(self.size, dtype=np.int64) if indices is None
                   else np.asarray(indices, np.int64))
        return tf.data.Dataset.from_tensor_slices(indices).map(self._rows), len(indices)

    def _sample_indices(self, count):
        return np.unique(np.linspace(0, self.size - 1, min(count, self.size)).astype(np.int64))


class TfdsSource(StreamSource):
    """A TFDS split read in its stored order, records decoded as training consumes them.

    An example's index is its position in the stored order. Streams draw from the
    whole split (TFDS files have no random access: a labeled subset, say, needs a
    folder); an epoch reads the split in order and permutes each block of
    ``TFDS_SHUFFLE_BUFFER`` consecutive records, seeded by (stream, epoch, block).
    """

    def __init__(self, splits, split, size, normalization, image_shape, **view):
        super().__init__(normalization, image_shape, **view)
        self.splits, self.split, self.size = splits, split, int(size)
        prefix = f"{splits.name} {split} example "
        self.reader = Reader(read=lambda key: key, name=lambda keys, indices: tf.strings.join(
            [prefix, tf.strings.as_string(indices)]))

    def _records(self):
        """(index, encoded image, label) in stored order."""
        return _tfds_records(self.splits, self.split).enumerate().map(
            lambda i, x: (i, x[0], x[1]))

    def _train_keys(self, stream, stream_seed, start_step):
        indices = np.asarray(stream.indices)
        if len(indices) != self.size or not np.array_equal(np.sort(indices),
                                                           np.arange(self.size)):
            raise ValueError(f"{self.splits.name}: a TFDS stream draws from the whole split "
                             f"({self.size} examples), not from a subset of "
                             f"{len(indices)}; TFDS files have no random access (stream a "
                             "folder of images, or load the data into memory, --stream=false)")
        records, size = self._records(), self.size
        first_epoch, skip = divmod(int(start_step) * int(stream.batch_size), size)

        def epoch(e):
            # Each block of TFDS_SHUFFLE_BUFFER consecutive records is permuted with a
            # stateless seed of (stream, epoch, block): no shuffle-buffer state, and
            # nothing that depends on TensorFlow's global seed.
            epoch_seed = tf.random.experimental.stateless_fold_in(stream_seed, e)

            def permute(block, rows):
                order = tf.random.experimental.stateless_shuffle(
                    tf.range(tf.shape(rows[0])[0]),
                    tf.random.experimental.stateless_fold_in(epoch_seed, block))
                return tf.data.Dataset.from_tensor_slices(
                    tuple(tf.gather(t, order) for t in rows))
            blocks = records.batch(TFDS_SHUFFLE_BUFFER).enumerate()
            return blocks.flat_map(permute)
        ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
        # The records before the resumed step are read, not decoded.
        return ds.skip(skip).batch(stream.batch_size, drop_remainder=True)

    def _eval_keys(self, indices):
        n = self.size if indices is None else len(indices)
        if indices is not None and not np.array_equal(np.asarray(indices), np.arange(n)):
            raise ValueError(f"{self.splits.name}: a TFDS split is read in its stored order "
                             "from the start; passes over other examples need a folder")
        return self._records().take(n), n

    def _sample_indices(self, count):
        return np.arange(min(count, self.size), dtype=np.int64)

    def fetch(self, indices, **unused):
        raise ValueError(f"{self.splits.name}: fetching examples by index needs random access, "
                         "which TFDS files do not have; stream a folder of images instead, or "
                         "load the data into memory (--stream=false)")
