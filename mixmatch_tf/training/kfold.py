"""Which labels are wrong, for any method that trains on every given label: the
label-issue report from out-of-sample probabilities of a K-fold run.

The recipe of confident learning (Northcutt, Jiang and Chuang, JAIR 2021): the
training set is split into K folds, stratified by the given labels; each fold's
examples are predicted by a network trained on the other K - 1 folds, so no
example is judged by a network that saw its label. ``confident_learning`` flags
the labels those probabilities contradict. The report has the files, columns and
summary of a DivideMix run's (``label_issues``), so the two are comparable.
"""
import dataclasses
import json
import os

import numpy as np

from mixmatch_tf.data import run_labels
from mixmatch_tf.methods.base import get_method
from mixmatch_tf.settings import ConfigError, resolve_config
from mixmatch_tf.training import label_issues
from mixmatch_tf.training.config import RunConfig

SETTINGS_FILE = "kfold.json"


def kfold_label_report(method, data, folder, output_dir=None, folds=5, seed=0, config=None,
                       noise_type=None, noise_rate=0.0, noise_mapping=None, label_set=None,
                       precision="auto", strategy=None, model=None, verbose=0):
    """Trains ``folds`` runs of ``method`` in ``folder/fold{i}`` (a killed call resumes
    them) and writes the label-issue report of the training labels into ``output_dir``
    (default: ``folder``).

    Args:
      method: a method that trains on every given label (erm, mixup, ...).
      data: an ``ImageData`` held in memory.
      folds: K >= 2.
      config: the method's settings (dict), resolved for ``data`` as a run's are.
      noise_type, noise_rate, noise_mapping, label_set: the labels judged, as a
        run's (``RunConfig``): synthetic noise is made once, in ``folder``, and each
        fold trains on its share of those labels.
      precision, strategy, model: as ``Trainer``'s.
      verbose: each fold's progress (``Trainer.fit``'s), after a line naming the fold.

    Returns:
      The summary (``label_issues.summarise``, with ``folds``, ``method`` and
      ``files``); precision and recall against the true labels only where the
      noise was made here or a label set was chosen.
    """
    method_cls = get_method(method)
    config = resolve_config(method_cls, data, dict(config or {}))
    if method_cls.labeled_split(config) is not None:
        raise ConfigError("method", f"{method_cls.name!r} trains on a labeled subset and an "
                          "unlabeled pool; a K-fold label report needs a method that trains "
                          "on every given label (erm, mixup, ...)")
    if getattr(data, "train_images", None) is None:
        raise ConfigError("stream", f"{data.name} is streamed from its files; K-fold training "
                          "splits the training images in memory (use --stream=false)")
    too_many = np.bincount(np.asarray(data.train_labels), minlength=data.num_classes).max()
    if folds < 2 or folds > too_many:
        raise ConfigError("folds", f"is {folds}: it must be at least 2 and at most the "
                          f"number of examples of the largest class ({too_many})")
    settings = {"method": method_cls.name, "dataset": data.name, "folds": folds, "seed": seed,
                "config": config.to_dict(),
                "labels": {"noise_type": noise_type, "noise_rate": noise_rate,
                           "noise_mapping": noise_mapping, "label_set": label_set}}
    _check_settings(folder, settings)  # before anything is written
    labels, truth = _labels(data, folder, seed, noise_type, noise_rate, noise_mapping, label_set)
    _check_settings(folder, settings, write=True)
    probs, fold_of, _ = out_of_sample(method_cls.name, data, labels, folds, folder, seed, config,
                                      precision, strategy, model, verbose)
    evidence = label_issues.confident_learning(labels, probs)
    evidence.columns["fold"] = fold_of
    names = list(data.class_names)
    rows = label_issues.report_rows(labels, probs, names, data.train_files, evidence)
    summary = label_issues.summarise(evidence, labels, names, truth)
    summary.update(folds=folds, method=method_cls.name)
    label_issues.write_report(output_dir or folder, rows, evidence, summary)
    return summary


def out_of_sample(method, data, labels, folds, folder, seed=0, config=None, precision="auto",
                  strategy=None, model=None, verbose=0):
    """(probabilities [N, C], fold [N] of 1..K, seconds of training): each example
    predicted by a ``method`` network trained on the other folds of ``data``'s training
    images with ``labels`` (folds stratified by them: sklearn's ``StratifiedKFold``,
    shuffled with ``seed``). The runs live in ``folder/fold1..K``; a second call
    resumes (or just reads) them. ``config``: the method's settings (a ready Config,
    or a dict resolved for each fold's data)."""
    from sklearn.model_selection import StratifiedKFold
    from mixmatch_tf.training.trainer import Trainer
    labels = np.asarray(labels)
    probs = np.zeros((len(labels), data.num_classes))
    fold_of = np.zeros(len(labels), np.int64)
    seconds = 0.0
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        np.zeros(len(labels)), labels)
    for i, (train, held) in enumerate(splits):
        part = dataclasses.replace(
            data, name=f"{data.name}-fold{i + 1}of{folds}", train_images=data.train_images[train],
            train_labels=labels[train], label_sets={}, coarse_labels=None,
            unlabeled_images=None,
            train_files=None if data.train_files is None else data.train_files[train])
        run = RunConfig(model_dir=os.path.join(folder, f"fold{i + 1}"), seed=seed,
                        precision=precision)
        trainer = Trainer(method, part, run, config=config, strategy=strategy, model=model)
        if verbose:
            print(f"fold {i + 1} of {folds}: {len(train)} examples to train on, {len(held)} "
                  "to judge", flush=True)
        seconds += float(trainer.fit(verbose=verbose)["wall_seconds"])
        probs[held] = np.concatenate([trainer.predict(data.train_images[held[j:j + 500]]).numpy()
                                      for j in range(0, len(held), 500)])
        fold_of[held] = i + 1
    return probs, fold_of, seconds


def _labels(data, folder, seed, noise_type, noise_rate, noise_mapping, label_set):
    """(the labels judged, which of them are true or None), decided as a run's are
    (``data.run_labels``); synthetic noise is saved in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    run = RunConfig(model_dir=folder, seed=seed, noise_type=noise_type, noise_rate=noise_rate,
                    noise_mapping=noise_mapping, label_set=label_set)
    labels = np.asarray(run_labels.train_labels(data, run, lambda name, make: make(folder)))
    if noise_type is None and label_set is None:
        return labels, None  # the labels as given: no reference to judge them against
    return labels, labels == np.asarray(data.train_labels)


def _check_settings(folder, settings, write=False):
    """Refuses a folder of folds of other settings; ``write``: records the settings
    (``kfold.json``) in a folder that has none."""
    path = os.path.join(folder, SETTINGS_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved != json.loads(json.dumps(settings)):
            differ = sorted(k for k in settings if saved.get(k) != json.loads(
                json.dumps(settings[k])))
            field = differ[0] if differ else "model_dir"
            if field == "labels":  # name the flag: the label setting that differs
                field = next(k for k in settings["labels"]
                             if saved.get("labels", {}).get(k) != settings["labels"][k])
            raise ConfigError(field,
                              f"{folder} holds K-fold runs with other settings ({path}: "
                              f"{', '.join(f'{k}={saved.get(k)!r}' for k in differ)}); use a "
                              "new folder or the same settings")
        return
    if not write:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)
