r"""mixmatch-evaluate: evaluates the latest checkpoint of a run on its test split.

  mixmatch-evaluate --model_dir=runs/mixup

(``python scripts/evaluate.py`` is the same program.) Prints one JSON line: the run
folder, its step, the checkpoint read and the test error in %.
"""
import json

from mixmatch_tf import cli


def define_flags():
    from absl import flags
    flags.DEFINE_string("model_dir", None, "Run folder written by mixmatch-train "
                        "(scripts/train.py).", required=True)
    flags.DEFINE_string("data_dir", None, "TFDS data folder, if it moved since training.")


def main(argv):
    del argv
    from absl import flags
    from mixmatch_tf.training import load_run
    FLAGS = flags.FLAGS
    trainer = load_run(FLAGS.model_dir, data_dir=FLAGS.data_dir)
    error = trainer.evaluate()
    print(json.dumps({"model_dir": FLAGS.model_dir, "step": int(trainer.step.numpy()),
                      "checkpoint": trainer.restored_from, "test_error": error}))


def run():
    """The console entry point ``mixmatch-evaluate``."""
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
