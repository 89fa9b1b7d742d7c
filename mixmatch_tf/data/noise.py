"""Synthetic label noise as DivideMix defines it, saved with the run and reused.

* Symmetric noise at rate r: floor(r * N) examples, chosen uniformly at random,
  each get a class drawn uniformly from all C classes -- possibly their own, so
  the expected fraction of wrong labels is r * (1 - 1 / C).
* Asymmetric noise at rate r: for every class c of a class mapping, round(r * n_c)
  of its examples, chosen at random, are relabelled ``mapping[c]``; other classes
  stay clean. The mappings:

  - CIFAR-10 (official DivideMix / Patrini et al.): truck -> automobile,
    bird -> airplane, deer -> horse, cat <-> dog.
  - CIFAR-100 (a documented extension from later work, not the official code):
    each class -> the next class of its superclass, cyclically.
  - digits: the visually confusable pairs 7 <-> 1, 3 -> 8, 5 -> 6, 9 -> 4.
  - any data set: the mapping its user gives (``--noise_mapping``, ``parse_mapping``),
    which also replaces the ones above.
"""
import os

import numpy as np

from mixmatch_tf.data.run_files import load_or_make

CIFAR10_ASYMMETRIC = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
DIGITS_ASYMMETRIC = {7: 1, 1: 7, 3: 8, 5: 6, 9: 4}
NOISE_TYPES = ("sym", "asym")
NOISE_FILE = "noisy_labels.npz"


def next_in_superclass(fine_labels, coarse_labels):
    """CIFAR-100 asymmetric map: each fine class -> next fine class of its superclass."""
    mapping = {}
    fine_labels = np.asarray(fine_labels)
    coarse_labels = np.asarray(coarse_labels)
    for coarse in np.unique(coarse_labels):
        members = np.unique(fine_labels[coarse_labels == coarse])
        for i, c in enumerate(members):
            mapping[int(c)] = int(members[(i + 1) % len(members)])
    return mapping


def parse_mapping(text, class_names):
    """The class mapping ``{from id: to id}`` written as ``text``: comma-separated
    ``FROM:TO`` pairs, each a class id or a class name (``"0:6,6:0"``,
    ``"Coat:Pullover"``), or a ValueError naming the pair and the valid classes."""
    names = {name: i for i, name in enumerate(class_names)}
    valid = (f"class ids 0..{len(class_names) - 1} or names "
             f"({', '.join(map(str, class_names[:12]))}{', ...' if len(class_names) > 12 else ''})")

    def class_id(token, pair):
        token = token.strip()
        if token in names:
            return names[token]
        if token.isdigit() and int(token) < len(class_names):
            return int(token)
        raise ValueError(f"pair {pair!r}: {token!r} is not a class; valid: {valid}")

    mapping = {}
    for pair in (p for p in text.split(",") if p.strip()):
        if pair.count(":") != 1:
            raise ValueError(f"pair {pair.strip()!r} is not FROM:TO (e.g. 0:6,6:0)")
        source, target = (class_id(t, pair.strip()) for t in pair.split(":"))
        if source == target or source in mapping:
            raise ValueError(f"pair {pair.strip()!r}: " + (
                "a class mapped to itself is no noise" if source == target
                else f"class {source} is mapped twice"))
        mapping[source] = target
    if not mapping:
        raise ValueError("holds no FROM:TO pair (e.g. 0:6,6:0)")
    return mapping


def format_mapping(mapping):
    """``parse_mapping``'s text of a mapping, in ids, sorted: how a run records it."""
    return ",".join(f"{k}:{mapping[k]}" for k in sorted(mapping))


def asymmetric_mapping(dataset):
    """The asymmetric class mapping of an ``ImageData``, or a ValueError."""
    if dataset.name in ("cifar10", "cifar10_n"):
        return dict(CIFAR10_ASYMMETRIC)
    if dataset.name == "digits":
        return dict(DIGITS_ASYMMETRIC)
    if dataset.coarse_labels is not None:
        return next_in_superclass(dataset.train_labels, dataset.coarse_labels)
    raise ValueError(f"--noise_type=asym has no class mapping for dataset {dataset.name!r}; "
                     "give one with --noise_mapping=FROM:TO,... (class ids or names), or use "
                     "cifar10, cifar100 or digits")


def symmetric_noise(labels, num_classes, rate, seed):
    """Returns noisy labels with symmetric noise at ``rate`` (see module doc)."""
    labels = np.asarray(labels, np.int64)
    rng = np.random.RandomState(seed)
    chosen = rng.permutation(len(labels))[: int(rate * len(labels))]
    noisy = labels.copy()
    noisy[chosen] = rng.randint(0, num_classes, size=len(chosen))
    return noisy


def asymmetric_noise(labels, mapping, rate, seed):
    """Relabels round(rate * n_c) examples of each mapped class c as mapping[c]."""
    labels = np.asarray(labels, np.int64)
    rng = np.random.RandomState(seed)
    noisy = labels.copy()
    for c in sorted(mapping):
        idx = np.flatnonzero(labels == c)
        chosen = idx[rng.permutation(len(idx))[: int(round(rate * len(idx)))]]
        noisy[chosen] = mapping[c]
    return noisy


def make_noisy_labels(labels, num_classes, noise_type, rate, seed, mapping=None):
    """Noisy labels for ``noise_type`` in {"sym", "asym"} at ``rate`` in [0, 1]."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {rate}")
    if noise_type == "sym":
        return symmetric_noise(labels, num_classes, rate, seed)
    if noise_type == "asym":
        if mapping is None:
            raise ValueError("asymmetric noise needs a class mapping")
        return asymmetric_noise(labels, mapping, rate, seed)
    raise ValueError(f"unknown noise_type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")


def noisy_labels_for_run(dataset, noise_type, rate, seed, model_dir, mapping=None):
    """Makes (or reloads) the run's noisy training labels in ``model_dir``.

    ``mapping``: the asymmetric noise's class mapping (default: the data set's own,
    ``asymmetric_mapping``).

    The labels are written to ``model_dir/noisy_labels.npz`` the first time and
    read back on every resume, so a resumed run trains on the very same labels.
    A file made with other settings is an error, never silently replaced.
    """
    settings = {"dataset": dataset.name, "noise_type": noise_type, "noise_rate": float(rate),
                "seed": int(seed), "num_train": dataset.num_train}
    if mapping is not None:
        # Recorded only when given, so files made before the flag existed still match.
        settings["mapping"] = format_mapping(mapping)

    def make():
        if noise_type == "asym" and mapping is None:
            chosen = asymmetric_mapping(dataset)
        else:
            chosen = mapping
        noisy = make_noisy_labels(dataset.train_labels, dataset.num_classes, noise_type, rate,
                                  seed, chosen)
        return {"labels": noisy, "clean_labels": dataset.train_labels}
    def check(arrays):
        labels = arrays.get("labels")
        if labels is None or labels.shape != (dataset.num_train,):
            return (f"'labels' must hold {dataset.num_train} labels, got "
                    f"{'none' if labels is None else list(labels.shape)}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0 \
                or labels.max(initial=0) >= dataset.num_classes:
            return f"'labels' must be class ids in [0, {dataset.num_classes})"
        return None
    return load_or_make(os.path.join(model_dir, NOISE_FILE), settings, make,
                        "use a new --model_dir or the original noise flags", check)["labels"]
