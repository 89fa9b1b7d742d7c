"""Empirical risk minimisation: the supervised baseline of the mixup paper.

* one network, SGD with momentum 0.9 and PyTorch-style (coupled) weight decay;
* learning rate divided by 10 at 50% and 75% of training (epochs 100 and 150 of 200),
  or after given epochs (``lr_decay_epochs``), after an optional linear warm-up
  (``lr_warmup_epochs``, ``lr_warmup_from``): the ImageNet recipe of Goyal et al.
  that the mixup paper follows (section 3.1: batch 1,024, 0.1 -> 0.4 over 5
  epochs, /10 after epochs 30, 60, 80 of 90 or 60, 120, 180 of 200), where batch
  norm's gamma and beta are not decayed (``weight_decay_bn=False``);
* soft cross-entropy against ``target`` when the pipeline provides one (mixup
  and its relatives), else against the one-hot label;
* the ablations that change ERM's targets or inputs without mixing: label
  smoothing, Gaussian input noise (applied to the global batch in tf.data), and
  dropout before the classifier (the corrupted-label table's "+ dropout").

Per replica / global: nothing is mixed here; losses are per-replica means and
gradients are summed over replicas, so any replica count computes the gradient
of the global mean loss.

References:
  Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018 (section 3);
  Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, 2017
  (warm-up, linear scaling, no decay of BN parameters).
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.methods import common
from mixmatch_tf.methods.base import Method, Phase, TrainConfig, register
from mixmatch_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """Paper settings (PreAct ResNet-18 on CIFAR-10)."""
    learning_rate: float = setting(0.1, "SGD learning rate, divided by 10 at each lr_decay_at",
                                   within="(0, inf)")
    momentum: float = setting(0.9, "SGD momentum, in [0, 1) (paper: 0.9)", within="[0, 1)")
    weight_decay: float = setting(1e-4, "coupled (L2 added to the gradient, PyTorch-style) "
                                  "weight decay, >= 0 (paper: 1e-4; 5e-4 also reported)",
                                  within="[0, inf)")
    lr_decay_at: tuple = setting((0.5, 0.75), "fractions of training, in (0, 1), at which the "
                                 "learning rate is multiplied by lr_decay_factor (paper: "
                                 "epochs 100 and 150 of 200)", within="(0, 1)")
    lr_decay_factor: float = setting(0.1, "learning-rate multiplier at each lr_decay_at, in "
                                     "(0, 1] (paper: 0.1)", within="(0, 1]")
    lr_decay_epochs: tuple = setting((), "epochs after which the learning rate is multiplied "
                                     "by lr_decay_factor, > 0; when given, replaces "
                                     "lr_decay_at (mixup paper, ImageNet: 30,60,80 of 90 or "
                                     "60,120,180 of 200; WRN on CIFAR: 60,120,180)",
                                     within="(0, 1e6]")
    lr_warmup_epochs: float = setting(0.0, "epochs of linear learning-rate warm-up from "
                                      "lr_warmup_from to learning_rate, >= 0 (Goyal et al. "
                                      "on ImageNet: 5)", within="[0, 1e6]")
    lr_warmup_from: float = setting(0.0, "learning rate at the start of the warm-up, >= 0 "
                                    "(Goyal et al.: 0.1, rising to 0.4 for batch 1,024)",
                                    within="[0, inf)")
    weight_decay_bn: bool = setting(True, "decay batch norm's gamma and beta too (PyTorch's SGD "
                                    "in the official CIFAR code); false: Goyal et al.'s "
                                    "ImageNet recipe")
    augment: bool = setting(True, "random crop (+ flip where valid)")
    dropout: float = setting(0.0, "dropout rate before the classifier, in [0, 1) (the "
                             "corrupted-label table's \"+ dropout\" rows)", within="[0, 1)")
    label_smoothing: float = setting(0.0, "eps, in [0, 1): targets (1 - eps) y + eps / C "
                                     "(paper's ablation: 0.05, 0.1, 0.2, 0.4)", within="[0, 1)")
    input_noise: float = setting(0.0, "std of the Gaussian noise added to the normalised inputs, "
                                 ">= 0 (paper's ablation: 0.05, 0.1, 0.2)", within="[0, inf)")



# The bundled digits: a small CNN and 60 epochs of batch 64 (about 1,260 steps,
# under 20 s on 2 CPU cores); the paper's optimiser settings otherwise.
DIGITS = {"model": "small_cnn", "batch_size": 64, "epochs": 60.0}


@register("erm")
class ERM(Method):
    Config = Config
    default_model = "preact_resnet18"
    dataset_defaults = {"digits": DIGITS}
    # mixup-cifar10 train.py: RandomCrop(32, padding=4) zero-pads the uint8 image.
    crop_padding = "zeros"
    crop_padding_from = "facebookresearch/mixup-cifar10 train.py: RandomCrop(32, padding=4)"

    @classmethod
    def model_kwargs(cls, config):
        return {"dropout": config.dropout}

    def build(self):
        net = self.ctx.model_fn()
        opt = common.build_optimizer(keras.optimizers.SGD(
            learning_rate=self.config.learning_rate, momentum=self.config.momentum), net)
        return {"net": net, "opt": opt}

    def learning_rate(self, step):
        cfg, per_epoch = self.config, self.steps_per_epoch()
        if cfg.lr_decay_epochs:
            boundaries = [int(round(e * per_epoch)) for e in cfg.lr_decay_epochs]
        else:
            boundaries = [int(f * self.total_steps()) for f in cfg.lr_decay_at]
        return ops.warmup_step_decay(step, cfg.learning_rate, boundaries, cfg.lr_decay_factor,
                                     int(round(cfg.lr_warmup_epochs * per_epoch)),
                                     cfg.lr_warmup_from)

    def targets(self, labels):
        """One-hot (optionally smoothed) targets of integer labels."""
        y = tf.one_hot(labels, self.ctx.num_classes)
        eps = self.config.label_smoothing
        return ops.smooth_labels(y, eps) if eps else y

    def transform(self):
        """The tf.data transform of each global batch: label smoothing and input noise."""
        cfg = self.config
        if not cfg.label_smoothing and not cfg.input_noise:
            return None

        def transform(batch, seed, source):
            del source
            b = batch["train"]
            out = dict(b, target=self.targets(b["label"]))
            if cfg.input_noise:
                out["image"] = ops.gaussian_noise(b["image"], cfg.input_noise, seed)
            return {"train": out}
        return transform

    def phase(self, index, state, fresh, start_step=0):
        if index > 0:
            return None
        labeled = (self.ctx.labeled_indices if self.ctx.labeled_indices is not None
                   else np.arange(self.ctx.num_train))
        stream = Stream(indices=labeled, batch_size=self.config.batch_size,
                        augment=self.config.augment)
        return Phase(name="train", steps=self.total_steps(), streams={"train": stream},
                     step_fn=self.train_step, transform=self.transform(), last=True)

    def forward(self, net, batch, step):
        """(logits, targets) of a training batch."""
        y = batch.get("target")
        return net(batch["image"], training=True), (self.targets(batch["label"]) if y is None
                                                    else y)

    def train_step(self, state, batch, step):
        net, opt = state["net"], state["opt"]
        lr = common.set_learning_rate(opt, self.learning_rate(step))
        with tf.GradientTape() as tape:
            logits, y = self.forward(net, batch["train"], step)
            loss = tf.reduce_mean(ops.soft_cross_entropy(logits, y))
        common.sgd_update(tape, loss, net, opt, self.config.weight_decay,
                          self.config.weight_decay_bn)
        return {"loss": loss, "lr": lr}

    def predict(self, state, images):
        return tf.nn.softmax(state["net"](images, training=False))
