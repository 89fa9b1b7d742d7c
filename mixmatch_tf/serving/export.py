"""SavedModels that TF Serving runs as they are.

``export_saved_model`` writes ``<export_base>/<model_name>/<version>/``: the layout
``tensorflow_model_server --model_base_path=<export_base>/<model_name>`` polls, with
integer versions that only grow. Each version is written under a temporary name
(``.tmp-<host>-<pid>-*``, which TF Serving ignores since it is not an integer) and
renamed into place, so a reader sees either the whole export or nothing; the
temporary folders of an export killed midway (its pid no longer runs on this
host) are removed by the next export into the same place.

Signatures (both run the method's own ``predict``: EMA weights, ensembles, ...):
  ``serving_default``  uint8 images ``images`` [None, H, W, C] (float32 features
                       [None, D] for tabular data).
  ``serving_bytes``    encoded images ``image_bytes`` (tf.string [None]: PNG, JPEG,
                       GIF or BMP, what REST clients send as ``{"b64": ...}``),
                       decoded and brought to H x W inside the graph (images only)
                       by the export's ``resize``: ``stretch`` (resized to H x W,
                       aspect ratio not kept: in-memory runs, whose images all have
                       the training size) or ``central_crop`` (the evaluation view of
                       a streamed run: shorter side resized to round(H * 256 / 224),
                       central H x W crop, ``augment.eval_central_crop``).
Both return ``probabilities`` (float32 [B, K]), ``classes`` (int64 [B]),
``class_names`` (string [B]), ``top_k_classes`` (int64 [B, k]),
``top_k_probabilities`` (float32 [B, k]) and ``top_k_class_names`` (string [B, k]).
Shapes are checked inside the graph, so a bad request gets an InvalidArgumentError
that says what was expected; a wrong dtype is refused by the signature itself.
Limits set at export (``max_batch_size`` examples per request, ``max_image_pixels``
per encoded image, read from its header) are checked before any conversion or
decoding, so a request over them costs no large allocation. An encoded image that
cannot be decoded, also one the decoder refuses only midway through its data, is
named by its position in the request (``decode_images``).

Class names are held in the graph as constants, so any text (a newline, a tab,
non-ASCII letters) is served exactly as the data set named it. Beside the model:
``assets/class_names.txt`` (for people and scripts: one name per line, with a
backslash, a line break or another control character escaped as in
``escape_class_name``; ``read_class_names`` reads it back exactly),
``assets/preprocessing.json`` (the ``resize`` of ``serving_bytes``; ``read_resize``),
``assets.extra/tf_serving_warmup_requests`` (PredictionLog records TF Serving
replays before it serves a version) and ``<export_base>/models.config`` (a
``--model_config_file`` listing every model under ``export_base``).
"""
import json
import os
import re
import shutil
import socket
import uuid

import keras
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from mixmatch_tf.data import augment
from mixmatch_tf.data.augment import EVAL_RESIZE_RATIO
from mixmatch_tf.data.preprocess import normalize

