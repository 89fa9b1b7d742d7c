"""Which labels and examples a run trains on: a label set, the run's noisy labels or
the data's own, and (semi-supervised) the labeled subset and the unlabeled pool.

The run files these decisions make (``noisy_labels.npz``, ``labeled_indices.npz``)
go through ``staged(filename, make)``: ``make(folder)`` loads the file from the
folder or writes it there (the trainer passes ``RunDir.staged``, which commits it to
the run folder only once the run is built).
"""
import numpy as np

from mixmatch_tf.data import noise as noise_lib
from mixmatch_tf.data import splits
from mixmatch_tf.settings import ALL_LABELS, ConfigError


def noise_mapping(run, data):
    """The class mapping of ``run.noise_mapping`` on ``data``'s classes, or None."""
    if not run.noise_mapping:
        return None
    try:
        return noise_lib.parse_mapping(run.noise_mapping, list(data.class_names))
    except ValueError as e:
        raise ConfigError("noise_mapping", str(e)) from None


def train_labels(data, run, staged):
    """The labels the run trains on: a label set, the run's noisy labels, or the data's."""
    if data.train_labels is None and (run.noise_type or run.label_set):
        flag = "noise_type" if run.noise_type else "label_set"
        raise ConfigError(flag, f"{data.name} is streamed from TFDS records, which hold "
                          "each label with its image: labels cannot be replaced before "
                          "training (stream a folder of images, or --stream=false)")
    if run.label_set:
        if run.label_set not in data.label_sets:
            valid = ", ".join(data.label_sets) or "none for this data set"
            raise ConfigError("label_set", f"{run.label_set!r} is not a label set of "
                              f"{data.name}; valid: {valid}")
        return data.label_sets[run.label_set]
    if run.noise_type and run.noise_rate > 0:
        return staged(noise_lib.NOISE_FILE, lambda folder: (
            noise_lib.noisy_labels_for_run(data, run.noise_type, run.noise_rate,
                                           run.seed, folder, noise_mapping(run, data))))
    return data.train_labels


def training_source(data, labels, split, seed, staged):
    """(labels, labeled indices, unlabeled indices) of the training source.

    With a ``LabeledSplit`` the run trains on a class-balanced labeled subset
    saved in the run folder; the unlabeled pool is the rest of the training
    set (or all of it), plus the data's unlabelled images (STL-10's, an npz's
    ``x_unlabeled``, a folder's ``unlabeled/``). With ``num_labeled="all"`` every
    training label is used and the unlabelled images are the pool. Without a
    split, every training image is labeled and there is no unlabeled pool.
    Unlabelled images get the label -1, after the training labels; the data's
    ``sources`` put their images there.
    """
    if split is None:
        return labels, None, None
    if labels is None:
        raise ConfigError("num_labeled", f"{data.name} is streamed from TFDS records, "
                          "which hold each label with its image: a labeled subset needs "
                          "every label first (stream a folder of images, or "
                          "--stream=false)")
    extra = data.num_unlabeled
    if split.num_labeled == ALL_LABELS:
        labeled = np.arange(data.num_train, dtype=np.int64)
        if not extra and not split.unlabeled_includes_labeled:
            raise ConfigError("num_labeled", f"all: every label of {data.name} is used, so "
                              "the unlabeled pool is its unlabelled images, and it has "
                              "none; give some (an npz's x_unlabeled, a folder's "
                              "unlabeled/ sub-folder) or a number of labels")
    else:
        try:
            fold = splits.labeled_fold(data, split.num_labeled, seed, split.label_fold,
                                       split.label_folds_file)
            labeled = staged(splits.SPLIT_FILE, lambda folder: (
                splits.labeled_split_for_run(labels, split.num_labeled, data.num_classes,
                                             seed, folder, fold=fold,
                                             class_names=list(data.class_names))))
        except ValueError as e:
            raise ConfigError(getattr(e, "field", "num_labeled"), str(e)) from None
    # Every label given (a random draw has one of each class by construction, a
    # distributor's fold is taken as it is): a class without one cannot be learned.
    missing = (np.setdiff1d(np.arange(data.num_classes), labels[labeled])
               if split.num_labeled == ALL_LABELS else [])
    if len(missing):
        names = ", ".join(repr(data.class_names[c]) for c in missing[:5])
        raise ConfigError("num_labeled", f"class {names} has no labeled example to learn "
                          f"it from ({len(missing)} of {data.num_classes} classes); label "
                          "at least one image of every class")
    pool = np.arange(data.num_train, dtype=np.int64)
    if not split.unlabeled_includes_labeled:
        pool = np.setdiff1d(pool, labeled)
    if extra:
        labels = np.concatenate([labels, np.full(extra, -1, np.int64)])
        pool = np.concatenate([pool, data.num_train + np.arange(extra, dtype=np.int64)])
    return labels, labeled, pool
