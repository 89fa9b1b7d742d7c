"""The tf.data readers of streamed data: files of a folder, records of a TFDS split.

The in-memory path (``dataset.ImageData``, ``pipeline.ArraySource``) holds every
pixel in host memory; ImageNet's 1.28 M images (about 150 GB decoded at their
sizes) cannot be held so. A streamed data set (``dataset.StreamedData``) holds
what names the examples -- file paths and labels (a folder), or a TFDS split --
and its sources here read, decode and augment each example inside tf.data as
training consumes it.

Guarantees, as for the in-memory path:

* **The same stream after a resume.** Batch ``s`` of a folder stream holds
  positions ``[s B, (s + 1) B)`` of an endless sequence of epoch permutations of
  the file list (``pipeline.index_batches``: stateless, seeded by (run seed,
  phase, stream, epoch)), and the example at row ``i`` of batch ``s`` is cropped
  and flipped with a stateless seed of (run seed, phase, stream, step, i). A run
  resumed at step ``s`` rebuilds the same batches, exactly, when the folder holds
  the same files (the list is sorted, so the order of the file system does not
  matter; its fingerprint is part of the run's identity). A TFDS stream reads the
  split in its stored order (TFDS shuffles examples when it builds a data set) and
  permutes each block of ``TFDS_SHUFFLE_BUFFER`` consecutive records with a
  stateless seed of (run seed, phase, stream, epoch, block); a resume re-reads
  (without decoding) the records of its epoch up to the step, so it is exact too,
  at the cost of that read.
* **Unreadable files do not stop training.** Each file is read and decoded in a
  guarded step (``tf.data``'s ``ignore_errors`` around one example); a file that
  cannot be read or decoded is named in a warning on stderr and its row of the
  batch takes the example of another row of the same batch (deterministically:
  the ``(i mod g)``-th readable row, of ``g``), so the batch keeps its size and
  every later batch its examples. Each batch reports how many rows were replaced
  (``unreadable``), and the trainer adds them up into ``unreadable_images`` of
  metrics.json. In evaluation an unreadable image is left out of the error
  (masked) and counted. A batch none of whose images reads stops the run naming
  its files: that is a broken data set, not a bad file.
* **Per-worker shards.** Every input pipeline (one per worker) produces the
  per-replica slices of the global batch that its replicas train on, and reads
  and decodes only those: with W workers each reads and decodes 1/W of every
  batch (a TFDS stream's records are read by every worker, and each decodes its
  own rows). The slices, their augmentation and their examples do not depend on
  how replicas are spread over workers: two workers of one replica each get the
  very slices that two mirrored replicas of one worker get.
* **Per-replica transforms.** A phase's ``transform`` (mixup of inputs) runs on
  each replica's slice on its own, with a seed of (run seed, phase, step, replica
  slice): mixing partners are drawn within the slice, as data-parallel ImageNet
  trainers mix within each device's batch. The in-memory path mixes the global
  batch instead; here that would make every worker decode the whole batch.

**The same images as in memory.** A folder (or TFDS data set) whose images share
one size is streamed at that size, with its channels, and augmented by the same
policy with the same draws as when it is read into memory (``augment.POLICIES``:
row ``r``, view ``v`` of step ``s`` are cropped and flipped alike either way), so
``--stream`` (which ``auto`` picks by the machine's memory) changes where the
pixels are kept, not what trains; with one replica a phase's ``transform`` is
seeded as the in-memory path seeds it too. Images of several sizes (ImageNet), or
``--image_size``, give square ``image_size`` inputs: by default ImageNet's
augmentation (``augment.resized_crop_box``: a random crop of 8-100% of the area
with aspect ratio in [3/4, 4/3], resized to ``image_size`` squared, and a random
horizontal flip); evaluation resizes the shorter side to
``round(image_size * 256 / 224)`` and takes the central ``image_size`` square.
JPEG crops are decoded with ``decode_and_crop_jpeg`` (only the crop's blocks): the
same pixels as decoding the whole image and cropping, except that with chroma
subsampling (4:2:0, most photos) libjpeg upsamples the colour at the edge of the
decoded window from the window alone, so the crop's first or last column may
differ slightly; it is the faster path, and the stream stays a function of the
seed and the step.
"""
import dataclasses
import sys