CLASS_NAMES_FILE = "class_names.txt"
PREPROCESSING_FILE = "preprocessing.json"
# How serving_bytes brings an encoded image to the model's H x W: as the run's
# evaluation saw its images (see the module docstring).
RESIZE_STRETCH = augment.RESIZE_STRETCH
RESIZE_CENTRAL_CROP = augment.RESIZE_CENTRAL_CROP
RESIZES = augment.RESIZES
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODELS_CONFIG_FILE = "models.config"
IMAGES_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
DEFAULT_MODEL_NAME = "model"  # the tensorflow/serving container's default MODEL_NAME
DEFAULT_TOP_K = 5
SERVE_VERSIONS = ("latest", "all")
# Channel counts the bytes signature converts decoded images to (others: no such signature).
ENCODED_CHANNELS = (1, 3, 4)
# Leading bytes of the formats tf.io.decode_image reads.
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
WARMUP_SAMPLES = 4
# Request limits, fixed at export and checked first in the graph: a request over them
# is refused before anything is converted or decoded. 1024 images of 96x96x3 are
# 113 MB of float32; 4096 x 4096 pixels decode to 64 MB (RGBA) per image.
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
# Model names go into URLs (/v1/models/NAME) and folder names.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_model_name(name):
    """Returns ``name`` if it is a valid model name, else raises ValueError."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"model_name {name!r} is not valid: use letters, digits, '_', '.' "
                         "and '-', starting with a letter or digit (it becomes a folder and "
                         "the NAME in /v1/models/NAME)")
    return name


def model_name_for_dataset(dataset_name):
    """The default model name of a data set: its name, made safe for folders and URLs.

    ``digits`` and TFDS names stay as they are; ``folder:PATH`` becomes the folder's
    name and ``npz:PATH`` the file's stem. Other characters become ``_``.
    """
    name = dataset_name
    if name.startswith("folder:"):
        name = os.path.basename(os.path.normpath(name[len("folder:"):]))
    elif name.startswith("npz:"):
        name = os.path.splitext(os.path.basename(name[len("npz:"):]))[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-")
    return name or DEFAULT_MODEL_NAME


def version_folders(model_base):
    """The integer version folders of ``model_base``, ascending (as TF Serving sees them)."""
    if not os.path.isdir(model_base):
        return []
    return sorted(int(d) for d in os.listdir(model_base)
                  if d.isdigit() and os.path.isdir(os.path.join(model_base, d)))


def _tmp_prefix(pid=None):
    return f".tmp-{socket.gethostname()}-{os.getpid() if pid is None else pid}-"


def remove_stale_temporaries(model_base):
    """Removes the temporary folders of exports killed midway (dead pid, this host)."""
    if not os.path.isdir(model_base):
        return
    pattern = re.compile(r"^" + re.escape(f".tmp-{socket.gethostname()}-") + r"(\d+)-")
    for name in os.listdir(model_base):
        m = pattern.match(name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # alive: an export in progress
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(model_base, name), ignore_errors=True)


def next_version(model_base):
    """1 + the largest integer version folder in ``model_base`` (1 if none)."""
    return max(version_folders(model_base), default=0) + 1


def class_name_table(class_names):
    """A lookup table class id -> class name, its names held as graph constants.

    A table read from a text file one name per line would serve every class after a
    name holding a line break under the wrong name; constants hold any text exactly.
    """
    init = tf.lookup.KeyValueTensorInitializer(
        tf.range(len(class_names), dtype=tf.int64),
        tf.constant([name.encode("utf-8") for name in class_names], tf.string))
    return tf.lookup.StaticHashTable(init, default_value="")


# Characters that end a line for str.splitlines (or that a terminal interprets):
# escaped in the class-names asset so that it holds exactly one name per line.
_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNESCAPE = re.compile(r"\\(\\|n|t|r|u[0-9a-fA-F]{4})")


def escape_class_name(name):
    r"""One line of the class-names asset: ``\\`` for a backslash, ``\n``, ``\t`` and
    ``\r`` for newline, tab and carriage return, ``\uXXXX`` for the other control
    characters and line separators; everything else (non-ASCII letters too) as it is."""
    short = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return _ESCAPE.sub(lambda m: short.get(m.group(), f"\\u{ord(m.group()):04x}"), name)


def unescape_class_name(line):
    """The inverse of ``escape_class_name``."""
    short = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
    return _UNESCAPE.sub(lambda m: short.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), line)


def read_class_names(saved_model_dir):
    """The class names of an export, in class-id order, read from its asset file."""
    path = os.path.join(saved_model_dir, "assets", CLASS_NAMES_FILE)
    with open(path, encoding="utf-8", newline="\n") as f:
        return [unescape_class_name(line) for line in f.read().split("\n")[:-1]]


def read_resize(saved_model_dir):
    """The ``resize`` of an export's ``serving_bytes`` (``stretch`` for exports written
    before it was recorded, which all stretched)."""
    path = os.path.join(saved_model_dir, "assets", PREPROCESSING_FILE)
    if not os.path.exists(path):
        return RESIZE_STRETCH
    with open(path, encoding="utf-8") as f:
        return json.load(f)["resize"]


def _shape_string(tensor):
    """The runtime shape of ``tensor`` as "d0,d1,..." (a string tensor)."""
    return tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)), separator=",")


def _check_shape(tensor, pattern, expected):
    """``tensor`` after an assertion that its runtime shape matches ``pattern``.

    The check reads the runtime shape as a string, so it holds for any rank and is
    never folded away from the signature's static shape: TF Serving feeds requests
    to the graph without checking them against the signature's shape.
    """
    shape = _shape_string(tensor)
    check = tf.debugging.Assert(tf.strings.regex_full_match(shape, pattern),
                                [tf.strings.join([expected, "; got shape [", shape, "]"])])
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _check_batch_size(tensor, name, max_batch_size):
    """``tensor`` after an assertion that its first dimension is at most ``max_batch_size``."""
    batch = tf.shape(tensor, out_type=tf.int64)[0]
    check = tf.debugging.Assert(batch <= max_batch_size, [tf.strings.join([
        f"{name} holds ", tf.strings.as_string(batch), f" examples; this model serves at "
        f"most {max_batch_size} per request (max_batch_size, set at export): split the "
        "request"])])
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def check_images(images, image_shape, dtype="uint8", max_batch_size=DEFAULT_MAX_BATCH_SIZE):
    """Inputs [B, *image_shape] with 1 <= B <= max_batch_size, or an InvalidArgumentError
    saying so."""
    dims = [str(d) for d in image_shape]
    images = _check_shape(images, "[1-9][0-9]*," + ",".join(dims),
                          f"images must be {dtype} [batch, {', '.join(dims)}] with batch >= 1")
    images = _check_batch_size(images, "images", max_batch_size)
    return tf.ensure_shape(images, [None] + list(image_shape))


def _header_ints(header, start, length, big_endian):
    """Unsigned integers of ``length`` bytes at ``start`` of each header (int64 [B])."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(header, start, length), tf.uint8), tf.int64)
    weights = [256 ** (length - 1 - i if big_endian else i) for i in range(length)]
    return tf.reduce_sum(raw * tf.constant(weights, tf.int64), axis=-1)


