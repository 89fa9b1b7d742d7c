"""The K-fold label-issue report: out-of-sample probabilities and confident learning."""
import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.training import load_run
from mixmatch_tf.training.kfold import kfold_label_report
from mixmatch_tf.training.label_issues import confident_learning

FAST = {"epochs": 8.0}  # ERM's small CNN on two thirds of the digits: about 130 steps


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory, one_replica, digits):
    folder = tmp_path_factory.mktemp("kfold")
    summary = kfold_label_report("erm", digits, str(folder), folds=3, seed=1, config=FAST,
                                 noise_type="sym", noise_rate=0.4, precision="float32",
                                 strategy=one_replica)
    return folder, summary


def table(path):
    return list(csv.DictReader(open(path)))


def test_each_example_is_judged_by_the_fold_that_never_saw_it(three_folds, one_replica,
                                                              digits):
    """The fold column is sklearn's stratified split of the noisy labels; each example's
    probabilities are its fold run's (read back from that run's folder), and the flags
    are confident learning's on those probabilities."""
    from sklearn.model_selection import StratifiedKFold
    folder, summary = three_folds
    rows = table(folder / "label_table.csv")
    labels = np.array([int(r["given_label"]) for r in rows])
    noisy = np.load(folder / "noisy_labels.npz")["labels"]
    np.testing.assert_array_equal(labels, noisy)
    fold = np.array([int(r["fold"]) for r in rows])
    splits = StratifiedKFold(3, shuffle=True, random_state=1).split(np.zeros(len(labels)),
                                                                    labels)
    probs = np.zeros((len(labels), digits.num_classes))
    for i, (train, held) in enumerate(splits):
        assert set(np.flatnonzero(fold == i + 1)) == set(held)
        part = dataclasses.replace(digits, name=f"digits-fold{i + 1}of3",
                                   train_images=digits.train_images[train],
                                   train_labels=labels[train])
        # The fold's run.json fingerprints the labels it trained on: these, and no others.
        run = load_run(str(folder / f"fold{i + 1}"), strategy=one_replica, data=part)
        probs[held] = run.predict(digits.train_images[held]).numpy()
    np.testing.assert_allclose([float(r["given_label_probability"]) for r in rows],
                               probs[np.arange(len(labels)), labels], rtol=1e-4, atol=1e-5)
    expected = confident_learning(labels, probs).flagged
    np.testing.assert_array_equal([r["flagged"] == "1" for r in rows], expected)
    assert summary["flagged"] == expected.sum() == len(table(folder / "label_issues.csv"))
    assert (summary["folds"], summary["method"]) == (3, "erm")


def test_the_k_fold_report_finds_the_flipped_digits(three_folds, digits):
    """40% of the labels replaced at random (about 36% wrong): the flagged set is mostly
    wrong labels and finds most of them."""
    folder, summary = three_folds
    wrong = np.load(folder / "noisy_labels.npz")["labels"] != digits.train_labels
    assert summary["wrong_labels"] == wrong.sum()
    assert summary["precision"] > 0.75 and summary["recall"] > 0.6, summary["line"]
    assert json.load(open(folder / "label_issues.json"))["line"] == summary["line"]


def test_a_second_call_resumes_and_other_settings_are_refused(three_folds, one_replica, digits):
    folder, summary = three_folds
    before = os.path.getmtime(folder / "fold1" / "evals.json")
    again = kfold_label_report("erm", digits, str(folder), folds=3, seed=1, config=FAST,
                               noise_type="sym", noise_rate=0.4, precision="float32",
                               strategy=one_replica)
    assert again["line"] == summary["line"]
    assert os.path.getmtime(folder / "fold1" / "evals.json") == before  # not retrained
    with pytest.raises(ConfigError, match="folds=3"):
        kfold_label_report("erm", digits, str(folder), folds=4, seed=1, config=FAST,
                           noise_type="sym", noise_rate=0.4, strategy=one_replica)
    before = sorted(os.listdir(folder))
    with pytest.raises(ConfigError, match="^noise_rate: .*other settings"):
        kfold_label_report("erm", digits, str(folder), folds=3, seed=1, config=FAST,
                           noise_type="sym", noise_rate=0.3, strategy=one_replica)
    assert sorted(os.listdir(folder)) == before


def test_methods_that_need_an_unlabeled_pool_and_impossible_folds_are_refused(tmp_path,
                                                                              digits):
    with pytest.raises(ConfigError, match="trains on a labeled subset"):
        kfold_label_report("mixmatch", digits, str(tmp_path), folds=3)
    with pytest.raises(ConfigError, match="at least 2"):
        kfold_label_report("erm", digits, str(tmp_path), folds=1)
    assert not os.path.exists(tmp_path / "kfold.json")


def test_the_program_says_which_flags_need_folds(tmp_path):
    out = subprocess.run([sys.executable, "scripts/label_issues.py", f"--model_dir={tmp_path}",
                          "--noise_type=sym", "--epochs=3"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --noise_type, --epochs judge labels by K-fold training: add --folds=K (or "
        "leave them out to read a run)")
