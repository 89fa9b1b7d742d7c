r"""mixmatch-export: exports the latest checkpoint of a run as a SavedModel for TF Serving.

  mixmatch-export --model_dir=runs/mixup --export_dir=exports
  # -> exports/digits/<version>/ (signatures serving_default and serving_bytes,
  #    warm-up requests) and exports/models.config listing every model in exports/

(``python scripts/export.py`` is the same program.) The model name defaults to the
run's data set name (``digits``, ``cifar10``; the folder name for ``folder:PATH``,
the file stem for ``npz:PATH``): every version of one model then takes the same
inputs and answers with the same classes. Prints the new version's folder.
"""

from mixmatch_tf import cli



def define_flags():
    from absl import flags
    flags.DEFINE_string("model_dir", None, "Run folder written by mixmatch-train "
                        "(scripts/train.py).", required=True)
    flags.DEFINE_string("export_dir", None, "Base folder of models; a new integer version "
                        "folder is written into <export_dir>/<model_name>/.", required=True)
    flags.DEFINE_string("model_name", None, "Served model name (letters, digits, '_', '.', "
                        "'-'). Default: the run's data set name, made folder-safe.")
    flags.DEFINE_integer("top_k", None, "Number of top classes the signatures return. "
                         "Default: min(5, number of classes).", lower_bound=1)
    flags.DEFINE_string("serving_base_path", None, "Where the server sees --export_dir, for "
                        "the base paths in models.config (e.g. /models in the "
                        "tensorflow/serving container). Default: the absolute path of "
                        "--export_dir.")
    flags.DEFINE_enum("serve_versions", "latest", ["latest", "all"], "Version policy of a "
                      "model newly added to models.config: the newest version, or every "
                      "version.")
    flags.DEFINE_integer("max_batch_size", 1024, "Most images one request may hold; larger "
                         "requests are refused (INVALID_ARGUMENT) before any work.",
                         lower_bound=1)
    flags.DEFINE_integer("max_image_pixels", 4096 * 4096, "Most pixels (width x height, read "
                         "from the image header) an encoded image may have; larger ones are "
                         "refused before decoding.", lower_bound=1)
    flags.DEFINE_string("data_dir", None, "TFDS data folder, if it moved since training.")


def main(argv):
    del argv
    from absl import app, flags
    from mixmatch_tf.serving.export import check_model_name
    from mixmatch_tf.training import load_run
    FLAGS = flags.FLAGS
    if FLAGS.model_name is not None:
        try:
            check_model_name(FLAGS.model_name)
        except ValueError as e:
            raise app.UsageError(f"--{e}")
    trainer = load_run(FLAGS.model_dir, data_dir=FLAGS.data_dir)
    try:
        path = trainer.export(FLAGS.export_dir, model_name=FLAGS.model_name, top_k=FLAGS.top_k,
                              serving_base_path=FLAGS.serving_base_path,
                              serve_versions=FLAGS.serve_versions,
                              max_batch_size=FLAGS.max_batch_size,
                              max_image_pixels=FLAGS.max_image_pixels)
    except ValueError as e:
        raise app.UsageError(str(e))
    print(path)


def run():
    """The console entry point ``mixmatch-export``."""
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
