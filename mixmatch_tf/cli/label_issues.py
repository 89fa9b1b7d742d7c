r"""mixmatch-label-issues: which training labels of a run are probably wrong.

  mixmatch-label-issues --model_dir=runs/noisy
  # -> runs/noisy/label_table.csv (every example), label_issues.csv (the flagged ones,
  #    most likely wrong first) and label_issues.json (the summary)

(``python scripts/label_issues.py`` is the same program.) Reads the run's newest
intact checkpoint, also of a run still training or of an older run folder. DivideMix
runs (after their first co-divide) and Co-teaching runs judge their labels; a run of
another method is refused in one line. A finished run of those two methods already
holds the report.
"""
from mixmatch_tf import cli


def define_flags():
    from absl import flags
    flags.DEFINE_string("model_dir", None, "Run folder written by mixmatch-train "
                        "(scripts/train.py).", required=True)
    flags.DEFINE_string("output_dir", None, "Where the three files go. Default: the run "
                        "folder.")
    flags.DEFINE_string("data_dir", None, "TFDS data folder, if it moved since training.")


def main(argv):
    del argv
    from absl import flags
    from mixmatch_tf.training import load_run
    from mixmatch_tf.training.label_issues import label_issue_report
    FLAGS = flags.FLAGS
    trainer = load_run(FLAGS.model_dir, data_dir=FLAGS.data_dir)
    summary = label_issue_report(trainer, output_dir=FLAGS.output_dir)
    if summary is None:
        raise ValueError(f"{FLAGS.model_dir}: a run of method {trainer.method_cls.name!r} "
                         "gives no per-example evidence on its labels; label issues come "
                         "from dividemix runs (after their first co-divide) and coteaching "
                         "runs")
    print(summary["line"])
    print("written: " + ", ".join(summary["files"]))


def run():
    """The console entry point ``mixmatch-label-issues``."""
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
