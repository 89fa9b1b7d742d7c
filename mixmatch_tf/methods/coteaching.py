"""Co-teaching: two networks teach each other with their small-loss examples.

* both networks see the same noisy batch; each ranks it by its own per-example
  cross-entropy and keeps the int((1 - R(t)) * B) examples with the smallest
  losses; each network is updated on the mean loss of the examples its *peer*
  kept (cross-update);
* schedules per epoch, as the official ``main.py`` builds them for ``n_epoch``
  (``epochs``) epochs: the forget rate ``rate_schedule`` = linspace(0,
  forget_rate ** exponent, num_gradual) over the first num_gradual epochs, then
  forget_rate; Adam at 0.001 with ``alpha_plan`` (the learning rate decays
  linearly, lr * (n_epoch - t) / (n_epoch - epoch_decay_start) from epoch
  epoch_decay_start on) and ``beta1_plan`` (beta_1 0.9, then 0.1 from
  epoch_decay_start on). forget_rate defaults to the noise rate;
* an epoch is one pass over the shuffled training set in full batches (the
  official loader drops the last partial batch). The official code evaluates the
  untrained networks as epoch 0 and trains epochs t = 1 .. n_epoch - 1, each
  with rate_schedule[t], alpha_plan[t], beta1_plan[t]: so do we (``epochs - 1``
  passes). The values are set between epochs (a phase per epoch); the traced
  step reads them from variables;
* no data augmentation by default: the official ``main.py`` trains on the raw
  images (``transforms.ToTensor()`` only, no crop or flip);
* prediction and export: the mean of both networks' softmax outputs.

Per replica / global: the small-loss selection is global -- the losses of all
replicas are gathered and the same threshold (the k-th smallest global loss)
selects each replica's examples -- so any replica count keeps the same examples.

References:
  Han et al., Co-teaching: Robust Training of Deep Neural Networks with
  Extremely Noisy Labels, NeurIPS 2018 (a baseline in DivideMix's tables);
  bhanML/Co-teaching ``main.py`` and ``loss.py``.
"""
import dataclasses
import functools
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.methods import common
from mixmatch_tf.methods.base import LabelEvidence, Method, Phase, TrainConfig, register
from mixmatch_tf.settings import check, setting


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    batch_size: int = setting(128, "examples per step; both networks see the same batch "
                              "(official: 128)", within="[1, 65536]")
    learning_rate: float = setting(0.001, "Adam learning rate before its linear decay "
                                   "(official: 0.001)", within="(0, inf)")
    weight_decay: float = setting(0.0, "coupled (L2) weight decay; the official code uses none",
                                  within="[0, inf)")
    epochs: float = setting(200.0, "n_epoch of the official code, a whole number >= 2: epoch 0 "
                            "only evaluates, so epochs - 1 passes are trained (official: 200)",
                            within="[2, 1e6]")
    train_steps: Optional[int] = setting(None, "stop after this many steps; the schedules stay "
                                         "those of --epochs epochs; None: train all epochs",
                                         within="[1, 1e12]")
    forget_rate: Optional[float] = setting(None, "final fraction of large-loss examples each "
                                           "network drops, in [0, 1); None: the noise rate",
                                           within="[0, 1)")
    num_gradual: int = setting(10, "epochs over which the forget rate grows linearly from 0 "
                               "(T_k of the paper; official: 10)", within="[0, 1e6]")
    exponent: float = setting(1.0, "c of the schedule, > 0: the linear growth ends at "
                              "forget_rate ** c, then forget_rate (official: 1)", within="(0, 1e6]")
    lr_decay_start: float = setting(0.4, "fraction of the epochs, in [0, 1), after which the "
                                    "learning rate decays linearly towards 0 and Adam's "
                                    "beta_1 drops to 0.1 (official epoch_decay_start: 80 of "
                                    "200)", within="[0, 1)")
    augment: bool = setting(False, "random crop (+ flip where valid); off as in the official "
                            "code, which trains on the raw images")

    def __post_init__(self):
        super().__post_init__()
        check(self.epochs == int(self.epochs), "epochs",
              f"must be a whole number >= 2 (epoch 0 only evaluates), got {self.epochs}")


# beta_1 of Adam before and after epoch_decay_start (main.py: mom1, mom2).
BETA1, BETA1_DECAYED = 0.9, 0.1


