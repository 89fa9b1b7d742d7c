"""Folders of images: ``PATH/<class>/*.png``, with ``PATH/train`` and ``PATH/test`` (or
``val``) as the splits, and ``PATH/unlabeled/`` as the unlabeled pool.

The listing (class folders, image extensions, hidden entries, links) is one for
both ways of reading: into memory (``load_folder``, decoded in parallel by
tf.data) or streamed from the files as training consumes them
(``load_streamed_folder``); both give the network the same images, with the same
augmentation policy.
"""
import os

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import augment
from mixmatch_tf.data.dataset import (DEFAULT_IMAGE_SIZE, TEST_FRACTION, ImageData,
                                      StreamedData, memory_budget, refuse_image_size,
                                      split_off_test)

# Files whose sizes --stream=auto looks at (their headers only).
SIZE_SAMPLE = 32


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


EVAL_SPLIT_NAMES = ("test", "val")


# A folder data set's images without labels: PATH/unlabeled/*.png (not a class).
UNLABELED_FOLDER = "unlabeled"


# The policy of a folder whose images share one size, read into memory or streamed:
# random crops and horizontal flips, the usual recipe for photos (--augmentation=
# pad_crop for digits, letters or other images that a mirror changes).
FOLDER_AUGMENTATION = augment.PAD_CROP_FLIP


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
        augmentation = FOLDER_AUGMENTATION if frame else augment.RESIZED_CROP_FLIP
    return StreamedData(name="folder:" + path, num_classes=len(names), class_names=names,
                        image_size=None if frame else int(image_size or DEFAULT_IMAGE_SIZE),
                        num_train=len(x), num_test=len(xt), train_files=x, test_files=xt,
                        train_labels=y, test_labels=yt, augmentation=augmentation,
                        frame=frame, unlabeled_files=list_unlabeled(path))


def _decode_images(paths):
    """uint8 [N, H, W, C]: the images at ``paths``, decoded in parallel by tf.data.

    Every image must have the first's size and channels (grey + alpha read as
    grey); when one does not, or does not decode, ``_decode_one_by_one`` names it.
    """
    first = tf.io.decode_image(tf.io.read_file(paths[0]), expand_animations=False)
    native = tuple(int(d) for d in first.shape)  # ensure_shape refuses any other
    channels = folder_channels(native[-1])

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
    images, shapes = [], {}
    for path in paths:
        try:
            img = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise ValueError(f"{path}: cannot decode image ({e.message.splitlines()[0]})") from None
        img = img[..., :folder_channels(img.shape[-1])]  # grey + alpha: grey
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
    """Reads class sub-folders of ``root``: returns (images, labels, class_names, paths).

    The listing and its rules (class folders, image extensions, links, the
    ``reserved`` names) are the streamed reader's (``list_image_folder``);
    this decodes every file (``_decode_images``).
    """
    paths, labels, classes = list_image_folder(root, reserved)
    return (_decode_images(paths), np.asarray(labels, np.int64), tuple(classes),
            np.asarray(paths, dtype=str))


def load_folder(path, test_fraction=TEST_FRACTION, seed=0):
    """A folder of class sub-folders of images (PNG, JPEG, BMP, GIF), read into memory.

    With ``path/train`` and ``path/test`` (or ``path/val``, the ImageNet layout)
    sub-folders, those are the splits; otherwise a stratified ``test_fraction`` of
    ``path`` is held out for testing. Images in ``path/unlabeled/`` (not a class)
    are the unlabeled pool of semi-supervised methods.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image folder {path!r} does not exist")
    train_dir, test_dir = folder_splits(path)
    pool = list_unlabeled(path)
    if test_dir is not None:
        x, y, names, files = _read_image_folder(train_dir)
        xt, yt, names_t, _ = _read_image_folder(test_dir)
        if names_t != names:
            raise ValueError(f"{test_dir}: class folders {names_t} differ from {train_dir}: {names}")
    else:
        x_all, y_all, names, files_all = _read_image_folder(path, (UNLABELED_FOLDER,))
        train, test = split_off_test(y_all, test_fraction, seed, path)
        x, y, xt, yt = x_all[train], y_all[train], x_all[test], y_all[test]
        files = files_all[train]
    unlabeled = None
    if len(pool):
        unlabeled = _decode_images(pool)
        if unlabeled.shape[1:] != x.shape[1:]:
            raise ValueError(f"{os.path.join(path, UNLABELED_FOLDER)}: its images are "
                             f"{list(unlabeled.shape[1:])} but the labeled ones "
                             f"{list(x.shape[1:])}; give them one size")
    return ImageData(name="folder:" + path, train_images=x, train_labels=y, test_images=xt,
                     test_labels=yt, num_classes=len(names), class_names=names,
                     augmentation=FOLDER_AUGMENTATION, unlabeled_images=unlabeled,
                     train_files=files)


def load(path, stream="auto", image_size=None):
    """The folder data set at ``path``: read into memory, or (``stream``: ``"true"``, or
    ``"auto"`` and images of several sizes or over the memory budget) streamed."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image folder {path!r} does not exist")
    listing = None
    if stream == "auto":
        listing = list_training_folder(path)
        decide, why = should_stream(np.concatenate([listing[0], list_unlabeled(path)]))
    else:
        decide, why = stream == "true", "--stream"
    from absl import logging
    logging.info("folder:%s: %s (%s)", path, "streamed from its files" if decide
                 else "read into memory", why)
    if decide:
        return load_streamed_folder(path, image_size, listing=listing)
    refuse_image_size(f"folder:{path}", image_size, why)
    return load_folder(path)
