"""Settings: how a config declares, checks and resolves its values.

Below both ``methods/`` (whose Configs declare their fields with ``setting``) and
``training/`` (whose ``RunConfig`` uses ``bounded``): a field's help, the interval a
number must lie in, the checks every config runs (``check_finite``, ``check_ranges``, ``check_fits``) and
``resolve_config`` (paper defaults, then the data set's, then the user's).
``ConfigError`` names the field, which is the flag of the same name.
"""
import dataclasses
import math

import numpy as np

from mixmatch_tf.models.registry import ModelInputError, check_model_input

# num_labeled: every label the data gives (the unlabelled images are the pool).
ALL_LABELS = "all"


class ConfigError(ValueError):
    """A config value is invalid; ``field`` names it (the flag of the same name)."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check(condition, field, message):
    if not condition:
        raise ConfigError(field, message)


# Float settings are used as float32 in the graph: a value beyond this is infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(config):
    """Refuses a NaN or infinite float field (or tuple element) of a dataclass config,
    and one that is finite in Python's float64 but not in float32 (1e39).

    Every ``> 0`` or ``>= 0`` check accepts infinity, and NaN slips through checks
    written as ``not (x < 0)``; an infinite Beta parameter makes the sampler loop
    forever inside tf.data. So every float setting of every config is checked here,
    once, before the per-field range checks.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f.name, f"must be a finite number, got {value!r}")
            if isinstance(v, float) and abs(v) > FLOAT32_MAX:
                raise ConfigError(f.name, f"must be a finite number in float32, where the "
                                  f"graph uses it (|x| <= {FLOAT32_MAX:.4g}), got {value!r}")


@dataclasses.dataclass(frozen=True)
class Interval:
    """The values a numeric setting means what it says for, as written in its help:
    ``"(0, 1]"``, ``"[0, inf)"``, ``"[1, 65536]"``; brackets include the bound,
    parentheses exclude it. Upper bounds of resource-sized settings (batch sizes,
    steps, examples mixed) are what a machine can hold: past them a run would
    exhaust memory or never finish a step."""
    text: str

    def __post_init__(self):
        try:
            low, high = self.text[1:-1].split(",")
            float(low), float(high)
        except ValueError:
            raise ValueError(f"interval {self.text!r}: write it as [a, b], (a, b], ...") from None
        if self.text[0] not in "[(" or self.text[-1] not in "])":
            raise ValueError(f"interval {self.text!r}: write it as [a, b], (a, b], ...")

    def __contains__(self, value):
        low, high = (float(v) for v in self.text[1:-1].split(","))
        above = value >= low if self.text[0] == "[" else value > low
        below = value <= high if self.text[-1] == "]" else value < high
        return above and below

    def __str__(self):
        return self.text


def bounded(default, within):
    """A dataclass field (of a config without flag help, ``RunConfig``) that must lie
    in ``within`` (an ``Interval``'s text), checked by ``check_ranges``."""
    return dataclasses.field(default=default, metadata={"within": Interval(within)})


def check_ranges(config):
    """Refuses a field (or tuple element) of a dataclass config outside the interval
    its ``setting(..., within=)`` declares; None (not set) passes."""
    for f in dataclasses.fields(config):
        within = f.metadata.get("within")
        value = getattr(config, f.name)
        words = f.metadata.get("words", ())
        if within is None or value is None or (isinstance(value, str) and value in words):
            continue
        if isinstance(value, str):
            valid = " or ".join(repr(w) for w in words) or "a number"
            raise ConfigError(f.name, f"must be a number in {within} or {valid}, got {value!r}")
        for v in (value if isinstance(value, tuple) else (value,)):
            if v not in within:
                shown = list(value) if isinstance(value, tuple) else value
                raise ConfigError(f.name, f"must be in {within}, got {shown!r}")


def check_fits(config, image_shape, num_replicas, named_model=True):
    """Refuses a run whose model does not take the data or whose batch the replicas
    do not divide: one ConfigError when the run is built, before anything is
    written, instead of a Keras shape error after start-up.

    Args:
      config: the method's Config (its ``model`` name and ``batch_size``).
      image_shape: the shape of one example of the data.
      num_replicas: replicas in sync.
      named_model: False when the caller passes its own Keras model (not checked).
    """
    if named_model:
        try:
            check_model_input(config.model, image_shape)
        except ModelInputError as e:
            raise ConfigError(e.field, str(e)) from None
    check(config.batch_size % num_replicas == 0, "batch_size",
          f"{config.batch_size} is not divisible by the {num_replicas} replicas in sync "
          f"(--cpu_replicas or the GPUs); use a multiple of {num_replicas}")



def setting(default, help_text, within=None, words=()):
    """A Config field with its help text (the flag's help, per method).

    (What a run folder of an older version behaved as, for a setting it lacks, is
    ``training.identity``'s one migration.)
    ``within``: for a number (or a tuple of numbers), the ``Interval`` it must lie
    in, e.g. ``"(0, 1]"``; every numeric setting declares one (tested), and
    ``check_ranges`` refuses a value outside it before any work.
    ``words``: values besides numbers the setting takes (``num_labeled="all"``);
    its flag parses them too.
    """
    metadata = {"help": help_text}
    if within is not None:
        metadata["within"] = Interval(within)
    if words:
        metadata["words"] = tuple(words)
    return dataclasses.field(default=default, metadata=metadata)


def resolve_config(method_cls, data, overrides):
    """Config = paper defaults, then the data set's defaults, then ``overrides``.

    The data set's defaults: the method's ``dataset_defaults`` for it (the bundled
    digits), none for the papers' data sets (``data.benchmark``: their settings
    are the defaults), and for any other data set settings sized to it
    (``Method.data_defaults``).

    Args:
      data: the data set, or its name (names of no preset resolve to the papers'
        settings: the command line checks its flags before the data is loaded).
      overrides: field -> value given by the user (flags or Python). Unknown
        fields raise a ConfigError naming the fields the method has.
    """
    fields = {f.name for f in dataclasses.fields(method_cls.Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(unknown[0], f"is not a setting of method {method_cls.name!r}; "
                          f"its settings are: {', '.join(sorted(fields))}")
    name = data if isinstance(data, str) else data.name
    if name in method_cls.dataset_defaults:
        values = dict(method_cls.dataset_defaults[name])
    elif isinstance(data, str) or data.benchmark:
        values = {}
    else:
        values = method_cls.data_defaults(data)
    values.update(overrides)
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[k] = tuple(v)
    return method_cls.Config(**values)
