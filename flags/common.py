"""Flags of mixmatch-train (scripts/train.py), and their translation into configs.

Run flags are defined here by hand. Method flags are generated from the fields
of every registered method's ``Config`` dataclass, so a method's hyperparameters
are declared once, in its own file. A method flag defaults to None ("the
method's default for this data set"); setting one that the chosen method does
not have is an error, as is any invalid value -- always before any work starts.
"""
import dataclasses
import os
import typing

from absl import app, flags

from mixmatch_tf.data import dataset_names, tfds
from mixmatch_tf.methods import ConfigError, get_method, method_names
from mixmatch_tf.models import model_names
from mixmatch_tf.training import strategy as strategy_lib

FLAGS = flags.FLAGS
# Logical CPU devices --cpu_replicas may split one process into (1000 aborted natively).
MAX_CPU_REPLICAS = 64
def define_run_flags():
    flags.DEFINE_string("method", "mixup", f"Method: {', '.join(method_names())}.")
    flags.DEFINE_string("dataset", "digits",
                        f"Data set: {', '.join(dataset_names())}.")
    flags.DEFINE_string("data_dir", None, "TFDS data folder (for TFDS data sets).")
    flags.DEFINE_enum("stream", "auto", ["auto", "true", "false"],
                      "folder: and TFDS image data: true reads the images from their files as "
                      "training consumes them, false reads them all into memory first, auto "
                      "streams when the images differ in size or, decoded, would take more "
                      "than a quarter of the machine's memory (imagenet2012 is always "
                      "streamed). Either way the network gets the same images, augmented alike.")
    flags.DEFINE_integer("image_size", None, "Side of the square inputs of streamed images of "
                         "several sizes (default 224, ImageNet's); given, every streamed image "
                         "is brought to it (central crops to evaluate).")
    flags.DEFINE_enum("augmentation", "auto", ["auto", "pad_crop", "pad_crop_flip",
                                               "resized_crop_flip", "none"],
                      "How training images are cropped and flipped. auto: the data set's own "
                      "(pad_crop: digits, SVHN, npz:; pad_crop_flip: CIFAR, STL-10, folders of "
                      "images of one size; resized_crop_flip: images of several sizes, "
                      "ImageNet; none: feature vectors). pad_crop pads H/8 on each side (as "
                      "the method's official code pads) and crops back at random; _flip adds "
                      "random horizontal flips; resized_crop_flip takes a random 8-100% crop "
                      "resized to the input size.")
    flags.DEFINE_string("model_dir", None, "Run folder (resumed if it holds a run). "
                        "Default: runs/<method>-<dataset>-seed<seed>.")
    flags.DEFINE_integer("seed", 0, "Run seed.")
    flags.DEFINE_enum("noise_type", None, ["sym", "asym"], "Synthetic label noise.")
    flags.DEFINE_float("noise_rate", 0.0, "Label noise rate r in [0, 1].")
    flags.DEFINE_string("noise_mapping", None, "Asymmetric noise's class mapping, FROM:TO "
                        "pairs of class ids or names, e.g. 0:6,6:0,2:4 (default: the data "
                        "set's own; cifar10, cifar100 and digits have one).")
    flags.DEFINE_string("label_set", None, "Train on another label set of the data set "
                        "(CIFAR-N: aggre_label, worse_label, random_label1..3, noise_label).")
    flags.DEFINE_enum("normalization", "per_channel", ["per_channel", "symmetric"],
                      "Pixel normalisation: training-set mean/std, or [-1, 1].")
    flags.DEFINE_integer("steps_per_call", 50, "Train steps per tf.function call.")
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.")
    flags.DEFINE_integer("eval_batch_size", 500, "Global batch size of evaluation.")
    flags.DEFINE_enum("strategy", "auto", list(strategy_lib.STRATEGIES),
                      "auto/mirrored: MirroredStrategy over the GPUs (one CPU device "
                      "without GPU); multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG.")
    flags.DEFINE_integer("cpu_replicas", 0, "Without GPUs: mirror over this many logical CPU "
                         "devices (to try multi-replica training).")
    flags.DEFINE_bool("sync_bn", False, "Synchronise batch norm across replicas.")
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                      "Keras dtype policy of the run's networks; mixed_float16 adds loss "
                      "scaling. auto: mixed_float16 on GPUs with tensor cores, mixed_bfloat16 "
                      "on CPUs with bf16 instructions (avx512_bf16, amx_bf16) where a short "
                      "probe finds bf16 not slower, else float32; a resumed run keeps its own. "
                      "float32 gives the same numbers on every CPU.")
    flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
    flags.DEFINE_string("export_dir", None, "Export a SavedModel here at the end "
                        "(a new integer version folder).")
    flags.DEFINE_integer("stop_at_step", None, "Stop (checkpointed) at this global step; run "
                         "the same command again to continue.")


