"""Exports that TF Serving runs as they are, checked through the loader it uses.

The TF Serving binary cannot be installed here, so each method's export goes
through ``saved_model_cli`` (the SavedModel loader in a graph session, in a fresh
process) and through ``SavedModelPredictor`` (the same loader, requests fed to the
C++ session with no Python-side checks, as ``tensorflow_model_server`` feeds them).
A stand-in server answers REST and gRPC requests with that predictor, so the
clients talk to a real HTTP server and a real gRPC PredictionService.
"""
import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import types
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image
from tensorflow_serving.apis import (predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from conftest import ROOT
from mixmatch_tf.data.preprocess import normalize
from mixmatch_tf.serving import client
from mixmatch_tf.serving.export import (MODELS_CONFIG_FILE, WARMUP_FILE, check_model_name,
                                        encode_images, model_name_for_dataset)
from mixmatch_tf.serving.local import SavedModelPredictor
from mixmatch_tf.training import RunConfig, Trainer

# Every method whose export must pass, with short settings.
METHODS = ["erm", "mixup", "mixmatch", "dividemix"]
SHORT = {"train_steps": 20, "eval_every": 20}
METHOD_CONFIG = {"mixmatch": dict(SHORT, num_labeled=20),
                 "dividemix": {"epochs": 2.0, "warmup_epochs": 1.0, "min_steps_per_epoch": 3}}
SAMPLES = 6
OUTPUTS = {"probabilities", "classes", "class_names", "top_k_classes", "top_k_probabilities",
           "top_k_class_names"}


# An export needs trained weights, not a finished run: DivideMix stops inside its
# warm-up (both networks trained; the served ensemble is the same function of them),
# before its co-divide and DivideMix steps are traced.
METHOD_RUN = {"dividemix": {"stop_at_step": 2}}


def train(method, digits, strategy, model_dir):
    config = METHOD_CONFIG.get(method, SHORT)
    # float32: the served answers are compared with predict's at float32 tolerances
    trainer = Trainer(method, digits, RunConfig(model_dir=str(model_dir), precision="float32",
                                                **METHOD_RUN.get(method, {})),
                      config=config, strategy=strategy)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def exports(tmp_path_factory, one_replica, digits):
    """One export per method, all under one base (models named by method)."""
    base = tmp_path_factory.mktemp("exports")
    work = tmp_path_factory.mktemp("work")
    images = digits.test_images[:SAMPLES]
    pngs = np.array(encode_images(images), dtype=object)
    np.save(work / "images.npy", images)
    np.save(work / "pngs.npy", pngs, allow_pickle=True)
    image_dir = work / "images"
    image_dir.mkdir()
    for i, data in enumerate(pngs):
        (image_dir / f"test{i}.png").write_bytes(data)
    models = {}
    for method in METHODS:
        trainer = train(method, digits, one_replica, work / f"run-{method}")
        path = trainer.export(str(base), model_name=method)
        models[method] = types.SimpleNamespace(
            path=path, trainer=trainer, expected=trainer.predict(images).numpy(),
            warmup_expected=trainer.predict(digits.test_images[:4]).numpy())
    return types.SimpleNamespace(base=base, work=work, images=images, pngs=pngs,
                                 image_dir=image_dir, models=models)


@pytest.fixture(scope="module")
def predictors(exports):
    loaded = {m: SavedModelPredictor(e.path) for m, e in exports.models.items()}
    yield loaded
    for p in loaded.values():
        p.close()


def request(signature, key, value, name="erm", version=None):
    return client.grpc_request({key: value}, name, signature, version)


def texts(array):
    """Strings of an output array, whether it holds bytes (graph outputs) or str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(array)]


def check_outputs(outputs, expected, top_k=5):
    assert set(outputs) == OUTPUTS
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)
    classes = expected.argmax(-1)
    np.testing.assert_array_equal(outputs["classes"], classes)
    assert texts(outputs["class_names"]) == [str(c) for c in classes]
    top = np.argsort(-expected, axis=-1, kind="stable")[:, :top_k]
    np.testing.assert_array_equal(outputs["top_k_classes"][:, 0], classes)
    np.testing.assert_allclose(outputs["top_k_probabilities"],
                               np.take_along_axis(expected, top, -1), rtol=1e-5, atol=1e-6)
    assert texts(outputs["top_k_class_names"]) == [str(c) for c in
                                                   np.ravel(outputs["top_k_classes"])]


# One fresh process for every check that needs one. It first opens each export with
# TensorFlow 2's loader (``tf.saved_model.load``: the serving signature's probabilities
# saved, and what a wrong image size raises), then runs each ``saved_model_cli``
# command line through the module's own ``main`` (the installed command). An answer
# is {"code": exit code or traceback, "stdout": what it printed}.
_FRESH_PROCESS = """
import contextlib, io, json, sys, traceback
import numpy as np, tensorflow as tf
from tensorflow.python.tools import saved_model_cli
jobs, answers = sys.argv[1:3]
jobs = json.load(open(jobs))
results = []
for path, images, probabilities in jobs["load"]:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    np.save(probabilities, serve(images=tf.constant(np.load(images)))["probabilities"].numpy())
    try:
        serve(images=tf.zeros([1, 8, 9, 1], tf.uint8))
        results.append("no error")
    except Exception as e:
        results.append(type(e).__name__)
for argv in jobs["cli"]:
    sys.argv = ["saved_model_cli"] + argv
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out):
            saved_model_cli.main()
    except SystemExit as e:
        code = e.code or 0
    except Exception:
        code = traceback.format_exc()
    results.append({"code": code, "stdout": out.getvalue()})
