r"""Trains a method on a data set; resumes automatically from --model_dir.

  python scripts/train.py --method=mixup --dataset=digits --seed=0 --model_dir=runs/mixup
  python scripts/train.py --flagfile=flags/presets/mixup_cifar10.cfg --data_dir=~/tfds \
      --model_dir=runs/mixup_cifar10

Writes checkpoints, TensorBoard summaries and metrics.json into --model_dir and,
with --export_dir, a SavedModel. Invalid flags are refused before any work.
"""
import _setup  # must precede TensorFlow imports
import json

from absl import app, logging

from flags import common as cli

cli.define_train_flags()
FLAGS = cli.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.validate_names()
    method, _, run = cli.resolve(FLAGS.dataset)  # the flags checked before any data is read
    from mixmatch_tf.data import load_dataset
    from mixmatch_tf.methods import ConfigError
    from mixmatch_tf.training import RunFolderError, Trainer, make_strategy
    strategy = make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)
    data = load_dataset(FLAGS.dataset, FLAGS.data_dir, stream=FLAGS.stream,
                        image_size=FLAGS.image_size, augmentation=FLAGS.augmentation)
    try:
        # The flags override the data set's defaults (sized to a user's data set).
        trainer = Trainer(method, data, run, config=cli.method_overrides(), strategy=strategy,
                          data_dir=FLAGS.data_dir)
    except ConfigError as e:
        cli.usage_error(e.field, e.message)
    except RunFolderError as e:  # locked by another trainer, no intact checkpoint, ...
        raise SystemExit(f"error: {e}") from None
    metrics = trainer.fit()
    summary = {k: metrics[k] for k in ("method", "dataset", "seed", "steps", "complete",
                                       "test_error", "best_test_error",
                                       "mean_last_10_test_error", "median_last_10_test_error",
                                       "wall_seconds")
               if k in metrics}
    logging.info("done: %s", json.dumps(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(_setup.one_line_errors(main))