def image_sizes(image_bytes):
    """(width, height, header ok) of each encoded image, read from its header alone.

    PNG: the IHDR chunk (big-endian width and height at bytes 16 and 20); GIF: the
    logical screen (little-endian 16-bit, bytes 6 and 8); BMP: the info header
    (little-endian 32-bit, bytes 18 and 22; a negative height means top-down);
    JPEG: ``tf.image.extract_jpeg_shape``, which reads the markers up to the frame
    header. So a request is measured without decoding (allocating) any image.
    """
    # 32 header bytes (padded with zeros), so that short inputs read as size 0.
    header = tf.strings.join([tf.strings.substr(image_bytes, 0, 32), b"\0" * 32])
    length = tf.strings.length(image_bytes)
    png = tf.equal(tf.strings.substr(header, 0, 8), IMAGE_SIGNATURES[0])
    jpeg = tf.equal(tf.strings.substr(header, 0, 3), IMAGE_SIGNATURES[1])
    gif = tf.equal(tf.strings.substr(header, 0, 4), b"GIF8")
    bmp = tf.equal(tf.strings.substr(header, 0, 2), IMAGE_SIGNATURES[4])
    bmp_height = _header_ints(header, 22, 4, False)
    bmp_height = tf.where(bmp_height >= 2 ** 31, 2 ** 32 - bmp_height, bmp_height)

    def jpeg_size(encoded):
        shape = tf.cond(tf.strings.substr(encoded, 0, 3) == IMAGE_SIGNATURES[1],
                        lambda: tf.image.extract_jpeg_shape(encoded, tf.int64),
                        lambda: tf.zeros([3], tf.int64))
        return shape[:2]

    jpeg_hw = tf.map_fn(jpeg_size, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int64))
    width = tf.where(png, _header_ints(header, 16, 4, True),
                     tf.where(gif, _header_ints(header, 6, 2, False),
                              tf.where(bmp, _header_ints(header, 18, 4, False), jpeg_hw[:, 1])))
    height = tf.where(png, _header_ints(header, 20, 4, True),
                      tf.where(gif, _header_ints(header, 8, 2, False),
                               tf.where(bmp, bmp_height, jpeg_hw[:, 0])))
    minimum = tf.where(png, 33, tf.where(gif, 13, tf.where(bmp, 26, 0)))
    ok = (png | jpeg | gif | bmp) & (length >= minimum) & (width > 0) & (height > 0)
    return width, height, ok


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk that closes every PNG


