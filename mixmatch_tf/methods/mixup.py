"""mixup: ERM on convex combinations of pairs of examples and of their labels.

* lambda ~ Beta(alpha, alpha) (TFP), one per batch as in the official code, or
  one per example (``mixup_per_example``); no max(lambda, 1 - lambda);
* partner of each example = a random permutation of the same batch;
* x~ = lambda x_i + (1 - lambda) x_j, y~ = lambda y_i + (1 - lambda) y_j,
  trained with soft cross-entropy; everything else is ERM.

Per replica / global: the mixing runs inside tf.data on the *global* batch
before it is split over replicas, so lambda and the permutation are global and
the result does not depend on the replica count.

References:
  Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018.
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import erm
from mixmatch_tf.methods.base import check, register


@dataclasses.dataclass(frozen=True)
class Config(erm.Config):
    mixup_alpha: float = 1.0               # Beta(alpha, alpha); 1.0 on CIFAR
    mixup_per_example: bool = False        # one lambda per example instead of per batch

    def __post_init__(self):
        super().__post_init__()
        check(self.mixup_alpha > 0, "mixup_alpha", f"must be > 0, got {self.mixup_alpha}")


def mixup_batch(batch, seed, alpha, num_classes, per_example):
    """Mixes a global batch {"image", "label", ...} -> adds soft ``target``."""
    x = batch["image"]
    y = tf.one_hot(batch["label"], num_classes)
    lam_seed, perm_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    n = tf.shape(x)[0]
    lam = ops.sample_beta(alpha, [n] if per_example else [], lam_seed)
    x, y = ops.mixup(x, y, lam, ops.sample_permutation(n, perm_seed))
    return dict(batch, image=x, target=y)


@register("mixup")
class Mixup(erm.ERM):
    Config = Config
    dataset_defaults = {"digits": erm.DIGITS}

    def transform(self):
        cfg, c = self.config, self.ctx.num_classes

        def transform(batch, seed, source):
            del source
            return {"train": mixup_batch(batch["train"], seed, cfg.mixup_alpha, c,
                                         cfg.mixup_per_example)}
        return transform
