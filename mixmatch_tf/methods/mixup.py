"""mixup: ERM on convex combinations of pairs of examples and of their labels.

* lambda ~ Beta(alpha, alpha) (TFP), one per batch as in the official code, or
  one per example (``mixup_per_example``); no max(lambda, 1 - lambda);
* partner of each example = a random permutation of the same batch;
* x~ = lambda x_i + (1 - lambda) x_j, y~ = lambda y_i + (1 - lambda) y_j,
  trained with soft cross-entropy; everything else is ERM.

The paper's ablations are switches: mix inputs only (``mix_targets=False``),
with label smoothing (ERM's ``label_smoothing``), same-class partners
(``same_class``), k-nearest-neighbour partners in input space (``pairing=knn``,
k = ``knn_k``), convex combinations of ``num_mixed`` >= 3 examples with
Dirichlet(alpha) weights, and mixing of hidden representations after stage
``mix_layer`` of the network (manifold mixup) instead of inputs.

Which layer: a shipped network is a ``keras.Sequential`` of stages, and
``mix_layer = k`` mixes the output of stage k (``forward_mixed``); k = 0 is
input mixup. On PreAct ResNet-18 (stages stem, layer1..layer4, head) layer 1 is
the output of the stem and layers 2-5 the outputs of the residual stages
layer1..layer4, the last one just before pooling and the classifier: the five
rows "mix labels and latent representations, layer 1..5" of the paper's ablation
table. The paper does not spell its numbering out; this one gives five distinct
latent points, none of them the input (its layer-1 row, 4.44%, is not its input
mixup row, 4.24%). The Manifold Mixup code (vikasverma1077/manifold_mixup,
``preresnet.py``) counts differently: its ``layer_mix = k`` mixes after conv1
and residual stages 1..k, which is our layer k + 1. On the small CNN of the
digits (stages block1, block2, head) only layers 1 and 2 exist; a layer at or
beyond the head is refused.

Per replica / global: input mixing runs inside tf.data on the *global* batch
before it is split over replicas, so lambda and the partners are global and the
result does not depend on the replica count. Hidden-layer mixing happens in the
step, with lambda and the permutation drawn per replica (partners within the
replica's slice). On streamed data (``data/streaming.py``) the pipeline hands the
transform each replica's slice instead, so input mixing draws lambda and the
partners per replica slice too, as data-parallel ImageNet trainers mix within
each device's batch.

References:
  Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018 (section 3,
  the ablation table, and the tips on Dirichlet mixing); Verma et al., Manifold
  Mixup, ICML 2019 (hidden-layer mixing).
"""
import dataclasses

import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import erm
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import ConfigError, check, setting
from mixmatch_tf.models import split_stages

PAIRINGS = ("random", "knn")


@dataclasses.dataclass(frozen=True)
class Config(erm.Config):
    mixup_alpha: float = setting(1.0, "alpha of Beta(alpha, alpha), the mixing weight's "
                                 "distribution, > 0 (paper: 1 on CIFAR, 0.1-0.4 on ImageNet)",
                                 within="(0, 1e6]")
    mixup_per_example: bool = setting(False, "one lambda per example instead of one per batch "
                                      "(the official code: per batch)")
    mix_targets: bool = setting(True, "mix the labels too; False: the paper's \"mix inputs "
                                "only\" ablation")
    pairing: str = setting("random", "partners: random (a permutation of the batch) | knn "
                           "(nearest neighbours in input space)")
    same_class: bool = setting(False, "partners from the same class only (the paper's SC "
                               "instead of AC)")
    knn_k: int = setting(200, "neighbours of the knn pairing, >= 1 (paper: 200)",
                         within="[1, 100000]")
    num_mixed: int = setting(2, "examples per convex combination, >= 2; 3 or more: "
                             "Dirichlet(alpha) weights", within="[2, 64]")
    mix_layer: int = setting(0, "0: mix the inputs; k > 0: mix the output of stage k of the "
                             "network (1 = stem; manifold mixup)", within="[0, 64]")

    def __post_init__(self):
        super().__post_init__()
        check(self.pairing in PAIRINGS, "pairing",
              f"must be one of {', '.join(PAIRINGS)}, got {self.pairing!r}")
        special = self.pairing != "random" or self.same_class
        check(not (special and self.num_mixed > 2), "num_mixed",
              "Dirichlet mixing of 3+ examples uses random partners (pairing=random, "
              "same_class=False)")
        check(not (self.mix_layer and (special or self.num_mixed > 2)), "mix_layer",
              "hidden-layer mixing uses random pairs of the batch")


def forward_mixed(stages, x, y, layer, lam, perm, training=True):
    """Runs ``stages`` on ``x``, mixing the output of stage ``layer`` and the targets.

    Args:
      stages: the network's stages in order (callables ``stage(h, training=...)``).
      x: the input batch [B, ...].
      y: the targets [B, C].
      layer: k >= 1, mix the output of ``stages[k - 1]`` (k = 0 would be input mixup).
      lam: mixing weight, scalar or [B].
      perm: int [B], each example's partner within the batch.

    Returns:
      (logits of the mixed batch, mixed targets).
    """
    h = x
    for stage in stages[:layer]:
        h = stage(h, training=training)
    h, y_mix = ops.mixup(h, y, lam, perm)
    for stage in stages[layer:]:
        h = stage(h, training=training)
    return h, y_mix


