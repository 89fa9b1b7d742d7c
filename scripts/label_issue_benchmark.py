r"""Which labels are wrong, three ways, on the same noisy labels, against the truth.

  pip install -e ".[bench]"   # cleanlab: benchmark-only, never needed to train
  python scripts/label_issue_benchmark.py --output_dir=runs/label_issues_bench

For each noise setting (``--settings``: symmetric 20/50/80% and asymmetric 40% by
default) and seed, on ``--dataset`` (the bundled digits by default; an ``npz:`` file
such as the Fashion-MNIST one ``scripts/make_fashion_mnist.py`` writes):

* **DivideMix**: its clean probability at the last co-divide (``label_evidence``),
  flagged at or below tau -- a DivideMix run with the data set's defaults;
* **Co-teaching**: its small-loss ranking, flagged the forget rate's share;
* **cleanlab**: ``cleanlab.filter.find_label_issues`` (its defaults) on K-fold
  out-of-sample probabilities of ERM (``--folds``; each fold predicted by an ERM network
  trained on the other folds: the confident-learning recipe), ranked by
  ``cleanlab.rank.get_label_quality_scores`` (self-confidence);
* **confident learning (ours)**: ``label_issues.confident_learning`` on the same
  probabilities; the report says how often it agrees with cleanlab's
  ``filter_by="confident_learning"``.

All three see the same noisy labels (the run's, made from the seed). Per ranking: the
AUC of its score against the truly wrong labels; precision and recall of its own
flagged set; precision and recall of its top n, n = cleanlab's flagged count (the
rankings compared at one size); and the seconds it took, training included. A
markdown table goes to stdout and ``OUTPUT_DIR/REPORT.md``; the runs stay in
``OUTPUT_DIR`` (a finished run is read again, not retrained).
"""
import json
import os
import sys
import time

import numpy as np
from absl import flags

from mixmatch_tf import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("dataset", "digits", "Data set (as mixmatch-train's --dataset).")
    flags.DEFINE_list("settings", ["sym-0.2", "sym-0.5", "sym-0.8", "asym-0.4"],
                      "Noise settings, TYPE-RATE.")
    flags.DEFINE_string("noise_mapping", None, "The asymmetric settings' class mapping (as "
                        "mixmatch-train's --noise_mapping; default: the data set's own).")
    flags.DEFINE_list("seeds", ["0"], "Seeds (each: its own noisy labels and runs).")
    flags.DEFINE_integer("folds", 5, "Folds of the out-of-sample probabilities for cleanlab.",
                         lower_bound=2)
    flags.DEFINE_string("output_dir", "runs/label_issues_bench", "Runs and REPORT.md go here.")
    flags.DEFINE_enum("precision", "float32", ["float32", "auto"], "Precision of every run "
                      "(float32: the same numbers on every CPU).")


def trained(method, data, folder, run_settings):
    """A finished Trainer of ``method`` in ``folder`` (trained now, or resumed to the end)
    and the seconds its training took (as recorded: a second call reads them)."""
    from mixmatch_tf.training import RunConfig, Trainer
    run = RunConfig(model_dir=folder, precision=FLAGS.precision, **run_settings)
    # DivideMix with the official CIFAR-10 settings the docs' tables were measured with,
    # the warm-up's confidence penalty on under asymmetric noise (on these data sets a
    # bare run chooses them from the data, without the penalty).
    config = ({"lambda_u": 25.0, "mixup_alpha": 4.0, "gmm_per_class": False,
               "min_steps_per_epoch": 20, "lr_decay_at": (0.5,),
               "confidence_penalty": run_settings["noise_type"] == "asym"}
              if method == "dividemix" else None)
    trainer = Trainer(method, data, run, config=config)
    metrics = trainer.fit(verbose=0)
    return trainer, float(metrics["wall_seconds"])


def kfold_probabilities(data, labels, seed, folder):
    """Out-of-sample class probabilities of ERM with the data set's defaults, and the
    seconds training took (``training.kfold.out_of_sample``)."""
    from mixmatch_tf.methods import get_method, resolve_config
    from mixmatch_tf.training.kfold import out_of_sample
    config = resolve_config(get_method("erm"), data, {})  # the whole set's, in every fold
    probs, _, seconds = out_of_sample("erm", data, labels, FLAGS.folds, folder, seed, config,
                                      precision=FLAGS.precision)
    return probs, seconds


def measures(score, flagged, wrong, n_at):
    """AUC of ``score``; precision and recall of ``flagged`` and of the top ``n_at``."""
    from sklearn.metrics import roc_auc_score
    top = np.zeros(len(score), bool)
    top[np.argsort(-score, kind="stable")[:n_at]] = True
    out = {"auc": float(roc_auc_score(wrong, score)), "flagged": int(flagged.sum())}
    for name, chosen in (("own", flagged), ("at_n", top)):
        out[f"precision_{name}"] = float(wrong[chosen].mean()) if chosen.any() else None
        out[f"recall_{name}"] = float(chosen[wrong].mean())
    return out


