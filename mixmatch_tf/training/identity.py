"""What run.json says a run is, and the one migration of older run.json files.

A resume must train what the folder holds: run.json records the settings that
define the run (``IDENTITY_KEYS``), compared on every start. Its ``format`` says
which keys it holds; ``migrate`` is the one place that reads an older run.json as
the current format (keys and method settings added since get the value older runs
behaved as), or refuses it in one line naming the file.
"""
import dataclasses
import hashlib
import json

import numpy as np

from mixmatch_tf.data import noise as noise_lib
from mixmatch_tf.data import run_labels
from mixmatch_tf.methods.base import get_method
from mixmatch_tf.settings import ConfigError
from mixmatch_tf.training.folder import RunFolderError, to_json

# run.json's format: 3 writes every identity key below and "format"; a run.json
# without "format" was written by an older version, which wrote at least
# LEGACY_REQUIRED (the keys of the first version; later ones are compared where present).
RUN_FORMAT = 3
# The keys each format added, with the value runs of older formats behaved as: an
# older run.json is read as if it held them (``migrate``).
ADDED_IN_FORMAT = {2: {"precision": "float32"},  # before --precision, every run was float32
                   3: {"noise_mapping": None}}
# Method settings added after runs were trained without them, where those runs did not
# behave as the new default: an older run's config is read with these values
# (``migrate``); any other setting it lacks reads as the setting's default.
CONFIG_BEHAVED_AS = {
    # Runs before the EMA warm-up evaluated an EMA of constant decay.
    "ema_warmup": False,
}
LEGACY_REQUIRED = ("method", "config", "dataset", "seed", "noise_type", "noise_rate",
                   "label_set", "normalization_kind", "sync_bn", "image_shape", "num_classes",
                   "class_names", "normalization")
# Run settings that define what is trained; a resume must not change them.
IDENTITY_KEYS = ("method", "config", "dataset", "seed", "noise_type", "noise_rate",
                 "noise_mapping", "label_set", "normalization_kind", "sync_bn", "precision",
                 "num_classes", "class_names", "image_shape", "labels_fingerprint",
                 "files_fingerprint", "augmentation")
# The flag a user changes to fix a difference in each identity key.
_FLAG_OF = {"normalization_kind": "normalization", "num_classes": "dataset",
            "class_names": "dataset", "image_shape": "dataset", "labels_fingerprint": "dataset",
            "files_fingerprint": "dataset"}


def labels_fingerprint(labels):
    """A cheap fingerprint of a label array: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest()[:16]


def _jsonable(obj):
    """``obj`` as it reads back from JSON (tuples become lists, NumPy scalars numbers)."""
    return json.loads(json.dumps(obj, default=to_json))


def identity_difference(saved, settings):
    """(name, flag, saved value, new value) of the first identity difference, or None.

    ``saved``: run.json as read by ``migrate`` (its config complete). Keys missing
    from it (run folders of older versions) are not compared.
    """
    settings = _jsonable(settings)
    for key in IDENTITY_KEYS:
        if key not in saved:
            continue
        old, new = saved[key], settings.get(key)
        if key == "config":
            for field in sorted(set(old) | set(new)):
                if old.get(field) != new.get(field):
                    return f"config.{field}", field, old.get(field), new.get(field)
        elif old != new:
            return key, _FLAG_OF.get(key, key), old, new
    return None


def run_settings(method_name, config, data, run, data_dir):
    """The run.json settings of a run (before its normalisation is known)."""
    return {
        "format": RUN_FORMAT, "method": method_name, "config": config.to_dict(),
        "dataset": data.name, "seed": run.seed, "noise_type": run.noise_type,
        "noise_rate": run.noise_rate, "label_set": run.label_set,
        "noise_mapping": (noise_lib.format_mapping(run_labels.noise_mapping(run, data))
                          if run.noise_mapping else None),
        "normalization_kind": run.normalization, "sync_bn": run.sync_bn,
        "precision": run.precision, "data_dir": data_dir,
        "image_shape": list(data.image_shape), "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        # A TFDS stream reads its labels with its examples, never all at once.
        "labels_fingerprint": (labels_fingerprint(data.train_labels)
                               if data.train_labels is not None else None),
        # What a streamed data set reads (its sorted file list): a resume reads
        # the same files at the same positions of the stream.
        "files_fingerprint": data.fingerprint(),
        # How the training images are cropped and flipped (augment.POLICIES).
        "augmentation": data.augmentation,
        "data_options": data.options(),
    }


def migrate(saved, path, fix):
    """``saved`` (run.json's content, not None) as the current format, or a
    RunFolderError naming ``path``: not a run's settings, or lacking a key its
    format always holds (``fix``: what the user can do)."""
    if not isinstance(saved, dict):
        raise RunFolderError(f"{path} holds a {type(saved).__name__}, not a run's settings "
                             f"(a JSON object); {fix}")
    if "format" in saved:
        later = {k for fmt, added in ADDED_IN_FORMAT.items()
                 if not isinstance(saved["format"], int) or saved["format"] < fmt
                 for k in added}
        required = tuple(k for k in IDENTITY_KEYS + ("normalization",) if k not in later)
    else:
        required = LEGACY_REQUIRED
    missing = [k for k in required if k not in saved]
    if missing or not isinstance(saved.get("config"), dict):
        what = (f"lacks {', '.join(repr(k) for k in missing)}" if missing
                else "has no config object")
        raise RunFolderError(f"{path} {what}, which every run.json of its format holds; {fix}")
    saved = dict(saved)
    for fmt, added in sorted(ADDED_IN_FORMAT.items()):
        if saved.get("format", 0) < fmt:
            saved = dict(added, **saved)
    if "augmentation" not in saved and saved.get("dataset", "").startswith("folder:") \
            and saved.get("data_options", {}).get("stream") == "false":
        # A folder read into memory trained without flips before the policy was named.
        saved["augmentation"] = "pad_crop"
    saved["config"] = _complete_config(saved, path, fix)
    return saved


def _complete_config(saved, path, fix):
    """The saved config with every setting of its method: those it lacks (added since)
    as the run behaved (``CONFIG_BEHAVED_AS``, else the default); a key that is no
    setting of the method is refused."""
    try:
        fields = dataclasses.fields(get_method(saved["method"]).Config)
    except ValueError as e:
        raise RunFolderError(f"{path}: {e}; {fix}") from None
    names = {f.name for f in fields}
    unknown = sorted(set(saved["config"]) - names)
    if unknown:
        raise RunFolderError(f"{path}: config holds {', '.join(repr(k) for k in unknown)}, not "
                             f"a setting of method {saved['method']!r}; {fix}")
    behaved = {f.name: _jsonable(CONFIG_BEHAVED_AS.get(f.name, f.default)) for f in fields}
    return dict(behaved, **saved["config"])


def check_identity(saved, settings, model_dir):
    """Refuses a resume whose settings differ from the run's, naming the field."""
    diff = identity_difference(saved, settings)
    if diff:
        name, flag, old, new = diff
        raise ConfigError(flag, f"{model_dir} holds a run with {name}={old!r}, not {new!r}; "
                          "use a new --model_dir or the original settings to resume it")
