r"""Exports the latest checkpoint of a run as a SavedModel for TF Serving.

  python scripts/export.py --model_dir=runs/mixup --export_dir=exports/digits
  # -> exports/digits/<version>/ with a serving_default signature
"""
import _setup  # noqa: F401

from absl import app, flags, logging

flags.DEFINE_string("model_dir", None, "Run folder written by scripts/train.py.", required=True)
flags.DEFINE_string("export_dir", None, "Base folder; a new integer version folder is "
                    "written inside it.", required=True)
flags.DEFINE_string("data_dir", None, "TFDS data folder, if it moved since training.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from mixmatch_tf.training import load_run
    trainer = load_run(FLAGS.model_dir, data_dir=FLAGS.data_dir)
    path = trainer.export(FLAGS.export_dir)
    print(path)


if __name__ == "__main__":
    logging.set_verbosity(logging.WARNING)
    app.run(main)
