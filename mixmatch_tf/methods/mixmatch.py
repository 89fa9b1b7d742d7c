"""MixMatch: guess, sharpen, mix labeled and unlabeled data, train on both.

Algorithm 1 of the paper, one step:

* guess: q = mean over K augmented views of softmax(model(u_k)), gradient stopped;
* sharpen: q <- Sharpen(q, T);
* mix: the labeled batch (one-hot labels) and the K unlabeled batches (target q)
  are concatenated, shuffled with one permutation and mixed with
  lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha) per example (the
  official code; ``mixup_per_example=False`` draws one per batch);
* loss: L_x = soft cross-entropy on the mixed labeled part, L_u = squared error
  between the mixed targets and softmax outputs on the unlabeled part (averaged
  over classes too), L = L_x + lambda_u * ramp(step) * L_u, lambda_u ramped
  linearly over ``rampup_steps``; Adam, decoupled kernel decay, EMA (semi.py).

Batch norm: by default the official interleave -- the forward batches each hold
a slice of the labeled batch and of every unlabeled batch, so every pass sees
representative statistics, and only the first pass updates the moving averages.
The paper reports that dropping it hurts; ``interleave=False`` runs one
concatenated pass instead.

Per replica / global: label guessing, the interleave and batch-norm statistics
are per replica (synchronise BN with --sync_bn); the mixing is global -- each
replica's slices are gathered, mixed with one permutation and one set of lambdas
over the global batch, and each replica keeps its slices -- so the step is the
same for any replica count (with a BN-free model or synchronised BN).

Ablations (Table 4): ``num_augmentations`` (K), ``sharpen_temperature=1`` (no
sharpening), ``mixup_mode`` none | labeled | unlabeled | separate | all,
``ema_decay=0``, ``interleave=False``.

References:
  Berthelot et al., MixMatch: A Holistic Approach to Semi-Supervised Learning,
  NeurIPS 2019; google-research/mixmatch ``mixmatch.py``.
"""
import dataclasses

import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.methods import common, semi
from mixmatch_tf.methods.base import register
from mixmatch_tf.settings import check, setting
from mixmatch_tf.ops.interleave import interleave

MIXUP_MODES = {  # which parts (0 = labeled, 1..K = unlabeled views) are mixed together
    "all": lambda k: [list(range(k + 1))],
    "labeled": lambda k: [[0]],
    "unlabeled": lambda k: [list(range(1, k + 1))],
    "separate": lambda k: [[0], list(range(1, k + 1))],
    "none": lambda k: [],
}


@dataclasses.dataclass(frozen=True)
class Config(semi.SemiConfig):
    """CIFAR-10 settings of the paper."""
    lambda_u: float = setting(75.0, "weight of the unlabeled loss L_u after its ramp-up, >= 0 "
                              "(paper: CIFAR-10 75, SVHN 250, STL-10 50, CIFAR-100 150)",
                              within="[0, inf)")
    rampup_steps: int = setting(16384, "steps over which lambda_u ramps linearly from 0 "
                                "(official: 16384, 1024 kimg at batch 64)", within="[0, 1e12]")
    sharpen_temperature: float = setting(0.5, "T of Sharpen, > 0; 1: no sharpening (paper: 0.5)",
                                         within="[1e-3, 1e3]")
    num_augmentations: int = setting(2, "K, augmented views per unlabeled example, >= 1 "
                                     "(paper: 2)", within="[1, 16]")
    mixup_alpha: float = setting(0.75, "alpha of Beta(alpha, alpha), the mixing weights' "
                                 "distribution, > 0 (paper: 0.75; 0.25 for SVHN+extra)",
                                 within="(0, 1e6]")
    mixup_mode: str = setting("all", "what is mixed: all | labeled | unlabeled | separate "
                              "(each part within itself) | none (the paper's ablation)")
    mixup_per_example: bool = setting(True, "one lambda per example (official code) instead of "
                                      "one per batch")
    interleave: bool = setting(True, "the official batch-norm interleave of labeled and "
                               "unlabeled slices; False: one concatenated pass")

    def __post_init__(self):
        super().__post_init__()
        check(self.mixup_mode in MIXUP_MODES, "mixup_mode",
              f"must be one of {', '.join(MIXUP_MODES)}, got {self.mixup_mode!r}")
        check(not self.interleave or self.unlabeled_batch_size in (None, self.batch_size),
              "unlabeled_batch_size", "the interleave needs equal labeled and unlabeled batches; "
              "pass --nointerleave to use another unlabeled batch size")


@register("mixmatch")
class MixMatch(semi.SemiSupervised):
    Config = Config
    dataset_defaults = {"digits": dict(semi.DIGITS, lambda_u=75.0, rampup_steps=500)}

    @classmethod
    def sized_counts(cls, data, values):
        """``SemiSupervised.sized_counts``, lambda_u ramping up over the first third
        of training (the digits' 500 of 1,500 steps)."""
        counts = super().sized_counts(data, values)
        return dict(counts, rampup_steps=counts["train_steps"] // 3)

    def views(self):
        return self.config.num_augmentations

    def mix(self, xs, ys, step):
        """Algorithm 1 lines 10-14 on the parts [x_lb, u_1..u_K], per ``mixup_mode``."""
        cfg = self.config
        xs, ys = list(xs), list(ys)
        for g, group in enumerate(MIXUP_MODES[cfg.mixup_mode](len(xs) - 1)):
            seed = ops.make_seed(self.ctx.seed, 1, g, step)
            mx, my = common.global_mixup([xs[i] for i in group], [ys[i] for i in group],
                                         cfg.mixup_alpha, seed, cfg.mixup_per_example)
            for i, x, y in zip(group, mx, my):
                xs[i], ys[i] = x, y
        return xs, ys

    def forward(self, net, xs):
        """Logits of every part; only the first forward pass updates BN statistics."""
        if not self.config.interleave:
            logits = net(tf.concat(xs, 0), training=True)
            return tf.split(logits, [int(x.shape[0]) for x in xs])
        batch = int(xs[0].shape[0])
        mixed = interleave(xs, batch)
        logits = [net(mixed[0], training=True)]
        logits += [common.call_without_stat_updates(net, x) for x in mixed[1:]]
        return interleave(logits, batch)

    def train_step(self, state, batch, step):
        cfg, net = self.config, state["student"]
        x_lb, y_lb = self.labeled(batch)
        u = batch["unlabeled"]["image"]                   # [b_u, K, H, W, C]
        views = [u[:, k] for k in range(cfg.num_augmentations)]

        # Label guessing and sharpening (Algorithm 1, lines 4-8).
        probs = tf.stack([tf.nn.softmax(common.call_without_stat_updates(net, v)) for v in views])
        q = ops.sharpen(ops.guess_labels(probs), cfg.sharpen_temperature)

        # MixUp of labeled and unlabeled data (lines 10-14).
        xs, ys = self.mix([x_lb] + views, [y_lb] + [q] * len(views), step)

        lambda_u = cfg.lambda_u * ops.linear_rampup(step, cfg.rampup_steps)
        with tf.GradientTape() as tape:
            logits = self.forward(net, xs)
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits[0], ys[0]))
            probs_u = tf.nn.softmax(tf.concat(logits[1:], 0))
            loss_u = tf.reduce_mean(ops.squared_error(probs_u, tf.concat(ys[1:], 0)))
            loss = loss_x + lambda_u * loss_u
        self.update(state, tape, loss)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "lambda_u": lambda_u}
