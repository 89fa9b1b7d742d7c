"""DivideMix: learning with noisy labels as semi-supervised learning.

Algorithm 1 of the paper, with two networks held by role (``net1``, ``net2``):

* warm-up: both networks train with cross-entropy on all noisy labels (plus the
  confidence penalty, negative entropy, for asymmetric noise);
* co-divide, at the start of every epoch: each network's per-sample
  cross-entropy over the whole training set (un-augmented, inference mode, in
  index order, computed under the strategy) is min-max normalised (optionally
  averaged over the last epochs), a two-component 1-D GMM is fitted by EM
  (``ops.gmm``, TFP), and the clean probability w of an example is the
  posterior of the smaller-mean component (``--gmm_per_class``: normalised and
  fitted within each noisy-label class instead, not in the official code). Each network then trains on the
  division made by the *other* one: labeled = {w > tau} carrying w, unlabeled = rest;
* each step of network k: co-refinement of the labeled targets
  (w y + (1 - w) mean softmax over 2 augmentations, sharpened), co-guessing of the
  unlabeled targets (mean softmax of both networks over 2 augmentations each,
  sharpened), mixup of [x1, x2, u1, u2] with one lambda' = max(lambda, 1 - lambda)
  per batch, L = L_x + lambda_u ramp L_u + L_reg (uniform prior);
* SGD 0.02 (momentum 0.9, coupled weight decay 5e-4), lr / 10 at half of training
  (on data sets of no paper's table: halfway through the epochs after the warm-up);
* test prediction and export: the ensemble softmax(logits_1 + logits_2).

The length of warm-up and epochs is sized in steps, so that small data sets
train as well as CIFAR: an epoch of network k has max(len(labeled) // B + 1,
``min_steps_per_epoch``) steps (the official formula, with a floor; on data sets
of no paper's table the floor is ``all``, N // B + 1 steps, ERM's epoch, so that the
run's length does not shrink as the noise grows), and a division that comes out
empty or tiny is topped up with the examples of highest
(or lowest) clean probability, logged, and training goes on.

Batch norm, as in the official code (``net.train()``, ``net2.eval()``, guesses
under ``no_grad``): the trained network's guessing passes on u1, u2, x1, x2 run in
training mode -- they use batch statistics *and* update the moving averages, so
four of the five updates of a step come from un-mixed augmented images and one
from the mixed batch; the peer guesses in inference mode. The moving averages
are what the test ensemble, the per-sample losses behind the GMM and the peer's
guesses use. Without ``--sync_bn`` the statistics are per replica (each replica
normalises and averages over its own slice), with it they are global.

Per replica / global: the guessing is per example; the mixing is global (all
parts gathered over replicas, one permutation and one lambda); the prior
penalty uses the global mean prediction (all-reduced); the per-sample losses
are gathered over all replicas and workers in index order. One step therefore
does not depend on the replica count (with synchronised BN).

Diagnostics each epoch (``judge``; TensorBoard and metrics.json): examples
divided as clean for each network, the noise-rate estimate and, against the true
labels (the ``Truth`` only the diagnostics hooks receive; the method's Context
has no true labels), AUC of the clean probability, precision and recall of the
division and the estimate's error. Those exist only where the run has true labels
(synthetic noise, a CIFAR-N label set): a user's own labels are taken as given,
and metrics.json's ``division_reference`` says so.

References:
  Li, Socher, Hoi, DivideMix: Learning with Noisy Labels as Semi-supervised
  Learning, ICLR 2020; LiJunnan1992/DivideMix ``Train_CIFAR.py``.
"""
import dataclasses
import functools
import math
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mixmatch_tf import ops
from mixmatch_tf.data.pipeline import Stream
from mixmatch_tf.methods import common
from mixmatch_tf.methods import dividemix_rule as rule
from mixmatch_tf.methods.base import LabelEvidence, Method, Phase, TrainConfig, register
from mixmatch_tf.settings import check, setting
from mixmatch_tf.ops import gmm