def official_schedules(n_epoch, learning_rate, forget_rate, num_gradual, exponent,
                       epoch_decay_start):
    """(alpha_plan, beta1_plan, rate_schedule) of the official main.py, indexed by epoch.

    Args:
      n_epoch: epochs of the plan (index 0 .. n_epoch - 1).
      learning_rate: Adam's learning rate before the decay.
      forget_rate: the final forget rate.
      num_gradual: epochs of linear growth of the forget rate (T_k).
      exponent: c; the growth goes from 0 to forget_rate ** c (then forget_rate).
      epoch_decay_start: first epoch of the linear learning-rate decay and of beta_1 0.1.

    Returns:
      Three float64 arrays of length n_epoch.
    """
    alpha_plan = np.full(n_epoch, float(learning_rate))
    beta1_plan = np.full(n_epoch, BETA1)
    decayed = np.arange(epoch_decay_start, n_epoch)
    alpha_plan[decayed] = (n_epoch - decayed) / (n_epoch - epoch_decay_start) * learning_rate
    beta1_plan[decayed] = BETA1_DECAYED
    rate_schedule = np.full(n_epoch, float(forget_rate))
    gradual = np.linspace(0.0, forget_rate ** exponent, num_gradual)[:n_epoch]
    rate_schedule[:len(gradual)] = gradual
    return alpha_plan, beta1_plan, rate_schedule


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
    crop_padding_from = ("bhanML/Co-teaching main.py: ToTensor() only, no crop; with "
                         "--augment, torchvision's RandomCrop fill as DivideMix's loader")

    def forget_rate(self):
        """The final forget rate: the flag, else the noise rate (0.2, main.py's default
        --noise_rate, when the noise is not synthetic)."""
        if self.config.forget_rate is not None:
            return self.config.forget_rate
        return self.ctx.noise_rate if self.ctx.noise_type else 0.2

    # ------------------------------------------------------------ schedule
    def n_epoch(self):
        return int(self.config.epochs)

    def steps_per_epoch(self, examples=None, batch_size=None):
        """Full batches of one pass (the official loader has drop_last=True)."""
        examples = self.ctx.num_train if examples is None else examples
        return max(1, examples // (batch_size or self.config.batch_size))

    def total_steps(self):
        steps = (self.n_epoch() - 1) * self.steps_per_epoch()
        return min(steps, int(self.config.train_steps)) if self.config.train_steps else steps

    def eval_every(self):
        return self.config.eval_every  # None: evaluate at the end of every epoch

    def schedules(self):
        """(alpha_plan, beta1_plan, rate_schedule) of this run, indexed by epoch."""
        cfg = self.config
        return official_schedules(self.n_epoch(), cfg.learning_rate, self.forget_rate(),
                                  cfg.num_gradual, cfg.exponent,
                                  int(round(cfg.lr_decay_start * self.n_epoch())))

    # --------------------------------------------------------------- state
    def build(self):
        variable = functools.partial(tf.Variable, trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # Set between epochs (``phase``), read by the traced step and by Adam.
        schedule = {"beta_1": variable(BETA1), "forget_rate": variable(0.0),
                    "keep": variable(self.config.batch_size)}
        state = {"schedule": schedule}
        for k in (1, 2):
            net = self.ctx.model_fn(k - 1)  # independent networks: never start identical
            opt = common.build_optimizer(keras.optimizers.Adam(
                learning_rate=self.config.learning_rate, beta_1=schedule["beta_1"]), net)
            state[f"net{k}"], state[f"opt{k}"] = net, opt
        return state

    def networks(self, state):
        return [state["net1"], state["net2"]]

    def epoch_steps(self, index):
        """Steps of phase ``index`` (epoch index + 1), 0 once training is over."""
        if index + 1 >= self.n_epoch():
            return 0
        per_epoch = self.steps_per_epoch()
        return max(0, min(per_epoch, self.total_steps() - index * per_epoch))

    def phase(self, index, state, fresh, start_step=0):
        """Epoch t = index + 1 of the official loop (epoch 0 only evaluated the networks)."""
        epoch, steps = index + 1, self.epoch_steps(index)
        if steps == 0:
            return None
        alpha_plan, beta1_plan, rate_schedule = self.schedules()
        schedule = state["schedule"]
        for k in (1, 2):
            common.set_learning_rate(state[f"opt{k}"], alpha_plan[epoch])
        schedule["beta_1"].assign(beta1_plan[epoch])
        schedule["forget_rate"].assign(rate_schedule[epoch])
        # loss.py: num_remember = int(remember_rate * batch), in float64 as there.
        schedule["keep"].assign(int((1.0 - rate_schedule[epoch]) * self.config.batch_size))
        stream = Stream(indices=np.arange(self.ctx.num_train), batch_size=self.config.batch_size,
                        augment=self.config.augment)
        return Phase(name="train", steps=steps, streams={"train": stream},
                     step_fn=self.train_step, evaluate_at_end=True,
                     last=self.epoch_steps(index + 1) == 0)

    def train_step(self, state, batch, step):
        x, y = batch["train"]["image"], batch["train"]["label"]
        schedule = state["schedule"]
        keep = tf.convert_to_tensor(schedule["keep"])
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
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
            common.sgd_update(tape, loss, state[f"net{k}"], state[f"opt{k}"],
                              self.config.weight_decay)
        del tape
        return {"loss": (update1 + update2) / 2, "loss_net1": update1, "loss_net2": update2,
                "forget_rate": tf.convert_to_tensor(schedule["forget_rate"]),
                "lr": tf.convert_to_tensor(state["opt1"].learning_rate),
                "beta_1": tf.convert_to_tensor(schedule["beta_1"])}

    def predict(self, state, images):
        p1 = tf.nn.softmax(state["net1"](images, training=False))
        p2 = tf.nn.softmax(state["net2"](images, training=False))
        return (p1 + p2) / 2

    def label_evidence(self, state):
        """The small-loss criterion on the whole training set: each network's loss on each
        given label (eval mode). Flagged are the current forget rate's share of the
        examples of largest mean loss -- those the networks' cross-update leaves out;
        the score is the mean loss's rank in (0, 1]."""
        losses = [self.ctx.map_train_set(functools.partial(common.per_sample_loss,
                                                           state[f"net{k}"])).astype(np.float64)
                  for k in (1, 2)]
        mean = (losses[0] + losses[1]) / 2
        n = len(mean)
        order = np.argsort(mean, kind="stable")
        rank = np.empty(n)
        rank[order] = np.arange(1, n + 1) / n
        forget = float(state["schedule"]["forget_rate"].numpy())
        flagged = np.zeros(n, bool)
        flagged[order[n - int(round(forget * n)):]] = True
        return LabelEvidence({"loss_net1": losses[0], "loss_net2": losses[1]}, rank, flagged,
                             f"score the rank of the two networks' mean loss on the given label; "
                             f"flagged: the largest-loss share of the forget rate "
                             f"({forget:g})")