def one_setting(data, noise_type, rate, seed, folder):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from mixmatch_tf.training.label_issues import confident_learning
    noise = {"seed": seed, "noise_type": noise_type, "noise_rate": rate,
             "noise_mapping": FLAGS.noise_mapping if noise_type == "asym" else None}
    results, wrong = {}, None
    labels = None
    for method in ("dividemix", "coteaching"):
        trainer, seconds = trained(method, data, os.path.join(folder, method), noise)
        evidence = trainer.method.label_evidence(trainer.state)
        if labels is None:
            labels = np.asarray(trainer.train_labels)
            wrong = labels != data.train_labels
        elif not np.array_equal(labels, trainer.train_labels):
            raise RuntimeError(f"{method} trained on other noisy labels than DivideMix")
        results[method] = (evidence.issue_score, np.asarray(evidence.flagged, bool), seconds)
    probs, seconds = kfold_probabilities(data, labels, seed, os.path.join(folder, "erm_kfold"))
    t0 = time.time()
    flagged = np.asarray(find_label_issues(labels, probs), bool)
    score = 1.0 - get_label_quality_scores(labels, probs)
    results["cleanlab"] = (score, flagged, seconds + time.time() - t0)
    # The package's own confident learning on the same probabilities, against
    # cleanlab's filter of the same name (its default filter prunes by noise rate).
    ours = confident_learning(labels, probs)
    results["confident learning (ours)"] = (ours.issue_score, ours.flagged, seconds)
    theirs = np.asarray(find_label_issues(labels, probs, filter_by="confident_learning"), bool)
    n_at = int(results["cleanlab"][1].sum())
    rows = {name: dict(measures(score, flagged, wrong, n_at), seconds=seconds)
            for name, (score, flagged, seconds) in results.items()}
    return {"wrong": int(wrong.sum()), "examples": len(wrong), "n_at": n_at, "rankings": rows,
            "confident_learning_agreement": float(np.mean(ours.flagged == theirs))}


def table(report):
    lines = ["| setting | seed | wrong labels | ranking | AUC | own flags: n, precision, "
             "recall | top n (cleanlab's n): precision, recall | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    agreement = []
    for key, entry in report.items():
        setting, seed = key.rsplit("--seed", 1)
        agreement.append(f"{setting} seed {seed}: "
                         f"{100 * entry['confident_learning_agreement']:.2f}%")
        for name, r in entry["rankings"].items():
            own = (f"{r['flagged']}, {_pct(r['precision_own'])}, {_pct(r['recall_own'])}")
            at = f"{entry['n_at']}: {_pct(r['precision_at_n'])}, {_pct(r['recall_at_n'])}"
            lines.append(f"| {setting} | {seed} | {entry['wrong']} of {entry['examples']} | "
                         f"{name} | {r['auc']:.3f} | {own} | {at} | {r['seconds']:.0f} |")
    lines.append("\nThe package's confident learning flags the same examples as cleanlab's "
                 "filter_by='confident_learning' on the same probabilities: "
                 + "; ".join(agreement) + " of the examples.")
    return "\n".join(lines)


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def main(argv):
    del argv
    from absl import app
    from mixmatch_tf.data import load_dataset
    import importlib.util
    if importlib.util.find_spec("cleanlab") is None:
        raise app.UsageError("cleanlab does not import: pip install -e '.[bench]'")
    settings = []
    for text in FLAGS.settings:
        kind, _, rate = text.partition("-")
        try:
            settings.append((kind, float(rate)))
        except ValueError:
            raise app.UsageError(f"Invalid flag --settings: {text!r} is not TYPE-RATE, "
                                 "e.g. sym-0.5 or asym-0.4") from None
        if kind not in ("sym", "asym") or not 0 < float(rate) < 1:
            raise app.UsageError(f"Invalid flag --settings: {text!r}: TYPE sym or asym, "
                                 "RATE in (0, 1)")
    data = load_dataset(FLAGS.dataset)
    report_path = os.path.join(FLAGS.output_dir, "report.json")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    report = {}
    for kind, rate in settings:
        for seed in FLAGS.seeds:
            key = f"{kind} {rate:g}--seed{seed}"
            print(f"{key}: DivideMix, Co-teaching, {FLAGS.folds}-fold ERM ...", flush=True)
            folder = os.path.join(FLAGS.output_dir, f"{kind}{rate:g}-seed{seed}")
            report[key] = one_setting(data, kind, rate, int(seed), folder)
            with open(report_path, "w") as f:
                json.dump(report, f, indent=1)
    text = table(report)
    print(text)
    command = " ".join(["python scripts/label_issue_benchmark.py"] + sys.argv[1:])
    with open(os.path.join(FLAGS.output_dir, "REPORT.md"), "w") as f:
        f.write(f"# Label issues: DivideMix, Co-teaching, cleanlab\n\n`{command}`\n\n{text}\n")


if __name__ == "__main__":
    cli.launch(main, define_flags, __doc__)