def _base_type(annotation):
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def method_fields():
    """name -> (type, {method: (help, default)}) over all registered methods.

    Each method's help and default come from its own Config: a field a subclass
    redeclares (``learning_rate`` of Adam or of SGD) has that class's help. Every
    field must be declared with ``settings.setting(default, help)``; one without
    help (a bare default, even one redeclaring a documented field) is refused here,
    so no flag goes undocumented.
    """
    out = {}
    for name in method_names():
        cfg = get_method(name).Config
        hints = typing.get_type_hints(cfg)
        for f in dataclasses.fields(cfg):
            typ = _base_type(hints[f.name])
            entry = out.setdefault(f.name, [typ, {}])
            if entry[0] is not typ:
                raise TypeError(f"config field {f.name!r} has type {typ} in {name} but "
                                f"{entry[0]} elsewhere")
            help_text = f.metadata.get("help", "").strip()
            if not help_text:
                raise TypeError(f"config field {f.name!r} of method {name!r} has no help: "
                                f"declare it as setting(default, help)")
            entry[1][name] = (help_text, f.default)
            if f.metadata.get("words"):
                entry.append(f.metadata["words"])
    return out


class _NumberOrWords(flags.ArgumentParser):
    """An integer flag that also takes the setting's words (``--num_labeled=all``)."""
    syntactic_help = "an integer or a word"

    def __init__(self, words):
        self.words = tuple(words)
        self.syntactic_help = f"an integer or {' / '.join(self.words)}"

    def parse(self, argument):
        if isinstance(argument, int) or argument in self.words:
            return argument
        try:
            return int(argument)
        except ValueError:
            raise ValueError(f"must be an integer or {' or '.join(self.words)}, "
                             f"got {argument!r}") from None

    def flag_type(self):
        return "int or word"


def flag_help(per_method):
    """The help of a method flag: each method's own help and default, methods that
    share both grouped."""
    groups = {}
    for method, (help_text, default) in sorted(per_method.items()):
        groups.setdefault((help_text, repr(default)), []).append(method)
    return "; ".join(f"{', '.join(methods)}: {help_text} [default {default}]"
                     for (help_text, default), methods in groups.items())


def define_method_flags():
    for field, (typ, per_method, *words) in sorted(method_fields().items()):
        text = flag_help(per_method)
        if words:
            flags.DEFINE(_NumberOrWords(words[0]), field, None, text)
        elif typ is bool:
            flags.DEFINE_bool(field, None, text)
        elif typ is int:
            flags.DEFINE_integer(field, None, text)
        elif typ is float:
            flags.DEFINE_float(field, None, text)
        elif typ is str:
            flags.DEFINE_string(field, None, text)
        elif typ is tuple:
            flags.DEFINE_list(field, None, text + " (comma-separated)")
        else:
            raise TypeError(f"config field {field!r}: unsupported type {typ}")


def define_train_flags():
    define_run_flags()
    define_method_flags()