json.dump(results, open(answers, "w"))
"""


def fresh_process(loads, commands, folder):
    """Runs the loads and the ``saved_model_cli`` command lines in one fresh process
    (a TensorFlow start-up each took over a minute for the sixteen); returns what a
    wrong image size raised per load, and one answer per command."""
    json.dump({"load": loads, "cli": commands}, open(folder / "jobs.json", "w"))
    out = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(folder / "jobs.json"),
                          str(folder / "answers.json")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    answers = json.load(open(folder / "answers.json"))
    assert len(answers) == len(loads) + len(commands)
    return answers[:len(loads)], answers[len(loads):]


def cli_output(answer):
    """What a command printed, once it exited with 0."""
    assert answer["code"] == 0, answer
    return answer["stdout"]


CLI_RUNS = [("serving_default", "images=images.npy"), ("serving_bytes", "image_bytes=pngs.npy")]


@pytest.fixture(scope="module")
def fresh(exports, tmp_path_factory):
    """In one fresh process: ``tf.saved_model.load`` of every export (probabilities in
    ``loaded[method]``, the error of a wrong size in ``wrong_size[method]``),
    ``saved_model_cli show --all`` of every export (``show[method]``), and ``run`` of
    each signature (``run[method, signature]``, outputs in ``outdirs``)."""
    folder = tmp_path_factory.mktemp("fresh_process")
    loaded = {m: folder / f"{m}-loaded.npy" for m in METHODS}
    loads = [[exports.models[m].path, str(exports.work / "images.npy"), str(loaded[m])]
             for m in METHODS]
    commands = [["show", "--all", "--dir", exports.models[m].path] for m in METHODS]
    runs, outdirs = [], {}
    for method in METHODS:
        for signature, inputs in CLI_RUNS:
            key, name = inputs.split("=")
            runs.append((method, signature))
            outdirs[method, signature] = folder / f"{method}-{signature}"
            commands.append(["run", "--dir", exports.models[method].path, "--tag_set", "serve",
                             "--signature_def", signature, "--inputs",
                             f"{key}={exports.work / name}",
                             "--outdir", str(outdirs[method, signature])])
    wrong_size, answers = fresh_process(loads, commands, folder)
    return types.SimpleNamespace(loaded=loaded, wrong_size=dict(zip(METHODS, wrong_size)),
                                 show=dict(zip(METHODS, answers)),
                                 run=dict(zip(runs, answers[len(METHODS):])), outdirs=outdirs)


# ------------------------------------------------- TensorFlow 2's loader
@pytest.mark.parametrize("method", METHODS)
def test_export_reloads_in_a_fresh_process_and_matches_predict(exports, fresh, method):
    np.testing.assert_allclose(np.load(fresh.loaded[method]), exports.models[method].expected,
                               rtol=1e-5, atol=1e-6)
    assert fresh.wrong_size[method] != "no error"
    names = os.path.join(exports.models[method].path, "assets", "class_names.txt")
    assert open(names).read().split() == [str(i) for i in range(10)]


# ------------------------------------------------------- saved_model_cli
@pytest.mark.parametrize("method", METHODS)
def test_saved_model_cli_shows_both_signatures(fresh, method):
    shown = cli_output(fresh.show[method])
    signatures = {name: kind for name, _, kind in re.findall(
        r"signature_def\['(\w+)'\]:\n(.*?)Method name is: ([\w/]*)", shown, re.S)}
    assert signatures["serving_default"] == "tensorflow/serving/predict"
    assert signatures["serving_bytes"] == "tensorflow/serving/predict"
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_UINT8\s+"
                     r"shape: \(-1, 8, 8, 1\)", shown)
    assert re.search(r"inputs\['image_bytes'\] tensor_info:\s+dtype: DT_STRING\s+"
                     r"shape: \(-1\)", shown)
    for output, dtype, shape in [("probabilities", "DT_FLOAT", r"\(-1, 10\)"),
                                 ("classes", "DT_INT64", r"\(-1\)"),
                                 ("top_k_classes", "DT_INT64", r"\(-1, 5\)"),
                                 ("top_k_probabilities", "DT_FLOAT", r"\(-1, 5\)")]:
        found = re.findall(rf"outputs\['{output}'\] tensor_info:\s+dtype: {dtype}\s+"
                           rf"shape: {shape}", shown)
        assert len(found) == 2, (output, shown)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("signature,inputs", CLI_RUNS)
def test_saved_model_cli_run_matches_predict(exports, fresh, method, signature, inputs):
    cli_output(fresh.run[method, signature])
    outdir = fresh.outdirs[method, signature]
    outputs = {os.path.splitext(f)[0]: np.load(outdir / f, allow_pickle=True)
               for f in os.listdir(outdir)}
    check_outputs(outputs, exports.models[method].expected)


# ------------------------------------------- warm-up and bad requests
@pytest.mark.parametrize("method", METHODS)
def test_warmup_requests_parse_and_run(exports, predictors, method):
    path = os.path.join(exports.models[method].path, WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert set(signatures) == {"serving_default", "serving_bytes"} and len(logs) >= 4
    for log in logs:
        req = log.predict_log.request
        assert req.model_spec.name == method
        outputs = client.predict_saved_model(predictors[method], req)
        assert len(outputs["classes"]) == tf.make_ndarray(next(iter(req.inputs.values()))).shape[0]
    # The real test images among the warm-up requests (raw and as lossless PNG, not
    # JPEG) give the in-memory answer.
    real = []
    for log in logs:
        value = tf.make_ndarray(next(iter(log.predict_log.request.inputs.values())))
        if len(value) == 4 and (value.dtype == np.uint8 or value[0].startswith(b"\x89PNG")):
            real.append(log.predict_log.request)
    assert sorted(r.model_spec.signature_name for r in real) == ["serving_bytes",
                                                                 "serving_default"]
    for req in real:
        outputs = client.predict_saved_model(predictors[method], req)
        np.testing.assert_allclose(outputs["probabilities"],
                                   exports.models[method].warmup_expected,
                                   rtol=1e-5, atol=1e-6)


def _bad_requests(pngs):
    png = pngs[0]
    jpeg = tf.io.encode_jpeg(tf.io.decode_png(png)).numpy()
    scan = jpeg.index(b"\xff\xda")  # the entropy-coded data follow the SOS marker's header
    jpeg_cut = jpeg[:(scan + len(jpeg)) // 2]
    images = np.zeros((2, 8, 8, 1), np.uint8)
    bytes_msg = "image_bytes must be a string vector [batch] of encoded PNG/JPEG/GIF/BMP images"
    images_msg = "images must be uint8 [batch, 8, 8, 1] with batch >= 1"
    return {
        "wrong dtype (float pixels)": (
            request("serving_default", "images", images.astype(np.float32)),
            "Type mismatch: actual float vs. expect uint8"),
        "wrong dtype (pixels to bytes)": (
            request("serving_bytes", "image_bytes", images),
            "Type mismatch: actual uint8 vs. expect string"),
        "wrong rank (one image, no batch)": (
            request("serving_default", "images", images[0]), images_msg + "; got shape [8,8,1]"),
        "wrong rank (bytes matrix)": (
            request("serving_bytes", "image_bytes", np.array([[png]], dtype=object)),
            bytes_msg + " with batch >= 1; got shape [1,1]"),
        "wrong size": (
            request("serving_default", "images", np.zeros((2, 8, 9, 1), np.uint8)),
            images_msg + "; got shape [2,8,9,1]"),
        "wrong channels": (
            request("serving_default", "images", np.zeros((2, 8, 8, 3), np.uint8)),
            images_msg + "; got shape [2,8,8,3]"),
        "empty batch": (
            request("serving_default", "images", np.zeros((0, 8, 8, 1), np.uint8)),
            images_msg + "; got shape [0,8,8,1]"),
        "empty bytes batch": (
            request("serving_bytes", "image_bytes", np.array([], dtype=object)),
            bytes_msg + " with batch >= 1; got shape [0]"),
        "undecodable bytes": (
            request("serving_bytes", "image_bytes", np.array([png, b"GIF? no", b""], dtype=object)),
            "image_bytes[1,2] not decodable: expected encoded PNG, JPEG, GIF or BMP images"),
        "truncated PNG header": (
            request("serving_bytes", "image_bytes", np.array([png, png[:30]], dtype=object)),
            "image_bytes[1] not decodable: the image header is truncated"),
        "truncated PNG": (
            request("serving_bytes", "image_bytes", np.array([png, png[:40]], dtype=object)),
            "image_bytes[1] not decodable: the image data are truncated"),
        "corrupt PNG (found by the decoder)": (
            request("serving_bytes", "image_bytes", np.array(
                [png[:40] + b"\0" * (len(png) - 52) + png[-12:]], dtype=object)),
            "image_bytes[0] not decodable: the decoder failed inside the image data (0: PNG "
            "data damaged); positions count from 0"),
        "JPEG cut in its entropy-coded data": (
            request("serving_bytes", "image_bytes", np.array([png, jpeg, jpeg_cut, png],
                                                             dtype=object)),
            "image_bytes[2] not decodable: the decoder failed inside the image data (2: JPEG "
            "cut short, no end-of-image marker at its end); positions count from 0"),
    }


@pytest.mark.parametrize("method", METHODS)
def test_bad_requests_get_clear_errors_and_the_model_keeps_serving(exports, predictors,
                                                                    method):
    predictor = predictors[method]
    for case, (req, message) in _bad_requests(exports.pngs).items():
        with pytest.raises(client.ServingError) as e:
            client.predict_saved_model(predictor, req)
        assert message in str(e.value), (case, str(e.value))
    good = request("serving_default", "images", exports.images)
    check_outputs(client.predict_saved_model(predictor, good), exports.models[method].expected)


def test_mixmatch_serves_its_ema_weights(exports, predictors):
    """The export is the method's own predictor: for MixMatch, the EMA network."""
    trainer = exports.models["mixmatch"].trainer
    student = tf.nn.softmax(trainer.state["student"](
        normalize(exports.images, trainer.normalization), training=False)).numpy()
    served = client.predict_saved_model(predictors["mixmatch"], request(
        "serving_default", "images", exports.images))["probabilities"]
    np.testing.assert_allclose(served, exports.models["mixmatch"].expected, rtol=1e-5, atol=1e-6)
    assert "ema" in trainer.state and np.abs(served - student).max() > 1e-3


