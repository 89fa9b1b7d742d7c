"""What the semi-supervised methods of the MixMatch tables share.

Settings of the MixMatch paper and its official code (google-research/mixmatch)
for every method it compares: WRN-28-2, 64 labeled (+ 64 unlabeled) examples
per step, Adam at 0.002, decoupled weight decay on conv/dense kernels
(``kernel *= 1 - wd * lr`` after each step), an exponential moving average of
the weights for evaluation and export, 2^20 steps, evaluation every 1024 steps,
a class-balanced labeled subset drawn with the run seed. Batch-norm moving
statistics are updated by the first forward pass of a step only (the labeled
batch, or MixMatch's first interleaved batch), as in the official code.

The EMA network averages the trainable weights only (as the official code).
Its batch-norm statistics are its own: before every evaluation and export they
are estimated for the EMA weights over a fixed, seeded sample of
``ema_bn_examples`` un-augmented training images (labeled and unlabeled), in
training mode as the student computes them. The official code instead lends
the EMA weights the student's statistics; over its 2^20 steps the two networks
are close, but in short runs (or early in long ones) the EMA weights are far
from the student's and borrowed -- or averaged -- statistics can make the EMA
network predict one class for every image.
"""
import dataclasses
import math
from typing import ClassVar, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.methods import common
from mixmatch_tf.methods.base import LabeledSplit, Method, Phase, TrainConfig
from mixmatch_tf.settings import ALL_LABELS, check, setting