import numpy as np
import tensorflow as tf

from mixmatch_tf.data import augment as augment_lib
from mixmatch_tf.data.pipeline import check_batch_divisible, index_batches
from mixmatch_tf.data.preprocess import normalize
from mixmatch_tf.ops.random import make_seed

AUTOTUNE = tf.data.AUTOTUNE




# A TFDS stream permutes blocks of this many consecutive records per epoch, in encoded
# examples (about 1.1 GB of ImageNet JPEGs): the usual ImageNet shuffle buffer's size.
TFDS_SHUFFLE_BUFFER = 10_000


def tfds_records(splits, split):
    """The split in its stored order as (encoded image, label), images not decoded."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(splits.name, data_dir=splits.data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()},
                            read_config=tfds.ReadConfig(try_autocache=False))
    return ds.map(lambda ex: (ex["image"], ex["label"]))


def count_records(ds):
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda c, _: c + 1))


# ------------------------------------------------------------------------- decoding
def eval_image(contents, image_shape, resize):
    """Evaluation's view of an encoded image: uint8 ``image_shape`` (``augment.fit_image``)."""
    rows, cols, channels = image_shape
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    return tf.ensure_shape(augment_lib.fit_image(image, rows, cols, resize), image_shape)


def _resized_crop(contents, seed, image_shape):
    """``augment.resized_crop_flip`` of an encoded image; a JPEG decodes the crop's
    blocks only."""
    rows, cols, channels = image_shape

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents)
        box, flip_seed = augment_lib.resized_crop_plan(seed, shape[0], shape[1])
        crop = tf.image.decode_and_crop_jpeg(contents, box, channels=channels)
        return augment_lib.finish_resized_crop(crop, flip_seed, rows, cols)

    def other():
        image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
        return augment_lib.resized_crop_flip(image, seed, rows, cols)

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(contents), jpeg, other), image_shape)


def train_image(contents, step_seed, row, batch_size, image_shape, resize, policy, padding,
                views=None):
    """Row ``row`` of a step's global batch of ``batch_size``, decoded and augmented
    under ``policy`` as the in-memory path augments it (``augment.augment_row``):
    uint8 ``image_shape``, or [views, *image_shape]."""
    def one_view(view):
        if policy == augment_lib.RESIZED_CROP_FLIP:
            return _resized_crop(contents, augment_lib.row_seed(step_seed, row, view),
                                 image_shape)
        image = eval_image(contents, image_shape, resize)
        return tf.ensure_shape(augment_lib.augment_row(image, step_seed, row, batch_size, policy,
                                                       padding, view), image_shape)
    if views is None:
        return one_view(None)
    return tf.stack([one_view(k) for k in range(views)])


def _warn_unreadable(names):
    """Names the unreadable files on stderr (from inside tf.data, where absl cannot log;
    tf.print keeps the pipeline serialisable, e.g. for the tf.data service)."""
    def warn():
        tf.print("WARNING: unreadable image(s) left out of their batch:",
                 tf.strings.reduce_join(names, separator=", "), output_stream=sys.stderr)
        return tf.constant(True)
    return tf.cond(tf.size(names) > 0, warn, lambda: tf.constant(False))


@dataclasses.dataclass(frozen=True)
class Reader:
    """How a source reads a row: ``read(key) -> encoded bytes``; ``name(keys, indices)``
    -> string [n], what a warning calls the rows."""
    read: object
    name: object