def complete_images(image_bytes):
    """bool [B]: whether each encoded image ends as its format ends (not truncated).

    A PNG ends with its IEND chunk, a GIF with its trailer ``;``, and a BMP is at
    least as long as the file size in its header (0: not given). The decoder's own
    error does not say which image of a batch it was; this check does. JPEGs are
    left to the decoder, since valid ones may carry bytes after their end marker.
    """
    length = tf.strings.length(image_bytes)
    head = tf.strings.join([tf.strings.substr(image_bytes, 0, 8), b"\0" * 8])
    tail = tf.strings.substr(image_bytes, tf.maximum(length - len(PNG_END), 0),
                             tf.fill(tf.shape(length), len(PNG_END)))
    png = tf.equal(tf.strings.substr(head, 0, 8), IMAGE_SIGNATURES[0])
    gif = tf.equal(tf.strings.substr(head, 0, 4), b"GIF8")
    bmp = tf.equal(tf.strings.substr(head, 0, 2), IMAGE_SIGNATURES[4])
    bmp_size = _header_ints(head, 2, 4, False)
    return tf.where(png, tf.equal(tail, PNG_END),
                    tf.where(gif, tf.strings.substr(tail, tf.maximum(
                        tf.strings.length(tail) - 1, 0), tf.ones_like(length)) == b";",
                             tf.where(bmp, (bmp_size == 0) | (bmp_size <= tf.cast(
                                 length, tf.int64)), True)))


# Ends every message that names batch positions, so that no client has to guess.
POSITIONS_NOTE = "; positions count from 0"
JPEG_END = b"\xff\xd9"  # the end-of-image marker


def _positions(mask):
    return tf.strings.reduce_join(tf.strings.as_string(tf.where(mask)[:, 0]), separator=",")


def decode_each(image_bytes, decode, image_shape):
    """(uint8 [n, *image_shape], bool [B]): the images ``decode`` read, and which did.

    A decoder's error does not say which image of a batch it was, and a graph
    cannot catch an op's error -- except inside tf.data, whose ``ignore_errors``
    drops the elements whose decoding failed. Each image travels with its batch
    position, so the positions missing afterwards are exactly the images the
    decoder refused. Every image is decoded once, in batch order; the decoder's
    own reason goes to the server's log.

    Args:
      image_bytes: encoded images, string [B] with B >= 1.
      decode: encoded image (string []) -> uint8 ``image_shape``.
      image_shape: (H, W, C) of the decoded images.
    """
    batch = tf.shape(image_bytes, out_type=tf.int64)[0]
    decoded = (tf.data.Dataset.from_tensor_slices((tf.range(batch), image_bytes))
               .map(lambda position, encoded: (position, decode(encoded)))
               .ignore_errors(log_warning=True)
               .batch(tf.maximum(batch, 1)))
    # One batch, or none if every image failed: then the empty one after it. (A
    # dataset's reduce would do the same, but instantiates its function per request.)
    none = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64),
                                         tf.zeros([0] + list(image_shape), tf.uint8)))
    positions, images = decoded.concatenate(none).take(1).get_single_element()
    done = tf.scatter_nd(positions[:, None], tf.ones_like(positions, tf.int32), [batch]) > 0
    return tf.ensure_shape(images, [None] + list(image_shape)), done


def damage(image_bytes):
    """string [B]: what is wrong with each image, said for images the decoder refused.

    A JPEG that does not end with its end-of-image marker was cut short (valid ones
    may carry bytes after the marker, so this is said only once the decoder failed);
    anything else the decoder refused is damaged inside its data (a PNG chunk's
    checksum, compressed data that do not inflate, a JPEG's entropy-coded data, a
    GIF's LZW codes).
    """
    length = tf.strings.length(image_bytes)
    head = tf.strings.join([tf.strings.substr(image_bytes, 0, 8), b"\0" * 8])
    tail = tf.strings.substr(image_bytes, tf.maximum(length - len(JPEG_END), 0),
                             tf.fill(tf.shape(length), len(JPEG_END)))
    png = tf.equal(tf.strings.substr(head, 0, 8), IMAGE_SIGNATURES[0])
    jpeg = tf.equal(tf.strings.substr(head, 0, 3), IMAGE_SIGNATURES[1])
    gif = tf.equal(tf.strings.substr(head, 0, 4), b"GIF8")
    fmt = tf.where(png, "PNG", tf.where(jpeg, "JPEG", tf.where(gif, "GIF", "BMP")))
    return tf.where(jpeg & tf.not_equal(tail, JPEG_END),
                    "JPEG cut short, no end-of-image marker at its end",
                    tf.strings.join([fmt, " data damaged"]))


