"""mixup for semi-supervised learning (the "Mixup" rows of the MixMatch tables).

* unlabeled targets: the current model's softmax on the unlabeled batch
  (gradient stopped, no sharpening);
* mixup within the labeled batch and, separately, within the unlabeled batch,
  lambda' = max(lambda, 1 - lambda) per example, lambda ~ Beta(0.75, 0.75);
* L = CE(labeled) + consistency_weight * CE(unlabeled), no ramp (official code).

Per replica / global: the mixing is global (each part gathered over replicas),
as in MixMatch; the target guessing is per example.

References:
  Zhang et al., mixup, ICLR 2018, adapted to SSL in google-research/mixmatch ``mixup.py``.
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class Config(semi.SemiConfig):
    mixup_alpha: float = setting(0.75, "alpha of Beta(alpha, alpha), the mixing weights' "
                                 "distribution, > 0 (MixMatch tables: 0.75)", within="(0, 1e6]")
    consistency_weight: float = setting(1.0, "weight of the unlabeled cross-entropy, >= 0, not "
                                        "ramped (official code: 1)", within="[0, inf)")
    mixup_per_example: bool = setting(True, "one lambda per example (official code) instead of "
                                      "one per batch")



@register("mixup_ssl")
class MixupSSL(semi.SemiSupervised):
    Config = Config
    unlabeled_views = 1
    # On the digits the model's own unsharpened guesses, at weight 1, pull it towards
    # uncertain predictions (worse than supervised-only); 0.1 keeps their benefit.
    dataset_defaults = {"digits": dict(semi.DIGITS, consistency_weight=0.1)}

    def train_step(self, state, batch, step):
        cfg, net = self.config, state["student"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"][:, 0]
        q = tf.stop_gradient(tf.nn.softmax(common.call_without_stat_updates(net, u)))
        mixed = [common.global_mixup([x], [y], cfg.mixup_alpha,
                                     ops.make_seed(self.ctx.seed, 1, part, step),
                                     cfg.mixup_per_example)
                 for part, (x, y) in enumerate(((x_lb, y_lb), (u, q)))]
        (x_mix,), (y_mix,) = mixed[0]
        (u_mix,), (q_mix,) = mixed[1]
        with tf.GradientTape() as tape:
            logits_x = net(x_mix, training=True)
            logits_u = common.call_without_stat_updates(net, u_mix)
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits_x, y_mix))
            loss_u = tf.reduce_mean(ops.soft_cross_entropy(logits_u, q_mix))
            loss = loss_x + cfg.consistency_weight * loss_u
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u}
