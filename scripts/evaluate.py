r"""Evaluates the latest checkpoint of a run on its test split.

  python scripts/evaluate.py --model_dir=runs/mixup
"""
import _setup  # must precede TensorFlow imports
import json

from absl import app, flags, logging

flags.DEFINE_string("model_dir", None, "Run folder written by scripts/train.py.", required=True)
flags.DEFINE_string("data_dir", None, "TFDS data folder, if it moved since training.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from mixmatch_tf.training import load_run
    trainer = load_run(FLAGS.model_dir, data_dir=FLAGS.data_dir)
    error = trainer.evaluate()
    print(json.dumps({"model_dir": FLAGS.model_dir, "step": int(trainer.step.numpy()),
                      "checkpoint": trainer.restored_from, "test_error": error}))


if __name__ == "__main__":
    logging.set_verbosity(logging.WARNING)
    app.run(_setup.one_line_errors(main))