def convert_channels(image, channels):
    """uint8 [h, w, n] -> [h, w, channels], for n in 1..4 (grey, grey + alpha, RGB, RGBA).

    Grey from colour is the ITU-R 601-2 luma (as ``tf.image.rgb_to_grayscale``),
    rounded; a grey image stays exactly as it is, also when stored as RGB (GIF, BMP).
    Colour from grey repeats the grey; a missing alpha channel is opaque.
    """
    def grey(n):
        if n <= 2:
            return image[..., :1]
        luma = tf.tensordot(tf.cast(image[..., :3], tf.float32), [0.2989, 0.5870, 0.1140], 1)
        return tf.cast(tf.clip_by_value(tf.round(luma), 0.0, 255.0), tf.uint8)[..., None]

    def rgb(n):
        return tf.tile(image[..., :1], [1, 1, 3]) if n <= 2 else image[..., :3]

    def rgba(n):
        alpha = image[..., n - 1:n] if n in (2, 4) else \
            tf.fill(tf.shape(image[..., :1]), tf.constant(255, tf.uint8))
        return tf.concat([rgb(n), alpha], axis=-1)

    make = {1: grey, 3: rgb, 4: rgba}[channels]
    branches = [lambda n=n: tf.ensure_shape(make(n), [None, None, channels]) for n in (1, 2, 3, 4)]
    return tf.switch_case(tf.shape(image)[-1] - 1, branches)


def decode_images(image_bytes, image_shape, max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                  max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, resize=RESIZE_STRETCH):
    """Encoded images (string [B]) -> uint8 [B, H, W, C], resized inside the graph.

    Each image is decoded as stored, converted to ``C`` channels
    (``convert_channels``) and brought to H x W as ``resize`` says (bilinear with
    antialiasing, then rounded to uint8, as ``augment.resize_uint8``):
    ``stretch`` resizes an image whose size is not H x W to H x W (the aspect
    ratio is not kept); ``central_crop`` (square H x W only) resizes every image's
    shorter side to round(H * 256 / 224) and takes the central H x W crop, the
    evaluation view of streamed data (``augment.eval_central_crop``).

    Before any image is decoded, the request is refused with an
    InvalidArgumentError if it holds more than ``max_batch_size`` images, if bytes
    are not a PNG, JPEG, GIF or BMP image, if a PNG, GIF or BMP is truncated
    (``complete_images``), or if an image's header declares more than
    ``max_image_pixels`` pixels -- each naming the batch positions (from 0). An
    image the decoder refuses midway (a JPEG cut short, damaged entropy-coded or
    PNG data) is named by its position too, with what is wrong (``decode_each``,
    ``damage``), and no result is returned for the batch.

    Damage the decoder reads through is served as decoded. libjpeg (like image
    viewers) decodes a JPEG whose entropy-coded data stop early at a marker -- say
    a file cut short and closed again with an end-of-image marker -- with the
    missing blocks grey (128), and only warns "Corrupt JPEG data: premature end of
    data segment" in the server's log: TF's JPEG decoder has no strict mode (its
    defaults ``try_recover_truncated=False``, ``acceptable_fraction=1`` refuse only
    data that run out before the last row). Entropy-coded data changed into other
    valid codes decode to other pixels, which no decoder can tell.
    """
    h, w, c = image_shape
    _check_resize(resize, image_shape)
    image_bytes = _check_shape(image_bytes, r"[1-9][0-9]*",
                               "image_bytes must be a string vector [batch] of encoded "
                               "PNG/JPEG/GIF/BMP images with batch >= 1")
    image_bytes = _check_batch_size(image_bytes, "image_bytes", max_batch_size)
    image_bytes = tf.ensure_shape(image_bytes, [None])
    known = tf.zeros_like(image_bytes, dtype=tf.bool)
    for magic in IMAGE_SIGNATURES:
        known |= tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)
    check = tf.debugging.Assert(tf.reduce_all(known), [tf.strings.join([
        "image_bytes[", _positions(~known), "] not decodable: expected encoded PNG, JPEG, GIF "
        "or BMP images" + POSITIONS_NOTE])])
    with tf.control_dependencies([check]):
        width, height, ok = image_sizes(image_bytes)
    check = tf.debugging.Assert(tf.reduce_all(ok), [tf.strings.join([
        "image_bytes[", _positions(~ok), "] not decodable: the image header is truncated or "
        "declares no pixels" + POSITIONS_NOTE])])
    with tf.control_dependencies([check]):
        pixels = width * height
        complete = complete_images(image_bytes)
    check = tf.debugging.Assert(tf.reduce_all(complete), [tf.strings.join([
        "image_bytes[", _positions(~complete), "] not decodable: the image data are truncated "
        "(or go on after the end marker of the format)" + POSITIONS_NOTE])])
    with tf.control_dependencies([check]):
        pixels = tf.identity(pixels)
    big = pixels > max_image_pixels
    check = tf.debugging.Assert(~tf.reduce_any(big), [tf.strings.join([
        "image_bytes[", _positions(big), "] too large: ",
        tf.strings.as_string(tf.boolean_mask(width, big)[:1]), "x",
        tf.strings.as_string(tf.boolean_mask(height, big)[:1]),
        f" pixels, over the limit of {max_image_pixels} pixels per image "
        "(max_image_pixels, set at export)" + POSITIONS_NOTE])])

    def decode(encoded):
        image = tf.io.decode_image(encoded, channels=0, dtype=tf.uint8, expand_animations=False)
        return augment.fit_image(convert_channels(image, c), h, w, resize)

    with tf.control_dependencies([check]):
        image_bytes = tf.identity(image_bytes)
    images, done = decode_each(image_bytes, decode, (h, w, c))
    failed = ~done
    reasons = tf.strings.join([tf.strings.as_string(tf.where(failed)[:, 0]), ": ",
                               tf.boolean_mask(damage(image_bytes), failed)])
    check = tf.debugging.Assert(tf.reduce_all(done), [tf.strings.join([
        "image_bytes[", _positions(failed), "] not decodable: the decoder failed inside the "
        "image data (", tf.strings.reduce_join(reasons, separator="; "), ")" + POSITIONS_NOTE])])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _check_resize(resize, image_shape):
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    if resize == RESIZE_CENTRAL_CROP and image_shape[0] != image_shape[1]:
        raise ValueError(f"resize={RESIZE_CENTRAL_CROP} takes square crops: the images are "
                         f"{image_shape[0]} x {image_shape[1]}")


