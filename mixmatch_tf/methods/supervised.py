"""Supervised-only baseline: the labeled subset alone, with MixMatch's training setup.

* cross-entropy on the augmented labeled batch; no unlabeled data;
* Adam 0.002, decoupled kernel decay, EMA for evaluation (semi.py).

Per replica / global: losses are per-replica means, gradients summed; nothing
is mixed, so any replica count takes the same step.

References:
  Berthelot et al., MixMatch, NeurIPS 2019 (the supervised reference of its tables).
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import semi
from mixmatch_tf.methods.base import register


@dataclasses.dataclass(frozen=True)
class Config(semi.SemiConfig):
    pass


@register("supervised")
class Supervised(semi.SemiSupervised):
    Config = Config
    unlabeled_views = None
    dataset_defaults = {"digits": semi.DIGITS}

    def train_step(self, state, batch, step):
        x_lb, y_lb = self.labeled(batch)
        with tf.GradientTape() as tape:
            logits = state["student"](x_lb, training=True)
            loss = tf.reduce_mean(ops.soft_cross_entropy(logits, y_lb))
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss}
