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