def serving_fns(method, state, normalization, image_shape, names, top_k, input_dtype="uint8",
                max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
                resize=RESIZE_STRETCH):
    """The signature functions: {signature name: tf.function with an input signature}."""

    def predict(images):
        probs = tf.cast(method.predict(state, normalize(images, normalization)), tf.float32)
        classes = tf.argmax(probs, axis=-1)
        top = tf.math.top_k(probs, k=top_k)
        top_classes = tf.cast(top.indices, tf.int64)
        return {"probabilities": probs, "classes": classes,
                "class_names": names.lookup(classes),
                "top_k_classes": top_classes, "top_k_probabilities": top.values,
                "top_k_class_names": names.lookup(top_classes)}

    @tf.function(input_signature=[tf.TensorSpec([None] + list(image_shape), input_dtype,
                                                 name=IMAGES_INPUT)])
    def serve_images(images):
        return predict(check_images(images, image_shape, input_dtype, max_batch_size))

    fns = {IMAGES_SIGNATURE: serve_images}
    if is_image(image_shape, input_dtype):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])
        def serve_bytes(image_bytes):
            return predict(decode_images(image_bytes, image_shape, max_batch_size,
                                         max_image_pixels, resize))
        fns[BYTES_SIGNATURE] = serve_bytes
    return fns


def is_image(image_shape, input_dtype):
    """Whether inputs are images that can also arrive encoded (uint8, 1-4 channels)."""
    return (len(image_shape) == 3 and image_shape[-1] in ENCODED_CHANNELS
            and np.dtype(input_dtype) == np.uint8)


def encode_images(images, fmt="png"):
    """uint8 images [B, H, W, C] -> list of encoded bytes (``png`` or ``jpeg``)."""
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    return [encode(tf.constant(image)).numpy() for image in np.asarray(images, np.uint8)]


