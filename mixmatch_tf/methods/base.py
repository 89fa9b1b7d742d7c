"""What every method is: a config, networks by role, phases of train steps, predict.

A method file declares a frozen ``Config`` dataclass (defaults = the paper's
values), registers itself by name, and implements:

* ``build()`` -- networks, optimizers and any method state, keyed by role; the
  trainer calls it inside ``strategy.scope()`` and checkpoints all of it;
* ``phase(index, state, fresh)`` -- what to train next: a ``Phase`` with its
  number of steps, its input streams and its per-replica train step, or None
  when training is over. Eager work between phases (DivideMix's per-sample
  losses and GMM) happens here, never inside a traced step;
* ``train_step(state, batch, step)`` -- per replica, traced: the tape, the
  update and any EMA written out top to bottom;
* ``predict(state, images)`` -- class probabilities, the one inference path of
  evaluation and export;
* optionally ``prepare_predict(state)`` -- eager work that brings the predicting
  networks up to date before evaluation and export (re-estimating an EMA
  network's batch-norm statistics), and ``extra_evaluations`` -- evaluations of
  its own beside the served predictor's (the trained network where an EMA is
  served, and a warning when the EMA's predictions collapse).

and declares what it needs of the run from its config, so the trainer reads no
config field by name: ``labeled_split`` (a class-balanced labeled subset, for
semi-supervised learning) and ``model_kwargs`` (e.g. dropout). ``train_errors``
is the corrupted-label experiment's measure of memorisation, written into
metrics.json.

A file under ``methods/`` that registers a Method is found by itself: the
package imports every module in its folder. How a Config declares, checks and
resolves its settings is ``mixmatch_tf.settings``.
"""
import dataclasses
import math
from typing import Any, Callable, ClassVar, Mapping, Optional, Union

import numpy as np

from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.settings import check_finite, check_ranges, setting

_METHODS = {}
# The data set whose per-method settings are tuned for small data (data_defaults).
SMALL_DATA = "digits"
SMALL_NETWORK = "small_cnn"


def register(name):
    """Class decorator registering a Method subclass under ``name``."""
    def wrap(cls):
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls
    return wrap


def method_names():
    return tuple(sorted(_METHODS))


