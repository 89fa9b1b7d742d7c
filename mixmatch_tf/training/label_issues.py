"""Which training labels are probably wrong: a run's label-issue report.

From a method's ``label_evidence`` (DivideMix: each network's clean probability at
its last co-divide; Co-teaching: the small-loss criterion) and the served predictor's
probabilities on the un-augmented training set, three files in the run folder:

* ``label_table.csv``: every training example in index order: ``index``, ``file`` (for
  a folder of images), the given label (id and class name), the predicted label, its
  probability and the given label's probability, the method's own columns, the
  ``issue_score`` (higher: more likely wrong) and ``flagged`` (the method's decision);
* ``label_issues.csv``: the flagged examples, most likely wrong first (by
  ``issue_score``, then by the given label's probability, lowest first);
* ``label_issues.json``: the summary -- how many flagged, per given class, the rule,
  and, where the run has a clean reference (noise the package made, a CIFAR-N label
  set), the precision and recall of the flagged set against the labels that really
  are wrong. A user's own labels have none: no such number is made up.
"""
import csv
import json
import os

import numpy as np

from mixmatch_tf.methods.base import LabelEvidence

TABLE, ISSUES, SUMMARY = "label_table.csv", "label_issues.csv", "label_issues.json"


def label_issue_report(trainer, output_dir=None, write=True, tensorboard=False):
    """Writes the report of ``trainer``'s run (a ``Trainer`` or ``load_run``'s) into
    ``output_dir`` (default: the run folder); returns the summary (a dict, with
    ``line``, one sentence to print), or None when the method gives no evidence.

    Every worker of a multi-worker run must call it (the passes over the training set
    are collective); ``write``: whether this one writes the files (the chief).
    ``tensorboard``: also write the grid of the top flagged images (``flagged_grid``)
    to the run's TensorBoard at the current step (the trainer does, at every report).
    """
    method, state, ctx = trainer.method, trainer.state, trainer.context
    evidence = method.label_evidence(state)
    if evidence is None:
        return None
    probs = trainer.train_probabilities()
    given = (np.asarray(ctx.train_labels) if ctx.train_labels is not None
             else trainer.map_train_set(lambda b: b["label"]))
    names = list(trainer.data.class_names)
    rows = report_rows(given, probs, names, getattr(trainer.data, "train_files", None),
                       evidence)
    truth = trainer.truth
    summary = summarise(evidence, given, names, None if truth is None else truth.label_is_true)
    summary["step"] = int(trainer.step)
    if not write:
        return summary
    ranked = write_report(output_dir or trainer.run.model_dir, rows, evidence, summary)
    top = ranked[:GRID_TILES]
    if tensorboard and len(top) and len(trainer.data.image_shape) == 3 \
            and trainer.data.image_shape[-1] in (1, 3, 4):
        grid, text = flagged_grid(trainer.passes.raw_train_images(top),
                                  {k: rows[k][top] for k in rows})
        trainer.records.image("label_issues/top_flagged", int(trainer.step), grid, text)
    return summary


GRID_TILES = 36


def report_rows(given, probs, names, files, evidence):
    """The table's columns (name -> array over the training set, in index order) from
    the given labels, the predicted class probabilities [N, C] and the evidence."""
    n = len(given)
    rows = {"index": np.arange(n)}
    if files is not None:
        rows["file"] = np.asarray(files)[:n]
    predicted = probs.argmax(axis=1)
    rows.update({
        "given_label": given, "given_class": np.asarray(names, dtype=object)[given],
        "predicted_label": predicted, "predicted_class": np.asarray(names, dtype=object)[predicted],
        "predicted_probability": probs.max(axis=1),
        "given_label_probability": probs[np.arange(n), given]})
    rows.update(evidence.columns)
    rows.update({"issue_score": evidence.issue_score, "flagged": evidence.flagged.astype(int)})
    return rows


