"""tf.data pipelines: endless shuffled training streams and ordered eval passes.

Determinism is by construction: batch ``s`` of a stream holds positions
``[s * B, (s + 1) * B)`` of an endless sequence of epoch permutations, each drawn
from a stateless seed, and every augmentation is seeded by (run seed, phase,
stream, step, view). A run resumed at step ``s`` therefore rebuilds the very
same stream from ``s`` on: no iterator state needs to be checkpointed.

Each input pipeline builds whole *global* batches and then hands every local
replica its slice, so the examples (and any mixing done here) do not depend on
the number of replicas: one replica with batch 64 and two with 32 each see the
same 64 examples.
"""
import dataclasses
from typing import Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import augment as augment_lib
from mixmatch_tf.data.preprocess import normalize
from mixmatch_tf.ops.random import make_seed

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Stream:
    """An endless stream of global batches drawn from part of the training set.

    Attributes:
      indices: int [n], the training-set indices the stream draws from; each
        pass over them is a new random permutation.
      batch_size: the global batch size B.
      views: None for one image per example (``image`` is [B, H, W, C]); K for K
        independently augmented views (``image`` is [B, K, H, W, C]).
      augment: the data's augmentation policy (``augment.POLICIES``), else none.
      with_labels: emit ``label``; unlabeled streams do not carry one.
      extras: name -> array over the whole training set, gathered by index
        (e.g. the per-example clean probability of DivideMix).
    """
    indices: np.ndarray
    batch_size: int
    views: Optional[int] = None
    augment: bool = True
    with_labels: bool = True
    extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


class ArraySource:
    """Images and labels in host memory, gathered by index inside tf.data.

    The arrays live in CPU ``tf.Variable``s captured by the dataset functions,
    so large data sets are not copied into graph constants (2 GB limit).

    Args:
      images, labels: uint8 [N, H, W, C] (or float features [N, D]) and int [N].
      normalization: applied after any augmentation.
      augmentation: the training augmentation policy (``augment.POLICIES``);
        feature vectors are never augmented.
      padding: how a pad-and-crop policy pads, ``"reflect"`` or ``"zeros"`` (the
        method's ``crop_padding``); applied to the uint8 pixels, before normalisation.
    """

    in_memory = True  # its pixels are held in host memory (passes over it can be kept)

    def __init__(self, images, labels, normalization, augmentation=augment_lib.NO_AUGMENTATION,
                 padding="reflect"):
        augment_lib.check_padding(padding)
        augment_lib.check_policy(augmentation, "augmentation")
        images = np.asarray(images)
        with tf.init_scope(), tf.device("/cpu:0"):
            self.images = tf.Variable(images, trainable=False, name="images")
            self.labels = tf.Variable(np.asarray(labels, np.int64), trainable=False, name="labels")
        self.size = int(images.shape[0])
        self.image_shape = tuple(images.shape[1:])
        self.normalization = normalization
        self.augmentation = augmentation if images.ndim == 4 else augment_lib.NO_AUGMENTATION
        self.padding = padding

    def fetch(self, indices, seed=None, views=None, augment=False, with_labels=True, extras=None,
              raw=False):
        """Gathers examples: normalised float images, labels, indices, extras.

        Args:
          indices: int64 [B] tensor of indices into this source: a whole global
            batch in row order when ``augment`` (the draws are per row).
          seed: the step's stateless seed for the augmentation (needed when ``augment``).
          views: None or K (see ``Stream``).
          augment: apply the augmentation policy.
          with_labels: include ``label``.
          extras: name -> tf.Tensor over the whole source, gathered at ``indices``.
          raw: keep the uint8 pixels (no augmentation, no normalisation).
        """
        pixels = tf.gather(self.images, indices)
        if raw:
            image = pixels if views is None else tf.stack([pixels] * views, axis=1)
        else:
            policy = self.augmentation if augment else augment_lib.NO_AUGMENTATION
            image = normalize(augment_lib.augment_views(pixels, seed, policy, self.padding,
                                                        views), self.normalization)
        out = {"image": image, "index": indices}
        if with_labels:
            out["label"] = tf.gather(self.labels, indices)
        for name, values in (extras or {}).items():
            out[name] = tf.gather(values, indices)
        return out


def index_batches(indices, batch_size, seed, start_step):
    """Global batches of indices: positions [s*B, (s+1)*B) of endless epoch permutations.

    ``seed`` is a stateless seed [2]; epoch e is shuffled with seed folded with e.
    """
    indices = np.asarray(indices, np.int64)
    n = len(indices)
    if n == 0:
        raise ValueError("a training stream has no examples to draw from")
    start = int(start_step) * int(batch_size)
    first_epoch, skip = divmod(start, n)
    idx = tf.constant(indices)

    def epoch(e):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.random.experimental.stateless_fold_in(seed, e))
        return tf.data.Dataset.from_tensor_slices(tf.gather(idx, perm))

    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    return ds.skip(skip).batch(batch_size, drop_remainder=True)