def warmup_requests(model_name, image_shape, sample_images=None, input_dtype="uint8"):
    """PredictRequests that exercise each signature: a zero image and real samples.

    Args:
      model_name: the served model's name (``model_spec.name``).
      image_shape: (H, W, C) of the model's input.
      sample_images: optional uint8 images [N, H, W, C] (e.g. test images); the
        first ``WARMUP_SAMPLES`` are used, sent raw and as PNG (and JPEG, for 1 or
        3 channels).

    Returns:
      A list of ``predict_pb2.PredictRequest``.
    """
    zeros = np.zeros((1,) + tuple(image_shape), input_dtype)
    batches = [zeros]
    if sample_images is not None and len(sample_images):
        batches.append(np.asarray(sample_images[:WARMUP_SAMPLES], input_dtype))
    requests = []

    def add(signature, key, value):
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        requests.append(request)

    for batch in batches:
        add(IMAGES_SIGNATURE, IMAGES_INPUT, batch)
    if is_image(image_shape, input_dtype):
        formats = ["png"] + (["jpeg"] if image_shape[-1] in (1, 3) else [])
        for fmt in formats:
            add(BYTES_SIGNATURE, BYTES_INPUT,
                np.array(encode_images(batches[-1], fmt), dtype=object))
    return requests