def get_method(name):
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(method_names())}")
    return _METHODS[name]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Fields every method has. Subclasses change defaults and add their own."""
    model: Optional[str] = setting(None, "network name; None: the method's or data set's "
                                   "default")
    batch_size: int = setting(128, "global batch size", within="[1, 65536]")
    learning_rate: float = setting(0.1, "base learning rate", within="(0, inf)")
    weight_decay: float = setting(1e-4, "weight decay (its form is the method's)",
                                  within="[0, inf)")
    epochs: float = setting(200.0, "training length in passes over the training set",
                            within="(0, 1e6]")
    train_steps: Optional[int] = setting(None, "training length in steps; overrides epochs",
                                         within="[1, 1e12]")
    eval_every: Optional[int] = setting(None, "steps between evaluations; None: one epoch",
                                        within="[1, 1e12]")

    def __post_init__(self):
        check_finite(self)
        check_ranges(self)

    def to_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class Context:
    """What a method may know about the run. Built by the trainer.

    Attributes:
      num_classes, image_shape: of the data.
      train_labels: the training labels a method may use (noisy if noise was
        added; the clean ones are never given to methods).
      seed: the run seed.
      model_fn: ``model_fn(index=0)`` builds a fresh network mapping float images
        to logits; a method that trains networks independently of each other
        (co-training) builds its k-th with ``index=k``, so that they never start
        identical (``training.build.model_factory``).
      num_replicas: replicas in sync (for per-replica loss scaling).
      labeled_indices: training indices whose labels may be used (all of them
        for supervised and noisy-label learning; the labeled subset for SSL).
      unlabeled_indices: indices for unlabeled streams (SSL), else None.
      map_train_set: ``fn(per_replica_fn) -> np.ndarray`` running
        ``per_replica_fn(batch)`` over the un-augmented training set under the
        strategy and returning its per-example outputs in index order.
      noise_type, noise_rate: the synthetic label noise the user asked for, if any
        (what the user says of the labels; the true labels are not here: see ``Truth``).
      train_images: the training images (uint8), for methods that need the input
        space itself (mixup's nearest-neighbour partners).
      fetch_images: ``fn(indices) -> float tensor [n, H, W, C]``, the normalised,
        un-augmented images of the training source at ``indices`` (labeled,
        unlabeled and extra unlabeled examples alike).
      num_examples: training examples, where ``train_labels`` is None (a TFDS
        stream reads each label with its image).
    """
    num_classes: int
    image_shape: tuple
    train_labels: np.ndarray
    seed: int
    model_fn: Callable[[], Any]
    num_replicas: int = 1
    labeled_indices: Optional[np.ndarray] = None
    unlabeled_indices: Optional[np.ndarray] = None
    map_train_set: Optional[Callable] = None
    noise_type: Optional[str] = None
    noise_rate: float = 0.0
    train_images: Optional[np.ndarray] = None
    fetch_images: Optional[Callable] = None
    num_examples: Optional[int] = None

    @property
    def num_train(self):
        if self.train_labels is None:
            return int(self.num_examples)
        return int(len(self.train_labels))

@dataclasses.dataclass(frozen=True)
class Truth:
    """The true labels of the training set, where the run has a clean reference: the
    noise was made by the package (``--noise_type``) or the training labels are another
    label set of the data (CIFAR-N). A user's own labels have none: they are taken as
    given.

    Only the diagnostics hooks receive it (``Method.judge``, ``diagnostics``,
    ``train_errors``); ``build``, ``phase`` and the train steps cannot see it, because
    the ``Context`` has no such field.

    Attributes:
      labels: int [N], the true label of each training example.
      given: int [N], the label the run trains on.
    """
    labels: np.ndarray
    given: np.ndarray

    @property
    def label_is_true(self):
        """bool [N]: whether each training label is the true one."""
        return np.asarray(self.labels) == np.asarray(self.given)


@dataclasses.dataclass(frozen=True)
class LabeledSplit:
    """A class-balanced labeled subset of the training set, drawn with the run seed.

    Attributes:
      num_labeled: its size (as balanced over the classes as the count allows), or
        ``ALL_LABELS``: every label the data gives, the data's unlabelled images
        being the unlabeled pool.
      unlabeled_includes_labeled: whether the unlabeled pool holds the labeled
        examples too (else the rest of the training set).
      label_fold, label_folds_file: a predefined fold of the data set's
        distribution (STL-10's 1000 labels) instead of a random draw; see
        ``data.splits.labeled_fold``.
    """
    num_labeled: Union[int, str]
    unlabeled_includes_labeled: bool = False
    label_fold: Optional[int] = None
    label_folds_file: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class LabelEvidence:
    """A method's per-example evidence that a training label is wrong (the label-issue
    report, ``training/label_issues.py``).

    Attributes:
      columns: name -> float [N], what the method measured per example (each
        network's clean probability, its loss), in training-index order.
      issue_score: float [N], higher = more likely wrong; the report ranks by it.
      flagged: bool [N], the method's own decision (DivideMix: not in the labeled
        side of its division).
      rule: one line saying how the score and the flags are made.
    """
    columns: Mapping[str, np.ndarray]
    issue_score: np.ndarray
    flagged: np.ndarray
    rule: str


@dataclasses.dataclass
class Phase:
    """A stretch of training with one input layout and one train step.

    Attributes:
      name: the kind of phase: the trainer compiles one loop per name, so every
        phase of a name brings the same ``step_fn`` (built once; a bound method
        is) and what changes between them as ``values`` or state variables.
      steps: number of steps.
      streams: name -> Stream; each step's batch is a dict of one batch per stream.
      step_fn: ``fn(state, batch, step) -> dict of scalars`` (per replica; must
        hold ``loss``), traced by the trainer; with ``values``,
        ``fn(state, batch, step, values)``.
      transform: optional ``fn(batch, seed, source) -> batch`` on the global
        batch inside tf.data (e.g. mixup of inputs).
      evaluate_at_end: evaluate when the phase ends (e.g. each DivideMix epoch).
      salt: distinguishes the phase's shuffles and augmentations; defaults to
        the phase index.
      summaries: scalars the trainer writes to TensorBoard when the phase starts
        (e.g. DivideMix's division statistics).
      labels_judged: the method's ``label_evidence`` is new at this phase's start
        (DivideMix's co-divide): the trainer then calls ``judge`` and writes the
        label-issue report.
      values: name -> number the step reads, as float32 scalar tensors (its last
        argument): a per-phase value (an epoch's ramp, a rate) without a retrace.
      steps_after: the steps the run takes after this phase, where the method now
        knows them better than its ``total_steps`` did (DivideMix, whose epochs follow
        its divisions); the progress total and ETA follow it. None: no new estimate.
      last: no phase follows this one, so a run whose ``stop_at_step`` falls at its
        end still finishes (final evaluation, metrics.json, export). False (the
        default) only means the trainer asks ``phase`` for the next one.
    """
    name: str
    steps: int
    streams: Mapping[str, Stream]
    step_fn: Callable
    transform: Optional[Callable] = None
    evaluate_at_end: bool = False
    salt: Optional[int] = None
    summaries: Mapping[str, float] = dataclasses.field(default_factory=dict)
    labels_judged: bool = False
    values: Mapping[str, float] = dataclasses.field(default_factory=dict)
    steps_after: Optional[int] = None
    last: bool = False


class Method:
    """Base class: see the module docstring."""
    name: ClassVar[str] = ""
    Config: ClassVar[type] = TrainConfig
    default_model: ClassVar[str] = "preact_resnet18"
    # Per data set overrides of Config defaults, e.g. {"digits": {"epochs": 60}}.
    dataset_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # How the random crop pads, as in the official code the method follows:
    # "reflect" (MixMatch's libml/data.py augment_shift, for MixMatch and its SSL
    # baselines) or "zeros" (torchvision RandomCrop(padding=4) on the uint8 image,
    # for the PyTorch references). The trainer hands it to the input pipeline.
    crop_padding: ClassVar[str] = "reflect"
    # The official code whose crop ``crop_padding`` follows: "repository path: what it
    # does" (tests check the padding against the repositories they know).
    crop_padding_from: ClassVar[str] = ("google-research/mixmatch libml/data.py augment_shift: "
                                        "tf.pad REFLECT")

    def __init__(self, config, context: Context):
        self.config = config
        self.ctx = context

    # -- defaults for a user's data ----------------------------------------
    @classmethod
    def data_defaults(cls, data):
        """Settings sized to a data set of no paper's table (a user's folder or arrays):
        the method's settings for the bundled digits -- small data, few labels, a
        CPU -- with the network chosen by the image size (``network_for``) and the
        counts of ``sized_counts``: the paper's 2^20 steps or 300 epochs are days
        on such data, and its ResNets make no sense for 8x8 images."""
        values = dict(cls.dataset_defaults.get(SMALL_DATA, {}))
        values["model"] = cls.network_for(data)
        values.update(cls.sized_counts(data, values))
        return values

    @classmethod
    def network_for(cls, data):
        """The default network for ``data``: the small CNN for images under 32 pixels
        a side, the method's own (a CIFAR network) otherwise; None for feature
        vectors (an MLP)."""
        if data.tabular:
            return None
        return SMALL_NETWORK if min(data.image_shape[:2]) < 32 else cls.default_model

    @classmethod
    def sized_counts(cls, data, values):
        """Settings counted from ``data`` (``data_defaults``); none by default (a
        method whose length is counted in epochs needs none)."""
        return {}

    # -- what the method needs of the run ---------------------------------
    @classmethod
    def labeled_split(cls, config) -> Optional[LabeledSplit]:
        """The labeled subset to train on (semi-supervised), or None: all labels."""
        return None

    @classmethod
    def model_kwargs(cls, config) -> Mapping[str, Any]:
        """Keyword arguments of ``models.build_model`` (e.g. ``dropout``)."""
        return {}

    # -- training length -------------------------------------------------
    def steps_per_epoch(self, examples=None, batch_size=None):
        examples = self.ctx.num_train if examples is None else examples
        return max(1, math.ceil(examples / (batch_size or self.config.batch_size)))

    def total_steps(self):
        """Total train steps, if known in advance (for progress and ETA)."""
        if self.config.train_steps:
            return int(self.config.train_steps)
        return max(1, int(round(self.config.epochs * self.steps_per_epoch())))

    def eval_every(self):
        return int(self.config.eval_every or self.steps_per_epoch())

    # -- the interface ---------------------------------------------------
    def build(self):
        raise NotImplementedError

    def phase(self, index, state, fresh, start_step=0) -> Optional[Phase]:
        """The phase number ``index``, or None when training is over.

        Args:
          index: 0, 1, ... in order.
          state: what ``build`` returned (restored from a checkpoint on resume).
          fresh: True when the phase starts now, False when a run resumes in its
            middle -- then the phase must be rebuilt from ``state`` alone.
          start_step: the global step at which the phase started.
        """
        raise NotImplementedError

    def predict(self, state, images):
        raise NotImplementedError

    def prepare_predict(self, state):
        """Eager work before ``predict`` is used (evaluation, export); none by default."""

    def extra_evaluations(self, state, test_error, served):
        """Evaluations of the method's own beside the served predictor's, for the
        evaluation record (evals.json, TensorBoard, metrics.json): a dict of numbers
        (a name ending in ``_test_error`` is an error in %, summarised in
        metrics.json) and optionally a ``warning`` (logged). ``test_error(fn)``
        gives ``(error %, predictions per class)`` of ``fn(state-free normalised
        images) -> probabilities`` (the same function object every call: it is
        compiled once); ``served``: the served predictor's predictions per class.
        None of its own by default."""
        return {}

    def judge(self, state, truth):
        """Called when a phase whose ``labels_judged`` is set starts: how the method's
        new view of its labels compares with ``truth`` (a ``Truth``, or None without a
        clean reference). Returns start-of-phase summaries (numbers as scalars, arrays
        as histograms) and may record in ``state`` what ``diagnostics`` reports later.
        None by default."""
        return {}

    def diagnostics(self, state, truth):
        """Extra entries for metrics.json (method-specific); JSON-serialisable.
        ``truth``: a ``Truth``, or None."""
        return {}

    def train_errors(self, state, truth):
        """Training error (%) of the predictor on the examples whose labels are real
        and on those whose labels were corrupted (against the corrupted label): the
        mixup paper's measure of memorisation. Empty without corrupted labels
        (``truth`` None, or every label true)."""
        ctx = self.ctx
        if truth is None or ctx.map_train_set is None:
            return {}
        corrupted = ~truth.label_is_true
        if not corrupted.any():
            return {}
        self.prepare_predict(state)
        pred = ctx.map_train_set(lambda b: self.predict(state, b["image"])).argmax(axis=-1)
        real = ~corrupted
        return {
            "train_error_real": 100.0 * float(np.mean(pred[real] != truth.labels[real])),
            "train_error_corrupted": 100.0 * float(np.mean(pred[corrupted]
                                                           != truth.given[corrupted])),
        }

    def chosen_settings(self, state):
        """Settings the method chose from the data during the run (name -> value), which
        the trainer records in run.json (``chosen``) and metrics.json
        (``chosen_settings``); none by default."""
        return {}

    def label_evidence(self, state):
        """A ``LabelEvidence`` on the training labels, or None where the method has none
        (it does not judge its labels, or has not yet)."""
        return None

    def networks(self, state):
        """Every Keras network of the state (their RNG states are checkpointed)."""
        return [v for v in state.values() if hasattr(v, "trainable_variables")
                and hasattr(v, "layers")]