@dataclasses.dataclass(frozen=True)
class SemiConfig(TrainConfig):
    batch_size: int = setting(64, "labeled examples per step (official: 64)", within="[1, 65536]")
    unlabeled_batch_size: Optional[int] = setting(None, "unlabeled examples per step; None: "
                                                  "batch_size (official: 64)", within="[1, 65536]")
    learning_rate: float = setting(0.002, "Adam learning rate, constant (official: 0.002)",
                                   within="(0, inf)")
    weight_decay: float = setting(0.02, "decoupled weight decay: conv/dense kernels *= 1 - "
                                  "weight_decay * lr after each step (official: 0.02)",
                                  within="[0, inf)")
    train_steps: Optional[int] = setting(1 << 20, "training length in steps (official: 2^20)",
                                         within="[1, 1e12]")
    eval_every: Optional[int] = setting(1024, "steps between evaluations (official: 1024)",
                                        within="[1, 1e12]")
    ema_decay: float = setting(0.999, "decay of the moving average of the weights that is "
                               "evaluated and exported, in [0, 1); 0: no EMA (official: 0.999)",
                               within="[0, 1)")
    ema_warmup: bool = setting(True, "the EMA's decay is min(ema_decay, (1 + t) / (10 + t)) "
                               "after t steps, as tf.train.ExponentialMovingAverage with "
                               "num_updates: a short run's EMA forgets the random initial "
                               "weights (at a constant 0.999 they are still 13.5% of it after "
                               "2,000 steps); the same decay after 9,000 steps. False: the "
                               "official constant decay")
    ema_bn_examples: int = setting(4096, "training images over which the EMA network's "
                                   "batch-norm statistics are estimated before evaluation "
                                   "and export", within="[1, 10000000]")
    num_labeled: Union[int, str] = setting(
        4000, "labeled examples, as balanced over the classes as the count allows, drawn with "
        "the seed (paper: 250 to 4000 on CIFAR-10 and SVHN); all: every label the data gives, "
        "its unlabelled images (npz x_unlabeled, a folder's unlabeled/) the pool",
        within="[1, 1e9]", words=(ALL_LABELS,))
    label_fold: Optional[int] = setting(None, "predefined labeled fold (STL-10, 1000 labels); "
                                        "None: fold number seed modulo the fold count; -1: a "
                                        "random draw instead", within="[-1, 1e6]")
    label_folds_file: Optional[str] = setting(None, "STL-10's fold_indices.txt (its train_X.bin "
                                              "beside it)")
    unlabeled_includes_labeled: bool = setting(False, "the unlabeled set also holds the labeled "
                                               "examples; False as the official MixMatch code")
    augment: bool = setting(True, "random crop (+ flip where valid)")

    def __post_init__(self):
        super().__post_init__()
        decay = self.weight_decay * self.learning_rate
        check(decay < 1, "weight_decay", f"weight_decay * learning_rate must be < 1 (each step "
              f"multiplies the kernels by 1 - {decay:g}), got {self.weight_decay} * "
              f"{self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class ConsistencyConfig(SemiConfig):
    """The baselines' unlabeled-loss weight, ramped up linearly from 0 (official code)."""
    consistency_weight: float = setting(1.0, "weight of the unlabeled loss after its ramp-up, "
                                        ">= 0", within="[0, inf)")
    warmup_fraction: float = setting(0.4, "fraction of training, in (0, 1], over which the "
                                     "unlabeled-loss weight ramps up linearly from 0 "
                                     "(official warmup_pos: 0.4)", within="(0, 1]")



BN_BATCH = 256  # images per training-mode pass when estimating BN statistics
# Passes over a user's unlabeled pool (sized_counts): the digits' 1,500 steps of 64 are
# about 75 passes over their 1,247 unlabeled images.
SIZED_PASSES = 75

# The bundled digits: a small CNN, 50 labels, 1,500 steps (about half a minute on 2 cores).
DIGITS = {"model": "small_cnn", "num_labeled": 50, "train_steps": 1500, "eval_every": 50,
          "ema_decay": 0.99}


class SemiSupervised(Method):
    """Base of the SSL methods: student (+ EMA) network, Adam, labeled/unlabeled streams."""
    Config = SemiConfig
    default_model = "wrn28_2"
    # Augmented views per unlabeled example the step needs (None: no unlabeled stream).
    unlabeled_views: ClassVar[Optional[int]] = 1

    @classmethod
    def labeled_split(cls, config):
        return LabeledSplit(config.num_labeled, config.unlabeled_includes_labeled,
                            config.label_fold, config.label_folds_file)

    @classmethod
    def sized_counts(cls, data, values):
        """For a user's data set: every label where it has an unlabelled pool (else a
        tenth of its labels, at least 4 per class, the rest unlabeled), and
        ``SIZED_PASSES`` passes over the unlabeled pool (at least the digits' 1,500
        steps, at most the paper's 2^20), evaluated 30 times."""
        batch = values.get("batch_size", cls.Config().batch_size)
        if data.num_unlabeled:
            num_labeled, pool = ALL_LABELS, data.num_unlabeled
        else:
            num_labeled = max(4 * data.num_classes, int(round(0.1 * data.num_train)))
            pool = max(1, data.num_train - num_labeled)
        steps = int(min(1 << 20, max(1500, math.ceil(SIZED_PASSES * pool / batch))))
        return {"num_labeled": num_labeled, "train_steps": steps,
                "eval_every": max(50, steps // 30)}

    def build(self):
        student = self.ctx.model_fn()
        opt = common.build_optimizer(
            keras.optimizers.Adam(learning_rate=self.config.learning_rate), student)
        state = {"student": student, "opt": opt}
        if self.config.ema_decay > 0:
            ema = self.ctx.model_fn()
            ema.set_weights(student.get_weights())
            state["ema"] = ema
        return state

    def views(self):
        return self.unlabeled_views

    def phase(self, index, state, fresh, start_step=0):
        if index > 0:
            return None
        cfg = self.config
        streams = {"labeled": Stream(indices=self.ctx.labeled_indices, batch_size=cfg.batch_size,
                                     augment=cfg.augment)}
        if self.views() is not None:
            streams["unlabeled"] = Stream(
                indices=self.ctx.unlabeled_indices,
                batch_size=cfg.unlabeled_batch_size or cfg.batch_size, views=self.views(),
                augment=cfg.augment, with_labels=False)
        return Phase(name="train", steps=self.total_steps(), streams=streams,
                     step_fn=self.train_step, last=True)

    def labeled(self, batch):
        """(x_lb [b, H, W, C], y_lb one-hot [b, C]) of a step's batch."""
        lb = batch["labeled"]
        return lb["image"], tf.one_hot(lb["label"], self.ctx.num_classes)

    def update(self, state, tape, loss):
        """Adam step on ``loss``, then decoupled weight decay, then the EMA (its decay
        warmed up over the optimizer's update count)."""
        student, opt = state["student"], state["opt"]
        grads = common.replica_gradients(tape, loss, student.trainable_variables, opt)
        opt.apply_gradients(zip(grads, student.trainable_variables))
        common.decay_kernels(student, self.config.weight_decay * self.config.learning_rate)
        if "ema" in state:
            decay = common.ema_decay(self.config.ema_decay, opt.iterations,
                                     self.config.ema_warmup)
            common.ema_update(state["ema"], student, decay)

    def consistency_weight(self, step):
        """consistency_weight * clip(step / (warmup_fraction * total steps), 0, 1)."""
        cfg = self.config
        ramp = ops.linear_rampup(step, max(1, int(cfg.warmup_fraction * self.total_steps())))
        return cfg.consistency_weight * ramp

    def bn_sample(self):
        """The training indices over which the EMA network's BN statistics are
        estimated: a seeded sample of every index the method trains on, in a
        shuffled order (batches of a class-sorted data set would be one class)."""
        pool = self.ctx.labeled_indices
        if self.ctx.unlabeled_indices is not None and self.views() is not None:
            pool = np.union1d(pool, self.ctx.unlabeled_indices)
        rng = np.random.RandomState(self.ctx.seed)
        return rng.permutation(np.asarray(pool, np.int64))[:self.config.ema_bn_examples]

    def prepare_predict(self, state):
        if "ema" not in state:
            return
        sample = self.bn_sample()
        batches = (self.ctx.fetch_images(sample[i:i + BN_BATCH])
                   for i in range(0, len(sample), BN_BATCH))
        common.estimate_bn_statistics(state["ema"], batches)

    def predict(self, state, images):
        net = state.get("ema", state["student"])
        return tf.nn.softmax(net(images, training=False))

    def extra_evaluations(self, state, test_error, served):
        """With an EMA served: the trained network's (the student's) test error, and a
        warning when the EMA's predictions collapse onto few classes while the
        student's do not (``collapse_warning``)."""
        if "ema" not in state:
            return {}
        if getattr(self, "_student_predict", None) is None:  # compiled once: one object
            self._student_predict = lambda images: tf.nn.softmax(
                state["student"](images, training=False))
        error, spread = test_error(self._student_predict)
        out = {"student_test_error": error}
        warning = collapse_warning(served, spread)
        if warning:
            out["warning"] = warning
        return out


def effective_classes(counts):
    """exp(entropy) of a histogram of predicted classes: C when the predictions
    spread evenly over C classes, 1 when every prediction is one class."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() <= 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def collapse_warning(served, trained, ratio=0.5):
    """A warning when the served network's predictions collapse onto few classes
    while the trained network's do not, else None.

    Args:
      served, trained: per-class counts of the test predictions of the network
        that evaluation and export use (an EMA) and of the trained network.
      ratio: warn when the served network's effective number of classes is
        below ``ratio`` times the trained network's.
    """
    s, t = effective_classes(served), effective_classes(trained)
    if t < 2.0 or s >= ratio * t:
        return None
    served = np.asarray(served, np.float64)
    top = int(np.argmax(served))
    return (f"predictions collapse: the evaluated network spreads its test predictions over "
            f"{s:.1f} effective classes (class {top} takes {served[top] / served.sum():.0%}), "
            f"the trained network over {t:.1f}; the evaluated network (an EMA) does not "
            "serve what the trained one learned")
