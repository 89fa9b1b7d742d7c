"""Co-teaching: two networks teach each other with their small-loss examples.

* both networks see the same noisy batch; each ranks it by its own per-example
  cross-entropy and keeps the R(t) = 1 - forget_rate * min(epoch / num_gradual, 1)
  fraction with the smallest losses;
* each network is updated on the examples its *peer* kept (cross-update);
* Adam at 0.001, learning rate decayed linearly to 0 from 40% of training
  (epoch 80 of 200) as in the official code (its beta_1 schedule is not reproduced);
* no data augmentation by default: the official ``main.py`` trains on the raw
  images (``transforms.ToTensor()`` only, no crop or flip);
* prediction and export: the mean of both networks' softmax outputs.

Per replica / global: the small-loss selection is global -- the losses of all
replicas are gathered and the same threshold (the k-th smallest global loss)
selects each replica's examples -- so any replica count keeps the same examples.

References:
  Han et al., Co-teaching: Robust Training of Deep Neural Networks with
  Extremely Noisy Labels, NeurIPS 2018 (a baseline in DivideMix's tables).
"""
import dataclasses
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.methods import common
from mixmatch_tf.methods.base import Method, Phase, TrainConfig, check, register


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    batch_size: int = 128                # examples per step (both networks see the same batch)
    learning_rate: float = 0.001         # Adam learning rate
    weight_decay: float = 0.0            # coupled weight decay (none in the official code)
    epochs: float = 200.0                # passes over the training set
    forget_rate: Optional[float] = None  # fraction of large-loss examples dropped; None: the noise rate
    num_gradual: float = 10.0            # epochs over which the forget rate grows from 0
    lr_decay_start: float = 0.4          # fraction of training after which the lr decays linearly to 0
    augment: bool = False                # random crop (+ flip); off: the official code trains on raw images

    def __post_init__(self):
        super().__post_init__()
        check(self.forget_rate is None or 0 <= self.forget_rate < 1, "forget_rate",
              f"must be in [0, 1), got {self.forget_rate}")
        check(self.num_gradual >= 0, "num_gradual", "must be >= 0")
        check(0 <= self.lr_decay_start < 1, "lr_decay_start", "must be in [0, 1)")


def small_loss_mask(loss, keep):
    """True for the examples whose loss is among the ``keep`` smallest of the global batch."""
    ctx = tf.distribute.get_replica_context()
    everything = ctx.all_gather(loss, axis=0) if ctx.num_replicas_in_sync > 1 else loss
    threshold = tf.sort(everything)[tf.maximum(keep, 1) - 1]
    return tf.cast(loss <= threshold, loss.dtype)


@register("coteaching")
class CoTeaching(Method):
    Config = Config
    default_model = "preact_resnet18"
    dataset_defaults = {"digits": {"model": "small_cnn", "batch_size": 64, "epochs": 60.0}}
    # The official main.py feeds ToTensor() images: no crop, no flip (augment=False).
    # With --augment the crop zero-pads, as torchvision's RandomCrop in the PyTorch
    # code this baseline sits next to (DivideMix's dataloader_cifar.py).
    crop_padding = "zeros"

    def forget_rate(self):
        if self.config.forget_rate is not None:
            return self.config.forget_rate
        return self.ctx.noise_rate if self.ctx.noise_type else 0.2

    def build(self):
        state = {}
        for k in (1, 2):
            net = self.ctx.model_fn()
            opt = common.build_optimizer(
                keras.optimizers.Adam(learning_rate=self.config.learning_rate), net)
            state[f"net{k}"], state[f"opt{k}"] = net, opt
        return state

    def networks(self, state):
        return [state["net1"], state["net2"]]

    def phase(self, index, state, fresh, start_step=0):
        if index > 0:
            return None
        stream = Stream(indices=np.arange(self.ctx.num_train), batch_size=self.config.batch_size,
                        augment=self.config.augment)
        return Phase(name="train", steps=self.total_steps(), streams={"train": stream},
                     step_fn=self.train_step)

    def schedules(self, step):
        """(learning rate, forget rate) at ``step``."""
        cfg, total = self.config, self.total_steps()
        t = tf.cast(step, tf.float32)
        decay_start = cfg.lr_decay_start * total
        lr = cfg.learning_rate * tf.clip_by_value((total - t) / (total - decay_start), 0.0, 1.0)
        gradual = max(1.0, cfg.num_gradual * self.steps_per_epoch())
        return lr, self.forget_rate() * tf.minimum(t / gradual, 1.0)

    def train_step(self, state, batch, step):
        x, y = batch["train"]["image"], batch["train"]["label"]
        lr, forget = self.schedules(step)
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        global_batch = int(x.shape[0]) * replicas
        keep = tf.cast(tf.round((1.0 - forget) * global_batch), tf.int32)
        with tf.GradientTape(persistent=True) as tape:
            loss1 = ops.cross_entropy(state["net1"](x, training=True), y)
            loss2 = ops.cross_entropy(state["net2"](x, training=True), y)
            # Cross-update: each network learns from the examples its peer finds clean.
            mask1 = tf.stop_gradient(small_loss_mask(loss2, keep))
            mask2 = tf.stop_gradient(small_loss_mask(loss1, keep))
            per_replica_keep = tf.cast(tf.maximum(keep, 1), tf.float32) / replicas
            update1 = tf.reduce_sum(loss1 * mask1) / per_replica_keep
            update2 = tf.reduce_sum(loss2 * mask2) / per_replica_keep
        for k, loss in ((1, update1), (2, update2)):
            net, opt = state[f"net{k}"], state[f"opt{k}"]
            common.set_learning_rate(opt, lr)
            common.sgd_update(tape, loss, net, opt, self.config.weight_decay)
        del tape
        return {"loss": (update1 + update2) / 2, "loss_net1": update1, "loss_net2": update2,
                "forget_rate": forget, "lr": lr}

    def predict(self, state, images):
        p1 = tf.nn.softmax(state["net1"](images, training=False))
        p2 = tf.nn.softmax(state["net2"](images, training=False))
        return (p1 + p2) / 2