STATS = ("labeled", "auc", "precision", "recall")
HIST_BINS = 20
# min_steps_per_epoch's word: an epoch of each network as long as ERM's.
WHOLE_SET = "all"


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """CIFAR-10 settings of the official code; per-setting values are in the presets."""
    batch_size: int = setting(64, "labeled examples per step, and as many unlabeled ones "
                              "(official: 64)", within="[1, 65536]")
    warmup_batch_size: int = setting(128, "examples per warm-up step and network "
                                     "(official: 128)", within="[1, 65536]")
    learning_rate: float = setting(0.02, "SGD learning rate, times lr_decay_factor at each "
                                   "lr_decay_at (official: 0.02)", within="(0, inf)")
    momentum: float = setting(0.9, "SGD momentum (official: 0.9)", within="[0, 1)")
    weight_decay: float = setting(5e-4, "coupled (PyTorch-style L2) weight decay "
                                  "(official: 5e-4)", within="[0, inf)")
    epochs: float = setting(300.0, "training length in epochs, warm-up included (official: 300)",
                            within="(0, 1e6]")
    train_steps: Optional[int] = setting(None, "not used: DivideMix trains by epochs, whose "
                                         "steps depend on each division; use --epochs",
                                         within="[1, 1e12]")
    warmup_epochs: float = setting(10.0, "epochs of cross-entropy warm-up on all noisy labels, "
                                   "in [0, epochs) (paper: CIFAR-10 10, CIFAR-100 30)",
                                   within="[0, 1e6]")
    lr_decay_at: Optional[tuple] = setting(
        (0.5,), "fractions of the epochs, in (0, 1), at which the learning rate is multiplied "
        "by lr_decay_factor (official: epoch 150 of 300); None: halfway through the epochs "
        "after the warm-up (the default on data sets of no paper's table)", within="(0, 1)")
    lr_decay_factor: float = setting(0.1, "learning-rate multiplier at each lr_decay_at",
                                     within="(0, 1]")
    lambda_u: Optional[float] = setting(
        25.0, "weight of the unlabeled loss L_u after its ramp-up, >= 0 (paper, CIFAR-10: 0 at "
        "sym 20% and asym 40%, 25 at sym 50-80%, 50 at sym 90%; CIFAR-100: 25 at sym 20%, else "
        "150); on data sets of no paper's table, chosen from the data after the warm-up "
        "unless given (dividemix_rule)", within="[0, inf)")
    rampup_epochs: float = setting(16.0, "epochs after warm-up over which lambda_u ramps "
                                   "linearly from 0 (official: 16)", within="[0, 1e6]")
    p_threshold: float = setting(0.5, "tau, in (0, 1): clean probability above which an example "
                                 "is labeled (paper: 0.5, 0.6 at 90% noise)", within="(0, 1)")
    sharpen_temperature: float = setting(0.5, "T of Sharpen, > 0 (paper: 0.5)",
                                         within="[1e-3, 1e3]")
    mixup_alpha: Optional[float] = setting(
        4.0, "alpha of Beta(alpha, alpha), the mixing weight's distribution, > 0 (paper: 4 on "
        "CIFAR, 0.5 on Clothing1M and WebVision); on data sets of no paper's table, chosen "
        "from the data after the warm-up unless given (dividemix_rule)", within="(0, 1e6]")
    lambda_prior: float = setting(1.0, "weight of the uniform-prior penalty L_reg (paper: 1)",
                                  within="[0, inf)")
    confidence_penalty: Optional[bool] = setting(
        None, "add the negative-entropy confidence penalty during warm-up; None: on for "
        "synthetic asymmetric noise only (as the official code); off by default on data sets "
        "of no paper's table, whose labels do not say how their noise is made")
    gmm_per_class: Optional[bool] = setting(
        False, "normalise the losses and fit the GMM within each noisy-label class, so each "
        "class gets its own clean/noisy threshold (not in the official code, which fits one "
        "GMM on all examples: there the clean examples of a hard class look noisy and leave it "
        "with few labels); on data sets of no paper's table, chosen from the data after the "
        "warm-up unless given (dividemix_rule)")
    loss_history: int = setting(1, "epochs over which each example's normalised loss is "
                                "averaged before the GMM, >= 1 (paper: 5 at 90% noise, else 1)",
                                within="[1, 1000]")
    min_steps_per_epoch: Union[int, str] = setting(
        20, "at least this many steps per network per epoch (for small data sets; none in the "
        "official code); 'all': as many as the whole training set has batches (N // "
        "batch_size + 1, ERM's epoch), so the run's length does not shrink with the labeled "
        "side as the noise grows (the default on data sets of no paper's table)",
        within="[1, 1e6]", words=(WHOLE_SET,))
    augment: bool = setting(True, "random crop (+ flip where valid)")

    def __post_init__(self):
        super().__post_init__()
        check(self.train_steps is None, "train_steps",
              "DivideMix trains by epochs (its epochs depend on the divisions); use --epochs")
        check(0 <= self.warmup_epochs < self.epochs, "warmup_epochs",
              f"must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")