def test_bad_requests_through_tf_saved_model_load(exports):
    """The TF2 loader (tf.saved_model.load) refuses the same requests."""
    served = tf.saved_model.load(exports.models["erm"].path).signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"with batch >= 1; got shape \[0"):
        served["serving_default"](images=tf.zeros([0, 8, 8, 1], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] not decodable"):
        served["serving_bytes"](image_bytes=tf.constant([b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor "
                       "but is a float tensor"):
        served["serving_default"](images=tf.zeros([1, 8, 8, 1], tf.float32))


def test_bytes_signature_reads_each_format_and_resizes(exports, predictors):
    """GIF and BMP copies of the grey test images (stored as colour) give the exact
    answer; colour JPEGs four times larger are made grey and resized in the graph."""
    encoded = []
    for fmt, mode in (("GIF", "L"), ("BMP", "RGB")):
        for image in exports.images:
            buf = io.BytesIO()
            Image.fromarray(image[..., 0]).convert(mode).save(buf, fmt)
            encoded.append(buf.getvalue())
    outputs = client.predict_saved_model(predictors["erm"], request(
        "serving_bytes", "image_bytes", np.array(encoded, dtype=object)))
    expected = exports.models["erm"].expected
    np.testing.assert_allclose(outputs["probabilities"], np.concatenate([expected, expected]),
                               rtol=1e-5, atol=1e-6)
    big = np.repeat(np.repeat(np.repeat(exports.images, 4, 1), 4, 2), 3, -1)
    jpegs = np.array(encode_images(big, "jpeg"), dtype=object)
    outputs = client.predict_saved_model(predictors["erm"],
                                         request("serving_bytes", "image_bytes", jpegs))
    # What the graph does, done by hand: decode, luma, resize, round.
    rgb = tf.cast(tf.stack([tf.io.decode_image(j, channels=3) for j in jpegs]), tf.float32)
    grey = tf.round(tf.tensordot(rgb, [0.2989, 0.5870, 0.1140], 1)[..., None])
    small = tf.cast(tf.round(tf.image.resize(grey, [8, 8], antialias=True)), tf.uint8)
    expected = exports.models["erm"].trainer.predict(small.numpy()).numpy()
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------- layout and models.config
def test_versions_grow_and_models_config_lists_every_model(exports, tmp_path):
    config_path = exports.base / MODELS_CONFIG_FILE
    config = text_format.Parse(config_path.read_text(),
                               model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert sorted(entries) == sorted(METHODS)
    for name, entry in entries.items():
        assert entry.base_path == str(exports.base / name)
        assert entry.model_platform == "tensorflow"
        assert entry.model_version_policy.latest.num_versions == 1
        assert os.path.basename(exports.models[name].path) == "1"
    # A hand edit survives the next export, which takes the next version.
    entries["erm"].model_version_policy.all.SetInParent()
    config_path.write_text(text_format.MessageToString(config))
    trainer = exports.models["erm"].trainer
    second = trainer.export(str(exports.base), model_name="erm")
    assert second == str(exports.base / "erm" / "2")
    again = text_format.Parse(config_path.read_text(), model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in again.model_config_list.config] == [c.name for c in
                                                               config.model_config_list.config]
    assert again.model_config_list.config[[c.name for c in again.model_config_list.config]
                                          .index("erm")].model_version_policy.HasField("all")
    assert not [f for f in os.listdir(exports.base / "erm") if not f.isdigit()]
    # The container's view of the base, and the default name (the data set's).
    path = trainer.export(str(tmp_path), serving_base_path="/models", serve_versions="all")
    assert path == str(tmp_path / "digits" / "1")
    entry = text_format.Parse((tmp_path / MODELS_CONFIG_FILE).read_text(),
                              model_server_config_pb2.ModelServerConfig()
                              ).model_config_list.config[0]
    assert (entry.name, entry.base_path) == ("digits", "/models/digits")
    assert entry.model_version_policy.HasField("all")
    # A broken models.config is refused before anything is written.
    (tmp_path / MODELS_CONFIG_FILE).write_text("model_config_list { oops")
    with pytest.raises(ValueError, match="models.config is not a TF Serving model config"):
        trainer.export(str(tmp_path))
    assert sorted(os.listdir(tmp_path / "digits")) == ["1"]


def test_model_names():
    assert model_name_for_dataset("digits") == "digits"
    assert model_name_for_dataset("svhn_cropped") == "svhn_cropped"
    assert model_name_for_dataset("folder:/data/my pets/") == "my_pets"
    assert model_name_for_dataset("npz:/data/cifar-small.npz") == "cifar-small"
    for bad in ("", "../x", "a/b", ".hidden", "a b", "é"):
        with pytest.raises(ValueError, match="model_name .* is not valid"):
            check_model_name(bad)


# -------------------------------------------- TF Serving's APIs, stand-in
def _json_tensor(value, dtype):
    """A JSON value as TF Serving's REST API reads it: typed by the signature."""
    def unwrap(v):
        if isinstance(v, dict) and set(v) == {"b64"}:
            return base64.b64decode(v["b64"])
        if isinstance(v, str):
            return v.encode("utf-8")
        return [unwrap(x) for x in v] if isinstance(v, list) else v
    value = unwrap(value)
    if dtype == tf.string:
        return tf.make_tensor_proto(np.array(value, dtype=object), dtype=tf.string)
    return tf.make_tensor_proto(np.array(value, dtype=dtype.as_numpy_dtype), dtype=dtype)


def request_from_json(body, name, version, signatures):
    """PredictRequest of a REST body (row or columnar format), as TF Serving builds it."""
    signature = body.get("signature_name", "serving_default")
    inputs = signatures[signature].inputs
    if "instances" in body:
        rows = body["instances"]
        named = rows and isinstance(rows[0], dict) and set(rows[0]) != {"b64"}
        columns = {k: [r[k] for r in rows] for k in rows[0]} if named else \
            {next(iter(inputs)): rows}
    else:
        columns = body["inputs"] if isinstance(body["inputs"], dict) and \
            set(body["inputs"]) != {"b64"} else {next(iter(inputs)): body["inputs"]}
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = name, signature
    if version is not None:
        req.model_spec.version.value = version
    for key, value in columns.items():
        req.inputs[key].CopyFrom(_json_tensor(value, tf.dtypes.as_dtype(inputs[key].dtype)))
    return req


def json_from_response(response, rows):
    """REST body of a PredictResponse, as TF Serving writes it."""
    def jsonable(key, array):
        if array.dtype == object:
            if key.endswith("_bytes"):
                return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()},
                                    otypes=[object])(array).tolist()
            return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
        return array.tolist()
    outputs = {k: jsonable(k, tf.make_ndarray(v)) for k, v in response.outputs.items()}
    if not rows:
        return {"outputs": outputs}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}


class StandIn:
    """tensorflow_model_server for one model version: REST and gRPC, in threads."""

    def __init__(self, name, predictor):
        self.name, self.predictor = name, predictor
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                status, answer = standin.rest(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.rest_address = f"http://127.0.0.1:{self.http.server_address[1]}"

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, req, context):
                missing = standin.missing(req.model_spec.name,
                                          req.model_spec.version.value
                                          if req.model_spec.HasField("version") else None)
                if missing:
                    context.abort(grpc.StatusCode.NOT_FOUND, missing)
                try:
                    return standin.predictor.predict(req)
                except (tf.errors.OpError, client.ServingError) as e:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  getattr(e, "message", str(e)))

        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(),
                                                                            self.grpc)
        self.grpc_address = f"127.0.0.1:{self.grpc.add_insecure_port('127.0.0.1:0')}"
        self.grpc.start()

    def missing(self, name, version):
        if name != self.name or version not in (None, self.predictor.version):
            which = f"Specific({name}, {version})" if version else f"Latest({name})"
            return f"Servable not found for request: {which}"
        return None

    def rest(self, path, body):
        m = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict", path)
        if not m:
            return 404, {"error": f"Malformed request: POST {path}"}
        version = int(m.group(2)) if m.group(2) else None
        missing = self.missing(m.group(1), version)
        if missing:
            return 404, {"error": missing}
        try:
            req = request_from_json(body, m.group(1), version, self.predictor.signatures)
            return 200, json_from_response(self.predictor.predict(req), "instances" in body)
        except (tf.errors.OpError, client.ServingError) as e:
            return 400, {"error": getattr(e, "message", str(e))}

    def close(self):
        self.http.shutdown()
        self.grpc.stop(None)


