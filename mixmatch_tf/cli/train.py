r"""mixmatch-train: trains a method on a data set; resumes automatically from --model_dir.

  mixmatch-train --method=mixmatch --dataset=folder:my_images --num_labeled=all \
      --model_dir=runs/my_images
  mixmatch-train --method=mixup --dataset=digits --seed=0 --model_dir=runs/mixup
  mixmatch-train --flagfile=flags/presets/mixup_cifar10.cfg --data_dir=~/tfds \
      --model_dir=runs/mixup_cifar10

(``python scripts/train.py`` is the same program.) Writes checkpoints, TensorBoard
summaries and metrics.json into --model_dir and, with --export_dir, a SavedModel.
Invalid flags are refused before any work; the same command again resumes.
"""
import os

from mixmatch_tf import cli

DATA = ("dataset", "data_dir", "stream", "image_size", "augmentation", "noise_type",
        "noise_rate", "noise_mapping", "label_set", "normalization")
RUN = ("method", "model_dir", "seed", "precision", "stop_at_step", "steps_per_call",
       "checkpoint_every", "keep_checkpoints", "eval_batch_size", "jit_compile")
DISTRIBUTION = ("strategy", "cpu_replicas", "sync_bn")
EXPORT = ("export_dir",)


def help_groups(argv):
    """The flags of train by group; the method settings are those of ``--method``."""
    return [("Data", DATA), ("Run", RUN), ("Distribution", DISTRIBUTION), ("Export", EXPORT),
            method_settings(argv, "mixup")]


def method_settings(argv, default):
    """The help group of the settings of ``argv``'s ``--method`` (else ``default``)."""
    import dataclasses
    from mixmatch_tf.cli.help import first_sentence
    from mixmatch_tf.flags import common
    from mixmatch_tf.methods import get_method, method_names
    from mixmatch_tf.models import model_names
    method = default
    for i, arg in enumerate(argv):
        if arg.startswith("--method="):
            method = arg.split("=", 1)[1]
        elif arg == "--method" and i + 1 < len(argv):
            method = argv[i + 1]
    if method not in method_names():
        method = default
    fields = common.method_fields()
    settings = []
    for f in dataclasses.fields(get_method(method).Config):
        help_text, value = fields[f.name][1][method]
        help_text = first_sentence(help_text[:1].upper() + help_text[1:])
        if f.name == "model":
            help_text = (f"{help_text.rstrip('.')}. One of: {', '.join(model_names())} "
                         "(or your own Keras model, from Python).")
        settings.append((f.name, help_text, value))
    return (f"Settings of --method={method}, with the paper's defaults (a data set outside "
            "the papers gets lengths and a network sized to it; --method=NAME --help lists "
            "another method's)", settings)


def main(argv):
    from absl import app
    from mixmatch_tf.flags import common
    FLAGS = common.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common.validate_names()
    method, _, run = common.resolve(FLAGS.dataset)  # the flags checked before any data is read
    from mixmatch_tf.data import load_dataset
    from mixmatch_tf.methods import ConfigError
    from mixmatch_tf.training import RunFolderError, Trainer, make_strategy
    strategy = make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)
    data = load_dataset(FLAGS.dataset, FLAGS.data_dir, stream=FLAGS.stream,
                        image_size=FLAGS.image_size, augmentation=FLAGS.augmentation)
    try:
        # The flags override the data set's defaults (sized to a user's data set).
        trainer = Trainer(method, data, run, config=common.method_overrides(),
                          strategy=strategy, data_dir=FLAGS.data_dir)
    except ConfigError as e:
        common.usage_error(e.field, e.message)
    except RunFolderError as e:  # locked by another trainer, no intact checkpoint, ...
        raise SystemExit(f"error: {e}") from None
    print(closing_line(trainer.fit(), run))


def closing_line(metrics, run):
    """The last line of a run: where its folder, metrics.json and export are, and its result."""
    folder = run.model_dir
    if not metrics.get("complete"):
        return (f"stopped at step {metrics['steps']:,} (checkpointed): the same command "
                f"continues; run folder {folder} (metrics.json comes at the end)")
    best = metrics.get("best_test_error")
    result = f"test error {metrics['test_error']:.2f}%"
    if best is not None and best != metrics["test_error"]:
        result += f" (best {best:.2f}%)"
    export = metrics.get("export_path")
    export = f"; export {export}" if export else ""
    return (f"done: {result} after {metrics['steps']:,} steps; run folder {folder}; "
            f"metrics {os.path.join(folder, 'metrics.json')}{export}")


def define_flags():
    from mixmatch_tf.flags import common
    common.define_train_flags()


def run():
    """The console entry point ``mixmatch-train``."""
    cli.launch(main, define_flags, __doc__, help_groups)


if __name__ == "__main__":
    run()
