"""Pi-Model: predictions on two augmentations of an unlabeled image should agree.

* L_x: cross-entropy on the labeled batch (the only pass that updates BN statistics);
* L_u: mean squared difference of softmax(model(u_1)) (gradient stopped) and
  softmax(model(u_2)), averaged over classes;
* L = L_x + consistency_weight * ramp(step) * L_u, ramp linear over the first 40%.

Per replica / global: everything is per example; any replica count takes the
same step (with synchronised BN or a BN-free model).

References:
  Laine & Aila, Temporal Ensembling for Semi-Supervised Learning, ICLR 2017;
  google-research/mixmatch ``pi_model.py`` (weight 20 on CIFAR-10).
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class Config(semi.ConsistencyConfig):
    consistency_weight: float = setting(20.0, "weight of the consistency loss after its ramp-up "
                                        "(MixMatch tables, CIFAR-10: 20)", within="[0, inf)")


@register("pi_model")
class PiModel(semi.SemiSupervised):
    Config = Config
    unlabeled_views = 2
    dataset_defaults = {"digits": semi.DIGITS}

    def train_step(self, state, batch, step):
        net = state["student"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"]
        weight = self.consistency_weight(step)
        with tf.GradientTape() as tape:
            logits_x = net(x_lb, training=True)
            teacher = tf.stop_gradient(tf.nn.softmax(common.call_without_stat_updates(net, u[:, 0])))
            student = tf.nn.softmax(common.call_without_stat_updates(net, u[:, 1]))
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits_x, y_lb))
            loss_u = tf.reduce_mean(ops.squared_error(student, teacher))
            loss = loss_x + weight * loss_u
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "weight_u": weight}
