"""SavedModels that TF Serving loads as they are.

``export_saved_model`` writes ``<export_base>/<version>/`` with integer versions
that only grow. The folder is written under a temporary name and renamed into
place, so a reader (or TF Serving polling the base folder) sees either the whole
export or nothing.

The ``serving_default`` signature takes uint8 images [None, H, W, C], applies the
training normalisation, calls the method's ``predict`` (EMA weights, ensembles:
whatever the method serves) and returns ``probabilities``, ``classes`` and
``class_names`` (from the asset ``class_names.txt``).
"""
import os
import shutil
import uuid

import keras
import tensorflow as tf

from mixmatch_tf.data.preprocess import normalize

CLASS_NAMES_FILE = "class_names.txt"


def next_version(export_base):
    """1 + the largest integer version folder in ``export_base`` (1 if none)."""
    if not os.path.isdir(export_base):
        return 1
    versions = [int(d) for d in os.listdir(export_base) if d.isdigit()]
    return max(versions, default=0) + 1


def class_name_table(names_file):
    """A lookup table class id -> class name read from a text file (one per line).

    Tracked by the export, it carries the file into the SavedModel's assets.
    """
    init = tf.lookup.TextFileInitializer(
        names_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
        tf.string, tf.lookup.TextFileIndex.WHOLE_LINE)
    return tf.lookup.StaticHashTable(init, default_value="")


def serving_fn(method, state, normalization, image_shape, names=None):
    """The uint8 -> {probabilities, classes[, class_names]} function of ``serving_default``."""
    shape = [None] + list(image_shape)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
    def serve(images):
        # The signature's shape is not enforced on requests that reach the graph
        # directly (TF Serving, saved_model_cli): check it here, as an error.
        images = tf.ensure_shape(images, shape)
        probs = method.predict(state, normalize(images, normalization))
        classes = tf.argmax(probs, axis=-1)
        out = {"probabilities": tf.cast(probs, tf.float32), "classes": classes}
        if names is not None:
            out["class_names"] = names.lookup(classes)
        return out
    return serve


def export_saved_model(method, state, normalization, image_shape, class_names, export_base):
    """Exports the method's predictor; returns the new version folder.

    The class names travel as the asset ``assets/class_names.txt``, one per line
    in class-id order.
    """
    os.makedirs(export_base, exist_ok=True)
    tmp = os.path.join(export_base, f".tmp-{uuid.uuid4().hex}")
    staging = tmp + "-assets"
    try:
        os.makedirs(staging)
        names_file = os.path.join(staging, CLASS_NAMES_FILE)
        with open(names_file, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))
        # The endpoint tracks the variables it reads (only the predictor's networks).
        archive = keras.export.ExportArchive()
        names = class_name_table(names_file)
        archive.track(names)
        archive.add_endpoint("serving_default",
                             serving_fn(method, state, normalization, image_shape, names))
        archive.write_out(tmp, verbose=False)
        while True:
            final = os.path.join(export_base, str(next_version(export_base)))
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if not os.path.exists(final):
                    raise
    finally:
        for path in (tmp, staging):
            if os.path.exists(path):
                shutil.rmtree(path, ignore_errors=True)
