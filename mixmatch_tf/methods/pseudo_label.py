"""Pseudo-Label: train on the model's own confident predictions for unlabeled data.

* the pseudo-label of an unlabeled image is the argmax of the model's prediction;
* its cross-entropy counts only where the top probability exceeds ``threshold``
  (0.95), averaged over all unlabeled examples (as the official code);
* L = L_x + consistency_weight * ramp(step) * L_u, ramp over the first 40%.

Per replica / global: per example, as Pi-Model.

References:
  Lee, Pseudo-Label, ICML 2013 workshop; google-research/mixmatch ``pseudo_label.py``.
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class Config(semi.ConsistencyConfig):
    consistency_weight: float = setting(1.0, "weight of the pseudo-label loss after its ramp-up "
                                        "(MixMatch tables: 1)", within="[0, inf)")
    threshold: float = setting(0.95, "top softmax probability, in [0, 1), above which a "
                               "pseudo-label is used (MixMatch tables: 0.95)", within="[0, 1)")



def pseudo_label_loss(logits, threshold):
    """Per example: CE against argmax(logits) where max softmax > threshold, else 0."""
    probs = tf.nn.softmax(logits)
    mask = tf.cast(tf.reduce_max(probs, axis=-1) > threshold, tf.float32)
    return mask * ops.cross_entropy(logits, tf.stop_gradient(tf.argmax(logits, axis=-1)))


@register("pseudo_label")
class PseudoLabel(semi.SemiSupervised):
    Config = Config
    unlabeled_views = 1
    dataset_defaults = {"digits": semi.DIGITS}

    def train_step(self, state, batch, step):
        net = state["student"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"][:, 0]
        weight = self.consistency_weight(step)
        with tf.GradientTape() as tape:
            logits_x = net(x_lb, training=True)
            logits_u = common.call_without_stat_updates(net, u)
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits_x, y_lb))
            loss_u = tf.reduce_mean(pseudo_label_loss(logits_u, self.config.threshold))
            loss = loss_x + weight * loss_u
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "weight_u": weight}
