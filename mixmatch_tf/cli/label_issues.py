r"""mixmatch-label-issues: which training labels are probably wrong.

From a finished (or still training) DivideMix or Co-teaching run:

  mixmatch-label-issues --model_dir=runs/noisy
  # -> runs/noisy/label_table.csv (every example), label_issues.csv (the flagged ones,
  #    most likely wrong first) and label_issues.json (the summary)

For any method that trains on every given label (erm, mixup, ...), by K-fold
training: each example is judged by a network that never saw its label, and
confident learning flags the labels the network contradicts:

  mixmatch-label-issues --folds=5 --method=erm --dataset=folder:photos --model_dir=runs/cl

(``python scripts/label_issues.py`` is the same program.) The first form reads the
run's newest intact checkpoint, also of an older run folder; a run of another method
is refused in one line. The second trains the K runs in ``MODEL_DIR/fold1..K`` (run
again, it resumes them) and writes the same three files into ``MODEL_DIR``.
"""
from mixmatch_tf import cli

RUN = ("model_dir", "output_dir", "data_dir")
KFOLD = ("folds", "method", "dataset", "seed", "noise_type", "noise_rate", "noise_mapping",
         "label_set", "precision")


def help_groups(argv):
    from mixmatch_tf.cli.train import method_settings
    return [("Where", RUN), ("K-fold (judge the labels of a data set, not of a run)", KFOLD),
            method_settings(argv, "erm")]


def define_flags():
    from absl import flags
    flags.DEFINE_string("model_dir", None, "Run folder written by mixmatch-train; with "
                        "--folds, the folder of the K-fold runs and the report.", required=True)
    flags.DEFINE_string("output_dir", None, "Where the three files go. Default: --model_dir.")
    flags.DEFINE_string("data_dir", None, "TFDS data folder (if it moved since training).")
    flags.DEFINE_integer("folds", None, "Judge the labels of --dataset by K-fold training "
                         "of --method instead of reading a run (K >= 2).")
    flags.DEFINE_string("method", "erm", "The method trained on each K-1 folds "
                        "(one that trains on every given label: erm, mixup, ...).")
    flags.DEFINE_string("dataset", None, "The data set, as mixmatch-train's "
                        "(held in memory).")
    flags.DEFINE_integer("seed", 0, "The runs' and the split's seed.")
    flags.DEFINE_enum("noise_type", None, ["sym", "asym"], "Synthetic label "
                      "noise to judge, as mixmatch-train's.")
    flags.DEFINE_float("noise_rate", 0.0, "Its rate in [0, 1].")
    flags.DEFINE_string("noise_mapping", None, "Asymmetric noise's FROM:TO "
                        "pairs, as mixmatch-train's.")
    flags.DEFINE_string("label_set", None, "Judge a label set of the data set "
                        "(CIFAR-N).")
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16",
                                            "mixed_float16"], "The runs' precision.")
    from mixmatch_tf.flags import common  # the method's settings, as mixmatch-train's
    common.define_method_flags()


def main(argv):
    del argv
    from absl import app, flags
    FLAGS = flags.FLAGS
    if FLAGS.folds is None:
        from mixmatch_tf.flags import common
        given = [f"--{name}" for name in KFOLD[1:] + tuple(common.method_fields())
                 if FLAGS[name].present]
        if given:
            raise app.UsageError(f"{', '.join(given)} judge labels by K-fold training: add "
                                 "--folds=K (or leave them out to read a run)")
        summary = from_run(FLAGS.model_dir, FLAGS.output_dir, FLAGS.data_dir)
    else:
        if not FLAGS.dataset:
            raise app.UsageError("--folds needs --dataset: the data set whose labels to judge")
        summary = by_folds(FLAGS)
    print(summary["line"])
    print("written: " + ", ".join(summary["files"]))


def from_run(model_dir, output_dir, data_dir):
    from mixmatch_tf.training import load_run
    from mixmatch_tf.training.label_issues import label_issue_report
    trainer = load_run(model_dir, data_dir=data_dir)
    summary = label_issue_report(trainer, output_dir=output_dir)
    if summary is None:
        raise ValueError(f"{model_dir}: a run of method {trainer.method_cls.name!r} gives no "
                         "per-example evidence on its labels; label issues come from dividemix "
                         "runs (after their first co-divide) and coteaching runs, or from "
                         "--folds=K")
    return summary


def by_folds(FLAGS):
    from mixmatch_tf.data import load_dataset
    from mixmatch_tf.flags import common
    from mixmatch_tf.methods import ConfigError, method_names
    from mixmatch_tf.training.kfold import kfold_label_report
    if FLAGS.method not in method_names():
        common.usage_error("method", f"valid: {', '.join(method_names())}")
    config = common.method_overrides()
    data = load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir, stream="false")
    try:
        return kfold_label_report(
            FLAGS.method, data, FLAGS.model_dir, output_dir=FLAGS.output_dir,
            folds=FLAGS.folds, seed=FLAGS.seed, config=config, noise_type=FLAGS.noise_type,
            noise_rate=FLAGS.noise_rate, noise_mapping=FLAGS.noise_mapping,
            label_set=FLAGS.label_set, precision=FLAGS.precision,
            verbose="auto")
    except ConfigError as e:
        common.usage_error(e.field, e.message)


def run():
    """The console entry point ``mixmatch-label-issues``."""
    cli.launch(main, define_flags, __doc__, help_groups)


if __name__ == "__main__":
    run()
