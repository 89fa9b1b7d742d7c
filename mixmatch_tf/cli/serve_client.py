r"""mixmatch-serve-client: classifies images with an exported model (REST, gRPC, local).

  # TF Serving's REST API (port 8501) and gRPC API (port 8500)
  mixmatch-serve-client --rest=http://localhost:8501 --model_name=digits img.png
  mixmatch-serve-client --grpc=localhost:8500 --model_name=digits images/
  # the same request through the SavedModel in this process (no server)
  mixmatch-serve-client --saved_model_dir=exports/digits img.png

(``python scripts/serve_client.py`` is the same program.) Arguments are image files or
directories (their PNG/JPEG/GIF/BMP files). By default the files' bytes are sent as they
are to the ``serving_bytes`` signature, which decodes and resizes them;
``--signature=serving_default`` decodes them here and sends uint8 pixels, which must
then have the model's size. Prints one line per image (``--output=json``: one JSON
object per image, with all probabilities).
"""
import json
import sys

from absl import app, flags

from mixmatch_tf import cli

def define_flags():
    flags.DEFINE_string("rest", None, "TF Serving REST address, e.g. http://localhost:8501.")
    flags.DEFINE_string("grpc", None, "TF Serving gRPC address, e.g. localhost:8500.")
    flags.DEFINE_string("saved_model_dir", None, "Run the request through this SavedModel "
                        "locally instead: a version folder, or a model folder of versions "
                        "(the newest is used).")
    flags.DEFINE_string("model_name", "model", "Served model name (the NAME of "
                        "/v1/models/NAME; the tensorflow/serving container's default is 'model').")
    flags.DEFINE_integer("model_version", None, "Model version to ask for; default: what the "
                         "server serves as latest.")
    flags.DEFINE_enum("signature", "serving_bytes", ["serving_bytes", "serving_default"],
                      "serving_bytes: send encoded files; serving_default: send uint8 pixels.")
    flags.DEFINE_bool("columnar", False, "REST: send the columnar 'inputs' format instead of "
                      "'instances' rows.")
    flags.DEFINE_integer("batch_size", 32, "Images per request.", lower_bound=1)
    flags.DEFINE_float("timeout", 30.0, "Seconds to wait for each answer.", lower_bound=0.0)
    flags.DEFINE_enum("output", "text", ["text", "json"], "Print lines of text or JSON objects.")


FLAGS = flags.FLAGS


def main(argv):
    targets = [name for name in ("rest", "grpc", "saved_model_dir") if FLAGS[name].value]
    if len(targets) != 1:
        raise app.UsageError("give exactly one of --rest, --grpc and --saved_model_dir "
                             f"(got {', '.join('--' + t for t in targets) or 'none'})")
    from mixmatch_tf.serving import client
    try:
        files = client.image_files(argv[1:])
    except FileNotFoundError as e:
        raise app.UsageError(str(e))
    target = targets[0]
    predictor = None
    if target == "saved_model_dir":
        from mixmatch_tf.serving.local import SavedModelPredictor
        try:
            predictor = SavedModelPredictor(FLAGS.saved_model_dir)
        except (FileNotFoundError, OSError) as e:
            raise app.UsageError(f"--saved_model_dir: {e}")
    for start in range(0, len(files), FLAGS.batch_size):
        batch = files[start:start + FLAGS.batch_size]
        try:
            inputs = client.read_inputs(batch, FLAGS.signature)
            if target == "rest":
                body = client.rest_request(inputs, FLAGS.signature, columnar=FLAGS.columnar)
                url = client.rest_url(FLAGS.rest, FLAGS.model_name, FLAGS.model_version)
                outputs = client.predict_rest(url, body, FLAGS.timeout)
            else:
                request = client.grpc_request(inputs, FLAGS.model_name, FLAGS.signature,
                                              FLAGS.model_version)
                if target == "grpc":
                    outputs = client.predict_grpc(FLAGS.grpc, request, FLAGS.timeout)
                else:
                    outputs = client.predict_saved_model(predictor, request)
        except (client.ServingError, ValueError) as e:
            # Batch positions in the server's message (image_bytes[i]) index this list.
            print(f"error: {str(e).splitlines()[0]}\n  request of {len(batch)} images: "
                  f"{', '.join(batch)}", file=sys.stderr)
            return 1
        for row in client.results(batch, outputs):
            print(json.dumps(row) if FLAGS.output == "json" else client.format_result(row))
    return 0


def run():
    """The console entry point ``mixmatch-serve-client``."""
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
