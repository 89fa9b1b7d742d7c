"""Runs TF Serving PredictRequests through a SavedModel in this process.

``SavedModelPredictor`` loads a SavedModel the way ``tensorflow_model_server``
does (the SavedModel loader into a graph session, tag ``serve``) and answers a
``PredictRequest`` as its Predict API does: the signature's input aliases map to
tensor names, the request's tensors are fed to the graph as they are (no Python
checks of dtype or shape: TF Serving has none either, so the graph's own checks
are what a bad request meets), and the outputs come back in a ``PredictResponse``.
It backs ``scripts/serve_client.py --saved_model_dir`` and the tests' stand-ins for
a server.
"""
import os

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.apis import predict_pb2

from mixmatch_tf.serving.client import ServingError
from mixmatch_tf.serving.export import IMAGES_SIGNATURE, version_folders


def resolve_saved_model_dir(path):
    """``path`` if it is a SavedModel, else its newest integer version (as TF Serving picks).

    Raises:
      FileNotFoundError: ``path`` is neither a SavedModel nor a folder of versions.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = version_folders(path)
    if versions:
        return os.path.join(path, str(versions[-1]))
    raise FileNotFoundError(f"{path} holds no saved_model.pb and no integer version folders; "
                            "pass <export_base>/<model_name> or one of its version folders")


class SavedModelPredictor:
    """A SavedModel loaded as TF Serving loads it, answering PredictRequests.

    Args:
      path: a SavedModel folder, or a model folder of integer versions (the newest
        is loaded).
    """

    def __init__(self, path):
        self.path = resolve_saved_model_dir(path)
        base = os.path.basename(os.path.normpath(self.path))
        self.version = int(base) if base.isdigit() else None
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        logger = tf.get_logger()
        level = logger.level
        # The loader is TF Serving's; its deprecation notice would only be noise here.
        logger.setLevel("ERROR")
        try:
            with self._graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    self._session, [tf.saved_model.SERVING], self.path)
        finally:
            logger.setLevel(level)
        self.signatures = {k: v for k, v in meta_graph.signature_def.items()
                           if not k.startswith("__")}
        self._callables = {}

    def close(self):
        self._session.close()

    def _callable(self, feeds, fetches):
        key = (tuple(feeds), tuple(fetches))
        if key not in self._callables:
            # A callable runs the C++ session directly, as TF Serving does;
            # Session.run would check (and cast) the fed values in Python first.
            options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
            self._callables[key] = self._session._make_callable_from_options(options)
        return self._callables[key]

    def predict(self, request):
        """Answers a ``predict_pb2.PredictRequest`` with a ``PredictResponse``.

        Raises:
          ServingError: unknown signature, missing or extra inputs, unknown outputs.
          tf.errors.OpError: the graph refused the inputs (wrong dtype, shape, bytes).
        """
        name = request.model_spec.signature_name or IMAGES_SIGNATURE
        if name not in self.signatures:
            raise ServingError(f"Serving signature name: \"{name}\" not found in signature "
                               f"def; valid: {', '.join(sorted(self.signatures))}")
        signature = self.signatures[name]
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise ServingError(f"input size does not match signature {name}: sent "
                               f"{sorted(sent)}, expected {sorted(expected)}")
        outputs = list(request.output_filter) or sorted(signature.outputs)
        unknown = [o for o in outputs if o not in signature.outputs]
        if unknown:
            valid = ", ".join(sorted(signature.outputs))
            raise ServingError(f"output tensor alias not found in signature {name}: "
                               f"{', '.join(unknown)}; valid: {valid}")
        keys = sorted(sent)
        run = self._callable([signature.inputs[k].name for k in keys],
                             [signature.outputs[o].name for o in outputs])
        values = run(*[tf.make_ndarray(request.inputs[k]) for k in keys])
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = name
        if self.version is not None:
            response.model_spec.version.value = self.version
        for alias, value in zip(outputs, values):
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response
