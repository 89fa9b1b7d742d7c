"""Clients for exported models served by TF Serving: REST and gRPC Predict APIs.

The conversions are plain functions so they can be checked without a server:

  inputs (numpy) --rest_request--> JSON body --POST /v1/models/NAME[/versions/V]:predict-->
      JSON --parse_rest_response--> outputs (numpy)
  inputs (numpy) --grpc_request--> PredictRequest --PredictionService.Predict-->
      PredictResponse --parse_grpc_response--> outputs (numpy)

String tensors travel over REST as ``{"b64": ...}`` objects (binary-safe), as TF
Serving's REST API requires for binary data. String outputs come back as text
(numpy ``str`` arrays) from both APIs, numbers as numpy arrays.
"""
import base64
import json
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2

from mixmatch_tf.serving.export import (BYTES_INPUT, BYTES_SIGNATURE, IMAGES_INPUT,
                                        IMAGES_SIGNATURE)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")


class ServingError(RuntimeError):
    """A request the model or server refused; the message is the server's reason."""


# ------------------------------------------------------------------ inputs
def image_files(paths):
    """Image files of ``paths`` (files as given, directories' images sorted by name).

    Raises:
      FileNotFoundError: a path does not exist, or nothing is left to send.
    """
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"{path} holds no images "
                                        f"({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"image {path!r} does not exist")
    if not files:
        raise FileNotFoundError("no images given: pass image files or directories")
    return files


def read_inputs(files, signature_name=BYTES_SIGNATURE):
    """The signature's inputs for image ``files``.

    ``serving_bytes`` gets the files' bytes as they are (the model decodes and
    resizes them); ``serving_default`` gets them decoded here into uint8
    [N, H, W, C], so they must already have the model's size.

    Raises:
      ValueError: an unknown signature, an undecodable file, or files of different
        shapes for ``serving_default``.
    """
    encoded = []
    for path in files:
        with open(path, "rb") as f:
            encoded.append(f.read())
    if signature_name == BYTES_SIGNATURE:
        return {BYTES_INPUT: np.array(encoded, dtype=object)}
    if signature_name != IMAGES_SIGNATURE:
        raise ValueError(f"signature {signature_name!r} is not valid; valid: "
                         f"{BYTES_SIGNATURE}, {IMAGES_SIGNATURE}")
    images = []
    for path, data in zip(files, encoded):
        try:
            image = tf.io.decode_image(data, expand_animations=False).numpy()
        except tf.errors.OpError as e:
            raise ValueError(f"{path}: cannot decode image ({e.message.splitlines()[0]})") \
                from None
        if images and image.shape != images[0].shape:
            raise ValueError(f"{path} is {image.shape} but {files[0]} is {images[0].shape}; "
                             f"{IMAGES_SIGNATURE} needs images of one size (the model's), "
                             f"or use {BYTES_SIGNATURE}, which resizes")
        images.append(image)
    return {IMAGES_INPUT: np.stack(images).astype(np.uint8)}


# -------------------------------------------------------------------- REST
def rest_url(server, model_name, version=None):
    """``<server>/v1/models/<name>[/versions/<version>]:predict``."""
    url = f"{server.rstrip('/')}/v1/models/{model_name}"
    if version is not None:
        url += f"/versions/{int(version)}"
    return url + ":predict"


def _json_value(array):
    """A numpy array as JSON: nested lists, bytes as {"b64": ...} objects."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        def encode(value):
            if isinstance(value, str):
                value = value.encode("utf-8")
            return {"b64": base64.b64encode(value).decode("ascii")}
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.ndim \
            else encode(array.item())
    return array.tolist()


def rest_request(inputs, signature_name, columnar=False):
    """The JSON body (a dict) of a REST predict request.

    Args:
      inputs: {input name: array}; all share the batch dimension.
      signature_name: the signature to run.
      columnar: the ``inputs`` (columnar) format instead of ``instances`` (rows).
    """
    if columnar:
        return {"signature_name": signature_name,
                "inputs": {k: _json_value(v) for k, v in inputs.items()}}
    columns = {k: _json_value(v) for k, v in inputs.items()}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs differ in batch size ({sizes}); the row format needs one")
    instances = [{k: v[i] for k, v in columns.items()} for i in range(sizes.pop())]
    return {"signature_name": signature_name, "instances": instances}


def _from_json(value):
    """JSON values -> Python values with {"b64": ...} objects decoded to bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _first_leaf(value):
    while isinstance(value, list) and value:
        value = value[0]
    return value