def write_warmup_file(saved_model_dir, requests):
    """Writes ``assets.extra/tf_serving_warmup_requests``: one PredictionLog per request."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_models_config(path):
    """The ModelServerConfig in text-proto file ``path`` (an empty one if it is missing)."""
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            try:
                text_format.Parse(f.read(), config)
            except text_format.ParseError as e:
                raise ValueError(f"{path} is not a TF Serving model config text proto ({e}); "
                                 "fix or delete it") from None
    return config


def served_models(export_base):
    """Names of the folders of ``export_base`` holding at least one version."""
    if not os.path.isdir(export_base):
        return []
    return sorted(name for name in os.listdir(export_base)
                  if not name.startswith(".") and version_folders(os.path.join(export_base, name)))


def _check_serve_versions(serve_versions):
    if serve_versions not in SERVE_VERSIONS:
        raise ValueError(f"serve_versions {serve_versions!r} is not valid; valid: "
                         f"{', '.join(SERVE_VERSIONS)}")


def write_models_config(export_base, serving_base_path=None, serve_versions="latest"):
    """Writes (atomically) ``<export_base>/models.config`` for ``--model_config_file``.

    Entries already in the file are kept as they are (hand edits survive); every
    model folder under ``export_base`` without an entry is added.

    Args:
      export_base: the folder holding ``<model_name>/<version>/`` folders.
      serving_base_path: where the server sees ``export_base`` (e.g. ``/models``
        inside the tensorflow/serving container); default: its absolute path here.
      serve_versions: version policy of added entries: ``latest`` (the newest
        version) or ``all`` (every version, each addressable as /versions/V).

    Returns:
      The path of the config file.
    """
    _check_serve_versions(serve_versions)
    path = os.path.join(export_base, MODELS_CONFIG_FILE)
    config = read_models_config(path)
    listed = {c.name for c in config.model_config_list.config}
    root = serving_base_path or os.path.abspath(export_base)
    for name in served_models(export_base):
        if name in listed:
            continue
        entry = config.model_config_list.config.add(
            name=name, base_path=f"{root.rstrip('/')}/{name}", model_platform="tensorflow")
        if serve_versions == "all":
            entry.model_version_policy.all.SetInParent()
        else:
            entry.model_version_policy.latest.num_versions = 1
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(config))
    os.replace(tmp, path)
    return path


def export_saved_model(method, state, normalization, image_shape, class_names, export_base,
                       model_name=DEFAULT_MODEL_NAME, top_k=None, sample_images=None,
                       serving_base_path=None, serve_versions="latest", input_dtype="uint8",
                       max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                       max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, resize=RESIZE_STRETCH):
    """Exports the method's predictor as a new version of ``model_name``.

    Args:
      method: the trained Method (its ``predict`` is what is served).
      state: the method's state (networks).
      normalization: the run's ``Normalization``.
      image_shape: (H, W, C) of the training images.
      class_names: class names in class-id order.
      export_base: the folder of models; the version goes into
        ``<export_base>/<model_name>/<version>/``.
      model_name: the served model's name (letters, digits, ``_.-``).
      top_k: number of top classes returned; default min(5, number of classes).
      sample_images: optional uint8 images [N, H, W, C] for the warm-up requests.
      serving_base_path: where the server sees ``export_base``, for models.config.
      serve_versions: ``latest`` or ``all``, the version policy of a model newly
        added to models.config.
      input_dtype: ``uint8`` for images, ``float32`` for tabular features.
      max_batch_size: the most examples (or encoded images) one request may hold.
      max_image_pixels: the most pixels (width x height, read from the header) an
        encoded image may declare; larger ones are refused before decoding.
      resize: how ``serving_bytes`` brings an encoded image to H x W, as the run's
        evaluation did: ``stretch`` (in-memory data) or ``central_crop`` (streamed
        data); recorded in ``assets/preprocessing.json``.

    Returns:
      The new version folder.
    """
    check_model_name(model_name)
    num_classes = len(class_names)
    top_k = min(DEFAULT_TOP_K, num_classes) if top_k is None else top_k
    if not 1 <= top_k <= num_classes:
        raise ValueError(f"top_k must be in [1, {num_classes}] (the number of classes), "
                         f"got {top_k}")
    _check_serve_versions(serve_versions)
    if is_image(tuple(image_shape), input_dtype):
        _check_resize(resize, image_shape)
    for name, value in (("max_batch_size", max_batch_size),
                        ("max_image_pixels", max_image_pixels)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    # A broken models.config is refused before any work, not after the export.
    read_models_config(os.path.join(export_base, MODELS_CONFIG_FILE))
    model_base = os.path.join(export_base, model_name)
    os.makedirs(model_base, exist_ok=True)
    remove_stale_temporaries(model_base)
    tmp = os.path.join(model_base, _tmp_prefix() + uuid.uuid4().hex)
    try:
        # The endpoints track the variables they read (only the predictor's networks).
        archive = keras.export.ExportArchive()
        names = class_name_table(class_names)
        archive.track(names)
        for name, fn in serving_fns(method, state, normalization, tuple(image_shape), names,
                                    top_k, input_dtype, int(max_batch_size),
                                    int(max_image_pixels), resize).items():
            archive.add_endpoint(name, fn)
        archive.write_out(tmp, verbose=False)
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)
        with open(os.path.join(tmp, "assets", CLASS_NAMES_FILE), "w", encoding="utf-8",
                  newline="\n") as f:
            f.write("".join(f"{escape_class_name(name)}\n" for name in class_names))
        if is_image(tuple(image_shape), input_dtype):
            with open(os.path.join(tmp, "assets", PREPROCESSING_FILE), "w",
                      encoding="utf-8") as f:
                json.dump({"resize": resize, "eval_resize_ratio": EVAL_RESIZE_RATIO}
                          if resize == RESIZE_CENTRAL_CROP else {"resize": resize}, f)
        write_warmup_file(tmp, warmup_requests(model_name, tuple(image_shape), sample_images,
                                               input_dtype))
        while True:
            final = os.path.join(model_base, str(next_version(model_base)))
            try:
                os.rename(tmp, final)
                break
            except OSError:
                # Another export took this version first: take the next one.
                if not os.path.exists(final):
                    raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    write_models_config(export_base, serving_base_path, serve_versions)
    return final


def export_run(method, state, normalization, data, export_base, model_name=None, **options):
    """``export_saved_model`` of a trained run on ``data`` (an ``ImageData`` or a
    ``StreamedData``): named after the data set unless ``model_name`` is given,
    with test images as warm-up requests, served as the run was evaluated
    (``data.resize``: central crops of images of any size where the data set's
    images differ in size). ``options`` go to
    ``export_saved_model`` (``top_k``, ``serving_base_path``, ``serve_versions``,
    ``max_batch_size``, ``max_image_pixels``)."""
    method.prepare_predict(state)
    return export_saved_model(
        method, state, normalization, data.image_shape, data.class_names, export_base,
        model_name=model_name or model_name_for_dataset(data.name),
        sample_images=data.test_images,
        input_dtype=data.input_dtype,
        resize=data.resize, **options)
