"""Virtual Adversarial Training (+ entropy minimisation) for semi-supervised learning.

* r_adv: one power iteration from a random direction d: the gradient, with
  respect to d, of KL(p(u) || p(u + xi d)), normalised (by its max, then its L2
  norm per example) and scaled to length ``vat_eps``;
* L_vat = KL(p(u + r_adv) || p(u)) with p(u) held fixed; L_ent = entropy of p(u).
  The two KL terms point in opposite directions as in the official code: its
  power iteration calls ``kl_divergence_with_logit(q_logit=clean, p_logit=
  perturbed)`` = KL(clean || perturbed), its loss
  ``kl_divergence_from_logits(student, teacher)`` = KL(student || teacher) with
  the student on the perturbed input;
* L = L_x + consistency_weight * ramp(step) * L_vat + entmin_weight * L_ent.
  Epsilon is in the units of the normalised inputs ([-1, 1] for the official
  presets, see ``--normalization=symmetric``).

Per replica / global: per example; the random direction is drawn from a seed
derived from (run seed, step, replica), so it differs between replica counts.

References:
  Miyato et al., Virtual Adversarial Training, TPAMI 2018; Grandvalet & Bengio,
  Entropy Minimization, 2005; google-research/mixmatch ``vat.py``.
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class Config(semi.ConsistencyConfig):
    consistency_weight: float = setting(0.3, "weight of the VAT loss after its ramp-up "
                                        "(MixMatch tables: 0.3)", within="[0, inf)")
    vat_eps: float = setting(6.0, "length (L2) of the adversarial perturbation, in units of the "
                             "normalised inputs (MixMatch tables: 6)", within="(0, 1e3]")
    vat_xi: float = setting(1e-6, "length of the probe of the power iteration (official: 1e-6)",
                            within="[1e-12, 1e3]")
    entmin_weight: float = setting(0.06, "weight of entropy minimisation on unlabeled data "
                                   "(MixMatch tables: 0.06)", within="[0, inf)")



def normalize_direction(d):
    """d / max|d|, then / ||d||_2, per example (the VAT code's normalisation)."""
    axes = list(range(1, d.shape.rank))
    d = d / (1e-12 + tf.reduce_max(tf.abs(d), axis=axes, keepdims=True))
    return d / tf.sqrt(1e-6 + tf.reduce_sum(tf.square(d), axis=axes, keepdims=True))


def kl_from_logits(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) per example."""
    p = tf.nn.softmax(p_logits)
    return tf.reduce_sum(p * (tf.nn.log_softmax(p_logits) - tf.nn.log_softmax(q_logits)), -1)


def adversarial_direction(forward, x, logits, eps, xi, seed):
    """r_adv of one power iteration; ``logits`` = forward(x), held fixed."""
    d = xi * normalize_direction(tf.random.stateless_normal(tf.shape(x), seed))
    with tf.GradientTape() as tape:
        tape.watch(d)
        dist = tf.reduce_mean(kl_from_logits(logits, forward(x + d)))
    return eps * normalize_direction(tf.stop_gradient(tape.gradient(dist, d)))


@register("vat")
class VAT(semi.SemiSupervised):
    Config = Config
    unlabeled_views = 1
    dataset_defaults = {"digits": dict(semi.DIGITS, vat_eps=1.0)}

    def train_step(self, state, batch, step):
        cfg, net = self.config, state["student"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"][:, 0]
        forward = lambda v: common.call_without_stat_updates(net, v)  # noqa: E731
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = ops.make_seed(self.ctx.seed, 2, step, replica)
        weight = self.consistency_weight(step)
        with tf.GradientTape() as tape:
            logits_x = net(x_lb, training=True)
            logits_u = forward(u)
            teacher = tf.stop_gradient(logits_u)
            with tape.stop_recording():
                r_adv = adversarial_direction(forward, u, teacher, cfg.vat_eps, cfg.vat_xi, seed)
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits_x, y_lb))
            # KL(student || teacher), the official argument order (see the docstring).
            loss_vat = tf.reduce_mean(kl_from_logits(forward(u + r_adv), teacher))
            loss_ent = tf.reduce_mean(ops.entropy(logits_u))
            loss = loss_x + weight * loss_vat + cfg.entmin_weight * loss_ent
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_vat, "loss_entmin": loss_ent,
                "weight_u": weight}
