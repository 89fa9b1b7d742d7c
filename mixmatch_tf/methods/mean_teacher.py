"""Mean Teacher: the student agrees with an exponential moving average of itself.

* the teacher is the EMA network (the one also used for evaluation), run in
  training mode on one augmentation u_1 of each unlabeled image;
* L_u: mean squared difference of the teacher's and the student's (on u_2)
  softmax outputs; L = L_x + consistency_weight * ramp(step) * L_u, ramp over the
  first 40% of training; the official table uses weight decay 0.2.

Per replica / global: per example, as Pi-Model.

References:
  Tarvainen & Valpola, Mean teachers are better role models, NeurIPS 2017;
  google-research/mixmatch ``mean_teacher.py`` (weight 50, wd 0.2 on CIFAR-10).
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import check, setting


@dataclasses.dataclass(frozen=True)
class Config(semi.ConsistencyConfig):
    weight_decay: float = setting(0.2, "decoupled weight decay: conv/dense kernels *= 1 - "
                                  "weight_decay * lr after each step (MixMatch tables: 0.2)",
                                  within="[0, inf)")
    consistency_weight: float = setting(50.0, "weight of the consistency loss after its ramp-up "
                                        "(MixMatch tables, CIFAR-10: 50)", within="[0, inf)")

    def __post_init__(self):
        super().__post_init__()
        check(self.ema_decay > 0, "ema_decay", "Mean Teacher needs the EMA teacher (> 0)")


@register("mean_teacher")
class MeanTeacher(semi.SemiSupervised):
    Config = Config
    unlabeled_views = 2
    # On the digits (50 labels, 1,500 steps) weight 50 drowns the labeled loss: 10 does better.
    dataset_defaults = {"digits": dict(semi.DIGITS, consistency_weight=10.0)}

    def train_step(self, state, batch, step):
        net, teacher_net = state["student"], state["ema"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"]
        weight = self.consistency_weight(step)
        teacher = tf.stop_gradient(
            tf.nn.softmax(common.call_without_stat_updates(teacher_net, u[:, 0])))
        with tf.GradientTape() as tape:
            logits_x = net(x_lb, training=True)
            student = tf.nn.softmax(common.call_without_stat_updates(net, u[:, 1]))
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits_x, y_lb))
            loss_u = tf.reduce_mean(ops.squared_error(student, teacher))
            loss = loss_x + weight * loss_u
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "weight_u": weight}
