"""Distributed passes over fixed data: test error, and per-example outputs on the training set.

The distributed uint8 batches are made once and kept: building a distributed
iterator costs more than a pass over a small data set.
"""
import numpy as np
import tensorflow as tf

from mixmatch_tf.data.pipeline import eval_dataset
from mixmatch_tf.data.preprocess import normalize


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

    def _batches(self, source, indices=None):
        return list(self.strategy.distribute_datasets_from_function(
            lambda ctx: eval_dataset(source, self.batch_size, indices=indices,
                                     input_context=ctx, raw=True)))

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

    def test_error(self, predict):
        """Test error (%) of ``predict(normalised images) -> probabilities``."""
        strategy, norm = self.strategy, self.normalization
        if predict not in self._eval_fns:
            @tf.function
            def step(batch):
                def replica(b):
                    pred = tf.argmax(predict(normalize(b["image"], norm)), axis=-1)
                    hit = tf.logical_and(tf.equal(pred, b["label"]), b["mask"])
                    return (tf.reduce_sum(tf.cast(hit, tf.float64)),
                            tf.reduce_sum(tf.cast(b["mask"], tf.float64)))
                hits, count = strategy.run(replica, args=(batch,))
                return (strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None),
                        strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))
            self._eval_fns[predict] = step
        if self._test_batches is None:
            self._test_batches = self._batches(self.test_source)
        hits = count = 0.0
        for batch in self._test_batches:
            h, c = self._eval_fns[predict](batch)
            hits += float(h)
            count += float(c)
        return 100.0 * (1.0 - hits / count)