def _split_for_replicas(batch, input_context):
    """Global batch -> the per-replica slices of this input pipeline, one after another."""
    if input_context is None:
        return tf.data.Dataset.from_tensors(batch)
    replicas = input_context.num_replicas_in_sync
    per_pipeline = replicas // input_context.num_input_pipelines
    first = input_context.input_pipeline_id * per_pipeline

    def split(t):
        if t.shape.rank == 0:
            raise ValueError("every tensor of a training batch needs a leading batch axis")
        t = tf.reshape(t, tf.concat([[replicas, -1], tf.shape(t)[1:]], 0))
        return t[first:first + per_pipeline]

    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(split, batch))


def check_batch_divisible(batch_size, num_replicas, flag="batch_size"):
    if batch_size % num_replicas:
        raise ValueError(f"--{flag}={batch_size} must be divisible by the number of replicas "
                         f"({num_replicas})")


def train_dataset(source, streams: Mapping[str, Stream], *, seed: int, salt: int,
                  start_step: int = 0, transform: Optional[Callable] = None,
                  input_context: Optional[tf.distribute.InputContext] = None):
    """The training input of one phase: a dict of stream batches per step.

    Args:
      source: the training set: an ``ArraySource``, or a ``streaming.StreamSource``
        (files), which builds the stream itself (per-replica slices, see there).
      streams: name -> Stream; every step yields one batch of each, under its name.
      seed: the run seed.
      salt: distinguishes phases (and so their shuffles and augmentations).
      start_step: the first step of the phase to produce (for resuming).
      transform: optional ``fn(batch, seed, source) -> batch`` applied to the
        *global* batch (e.g. mixup of inputs); ``seed`` is the step's own.
      input_context: from ``distribute_datasets_from_function``; None yields
        global batches.

    Returns:
      A tf.data.Dataset of per-replica batches (global ones without a context).
    """
    if not source.in_memory:  # read from files: streaming.StreamSource
        return source.train_dataset(streams, seed=seed, salt=salt, start_step=start_step,
                                    transform=transform, input_context=input_context)
    names = sorted(streams)
    index_sets = []
    for j, name in enumerate(names):
        s = streams[name]
        if input_context is not None:
            check_batch_divisible(s.batch_size, input_context.num_replicas_in_sync)
        index_sets.append(index_batches(s.indices, s.batch_size, make_seed(seed, salt, j),
                                         start_step))
    steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    ds = tf.data.Dataset.zip((steps, tuple(index_sets)))
    extras = {name: {k: tf.constant(v) for k, v in streams[name].extras.items()} for name in names}

    def fetch(step, index_batches):
        batch = {}
        for j, (name, idx) in enumerate(zip(names, index_batches)):
            s = streams[name]
            batch[name] = source.fetch(
                idx, seed=make_seed(seed, salt, j, step), views=s.views, augment=s.augment,
                with_labels=s.with_labels, extras=extras[name])
        if transform is not None:
            batch = transform(batch, make_seed(seed, salt, -1, step), source)
        return batch

    ds = ds.map(fetch, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.flat_map(lambda b: _split_for_replicas(b, input_context))
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options).prefetch(AUTOTUNE)


def eval_dataset(source, batch_size: int, indices=None, extras=None,
                 input_context: Optional[tf.distribute.InputContext] = None, raw=False):
    """An ordered, un-augmented pass over ``source`` padded to whole global batches.

    Each element carries ``mask`` (False on padding) so that every replica
    always gets a full batch and padding never counts.

    Args:
      batch_size: the global batch size.
      indices: optional subset of the source, in the order to visit it.
      raw: yield uint8 pixels (to be normalised by the consumer).
    """
    if not source.in_memory:  # read from files: streaming.StreamSource
        return source.eval_dataset(batch_size, indices=indices, extras=extras,
                                   input_context=input_context, raw=raw)
    indices = np.arange(source.size, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    replicas = input_context.num_replicas_in_sync if input_context else 1
    batch_size = max(replicas, batch_size - batch_size % replicas)
    n = len(indices)
    padded = -(-n // batch_size) * batch_size
    order = np.concatenate([indices, np.full(padded - n, indices[-1] if n else 0, np.int64)])
    mask = np.arange(padded) < n
    ds = tf.data.Dataset.from_tensor_slices((order, mask)).batch(batch_size)
    extras = {k: tf.constant(v) for k, v in (extras or {}).items()}

    def fetch(idx, m):
        out = source.fetch(idx, extras=extras, raw=raw)
        out["mask"] = m
        return out

    ds = ds.map(fetch, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.flat_map(lambda b: _split_for_replicas(b, input_context))
    return ds.prefetch(AUTOTUNE)