def write_report(folder, rows, evidence, summary):
    """Writes the three files into ``folder`` (``summary`` gains their paths); returns
    the flagged indices, most likely wrong first."""
    os.makedirs(folder, exist_ok=True)
    _write_csv(os.path.join(folder, TABLE), rows, np.arange(len(rows["index"])))
    flagged = np.flatnonzero(evidence.flagged)
    ranked = flagged[np.lexsort((rows["given_label_probability"][flagged],
                                 -evidence.issue_score[flagged]))]
    _write_csv(os.path.join(folder, ISSUES), rows, ranked)
    with open(os.path.join(folder, SUMMARY), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    summary["files"] = [os.path.join(folder, name) for name in (TABLE, ISSUES, SUMMARY)]
    return ranked


def flagged_grid(images, rows):
    """One uint8 image of ``images`` [n, H, W, C] tiled row by row, up to six a row,
    two pixels apart, and a markdown table of what each tile is (``rows``: the report's
    columns of those examples, in tile order): the TensorBoard view of the top flagged
    examples. Hand-tiled: TensorBoard shows a batch of images one at a time."""
    n, h, w, c = images.shape
    cols = min(6, n)
    lines = -(-n // cols)
    gap = 2
    grid = np.full((lines * (h + gap) - gap, cols * (w + gap) - gap, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[r * (h + gap): r * (h + gap) + h, col * (w + gap): col * (w + gap) + w] = images[i]
    text = ["Training examples flagged as mislabelled, most likely wrong first, row by row "
            f"({cols} a row).", "", "| tile | index | given | predicted (probability) |",
            "|---|---|---|---|"]
    for i in range(n):
        where = rows["file"][i] if "file" in rows else rows["index"][i]
        text.append(f"| {i // cols + 1}.{i % cols + 1} | {where} | {rows['given_class'][i]} | "
                    f"{rows['predicted_class'][i]} ({rows['predicted_probability'][i]:.2f}) |")
    return grid, "\n".join(text)


def confident_learning(labels, probs):
    """Confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on out-of-sample class
    probabilities ``probs`` [N, C] (a K-fold run's) of the given ``labels`` [N].

    Class c's threshold is the mean probability of c over the examples labelled c. An
    example's confident classes are those at or above their threshold; its guessed
    true class is the confident one, or with several, its most probable class. It is
    flagged when it has a confident class and the guess is not its label: the
    off-diagonal of the confident joint. The score is one minus the given label's
    probability (self-confidence: the report's ``given_label_probability``). Written here because cleanlab, which does it, is no
    dependency of the package; ``scripts/label_issue_benchmark.py`` checks the two
    agree (cleanlab's ``filter_by="confident_learning"``).
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs, np.float64)
    n, num_classes = probs.shape
    thresholds = np.array([probs[labels == c, c].mean() if np.any(labels == c) else np.inf
                           for c in range(num_classes)])
    confident = probs >= thresholds - 1e-6
    count = confident.sum(axis=1)
    guess = np.where(count > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    self_confidence = probs[np.arange(n), labels]
    return LabelEvidence({}, 1.0 - self_confidence,
                         (count > 0) & (guess != labels),
                         "score 1 - the out-of-sample probability of the given label; "
                         "flagged: off the confident joint's diagonal, as confident learning flags")


def summarise(evidence, given, names, label_is_true=None):
    """Counts of the flagged examples (in all and per given class), the rule, and the
    flagged set's precision and recall against the truly wrong labels where known."""
    flagged = np.asarray(evidence.flagged, bool)
    per_class = {names[c]: int(np.sum(flagged & (given == c))) for c in range(len(names))}
    out = {"flagged": int(flagged.sum()), "examples": int(len(flagged)),
           "rule": evidence.rule, "per_class": per_class}
    line = (f"label issues: {out['flagged']:,} of {out['examples']:,} training labels "
            f"flagged ({evidence.rule})")
    if label_is_true is not None:
        wrong = ~np.asarray(label_is_true, bool)
        out["precision"] = float(wrong[flagged].mean()) if flagged.any() else None
        out["recall"] = float(flagged[wrong].mean()) if wrong.any() else None
        out["wrong_labels"] = int(wrong.sum())
        shown = ", ".join(f"{k} {v:.3f}" for k, v in (("precision", out["precision"]),
                                                       ("recall", out["recall"]))
                          if v is not None)
        line += f"; against the true labels: {shown}" if shown else ""
    out["line"] = line
    return out


def _write_csv(path, rows, order):
    columns = list(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in order:
            writer.writerow([_cell(rows[c][i]) for c in columns])


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, (np.integer, np.bool_)):
        return int(value)
    return value