@pytest.fixture(scope="module")
def standin(predictors):
    server = StandIn("erm", predictors["erm"])
    yield server
    server.close()


@pytest.mark.parametrize("columnar", [False, True])
def test_rest_conversions_round_trip_through_json(exports, columnar):
    inputs = {"image_bytes": exports.pngs}
    body = json.loads(json.dumps(client.rest_request(inputs, "serving_bytes", columnar)))
    signatures = {"serving_bytes": types.SimpleNamespace(
        inputs={"image_bytes": types.SimpleNamespace(dtype=tf.string.as_datatype_enum)})}
    req = request_from_json(body, "erm", None, signatures)
    assert list(tf.make_ndarray(req.inputs["image_bytes"])) == list(exports.pngs)
    body = json.loads(json.dumps(client.rest_request({"images": exports.images},
                                                     "serving_default", columnar)))
    sent = body["inputs"]["images"] if columnar else [r["images"] for r in body["instances"]]
    np.testing.assert_array_equal(np.array(sent, np.uint8), exports.images)
    response = predict_pb2.PredictResponse()
    outputs = {"probabilities": np.random.rand(3, 10).astype(np.float32),
               "classes": np.array([3, 0, 9], np.int64),
               "class_names": np.array(["three", "zéro", "nine"], dtype=object),
               "top_k_classes": np.array([[3, 1], [0, 2], [9, 8]], np.int64)}
    for k, v in outputs.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
    parsed = client.parse_rest_response(json.loads(json.dumps(
        json_from_response(response, rows=not columnar))))
    assert set(parsed) == set(outputs)
    np.testing.assert_array_equal(parsed["probabilities"].astype(np.float32),
                                  outputs["probabilities"])
    np.testing.assert_array_equal(parsed["classes"], outputs["classes"])
    assert list(parsed["class_names"]) == ["three", "zéro", "nine"]
    np.testing.assert_array_equal(parsed["top_k_classes"], outputs["top_k_classes"])
    with pytest.raises(client.ServingError, match="boom"):
        client.parse_rest_response({"error": "boom"})


