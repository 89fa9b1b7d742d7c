"""TensorFlow Datasets: any image-classification data set by name, read into memory or
streamed from its records (never downloaded here; a data set that is not prepared is
named with how to prepare it).

What a run needs of a data set -- its splits, classes, image shape -- is read off
the builder's info (``describe``); the data sets of the papers' tables have their
known splits, label sets and augmentation in ``TFDS_DATASETS``.
"""
import dataclasses

import numpy as np

from mixmatch_tf.data import augment
from mixmatch_tf.data.dataset import (DEFAULT_IMAGE_SIZE, TEST_FRACTION, DataNotPreparedError,
                                      ImageData, StreamedData, TfdsSplits, memory_budget,
                                      refuse_image_size, split_off_test)
from mixmatch_tf.data.streaming import count_records, tfds_records

@dataclasses.dataclass(frozen=True)
class Layout:
    """What a run reads of a TFDS data set.

    Attributes:
      train, test: the splits to train and to test on; without a test split
        (None) a stratified part of the training split is held out.
      unlabeled: a split of images without labels (STL-10's), or None.
      augmentation: its training policy (``augment.POLICIES``).
      label_sets: other label features of the training split (CIFAR-N).
      shape: the image feature's shape; None entries when images differ in size
        (such a data set is always streamed).
    """
    train: str = "train"
    test: str = "test"
    unlabeled: object = None
    augmentation: str = augment.PAD_CROP_FLIP
    label_sets: tuple = ()
    shape: tuple = ()

    @property
    def varying(self):
        return None in self.shape


# The papers' data sets (and ImageNet): known splits, label sets and augmentation.
TFDS_DATASETS = {
    "cifar10": Layout(),
    "cifar100": Layout(),
    "svhn_cropped": Layout(augmentation=augment.PAD_CROP),
    "stl10": Layout(unlabeled="unlabelled"),
    "cifar10_n": Layout(label_sets=("aggre_label", "worse_label", "random_label1",
                                    "random_label2", "random_label3")),
    "cifar100_n": Layout(label_sets=("noise_label",)),
    "imagenet2012": Layout(test="validation", augmentation=augment.RESIZED_CROP_FLIP),
}


def is_tfds_name(name):
    """Whether TFDS has a data set of that name (its catalog: no data needed)."""
    import tensorflow_datasets as tfds
    try:
        tfds.builder_cls(name)
        return True
    except Exception:  # noqa: BLE001 -- DatasetNotFoundError and malformed names alike
        return False


