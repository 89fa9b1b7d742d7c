"""Distributed passes over fixed data: test error, and per-example outputs on the training set.

The distributed uint8 batches of in-memory data are made once and kept: building
a distributed iterator costs more than a pass over a small data set. Sources of
files (``streaming.StreamSource``: not ``in_memory``) are read again at every pass.

The test error is top-1; with more than ``TOP5_MIN_CLASSES`` classes the top-5
error is computed beside it (ImageNet's second number; with few classes it says
little, and with 5 or fewer it is 0).
"""
import functools

import numpy as np
import tensorflow as tf

from mixmatch_tf.data.pipeline import eval_dataset
from mixmatch_tf.data.preprocess import normalize

TOP5_MIN_CLASSES = 11


class Passes:
    """Evaluation and map-over-the-training-set passes of one trainer.

    Args:
      strategy: the tf.distribute strategy.
      normalization: the run's ``Normalization``.
      train_source, test_source: ``ArraySource``s of the training and test data.
      num_train: training examples (the first ``num_train`` of ``train_source``).
      batch_size: global batch size of the passes.
    """

    def __init__(self, strategy, normalization, train_source, test_source, num_train,
                 batch_size):
        self.strategy = strategy
        self.normalization = normalization
        self.train_source = train_source
        self.test_source = test_source
        self.num_train = num_train
        self.batch_size = batch_size
        self._map_fns = {}
        self._train_batches = None
        self._eval_fns = {}
        self._test_batches = None
        self._predictors = {}  # method -> its bound predictors (the compiled passes' keys)
        self.last_details = {}  # top-5 error and unreadable images of the last test_error

    def _batches(self, source, indices=None):
        batches = self.strategy.distribute_datasets_from_function(
            lambda ctx: eval_dataset(source, self.batch_size, indices=indices,
                                     input_context=ctx, raw=True))
        # A source of files is read anew at every pass (its images never all in memory).
        return list(batches) if source.in_memory else batches

    def map_train_set(self, fn):
        """Runs ``fn(batch) -> [b, ...]`` per replica over the un-augmented training set.

        ``batch`` holds normalised ``image``, ``label`` and ``index``. Returns the
        outputs as a NumPy array in training-index order, whatever the number of
        replicas or workers.
        """
        strategy, norm = self.strategy, self.normalization
        if fn not in self._map_fns:
            @tf.function
            def step(batch):
                def replica(b):
                    return fn(dict(b, image=normalize(b["image"], norm))), b["index"], b["mask"]
                out = strategy.run(replica, args=(batch,))
                return tuple(strategy.gather(v, axis=0) for v in out)
            self._map_fns[fn] = step
        n = self.num_train
        if self._train_batches is None:
            self._train_batches = self._batches(self.train_source, np.arange(n))
        out = None
        for batch in self._train_batches:
            values, index, mask = (t.numpy() for t in self._map_fns[fn](batch))
            if out is None:
                out = np.zeros((n,) + values.shape[1:], values.dtype)
            out[index[mask]] = values[mask]
        return out

    def raw_train_images(self, indices):
        """uint8 un-augmented training images at ``indices``, in that order, read on the
        host (a few examples to show; an unreadable file stays black)."""
        indices = np.asarray(indices, np.int64)
        out = np.zeros((len(indices),) + tuple(self.train_source.image_shape), np.uint8)
        where = {int(i): j for j, i in enumerate(indices)}
        for batch in eval_dataset(self.train_source, 64, indices=indices, raw=True):
            mask = batch["mask"].numpy()
            for i, image in zip(batch["index"].numpy()[mask], batch["image"].numpy()[mask]):
                out[where[int(i)]] = image
        return out

    def fetch_images(self, indices):
        """Normalised, un-augmented training-source images at ``indices`` (a tensor)."""
        return self.train_source.fetch(tf.constant(np.asarray(indices, np.int64)))["image"]

    def evaluation(self, method, state, details=False):
        """``test_error`` (%) of ``method.predict`` (and ``top5_test_error``,
        ``unreadable_test_images`` where they apply); with ``details``, also the
        method's own evaluations (``Method.extra_evaluations``: the trained network
        of an EMA, and a ``warning``)."""
        if method not in self._predictors:
            self._predictors[method] = functools.partial(method.predict, state)
        error, served = self.test_error(self._predictors[method])
        record = {"test_error": error}
        record.update(self.last_details)
        if details:
            record.update(method.extra_evaluations(state, self.test_error, served))
        return record

    def test_error(self, predict):
        """Test error (%) of ``predict(normalised images) -> probabilities``, and how
        many test images it assigns to each class (float64 [C]); None when
        ``predict`` returns None (no such predictor). ``predict`` is compiled once
        per function object: pass the same one every time.

        ``last_details`` then holds ``top5_test_error`` (with more than
        ``TOP5_MIN_CLASSES - 1`` classes) and ``unreadable_test_images`` (streamed
        data whose test files could not be read: left out of both errors).
        """
        strategy, norm = self.strategy, self.normalization
        if predict not in self._eval_fns:
            @tf.function
            def step(batch):
                def replica(b):
                    probs = predict(normalize(b["image"], norm))
                    if probs is None:
                        return None
                    pred = tf.argmax(probs, axis=-1)
                    mask = tf.cast(b["mask"], tf.float64)
                    hit = tf.cast(tf.equal(pred, b["label"]), tf.float64) * mask
                    spread = tf.reduce_sum(tf.one_hot(pred, probs.shape[-1], dtype=tf.float64)
                                           * mask[:, None], axis=0)
                    out = {"hits": tf.reduce_sum(hit), "count": tf.reduce_sum(mask),
                           "spread": spread}
                    if probs.shape[-1] >= TOP5_MIN_CLASSES:
                        top5 = tf.math.in_top_k(tf.maximum(b["label"], 0), probs, 5)
                        out["top5_hits"] = tf.reduce_sum(tf.cast(top5, tf.float64) * mask)
                    if "unreadable" in b:
                        out["unreadable"] = tf.cast(b["unreadable"], tf.float64)
                    return out
                out = strategy.run(replica, args=(batch,))
                if out is None:
                    return None
                return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for k, v in out.items()}
            self._eval_fns[predict] = step
        if self._test_batches is None:
            self._test_batches = self._batches(self.test_source)
        sums = None
        for batch in self._test_batches:
            out = self._eval_fns[predict](batch)
            if out is None:
                return None
            out = {k: v.numpy() for k, v in out.items()}
            sums = out if sums is None else {k: sums[k] + out[k] for k in sums}
        count = float(sums["count"])
        self.last_details = {}
        if "top5_hits" in sums:
            self.last_details["top5_test_error"] = 100.0 * (1.0 - float(sums["top5_hits"])
                                                            / count)
        if sums.get("unreadable"):
            self.last_details["unreadable_test_images"] = int(sums["unreadable"])
        return 100.0 * (1.0 - float(sums["hits"]) / count), sums["spread"]