def test_grpc_conversions_round_trip_through_the_protos(exports):
    for inputs, signature in [({"images": exports.images}, "serving_default"),
                              ({"image_bytes": exports.pngs}, "serving_bytes")]:
        req = client.grpc_request(inputs, "erm", signature, version=3)
        again = predict_pb2.PredictRequest.FromString(req.SerializeToString())
        assert (again.model_spec.name, again.model_spec.signature_name,
                again.model_spec.version.value) == ("erm", signature, 3)
        (key, value), = inputs.items()
        sent = tf.make_ndarray(again.inputs[key])
        assert sent.dtype == value.dtype and sent.shape == value.shape
        assert list(sent.ravel()) == list(value.ravel())
    response = predict_pb2.PredictResponse()
    response.outputs["class_names"].CopyFrom(tf.make_tensor_proto(
        np.array([["zéro", "un"]], dtype=object)))
    response.outputs["classes"].CopyFrom(tf.make_tensor_proto(np.array([0], np.int64)))
    parsed = client.parse_grpc_response(
        predict_pb2.PredictResponse.FromString(response.SerializeToString()))
    assert parsed["class_names"].tolist() == [["zéro", "un"]]
    assert parsed["classes"].dtype == np.int64 and parsed["classes"].tolist() == [0]


def test_rest_and_grpc_clients_against_a_stand_in_server(exports, standin):
    expected = exports.models["erm"].expected
    for signature, inputs in [("serving_bytes", {"image_bytes": exports.pngs}),
                              ("serving_default", {"images": exports.images})]:
        for columnar in (False, True):
            outputs = client.predict_rest(
                client.rest_url(standin.rest_address, "erm", version=1),
                client.rest_request(inputs, signature, columnar))
            check_outputs(outputs, expected)
        outputs = client.predict_grpc(standin.grpc_address,
                                      client.grpc_request(inputs, "erm", signature))
        check_outputs(outputs, expected)
    bad = {"image_bytes": np.array([b"not an image"], dtype=object)}
    with pytest.raises(client.ServingError, match=r"image_bytes\[0\] not decodable"):
        client.predict_rest(client.rest_url(standin.rest_address, "erm"),
                            client.rest_request(bad, "serving_bytes"))
    with pytest.raises(client.ServingError, match=r"INVALID_ARGUMENT: .*image_bytes\[0\]"):
        client.predict_grpc(standin.grpc_address, client.grpc_request(bad, "erm",
                                                                      "serving_bytes"))
    with pytest.raises(client.ServingError, match=r"Servable not found .*Specific\(erm, 7\)"):
        client.predict_rest(client.rest_url(standin.rest_address, "erm", version=7),
                            client.rest_request({"image_bytes": exports.pngs}, "serving_bytes"))
    with pytest.raises(client.ServingError, match=r"NOT_FOUND: .*Latest\(nope\)"):
        client.predict_grpc(standin.grpc_address,
                            client.grpc_request({"image_bytes": exports.pngs}, "nope",
                                                "serving_bytes"))