def describe(name, data_dir):
    """The ``Layout`` of TFDS data set ``name``: ``TFDS_DATASETS``'s, or for any other
    image-classification data set (an ``image`` and a ``label`` class feature) read
    off its info: splits ``train`` and ``test`` (``validation`` where there is no
    test split, a held-out part of ``train`` where there is neither), flips for
    colour images, none for grey ones (digits, letters)."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    image = features["image"] if "image" in features else None
    label = features["label"] if "label" in features else None
    if not isinstance(image, tfds.features.Image) or not isinstance(
            label, tfds.features.ClassLabel):
        raise ValueError(f"{name}: a TFDS data set with an 'image' and a 'label' (class) feature "
                         f"is needed; its features are {', '.join(features.keys())}")
    shape = tuple(image.shape)
    if name in TFDS_DATASETS:
        return dataclasses.replace(TFDS_DATASETS[name], shape=shape)
    splits = set(builder.info.splits.keys())  # known from TFDS' metadata, data or not
    test = "test"
    if splits and "test" not in splits:
        test = "validation" if "validation" in splits else None
    policy = augment.PAD_CROP if shape[-1] == 1 else augment.PAD_CROP_FLIP
    if None in shape:
        policy = augment.RESIZED_CROP_FLIP
    return Layout(test=test, augmentation=policy, shape=shape)


def load(name, data_dir, stream="auto", image_size=None):
    """TFDS data set ``name``: in memory, or (``stream``: ``"true"``, or ``"auto"`` and
    over the memory budget, or images of several sizes) streamed from its records."""
    layout = describe(name, data_dir)
    memory_only = layout.unlabeled or layout.label_sets
    if layout.varying:
        if stream == "false":
            raise ValueError(f"--stream=false: {name}'s images differ in size, so it is "
                             "streamed from its files (cropped to --image_size)")
        decide, why = True, "its images differ in size"
    elif stream != "auto":
        decide, why = stream == "true", "--stream"
    elif memory_only:
        decide, why = False, "it has an unlabeled split or label sets"
    else:
        decide, why = should_stream(name, data_dir)
    if decide:
        if layout.test is None:
            raise ValueError(f"--stream=true: {name} has no test split, and a stream cannot "
                             "hold a part of its training split out; use --stream=false")
        if memory_only:
            raise ValueError(f"--stream=true: {name} has extra splits or label sets, which "
                             "only the in-memory path reads; use --stream=false")
        return load_streamed_tfds(name, data_dir, layout.train, layout.test, image_size,
                                  layout.augmentation)
    refuse_image_size(name, image_size, why)
    return load_tfds(name, data_dir, layout)


# ------------------------------------------------------------------------------ reading
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


def _tfds_split(builder, split, keys):
    import tensorflow_datasets as tfds
    parts = {k: [] for k in keys}
    ds = builder.as_dataset(split=split, shuffle_files=False).batch(4096)
    for batch in tfds.as_numpy(ds):
        for k in keys:
            parts[k].append(batch[k])
    return {k: np.concatenate(v) if v else np.zeros([0]) for k, v in parts.items()}


def load_tfds(name, data_dir, layout=None):
    """A TFDS data set read from ``data_dir`` into memory (never downloaded here).

    Raises:
      DataNotPreparedError: naming the data set, the folder and how to prepare it.
    """
    import tensorflow_datasets as tfds
    layout = layout or describe(name, data_dir)
    train_split, test_split, unlabeled_split = layout.train, layout.test, layout.unlabeled
    extra_keys = layout.label_sets
    builder = tfds.builder(name, data_dir=data_dir)
    try:
        label_keys = ["label"] + (["coarse_label"] if "coarse_label" in builder.info.features else [])
        train = _tfds_split(builder, train_split, ["image"] + label_keys + list(extra_keys))
        if test_split is None:  # a stratified part of the training split, as for folders
            keep, held = split_off_test(train["label"], TEST_FRACTION, 0, name)
            test = {k: train[k][held] for k in ("image", "label")}
            train = {k: v[keep] for k, v in train.items()}
        else:
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
        augmentation=layout.augmentation, unlabeled_images=unlabeled,
        coarse_labels=train.get("coarse_label"), benchmark=name in TFDS_DATASETS,
        label_sets={k: train[k].astype(np.int64) for k in extra_keys})


def load_streamed_tfds(name, data_dir, train_split, test_split, image_size=None,
                       augmentation=augment.RESIZED_CROP_FLIP):
    """A TFDS image data set as a ``StreamedData`` (nothing read but its metadata).

    A data set whose images have one size (its ``image`` feature's shape) is
    streamed at that size, as it would be read into memory; one of several sizes
    (imagenet2012), or an ``image_size``, in square ``image_size`` inputs.

    Raises:
      DataNotPreparedError: the data set is not in ``data_dir``; for
        imagenet2012 the message says how to build it from the manual download.
    """
    import tensorflow_datasets as tfds
    splits = TfdsSplits(name, data_dir, train_split, test_split)
    builder = tfds.builder(name, data_dir=data_dir)
    try:
        num_train = count_records(tfds_records(splits, train_split))
        num_test = count_records(tfds_records(splits, test_split))
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
                        augmentation=augmentation, frame=frame, benchmark=name in TFDS_DATASETS)


def should_stream(name, data_dir, budget=None):
    """--stream=auto for a TFDS data set: (stream?, why), from its metadata only."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, data_dir=data_dir)
    shape = builder.info.features["image"].shape
    if None in shape:
        return True, "its images differ in size"
    try:
        n = sum(split.num_examples for split in builder.info.splits.values())
    except (KeyError, AttributeError):
        return False, "its size is unknown (not prepared)"
    decoded = n * int(np.prod(shape))
    budget = memory_budget() if budget is None else budget
    return decoded > budget, (f"{n} images of {'x'.join(map(str, shape))} take "
                              f"{decoded / 2**30:.2f} GiB decoded; budget "
                              f"{budget / 2**30:.1f} GiB")