def decode_slice(valid, keys, reader, decode, empty_shape):
    """The readable rows of a slice, decoded in parallel: a dataset of one element.

    Args:
      valid: bool [L], the rows to decode (evaluation padding is not).
      keys: string [L], what ``reader.read`` reads.
      reader: the source's ``Reader``.
      decode: ``(contents, row int64) -> uint8 image`` of ``empty_shape``.
      empty_shape: shape of one decoded example.

    Returns:
      Dataset of one element (positions int64 [g], images uint8 [g, ...]): the
      rows whose bytes read and decoded, in order; an error in one row (a missing
      file, a corrupt or truncated image) drops that row only.
    """
    take = tf.where(valid)[:, 0]
    ds = tf.data.Dataset.from_tensor_slices((take, tf.gather(keys, take)))
    ds = ds.map(lambda r, k: (r, decode(reader.read(k), r)), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    ds = ds.ignore_errors(log_warning=True).batch(tf.maximum(tf.size(keys, tf.int64), 1))
    empty = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64),
                                          tf.zeros([0] + list(empty_shape), tf.uint8)))
    return ds.concatenate(empty).take(1)


def repair_slice(positions, images, names, expected, train):
    """Rows of a slice after ``decode_slice``, unreadable ones replaced or masked.

    Args:
      positions: int64 [g], the rows that decoded; images: uint8 [g, ...].
      names: string [L], the rows' names (for the warning).
      expected: bool [L], the rows that were to be decoded.
      train: replace an unreadable row by the readable row ``i mod g`` (in the
        order of the readable rows): the batch keeps its size, and labels and
        indices follow the images (gather them at the returned source rows).
        Else (evaluation) an unreadable row stays zeros, for the caller to mask.

    Returns:
      (source row of each output row int64 [L], images [L, ...], readable bool
      [L], unreadable rows int32).
    """
    length = tf.shape(names, out_type=tf.int64)[0]
    present = tf.scatter_nd(positions[:, None], tf.ones_like(positions, tf.bool), [length])
    missing = expected & ~present
    with tf.control_dependencies([_warn_unreadable(tf.boolean_mask(names, missing))]):
        unreadable = tf.reduce_sum(tf.cast(missing, tf.int32))
    row = tf.range(length, dtype=tf.int64)
    if not train:
        shape = tf.concat([[length], tf.shape(images, out_type=tf.int64)[1:]], 0)
        return row, tf.scatter_nd(positions[:, None], images, shape), present, unreadable
    good = tf.size(positions, out_type=tf.int64)
    check = tf.debugging.Assert(good > 0, [
        "every image of a batch is unreadable:", tf.strings.reduce_join(names, separator=", ")],
        summarize=8)
    with tf.control_dependencies([check]):
        compact = tf.cumsum(tf.cast(present, tf.int64)) - 1
    order = tf.where(present, compact, row % tf.maximum(good, 1))
    return tf.gather(positions, order), tf.gather(images, order), present, unreadable


def _layout(input_context):
    """(replicas R, replica slices per input pipeline, first slice of this pipeline)."""
    if input_context is None:
        return 1, 1, 0
    replicas = input_context.num_replicas_in_sync
    per = replicas // input_context.num_input_pipelines
    return replicas, per, input_context.input_pipeline_id * per


def _cut(t, lo, per, length):
    """Rows [lo, lo + per * length) of ``t`` as [per, length, ...]."""
    return tf.reshape(t[lo:lo + per * length], tf.concat([[per, length], tf.shape(t)[1:]], 0))