def usage_error(flag, message):
    value = getattr(FLAGS, flag, None) if flag in FLAGS else None
    shown = f"={value}" if value is not None else ""
    raise app.UsageError(f"Invalid flag --{flag}{shown}: {message}")


def method_overrides():
    """Method flags set by the user, converted to config values; checks they apply."""
    method = get_method(FLAGS.method)
    fields = {f.name: f for f in dataclasses.fields(method.Config)}
    hints = typing.get_type_hints(method.Config)
    out = {}
    for name, (typ, per_method, *_) in method_fields().items():
        value = FLAGS[name].value
        if value is None:
            continue
        if name not in fields:
            usage_error(name, f"does not apply to method {FLAGS.method!r} (it applies to: "
                        f"{', '.join(sorted(per_method))})")
        if _base_type(hints[name]) is tuple:
            try:
                value = tuple(float(v) for v in value)
            except ValueError:
                usage_error(name, "must be a comma-separated list of numbers")
        out[name] = value
    return out


def validate_names():
    """Checks method, dataset and model names and the file-based data sets."""
    if FLAGS.method not in method_names():
        usage_error("method", f"unknown method; valid: {', '.join(method_names())}")
    ds = FLAGS.dataset
    from mixmatch_tf.data.arrays import SKLEARN_TABULAR
    if ds not in ("digits",) + SKLEARN_TABULAR and not ds.startswith(
            ("folder:", "npz:", "csv:")) and not tfds.is_tfds_name(ds):
        usage_error("dataset", f"unknown dataset; valid: {', '.join(dataset_names())}")
    if ds.startswith("folder:") and not os.path.isdir(ds[len("folder:"):]):
        usage_error("dataset", f"folder {ds[len('folder:'):]!r} does not exist")
    for prefix in ("npz:", "csv:"):
        if ds.startswith(prefix) and not os.path.isfile(ds[len(prefix):]):
            usage_error("dataset", f"file {ds[len(prefix):]!r} does not exist")
    model = FLAGS["model"].value if "model" in FLAGS else None
    if model is not None and model not in model_names():
        usage_error("model", f"unknown model; valid: {', '.join(model_names())}")
    if not 0 <= FLAGS.cpu_replicas <= MAX_CPU_REPLICAS:
        usage_error("cpu_replicas", f"must be in [0, {MAX_CPU_REPLICAS}] (logical CPU devices "
                    "of one process; each is a thread pool)")
    if FLAGS.image_size is not None and FLAGS.image_size < 1:
        usage_error("image_size", "must be >= 1")


def resolve(dataset_name):
    """(method class, Config, RunConfig) from the flags, or a UsageError naming the flag."""
    from mixmatch_tf.methods import resolve_config
    from mixmatch_tf.training import RunConfig
    method = get_method(FLAGS.method)
    try:
        config = resolve_config(method, dataset_name, method_overrides())
        model_dir = FLAGS.model_dir or os.path.join(
            "runs", f"{FLAGS.method}-{dataset_name.replace(':', '_').replace('/', '_')}"
                    f"-seed{FLAGS.seed}")
        run = RunConfig(model_dir=model_dir, seed=FLAGS.seed, noise_type=FLAGS.noise_type,
                        noise_rate=FLAGS.noise_rate, noise_mapping=FLAGS.noise_mapping,
                        label_set=FLAGS.label_set,
                        normalization=FLAGS.normalization, steps_per_call=FLAGS.steps_per_call,
                        checkpoint_every=FLAGS.checkpoint_every,
                        keep_checkpoints=FLAGS.keep_checkpoints,
                        eval_batch_size=FLAGS.eval_batch_size, sync_bn=FLAGS.sync_bn,
                        precision=FLAGS.precision,
                        jit_compile=FLAGS.jit_compile, export_dir=FLAGS.export_dir,
                        stop_at_step=FLAGS.stop_at_step)
    except ConfigError as e:
        usage_error(e.field, e.message)
    return method, config, run