def same_class_partner(index, labels_sorted_order, class_start, class_count, labels, seed):
    """A uniformly random training example of the same class as each ``index``."""
    c = tf.gather(labels, index)
    u = tf.random.stateless_uniform(tf.shape(index), seed)
    pos = tf.gather(class_start, c) + tf.cast(u * tf.cast(tf.gather(class_count, c), tf.float32),
                                              tf.int64)
    return tf.gather(labels_sorted_order, pos)


@register("mixup")
class Mixup(erm.ERM):
    Config = Config
    dataset_defaults = {"digits": erm.DIGITS}

    def build(self):
        cfg = self.config
        if (cfg.pairing == "knn" or cfg.same_class) and self.ctx.train_images is None:
            raise ConfigError("pairing" if cfg.pairing == "knn" else "same_class",
                              "k-NN and same-class partners are fetched from the training "
                              "images in memory; streamed data has none (--stream=false)")
        state = super().build()
        if self.config.mix_layer:
            stages = len(split_stages(state["net"]))
            if self.config.mix_layer >= stages:
                raise ConfigError("mix_layer", f"must be below the {stages} stages of the model "
                                  f"({', '.join(s.name for s in split_stages(state['net']))})")
        return state

    def partner_fn(self):
        """fn(index, seed) -> partner indices in the training set, for the knn / same-class
        pairings (None for random pairs within the batch)."""
        cfg = self.config
        labels = np.asarray(self.ctx.train_labels, np.int64)
        if cfg.pairing == "knn":
            feats = np.asarray(self.ctx.train_images, np.float32).reshape(len(labels), -1)
            table = ops.knn_table(feats, cfg.knn_k, labels if cfg.same_class else None)
            k = int(table.shape[1])

            def partner(index, seed):
                j = tf.random.stateless_uniform(tf.shape(index), seed, 0, k, dtype=tf.int64)
                return tf.cast(tf.gather_nd(table, tf.stack([index, j], 1)), tf.int64)
            return partner
        if cfg.same_class:
            order = tf.constant(np.argsort(labels, kind="stable"), tf.int64)
            counts = np.bincount(labels, minlength=self.ctx.num_classes)
            start = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]), tf.int64)
            count = tf.constant(counts, tf.int64)
            lab = tf.constant(labels)
            return lambda index, seed: same_class_partner(index, order, start, count, lab, seed)
        return None

    def transform(self):
        cfg = self.config
        if cfg.mix_layer:
            return super().transform()
        partner = self.partner_fn()

        def transform(batch, seed, source):
            b = batch["train"]
            seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
            x, y = b["image"], self.targets(b["label"])
            n = tf.shape(x)[0]
            shape = [n] if cfg.mixup_per_example else []
            if cfg.num_mixed > 2:
                weights = ops.sample_dirichlet(cfg.mixup_alpha, cfg.num_mixed, shape, seeds[0])
                perms = tf.stack([tf.range(n)] + [
                    ops.sample_permutation(n, tf.random.experimental.stateless_fold_in(seeds[1], j))
                    for j in range(1, cfg.num_mixed)])
                x_mix, y_mix = ops.mixup_many(x, y, weights, perms)
            else:
                lam = ops.sample_beta(cfg.mixup_alpha, shape, seeds[0])
                if partner is None:
                    x_mix, y_mix = ops.mixup(x, y, lam, ops.sample_permutation(n, seeds[1]))
                else:
                    other = source.fetch(partner(b["index"], seeds[2]), seed=seeds[3],
                                         augment=cfg.augment)
                    x_mix = ops.mix(x, other["image"], lam)
                    y_mix = ops.mix(y, self.targets(other["label"]), lam)
            out = dict(b, image=x_mix, target=y_mix if cfg.mix_targets else y)
            if cfg.input_noise:
                out["image"] = ops.gaussian_noise(out["image"], cfg.input_noise, seeds[4])
            return {"train": out}
        return transform

    def forward(self, net, batch, step):
        cfg = self.config
        if not cfg.mix_layer:
            return super().forward(net, batch, step)
        x, y = batch["image"], batch.get("target")
        y = self.targets(batch["label"]) if y is None else y
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        lam_seed, perm_seed = tf.unstack(tf.random.experimental.stateless_split(
            ops.make_seed(self.ctx.seed, 4, step, replica), 2))
        n = tf.shape(x)[0]
        lam = ops.sample_beta(cfg.mixup_alpha, [n] if cfg.mixup_per_example else [], lam_seed)
        perm = ops.sample_permutation(n, perm_seed)
        logits, y_mix = forward_mixed(split_stages(net), x, y, cfg.mix_layer, lam, perm)
        return logits, (y_mix if cfg.mix_targets else y)