# The bundled digits (and any data set of no paper's table, ``data_defaults``): a small
# CNN, ~200 warm-up steps, then 40 epochs of each network as long as ERM's, the learning
# rate / 10 after 20 of them; the settings the official code keys on the noise setting
# are chosen from the data (dividemix_rule). No confidence penalty: it acts in the warm-up,
# before anything is estimated, and your labels do not say whether their noise is
# asymmetric (synthetic asymmetric noise must not turn on what your own labels would not).
DIGITS = {"model": "small_cnn", "epochs": 60.0, "warmup_epochs": 20.0, "rampup_epochs": 16.0,
          "min_steps_per_epoch": WHOLE_SET, "lr_decay_at": None, "confidence_penalty": False,
          **{name: None for name in rule.CHOSEN}}


@register("dividemix")
class DivideMix(Method):
    Config = Config
    default_model = "preact_resnet18"
    dataset_defaults = {"digits": DIGITS}
    # dataloader_cifar.py: RandomCrop(32, padding=4) zero-pads the uint8 image.
    crop_padding = "zeros"
    crop_padding_from = "LiJunnan1992/DivideMix dataloader_cifar.py: RandomCrop(32, padding=4)"

    # ------------------------------------------------------------ schedule
    def warmup_steps(self):
        per_epoch = self.steps_per_epoch(batch_size=self.config.warmup_batch_size)
        return int(round(self.config.warmup_epochs * per_epoch))

    def train_epochs(self):
        return int(math.ceil(self.config.epochs - self.config.warmup_epochs))

    def total_steps(self):
        """An estimate (divisions decide the real length), for progress and ETA; each
        epoch's phase estimates the rest again from the latest division (``steps_after``)."""
        per_net = max(self.min_steps(), self.ctx.num_train // (2 * self.config.batch_size) + 1)
        return self.warmup_steps() + 2 * self.train_epochs() * per_net

    def epoch_steps(self, labeled):
        """The steps of an epoch of one network with ``labeled`` examples on its labeled
        side: the official len(labeled) // B + 1, at least ``min_steps``."""
        return max(self.min_steps(), labeled // self.config.batch_size + 1)

    def min_steps(self):
        """The fewest steps of an epoch of one network (``min_steps_per_epoch``)."""
        floor = self.config.min_steps_per_epoch
        return self.ctx.num_train // self.config.batch_size + 1 if floor == WHOLE_SET else floor

    def eval_every(self):
        return self.config.eval_every  # None: evaluate at the end of every epoch

    def learning_rate(self, epoch):
        cfg = self.config
        decays = sum(epoch >= e for e in self.lr_decay_epochs())
        return cfg.learning_rate * cfg.lr_decay_factor ** decays

    def lr_decay_epochs(self):
        """The epochs of ``lr_decay_at``, or halfway through the epochs after the warm-up
        (computed as an epoch, not a fraction, so no rounding moves it): with few epochs
        after a long warm-up, half of all epochs leaves little training at the full rate
        (the digits' 60 with 20 of warm-up: 10 epochs of 40), while the official 150 of
        300 after 10 of warm-up is about half of those after it."""
        cfg = self.config
        if cfg.lr_decay_at is not None:
            return [f * cfg.epochs for f in cfg.lr_decay_at]
        return [(cfg.warmup_epochs + cfg.epochs) / 2]

    def penalize_confidence(self):
        if self.config.confidence_penalty is not None:
            return self.config.confidence_penalty
        return self.ctx.noise_type == "asym"

    # --------------------------------------------------------------- state
    def build(self):
        check(not self.config.gmm_per_class or self.ctx.train_labels is not None,
              "gmm_per_class", "needs the training labels in memory; this data set streams "
              "them with its images (use --gmm_per_class=false)")
        cfg = self.config
        state = {}
        for k in (1, 2):
            net = self.ctx.model_fn(k - 1)  # independent networks: never start identical
            opt = common.build_optimizer(keras.optimizers.SGD(
                learning_rate=self.config.learning_rate, momentum=self.config.momentum), net)
            state[f"net{k}"], state[f"opt{k}"] = net, opt
        n, epochs = self.ctx.num_train, max(1, self.train_epochs())
        variable = functools.partial(tf.Variable, trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # The division state: survives a kill through the checkpoint.
        state["division"] = {
            "prob1": variable(tf.zeros([n])), "prob2": variable(tf.zeros([n])),
            "history1": variable(tf.zeros([self.config.loss_history, n])),
            "history2": variable(tf.zeros([self.config.loss_history, n])),
            "history_count": variable(tf.zeros([], tf.int64)),
            # per epoch: STATS of the division each network trained on; -1 = undefined
            "stats": variable(tf.fill([epochs, 2 * len(STATS)], -1.0)),
            # epoch (fractional start), first global step and length of the current phase
            "ramp": variable(tf.zeros([3])),
            # histograms of net1's normalised losses, clean / noisy, at the last co-divide
            "loss_hist": variable(tf.zeros([2, HIST_BINS])),
            "loss_hist_epoch": variable(tf.constant(-1.0)),
        }
        # The settings the step and the co-divide read: the config's, or (None there)
        # chosen from the data at the first co-divide (dividemix_rule); -1 = not yet.
        state["settings"] = {name: variable(tf.constant(
            -1.0 if getattr(cfg, name) is None else float(getattr(cfg, name))))
            for name in rule.CHOSEN}
        # The estimates they were chosen by (rule.ESTIMATES); -1 = not measured.
        state["settings_estimates"] = variable(tf.fill([len(rule.ESTIMATES)], -1.0))
        left = [name for name in rule.CHOSEN if getattr(cfg, name) is None]
        if left:
            logging.info("DivideMix: %s will be chosen from the data after the warm-up "
                         "(give them as flags to fix them)", ", ".join(left))
        self._loss_fns = {k: functools.partial(common.per_sample_loss, state[f"net{k}"])
                          for k in (1, 2)}
        # Passes over the training set compile once per function object: made once.
        self._predicted = lambda b: tf.argmax(self.predict(state, b["image"]), axis=-1)
        self._given = lambda b: b["label"]
        # One step function per network trained (a phase kind): built once.
        self._train_steps = {k: functools.partial(self.train_step, k=k) for k in (1, 2)}
        return state

    def networks(self, state):
        return [state["net1"], state["net2"]]

    # -------------------------------------------------------------- phases
    def phase(self, index, state, fresh, start_step=0):
        cfg = self.config
        if index == 0:
            all_idx = np.arange(self.ctx.num_train)
            streams = {s: Stream(indices=all_idx, batch_size=cfg.warmup_batch_size,
                                 augment=cfg.augment) for s in ("a", "b")}
            for k in (1, 2):
                common.set_learning_rate(state[f"opt{k}"], self.learning_rate(0))
            return Phase(name="warmup", steps=self.warmup_steps(), streams=streams,
                         step_fn=self.warmup_step, evaluate_at_end=True,
                         last=self.train_epochs() == 0)
        epoch_index, k = divmod(index - 1, 2)
        k += 1
        if epoch_index >= self.train_epochs():
            return None
        epoch = cfg.warmup_epochs + epoch_index
        div = state["division"]
        divided = k == 1 and fresh
        if divided:
            self.co_divide(state)
        undecided = [n for n, v in state["settings"].items() if float(v.numpy()) < 0]
        if undecided:
            raise RuntimeError(f"DivideMix's {', '.join(undecided)} are chosen from the data "
                               "at the first co-divide, which has not run: give them in the "
                               "config to train without it")
        prob_other = div[f"prob{3 - k}"].numpy()
        labeled, unlabeled = self.divide(prob_other, f"epoch {epoch:g}, net{k}")
        steps = self.epoch_steps(len(labeled))
        # the phases left after this one, as long as the latest division makes them
        epochs_after = self.train_epochs() - epoch_index - 1
        later = {1: epochs_after, 2: epochs_after + (k == 1)}  # network -> its phases
        steps_after = sum(count * self.epoch_steps(
            self.labeled_size(div[f"prob{3 - j}"].numpy())) for j, count in later.items())
        div["ramp"].assign([epoch, start_step, steps])
        common.set_learning_rate(state[f"opt{k}"], self.learning_rate(epoch))
        streams = {
            "labeled": Stream(indices=labeled, batch_size=cfg.batch_size, views=2,
                              augment=cfg.augment, extras={"clean_prob": prob_other}),
            "unlabeled": Stream(indices=unlabeled, batch_size=cfg.batch_size, views=2,
                                augment=cfg.augment, with_labels=False),
        }
        return Phase(name=f"train_net{k}", steps=steps, streams=streams,
                     step_fn=self._train_steps[k], evaluate_at_end=(k == 2),
                     labels_judged=divided, steps_after=steps_after,
                     last=k == 2 and epochs_after == 0)

    def labeled_size(self, prob):
        """The size of the labeled side ``divide`` makes of ``prob`` (without dividing)."""
        return max(int(np.sum(prob > self.config.p_threshold)), self.config.batch_size)

    def divide(self, prob, where):
        """(labeled, unlabeled) indices for threshold tau, topped up when too small (to
        ``labeled_size``)."""
        tau, least = self.config.p_threshold, self.config.batch_size
        labeled = np.flatnonzero(prob > tau)
        unlabeled = np.flatnonzero(prob <= tau)
        if len(labeled) < least:
            logging.warning("%s: only %d examples above tau=%g; training on the %d of highest "
                            "clean probability", where, len(labeled), tau, least)
            labeled = np.sort(np.argsort(-prob, kind="stable")[:least])
        if len(unlabeled) < least:
            logging.warning("%s: only %d examples at or below tau=%g; the %d of lowest clean "
                            "probability also serve as unlabeled", where, len(unlabeled), tau,
                            least)
            unlabeled = np.sort(np.argsort(prob, kind="stable")[:least])
        return labeled, unlabeled

    # ------------------------------------------------------------ co-divide
    def co_divide(self, state):
        """Lines 4-5 of Algorithm 1 for both networks: their clean probabilities. The
        first co-divide also chooses the settings left to the data (``choose``)."""
        div = state["division"]
        count = min(int(div["history_count"].numpy()) + 1, self.config.loss_history)
        raws = {k: self.ctx.map_train_set(self._loss_fns[k]).astype(np.float64) for k in (1, 2)}
        if min(float(v.numpy()) for v in state["settings"].values()) < 0:
            self.choose(state, raws)
        groups = self.loss_groups(state)
        for k in (1, 2):
            raw = raws[k]
            losses = np.zeros_like(raw)
            for group in groups:
                losses[group] = min_max_normalise(raw[group])
            history = div[f"history{k}"]
            history.assign(tf.concat([history[1:], tf.constant(losses[None], tf.float32)], 0))
            fit_on = fitted_losses(div, k, count)
            prob = np.zeros_like(fit_on)
            for group in groups:
                prob[group] = clean_probability(fit_on[group], f"net{k}")
            div[f"prob{k}"].assign(prob.astype(np.float32))
        div["history_count"].assign(count)

    def judge(self, state, truth):
        """The last co-divide's diagnostics: each division's size (and AUC, precision,
        recall against ``truth``), histograms of the clean probabilities and losses,
        the noise-rate estimate; recorded for metrics.json (``diagnostics``)."""
        div = state["division"]
        count = int(div["history_count"].numpy())
        epoch = float(div["ramp"].numpy()[0])
        epoch_index = int(round(epoch - self.config.warmup_epochs))
        probs = {k: div[f"prob{k}"].numpy() for k in (1, 2)}
        losses = {k: fitted_losses(div, k, count) for k in (1, 2)}
        clean = None if truth is None else truth.label_is_true
        if clean is not None:  # net1's normalised losses of this epoch, clean / noisy
            bins = np.linspace(0.0, 1.0, HIST_BINS + 1)
            latest = div["history1"].numpy()[-1]
            div["loss_hist"].assign(np.asarray(
                [np.histogram(latest[m], bins)[0] for m in (clean, ~clean)], np.float32))
            div["loss_hist_epoch"].assign(epoch)
        stats, summaries = [], {}
        for k in (1, 2):  # network k trains on the division made by the other network
            values = self.division_stats(probs[3 - k], clean)
            stats += values
            summaries.update({f"division/net{k}_{name}": v for name, v in zip(STATS, values)
                              if v != -1.0})
        summaries.update(self.division_histograms(probs, losses, clean))
        estimate = self.noise_estimate(probs[1], probs[2], clean)
        summaries["division/noise_rate_estimate"] = estimate["rate"]
        # per given class as histograms (one scalar per class would not scale to 1,000)
        summaries["division_hist/noise_rate_estimate_per_class"] = np.asarray(
            list(estimate["per_class"].values()))
        if "error" in estimate:
            summaries["division/noise_rate_error"] = estimate["error"]
            summaries["division_hist/noise_rate_error_per_class"] = np.asarray(
                [estimate["per_class"][c] - estimate["true_per_class"][c]
                 for c in estimate["per_class"]])
        div["stats"].assign(tf.tensor_scatter_nd_update(
            div["stats"], [[epoch_index]], tf.constant([stats], tf.float32)))
        return summaries

    def choose(self, state, raw_losses):
        """Sets the settings left to the data (None in the config) by ``dividemix_rule``
        from the warm-up networks' official division (one GMM over their per-sample
        losses) and predictions; logged in one line (``chosen_settings`` gives them to
        the run record)."""
        predicted = self.ctx.map_train_set(self._predicted)
        labels = self.ctx.train_labels
        if labels is None:
            labels = self.ctx.map_train_set(self._given)
        official = np.mean([clean_probability(min_max_normalise(raw_losses[k]), f"net{k}")
                            for k in (1, 2)], axis=0)
        estimates = rule.estimate(official, labels, predicted, self.ctx.num_classes,
                                  self.config.p_threshold)
        given = {name: getattr(self.config, name) for name in rule.CHOSEN}
        if self.ctx.train_labels is None:  # streamed labels: one GMM (see build)
            given["gmm_per_class"] = given["gmm_per_class"] or False
        chosen = rule.choose(estimates, given)
        for name, value in chosen.items():
            state["settings"][name].assign(float(value))
        state["settings_estimates"].assign([estimates[k] for k in rule.ESTIMATES])
        logging.info("DivideMix settings chosen from the data after the warm-up: %s",
                     rule.describe(chosen, estimates, given))

    def chosen_settings(self, state):
        """The settings chosen from the data (name -> value) and the ``estimates`` they
        were chosen by; empty when the config gave every one or before the first
        co-divide."""
        values = {name: float(v.numpy()) for name, v in state["settings"].items()}
        if any(getattr(self.config, name) is None for name in rule.CHOSEN) \
                and min(values.values()) >= 0:
            out = {name: rule.typed(name, values[name]) for name in rule.CHOSEN
                   if getattr(self.config, name) is None}
            measured = state["settings_estimates"].numpy().tolist()
            if measured[0] >= 0:  # (not held by checkpoints older than the estimates)
                out["estimates"] = {k: (int(v) if k == "smallest_class" else round(v, 4))
                                    for k, v in zip(rule.ESTIMATES, measured)}
            return out
        return {}

    def loss_groups(self, state):
        """Index sets whose losses are normalised and divided together: all examples
        (official), or one set per noisy-label class (``gmm_per_class``)."""
        if float(state["settings"]["gmm_per_class"].numpy()) <= 0:
            return [np.arange(self.ctx.num_train)]
        labels = np.asarray(self.ctx.train_labels)
        return [np.flatnonzero(labels == c) for c in np.unique(labels)]

    def division_histograms(self, probs, losses, clean=None):
        """Each network's clean probabilities and the normalised losses its GMM was fitted
        on, as TensorBoard histograms; split into the truly clean and the truly noisy
        examples where the run has a clean reference (``clean``: bool [N], or None)."""
        out = {}
        for k in (1, 2):
            for name, values in (("clean_prob", probs[k]), ("loss", losses[k])):
                out[f"division_hist/net{k}_{name}"] = values
                if clean is not None:
                    out[f"division_hist/net{k}_{name}_of_clean"] = values[clean]
                    out[f"division_hist/net{k}_{name}_of_noisy"] = values[~clean]
        return out

    def noise_estimate(self, prob1, prob2, clean=None):
        """The share of wrong training labels as the division sees it: those whose mean
        clean probability of the two networks is at most tau (the examples it treats as
        unlabeled; the label-issue report's flags), in all and per given class; with a
        clean reference (``clean``: bool [N], whether each label is true), also the true
        shares and the estimate's error."""
        labels = np.asarray(self.ctx.train_labels)
        noisy = (np.asarray(prob1) + np.asarray(prob2)) / 2 <= self.config.p_threshold
        classes = [c for c in range(self.ctx.num_classes) if np.any(labels == c)]
        out = {"rate": float(noisy.mean()),
               "per_class": {str(c): float(noisy[labels == c].mean()) for c in classes}}
        if clean is not None:
            out["true_rate"] = float(1.0 - clean.mean())
            out["true_per_class"] = {str(c): float(1.0 - clean[labels == c].mean())
                                     for c in classes}
            out["error"] = out["rate"] - out["true_rate"]
        return out

    def division_stats(self, prob, clean=None):
        """(labeled count, AUC, precision, recall) of a division against ``clean`` (bool
        [N], whether each label is true); -1 where undefined (no noisy or no clean
        examples, or no clean reference)."""
        from sklearn.metrics import roc_auc_score
        labeled = prob > self.config.p_threshold
        if clean is None:
            return [float(labeled.sum()), -1.0, -1.0, -1.0]
        auc = roc_auc_score(clean, prob) if 0 < clean.sum() < len(clean) else -1.0
        precision = clean[labeled].mean() if labeled.any() else -1.0
        recall = labeled[clean].mean() if clean.any() else -1.0
        return [float(labeled.sum()), float(auc), float(precision), float(recall)]

    # -------------------------------------------------------------- steps
    def warmup_step(self, state, batch, step):
        out = {}
        for k, stream in ((1, "a"), (2, "b")):
            net, opt = state[f"net{k}"], state[f"opt{k}"]
            x, y = batch[stream]["image"], batch[stream]["label"]
            with tf.GradientTape() as tape:
                logits = net(x, training=True)
                ce = tf.reduce_mean(ops.cross_entropy(logits, y))
                loss = ce
                if self.penalize_confidence():
                    loss += tf.reduce_mean(ops.neg_entropy(logits))
            common.sgd_update(tape, loss, net, opt, self.config.weight_decay)
            out[f"loss_net{k}"] = ce
        out["loss"] = (out["loss_net1"] + out["loss_net2"]) / 2
        out["lr"] = state["opt1"].learning_rate
        return out

    def train_step(self, state, batch, step, k):
        cfg = self.config
        net, peer, opt = state[f"net{k}"], state[f"net{3 - k}"], state[f"opt{k}"]
        lb, ub = batch["labeled"], batch["unlabeled"]
        x1, x2 = lb["image"][:, 0], lb["image"][:, 1]
        u1, u2 = ub["image"][:, 0], ub["image"][:, 1]
        y = tf.one_hot(lb["label"], self.ctx.num_classes)

        def own(v):  # training mode: batch statistics, and the moving averages move
            return tf.nn.softmax(net(v, training=True))

        def other(v):
            return tf.nn.softmax(peer(v, training=False))

        # Co-guessing (Algorithm 1, line 20) and co-refinement (lines 17-18), in the
        # official order: own(u1), own(u2), peer(u1), peer(u2), own(x1), own(x2).
        q_u = ops.sharpen(ops.guess_labels(tf.stack([own(u1), own(u2), other(u1), other(u2)])),
                          cfg.sharpen_temperature)
        p_x = ops.guess_labels(tf.stack([own(x1), own(x2)]))
        q_x = ops.sharpen(ops.co_refine(y, lb["clean_prob"], p_x), cfg.sharpen_temperature)

        # MixMatch over [x1, x2, u1, u2] with one lambda' per batch (line 27).
        settings = state["settings"]  # the config's values, or those chosen from the data
        xs, ys = common.global_mixup([x1, x2, u1, u2], [q_x, q_x, q_u, q_u],
                                     settings["mixup_alpha"].read_value(),
                                     ops.make_seed(self.ctx.seed, 3, step), per_example=False)
        epoch, start, length = tf.unstack(state["division"]["ramp"])
        progress = epoch + (tf.cast(step, tf.float32) - start) / length - cfg.warmup_epochs
        lambda_u = settings["lambda_u"].read_value() * ops.linear_rampup(progress,
                                                                          cfg.rampup_epochs)
        b = int(x1.shape[0])
        with tf.GradientTape() as tape:
            logits = net(tf.concat(xs, 0), training=True)
            probs = tf.nn.softmax(logits)
            loss_x = tf.reduce_mean(ops.soft_cross_entropy(logits[:2 * b], tf.concat(ys[:2], 0)))
            loss_u = tf.reduce_mean(ops.squared_error(probs[2 * b:], tf.concat(ys[2:], 0)))
            loss_reg = ops.prior_penalty(global_mean(probs))
            loss = loss_x + lambda_u * loss_u + cfg.lambda_prior * loss_reg
        common.sgd_update(tape, loss, net, opt, cfg.weight_decay)
        return {"loss": loss, "loss_x": loss_x, "loss_u": loss_u, "loss_reg": loss_reg,
                "lambda_u": lambda_u, "lr": opt.learning_rate}

    # ------------------------------------------------------------- outputs
    def predict(self, state, images):
        logits = state["net1"](images, training=False) + state["net2"](images, training=False)
        return tf.nn.softmax(logits)

    def label_evidence(self, state):
        """The last co-divide's view of each label: each network's clean probability (the
        GMM's posterior of the low-loss component) and its normalised loss. An example
        is flagged when the networks' mean clean probability is at most tau; the score
        is one minus that mean. None before the first co-divide."""
        div = state["division"]
        if int(div["history_count"].numpy()) == 0:
            return None
        probs = [div[f"prob{k}"].numpy().astype(np.float64) for k in (1, 2)]
        columns = {f"clean_prob_net{k}": probs[k - 1] for k in (1, 2)}
        count = int(div["history_count"].numpy())
        columns.update({f"norm_loss_net{k}": fitted_losses(div, k, count) for k in (1, 2)})
        clean = (probs[0] + probs[1]) / 2
        tau = self.config.p_threshold
        return LabelEvidence(columns, 1.0 - clean, clean <= tau,
                             f"score 1 - the two networks' mean clean probability at the last "
                             f"co-divide; flagged at or below tau = {tau:g}")

    def diagnostics(self, state, truth):
        stats = state["division"]["stats"].numpy()
        epochs = []
        for i, row in enumerate(stats):
            if np.all(row == -1.0):
                continue
            entry = {"epoch": float(self.config.warmup_epochs + i)}
            for k in (1, 2):
                for j, name in enumerate(STATS):
                    value = float(row[(k - 1) * len(STATS) + j])
                    if name == "labeled" or truth is not None:
                        entry[f"net{k}_{name}"] = None if value == -1.0 else value
            epochs.append(entry)
        # Without a clean reference, the division's quality cannot be measured: no
        # precision, recall or AUC (against the given labels they would read 1.0).
        out = {"division_history": epochs,
               "division_reference": ("true labels" if truth is not None
                                      else "none: the labels are taken as given")}
        div = state["division"]
        if float(div["loss_hist_epoch"].numpy()) >= 0:
            clean, noisy = div["loss_hist"].numpy().tolist()
            out["loss_histograms"] = {"epoch": float(div["loss_hist_epoch"].numpy()),
                                      "clean": clean, "noisy": noisy}
        if epochs:
            last = epochs[-1]
            out["division"] = {k: v for k, v in last.items() if k != "epoch"}
            out["noise_estimate"] = self.noise_estimate(
                div["prob1"].numpy(), div["prob2"].numpy(),
                None if truth is None else truth.label_is_true)
        return out


def fitted_losses(div, k, count):
    """The normalised losses network k's GMM is fitted on: the mean of the last ``count``
    epochs' (``loss_history``)."""
    return div[f"history{k}"].numpy()[-count:].mean(axis=0).astype(np.float64)


def min_max_normalise(losses):
    """Losses mapped onto [0, 1] (all zeros when they are all equal)."""
    span = losses.max() - losses.min()
    return (losses - losses.min()) / span if span > 0 else np.zeros_like(losses)


def clean_probability(losses, where):
    """The GMM's clean probability of each loss; 1 - loss where EM cannot give one
    (non-finite posteriors, or fewer than two distinct losses)."""
    if len(np.unique(losses)) < 2:
        return 1.0 - losses
    prob, _ = gmm.clean_probability(losses)
    if not np.all(np.isfinite(prob)):
        logging.warning("the GMM of %s gave non-finite probabilities; using 1 - loss", where)
        return 1.0 - losses
    return prob


def global_mean(probs):
    """Mean of ``probs`` [b, C] over the global batch (all replicas).

    The all-reduce passes gradients on (summed over replicas), which the 1 / R
    scaling of ``replica_gradients`` turns into the gradient of the global term.
    """
    ctx = tf.distribute.get_replica_context()
    total = tf.reduce_sum(probs, axis=0)
    count = tf.cast(tf.shape(probs)[0], probs.dtype)
    if ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
        count = count * ctx.num_replicas_in_sync
    return total / count