# ------------------------------------------------------- the client script
def test_serve_client_script_locally_over_rest_and_over_grpc(exports, standin, tmp_path):
    """The script in fresh processes (run side by side); over gRPC a second request
    holds an undecodable file, which is reported with the file's name."""
    expected = exports.models["erm"].expected
    files = [str(exports.image_dir / f"test{i}.png") for i in range(SAMPLES)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    runs = {
        "saved_model_dir": ["--saved_model_dir=" + str(exports.base / "erm"),
                            str(exports.image_dir)],
        "rest": ["--rest=" + standin.rest_address, "--model_name=erm",
                 "--signature=serving_default", "--columnar", "--batch_size=4"] + files,
        "grpc": ["--grpc=" + standin.grpc_address, "--model_name=erm",
                 f"--batch_size={SAMPLES}"] + files + [str(bad)],
    }
    procs = {mode: subprocess.Popen([sys.executable, "scripts/serve_client.py",
                                     "--output=json"] + args, cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for mode, args in runs.items()}
    errors = {}
    for mode, proc in procs.items():
        stdout, errors[mode] = proc.communicate(timeout=300)
        stderr = errors[mode]
        assert proc.returncode == (1 if mode == "grpc" else 0), (mode, stderr[-3000:])
        rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert [r["file"] for r in rows] == files, mode
        np.testing.assert_allclose([r["probabilities"] for r in rows], expected,
                                   rtol=1e-5, atol=1e-6, err_msg=mode)
        assert [r["class"] for r in rows] == expected.argmax(-1).tolist()
        assert [r["class_name"] for r in rows] == [str(c) for c in expected.argmax(-1)]
        assert [len(r["top_k"]) for r in rows] == [5] * SAMPLES
    assert "image_bytes[0] not decodable" in errors["grpc"] and str(bad) in errors["grpc"]
