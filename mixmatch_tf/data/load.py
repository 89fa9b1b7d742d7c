"""``load_dataset``: a data set by the name the command line gives it."""
import dataclasses

import tensorflow as tf

from mixmatch_tf.data import augment, folders, tfds
from mixmatch_tf.data.arrays import (SKLEARN_TABULAR, from_arrays, from_tf_dataset, load_csv,
                                     load_digits, load_npz, load_sklearn_tabular)
from mixmatch_tf.data.dataset import ImageData, StreamedData

STREAM_CHOICES = ("auto", "true", "false")

def dataset_names():
    return (("digits",) + tuple(tfds.TFDS_DATASETS) + SKLEARN_TABULAR
            + ("folder:PATH", "npz:PATH", "csv:PATH", "any TFDS image-classification name"))


def load_dataset(spec, data_dir=None, stream="auto", image_size=None,
                 augmentation=augment.AUTO):
    """Loads a data set by name: ``digits``, ``folder:PATH``, ``npz:PATH``, ``csv:PATH``,
    ``breast_cancer`` / ``wine``, or any TFDS image-classification data set.

    Args:
      spec: the data set's name (``dataset_names``).
      data_dir: the TFDS data folder.
      stream: for folders and TFDS image data sets: ``"true"`` streams the images
        from their files (``dataset.StreamedData``), ``"false"`` reads them into
        memory, ``"auto"`` streams when the images differ in size or, decoded,
        would take more than a quarter of the machine's memory
        (``folders.should_stream``, ``tfds.should_stream``). Other data sets are
        always in memory.
      image_size: the side of the square inputs of streamed images of several
        sizes (default 224).
      augmentation: the training augmentation policy (``augment.POLICIES``), or
        ``"auto"`` for the data set's own: ``pad_crop`` for digits, SVHN, grey
        TFDS images and ``npz:`` arrays, ``pad_crop_flip`` for CIFAR, STL-10, other
        colour TFDS images and folders of images of one size (read into memory or
        streamed alike), ``resized_crop_flip`` for images of several sizes
        (ImageNet), ``none`` for feature vectors.
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
    stream = str(stream).lower()
    if stream not in STREAM_CHOICES:
        raise ValueError(f"--stream={stream}: must be one of {', '.join(STREAM_CHOICES)}")
    if spec.startswith("folder:"):
        return folders.load(spec[len("folder:"):], stream, image_size)
    if stream == "true" and not tfds.is_tfds_name(spec):
        raise ValueError(f"--stream=true: {spec} is held in memory; streaming is for folder: and "
                         "TFDS image data sets")
    if image_size is not None and not tfds.is_tfds_name(spec):
        raise ValueError(f"--image_size applies to streamed folder: and TFDS data, not {spec}")
    if spec == "digits":
        return load_digits()
    if spec.startswith("npz:"):
        return load_npz(spec[len("npz:"):])
    if spec.startswith("csv:"):
        return load_csv(spec[len("csv:"):])
    if spec in SKLEARN_TABULAR:
        return load_sklearn_tabular(spec)
    if tfds.is_tfds_name(spec):
        return tfds.load(spec, data_dir, stream, image_size)
    raise ValueError(f"unknown dataset {spec!r}; valid: {', '.join(dataset_names())}")


def as_data(data, data_dir=None, options=None):
    """The data set a run trains on, from what a user holds.

    Args:
      data: a data set (``ImageData``, ``StreamedData``: as it is); a name
        (``load_dataset`` with ``data_dir`` and ``options``, its keyword arguments);
        arrays ``(x, y)`` or ``(x, y, x_unlabeled)``, or a dict of ``from_arrays``'
        arguments; or a finite ``tf.data.Dataset`` of ``(image, label)``
        (``from_tf_dataset``).
    """
    if isinstance(data, (ImageData, StreamedData)):
        return data
    if isinstance(data, str):
        return load_dataset(data, data_dir, **(options or {}))
    if isinstance(data, tf.data.Dataset):
        return from_tf_dataset(data)
    if isinstance(data, dict):
        return from_arrays(**data)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        return from_arrays(data[0], data[1], x_unlabeled=data[2] if len(data) == 3 else None)
    raise TypeError(f"data must be a data set name, an ImageData, arrays (x, y) or (x, y, "
                    f"x_unlabeled), a dict of from_arrays' arguments, or a finite "
                    f"tf.data.Dataset of (image, label); got {type(data).__name__}")
