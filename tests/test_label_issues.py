"""The label-issue report's summary from hand-computed cases (the reports of DivideMix
and Co-teaching runs are checked in test_dividemix.py, on the runs made there)."""
import numpy as np
import pytest

from mixmatch_tf.methods.base import LabelEvidence
from mixmatch_tf.training.label_issues import summarise


def evidence(flagged):
    flagged = np.asarray(flagged, bool)
    return LabelEvidence({}, flagged.astype(float), flagged, "a rule")


def test_counts_per_class_and_precision_recall_against_the_truth():
    given = np.array([0, 1, 0, 1, 2])
    out = summarise(evidence([1, 0, 1, 0, 1]), given, ["a", "b", "c"],
                    label_is_true=np.array([0, 1, 1, 0, 1], bool))
    assert (out["flagged"], out["examples"], out["per_class"]) == (3, 5, {"a": 2, "b": 0, "c": 1})
    # wrong labels: examples 0 and 3; flagged 0, 2, 4: one of three right, one of two found
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(0.5)
    assert out["wrong_labels"] == 2
    assert out["line"] == ("label issues: 3 of 5 training labels flagged (a rule); against "
                           "the true labels: precision 0.333, recall 0.500")


def test_without_a_clean_reference_no_precision_or_recall_is_made_up():
    out = summarise(evidence([1, 0]), np.array([0, 1]), ["a", "b"])
    assert "precision" not in out and "recall" not in out
    assert out["line"] == "label issues: 1 of 2 training labels flagged (a rule)"
    nothing_wrong = summarise(evidence([0, 0]), np.array([0, 1]), ["a", "b"],
                              label_is_true=np.array([1, 1], bool))
    assert nothing_wrong["precision"] is None and nothing_wrong["recall"] is None
    assert nothing_wrong["line"].endswith("(a rule)")


def test_confident_learning_by_hand():
    """Thresholds: class 0's mean p0 over the examples labelled 0 = (0.9 + 0.2 + 0.6) / 3
    = 0.5667; class 1's mean p1 over those labelled 1 = (0.8 + 0.3 + 0.44) / 3 = 0.5133.
    Example 1 (label 0, p = 0.2 / 0.8): only class 1 is confident -> flagged.
    Example 2 (label 0, p = 0.6 / 0.4): class 0 confident -> kept.
    Example 4 (label 1, p = 0.7 / 0.3): class 0 confident -> flagged.
    Example 5 (label 1, p = 0.56 / 0.44): no class confident -> kept."""
    from mixmatch_tf.training.label_issues import confident_learning
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3],
                      [0.56, 0.44]])
    out = confident_learning(np.array([0, 0, 0, 1, 1, 1]), probs)
    np.testing.assert_array_equal(out.flagged, [False, True, False, False, True, False])
    np.testing.assert_allclose(out.issue_score, [0.1, 0.8, 0.4, 0.2, 0.7, 0.56])


def test_confident_learning_guesses_the_most_probable_of_several_confident_classes():
    """Thresholds 0.275 (class 0: 0.45, 0.1), 0.5 (class 1: 0.5), none reached for class
    2 (no example labelled 2). Example 0 (label 0, p = 0.45 / 0.55 / 0) is confident in
    classes 0 and 1: the guess is the most probable, 1 -> flagged (the first confident
    class, 0, would have kept it)."""
    from mixmatch_tf.training.label_issues import confident_learning
    probs = np.array([[0.45, 0.55, 0.0], [0.1, 0.9, 0.0], [0.2, 0.5, 0.3]])
    out = confident_learning(np.array([0, 0, 1]), probs)
    np.testing.assert_array_equal(out.flagged, [True, True, False])


def test_the_benchmarks_measures_by_hand():
    """scripts/label_issue_benchmark.py's measures: wrong labels 0 and 1 of 4; scores
    rank 0, 2, 1, 3; own flags {0, 2}: precision 1/2, recall 1/2; top 1 = {0}: 1, 1/2;
    AUC: of the 2 x 2 (wrong, right) pairs, (0, 2), (0, 3), (1, 3) are ordered: 3/4."""
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location(
        "label_issue_benchmark", f"{ROOT}/scripts/label_issue_benchmark.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.measures(np.array([0.9, 0.5, 0.7, 0.1]), np.array([True, False, True, False]),
                         np.array([True, True, False, False]), n_at=1)
    assert out == {"auc": 0.75, "flagged": 2, "precision_own": 0.5, "recall_own": 0.5,
                   "precision_at_n": 1.0, "recall_at_n": 0.5}


def test_flagged_grid_by_hand():
    """Seven 1x2 grey images: six a row, two pixels of white between tiles and rows."""
    from mixmatch_tf.training.label_issues import flagged_grid
    images = np.arange(7 * 2, dtype=np.uint8).reshape(7, 1, 2, 1)
    rows = {"index": np.arange(10, 17), "file": np.array([f"f{i}.png" for i in range(7)]),
            "given_class": np.array(list("abcdefg")), "predicted_class": np.array(list("zyxwvut")),
            "predicted_probability": np.linspace(0.5, 0.8, 7)}
    grid, text = flagged_grid(images, rows)
    assert grid.shape == (1 + 2 + 1, 6 * 2 + 5 * 2, 1)
    np.testing.assert_array_equal(grid[0, :, 0], [0, 1, 255, 255, 2, 3, 255, 255, 4, 5, 255, 255,
                                                 6, 7, 255, 255, 8, 9, 255, 255, 10, 11])
    assert np.all(grid[1:3] == 255)
    np.testing.assert_array_equal(grid[3, :2, 0], [12, 13])
    assert np.all(grid[3, 2:] == 255)
    assert "| 1.1 | f0.png | a | z (0.50) |" in text and "| 2.1 | f6.png | g | t (0.80) |" in text