class StreamSource:
    """What the folder and the TFDS sources share: decoding slices, the pipelines.

    A subclass gives ``reader`` (a ``Reader``), ``size`` and the streams of keys:
    ``_train_keys(stream, seed, start_step)`` -- global batches ``(index, key,
    label)`` of B rows from step ``start_step`` on -- and ``_eval_keys(indices)``
    -- the rows ``(index, key, label)`` of an ordered pass.

    Args:
      normalization: applied to the decoded, augmented uint8 images.
      image_shape: (H, W, C) of the images the network gets.
      resize: how an image is brought to ``image_shape`` (``augment.RESIZES``).
      augmentation: the training policy (``augment.POLICIES``).
      padding: how a pad-and-crop policy pads (the method's ``crop_padding``).
    """
    in_memory = False  # read from files as training consumes them

    def __init__(self, normalization, image_shape, resize=augment_lib.RESIZE_CENTRAL_CROP,
                 augmentation=augment_lib.NO_AUGMENTATION, padding="reflect"):
        augment_lib.check_padding(padding)
        self.normalization = normalization
        self.image_shape = tuple(int(d) for d in image_shape)
        self.resize = resize
        self.augmentation = augment_lib.check_policy(augmentation, "augmentation")
        self.padding = padding

    # -- training ----------------------------------------------------------------
    def train_dataset(self, streams, *, seed, salt, start_step=0, transform=None,
                      input_context=None):
        """Per-replica slices of a phase's global batches (as ``pipeline.train_dataset``).

        Each slice is read, decoded, augmented and (``transform``) mixed on its own
        (module docstring); this pipeline makes its replicas' slices only, in
        replica order, step after step. Every slice carries ``unreadable``, the
        number of its rows that took another row's example.
        """
        replicas, per, first = _layout(input_context)
        names = sorted(streams)
        per_stream = []
        for j, name in enumerate(names):
            check_batch_divisible(streams[name].batch_size, replicas)
            per_stream.append(self._stream_slices(streams[name], make_seed(seed, salt, j),
                                                  start_step, replicas, per, first))
        extras = {name: {k: tf.constant(v) for k, v in streams[name].extras.items()}
                  for name in names}

        def assemble(*slices):
            batch = {}
            for name, (_, _, out) in zip(names, slices):
                out = dict(out)
                for k, values in extras[name].items():
                    out[k] = tf.gather(values, out["index"])
                batch[name] = out
            step, replica = slices[0][0], slices[0][1]
            if transform is not None:
                # One replica's slice is the global batch: seeded as in memory.
                salts = (step,) if replicas == 1 else (step, replica)
                batch = transform(batch, make_seed(seed, salt, -1, *salts), self)
            return batch

        ds = tf.data.Dataset.zip(tuple(per_stream))
        ds = ds.map(assemble, num_parallel_calls=AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options).prefetch(AUTOTUNE)

    def _stream_slices(self, stream, stream_seed, start_step, replicas, per, first):
        """(step, replica, slice) of one stream: this pipeline's slices in order."""
        length = stream.batch_size // replicas
        views, image_shape, resize = stream.views, self.image_shape, self.resize
        policy = self.augmentation if stream.augment else augment_lib.NO_AUGMENTATION
        shape = image_shape if views is None else (views,) + image_shape
        steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
        lo = first * length

        def slices(step, batch):
            index, key, label = batch
            return tf.data.Dataset.from_tensor_slices(
                (tf.fill([per], step), tf.range(first, first + per, dtype=tf.int64),
                 _cut(index, lo, per, length), _cut(key, lo, per, length),
                 _cut(label, lo, per, length)))

        def decode_rows(step, replica, index, key, label):
            step_seed = tf.random.experimental.stateless_fold_in(stream_seed, step)
            offset = replica * length  # the slice's first row in the global batch

            def decode(contents, row):
                return train_image(contents, step_seed, offset + row, stream.batch_size,
                                   image_shape, resize, policy, self.padding, views)
            good = decode_slice(tf.ones_like(index, tf.bool), key, self.reader, decode, shape)
            return good.map(lambda pos, img: (step, replica, index, key, label, pos, img))

        def repair(step, replica, index, key, label, pos, images):
            source, images, _, unreadable = repair_slice(
                pos, images, self.reader.name(key, index), tf.ones_like(index, tf.bool),
                train=True)
            out = {"image": normalize(images, self.normalization),
                   "index": tf.gather(index, source), "unreadable": unreadable}
            if stream.with_labels:
                out["label"] = tf.gather(label, source)
            return step, replica, out

        keys = self._train_keys(stream, stream_seed, start_step)
        ds = tf.data.Dataset.zip((steps, keys)).flat_map(slices)
        ds = ds.interleave(decode_rows, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.map(repair, num_parallel_calls=AUTOTUNE, deterministic=True)

    # -- evaluation --------------------------------------------------------------
    def eval_dataset(self, batch_size, indices=None, extras=None, input_context=None, raw=False):
        """An ordered, un-augmented pass padded to whole global batches (as
        ``pipeline.eval_dataset``): ``mask`` is False on padding and on unreadable
        images, and each slice counts its unreadable images in ``unreadable``."""
        replicas, per, first = _layout(input_context)
        batch_size = max(replicas, batch_size - batch_size % replicas)
        length = batch_size // replicas
        lo = first * length
        image_shape, resize = self.image_shape, self.resize
        extras = {k: tf.constant(v) for k, v in (extras or {}).items()}
        rows, n = self._eval_keys(indices)
        padding = -(-n // batch_size) * batch_size - n
        pad = tf.data.Dataset.from_tensors(
            (tf.constant(0, tf.int64), tf.constant(""), tf.constant(-1, tf.int64))).repeat(padding)
        ds = rows.map(lambda i, k, y: (i, k, y, tf.constant(True)))
        ds = ds.concatenate(pad.map(lambda i, k, y: (i, k, y, tf.constant(False))))

        def slices(index, key, label, mask):
            return tf.data.Dataset.from_tensor_slices(tuple(
                _cut(t, lo, per, length) for t in (index, key, label, mask)))

        def decode_rows(index, key, label, mask):
            good = decode_slice(mask, key, self.reader,
                                lambda c, r: eval_image(c, image_shape, resize), image_shape)
            return good.map(lambda pos, img: (index, key, label, mask, pos, img))

        def repair(index, key, label, mask, pos, images):
            _, images, present, unreadable = repair_slice(
                pos, images, self.reader.name(key, index), mask, train=False)
            out = {"image": images if raw else normalize(images, self.normalization),
                   "index": index, "label": label, "mask": mask & present,
                   "unreadable": unreadable}
            for k, values in extras.items():
                out[k] = tf.gather(values, index)
            return out

        ds = ds.batch(batch_size).flat_map(slices)
        ds = ds.interleave(decode_rows, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.map(repair, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)

    def sample_images(self, count):
        """uint8 [n <= count, H, W, C]: evaluation views of up to ``count`` examples
        spread over the source (``_sample_indices``), unreadable ones left out."""
        images = [b["image"].numpy()[b["mask"].numpy()]
                  for b in self.eval_dataset(64, indices=self._sample_indices(count), raw=True)]
        return np.concatenate(images)

    def fetch(self, indices, **unused):
        """Normalised evaluation crops of the examples at ``indices``, eagerly (for
        ``Passes.fetch_images``); unreadable files are left out with a warning."""
        del unused
        if not tf.executing_eagerly():
            raise RuntimeError("a streamed source fetches images eagerly only")
        indices = np.asarray(indices, np.int64)
        parts, index = [], []
        for b in self.eval_dataset(max(1, len(indices)), indices=indices):
            mask = b["mask"].numpy()
            parts.append(b["image"].numpy()[mask])
            index.append(b["index"].numpy()[mask])
        return {"image": tf.constant(np.concatenate(parts)),
                "index": tf.constant(np.concatenate(index))}


class FileSource(StreamSource):
    """Images read from files by index: it holds the paths and labels, never pixels.

    Args:
      paths: str [N], one file per example.
      labels: int [N].
      **view: ``StreamSource``'s arguments.
    """

    def __init__(self, paths, labels, normalization, image_shape, **view):
        super().__init__(normalization, image_shape, **view)
        self.paths = np.asarray(paths).astype(str)
        self.labels = np.asarray(labels, np.int64)
        self.size = len(self.paths)
        with tf.init_scope():
            self._paths = tf.constant(self.paths)
            self._labels = tf.constant(self.labels)
        self.reader = Reader(read=tf.io.read_file, name=lambda keys, indices: keys)

    def _rows(self, indices):
        return (indices, tf.gather(self._paths, indices), tf.gather(self._labels, indices))

    def _train_keys(self, stream, stream_seed, start_step):
        batches = index_batches(stream.indices, stream.batch_size, stream_seed, start_step)
        return batches.map(self._rows)

    def _eval_keys(self, indices):
        indices = (np.arange(self.size, dtype=np.int64) if indices is None
                   else np.asarray(indices, np.int64))
        return tf.data.Dataset.from_tensor_slices(indices).map(self._rows), len(indices)

    def _sample_indices(self, count):
        return np.unique(np.linspace(0, self.size - 1, min(count, self.size)).astype(np.int64))


class TfdsSource(StreamSource):
    """A TFDS split read in its stored order, records decoded as training consumes them.

    An example's index is its position in the stored order. Streams draw from the
    whole split (TFDS files have no random access: a labeled subset, say, needs a
    folder); an epoch reads the split in order and permutes each block of
    ``TFDS_SHUFFLE_BUFFER`` consecutive records, seeded by (stream, epoch, block).
    """

    def __init__(self, splits, split, size, normalization, image_shape, **view):
        super().__init__(normalization, image_shape, **view)
        self.splits, self.split, self.size = splits, split, int(size)
        prefix = f"{splits.name} {split} example "
        self.reader = Reader(read=lambda key: key, name=lambda keys, indices: tf.strings.join(
            [prefix, tf.strings.as_string(indices)]))

    def _records(self):
        """(index, encoded image, label) in stored order."""
        return tfds_records(self.splits, self.split).enumerate().map(
            lambda i, x: (i, x[0], x[1]))

    def _train_keys(self, stream, stream_seed, start_step):
        indices = np.asarray(stream.indices)
        if len(indices) != self.size or not np.array_equal(np.sort(indices),
                                                           np.arange(self.size)):
            raise ValueError(f"{self.splits.name}: a TFDS stream draws from the whole split "
                             f"({self.size} examples), not from a subset of "
                             f"{len(indices)}; TFDS files have no random access (stream a "
                             "folder of images, or load the data into memory, --stream=false)")
        records, size = self._records(), self.size
        first_epoch, skip = divmod(int(start_step) * int(stream.batch_size), size)

        def epoch(e):
            # Each block of TFDS_SHUFFLE_BUFFER consecutive records is permuted with a
            # stateless seed of (stream, epoch, block): no shuffle-buffer state, and
            # nothing that depends on TensorFlow's global seed.
            epoch_seed = tf.random.experimental.stateless_fold_in(stream_seed, e)

            def permute(block, rows):
                order = tf.random.experimental.stateless_shuffle(
                    tf.range(tf.shape(rows[0])[0]),
                    tf.random.experimental.stateless_fold_in(epoch_seed, block))
                return tf.data.Dataset.from_tensor_slices(
                    tuple(tf.gather(t, order) for t in rows))
            blocks = records.batch(TFDS_SHUFFLE_BUFFER).enumerate()
            return blocks.flat_map(permute)
        ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
        # The records before the resumed step are read, not decoded.
        return ds.skip(skip).batch(stream.batch_size, drop_remainder=True)

    def _eval_keys(self, indices):
        n = self.size if indices is None else len(indices)
        if indices is not None and not np.array_equal(np.asarray(indices), np.arange(n)):
            raise ValueError(f"{self.splits.name}: a TFDS split is read in its stored order "
                             "from the start; passes over other examples need a folder")
        return self._records().take(n), n

    def _sample_indices(self, count):
        return np.arange(min(count, self.size), dtype=np.int64)

    def fetch(self, indices, **unused):
        raise ValueError(f"{self.splits.name}: fetching examples by index needs random access, "
                         "which TFDS files do not have; stream a folder of images instead, or "
                         "load the data into memory (--stream=false)")