def _array(value):
    """A numpy array of JSON-parsed values; bytes stay whole (numpy "S" arrays drop
    trailing NUL bytes)."""
    if isinstance(_first_leaf(value), bytes):
        return np.array(value, dtype=object)
    return np.asarray(value)


def parse_rest_response(body):
    """{output name: numpy array} of a REST predict response (row or columnar).

    Raises:
      ServingError: the response is an error (``{"error": ...}``).
    """
    if "error" in body:
        raise ServingError(body["error"])
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict):
            outputs = {"outputs": outputs}
        return {k: _array(_from_json(v)) for k, v in outputs.items()}
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: _array([_from_json(row[k]) for row in rows]) for k in rows[0]}
        return {"predictions": _array(_from_json(rows))}
    raise ServingError(f"not a predict response (no 'predictions', 'outputs' or 'error'): "
                       f"{json.dumps(body)[:200]}")


def predict_rest(url, body, timeout=30.0):
    """POSTs a JSON body to a TF Serving REST predict URL; returns the outputs.

    Raises:
      ServingError: the server refused the request or could not be reached.
    """
    import requests
    try:
        reply = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as e:
        raise ServingError(f"POST {url} failed: {e}") from None
    try:
        answer = reply.json()
    except ValueError:
        raise ServingError(f"POST {url}: HTTP {reply.status_code}, not JSON: "
                           f"{reply.text[:200]}") from None
    if reply.status_code != 200 and "error" not in answer:
        raise ServingError(f"POST {url}: HTTP {reply.status_code}: {reply.text[:200]}")
    return parse_rest_response(answer)


# -------------------------------------------------------------------- gRPC
def grpc_request(inputs, model_name, signature_name, version=None):
    """A ``PredictRequest`` for ``inputs`` ({input name: array})."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def parse_grpc_response(response):
    """{output name: numpy array} of a ``PredictResponse``; text outputs as str."""
    outputs = {}
    for key, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        if proto.dtype == tf.string.as_datatype_enum and not key.endswith("_bytes"):
            value = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[str])(value) \
                if value.size else value.astype(str)
        outputs[key] = value
    return outputs


def predict_grpc(target, request, timeout=30.0):
    """Sends a ``PredictRequest`` to ``PredictionService`` at ``host:port``; returns outputs.

    Raises:
      ServingError: the server refused the request or could not be reached.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ServingError(f"gRPC Predict at {target}: {e.code().name}: {e.details()}") \
                from None
    return parse_grpc_response(response)


def predict_saved_model(predictor, request):
    """Runs a ``PredictRequest`` through a local ``SavedModelPredictor``; returns outputs."""
    try:
        return parse_grpc_response(predictor.predict(request))
    except tf.errors.OpError as e:
        raise ServingError(e.message) from None


# ---------------------------------------------------------------- results
def results(files, outputs):
    """One dict per image: file, class, class name, probability, top-k, probabilities."""
    rows = []
    for i, path in enumerate(files):
        cls = int(outputs["classes"][i])
        probs = np.asarray(outputs["probabilities"][i], np.float64)
        names = outputs.get("class_names")
        top = [{"class": int(c), "class_name": str(n), "probability": float(p)}
               for c, n, p in zip(outputs["top_k_classes"][i], outputs["top_k_class_names"][i],
                                  outputs["top_k_probabilities"][i])]
        rows.append({"file": path, "class": cls,
                     "class_name": str(names[i]) if names is not None else str(cls),
                     "probability": float(probs[cls]), "top_k": top,
                     "probabilities": [float(p) for p in probs]})
    return rows


def format_result(row):
    """One line of text for a ``results`` row."""
    top = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in row["top_k"])
    return (f"{row['file']}: {row['class_name']} (class {row['class']}, "
            f"p={row['probability']:.3f}) | top-{len(row['top_k'])}: {top}")
