"""DivideMix's settings chosen from the data: the estimates and the rule.

The official code keys lambda_u (and, between its data sets, mixup's alpha) on the
noise setting, which a user's data does not state. After the warm-up, the first
co-divide sees the training set through two networks that have not memorised the
noise yet (the warm-up is short for that reason). ``estimate`` measures, from their
per-sample losses and ensemble predictions:

* ``noise_rate``: the share of labels the ensemble predicts otherwise than given.
  After the warm-up the networks predict the true class of most wrong labels and the
  given class of most right ones. Measured on the digits (seeds 0-1) it was within 3
  points of the truth at 20/50/80% symmetric noise and 4-6 points below it where
  classes are swapped (the networks learn part of the swaps); on the Fashion-MNIST
  subset 7-11 points above it (the networks still mispredict some clean images of
  look-alike classes): enough to pick a row of the official table.
* ``fit``: the share of the labels one GMM over all losses divides as clean that the
  ensemble predicts as given: how well the network fits the data it is asked to
  learn. Measured after the warm-up: 0.96-1.00 on the digits up to 50% symmetric
  noise and with their asymmetric noise, 0.82-0.83 on the Fashion-MNIST subset at 50%
  symmetric noise with the small CNN; 0.67-0.75 where pairs of classes are swapped at
  40% on both, as the networks learn part of the swaps.
* ``class_dependence``: whether the noise looks class-dependent, from the confusion
  of given and predicted labels. Of the labels the ensemble predicts otherwise than
  given, the share whose predicted class is their given class's most common one,
  rescaled so that noise spread evenly over the other C - 1 classes gives 0 and noise
  that swaps each class with one other gives 1: (share - 1 / (C - 1)) / (1 - 1 / (C - 1)).
  -1 (unknown) with two classes, where every wrong label has one other class to be.
  Measured after the warm-up (seeds 0-1): 0.09-0.24 at symmetric noise on the digits
  (20/50/80%) and 0.10-0.12 on the Fashion-MNIST subset (50%); 0.97-0.99 with pairs of
  digits swapped at 40% (the digits' asymmetric noise and five pairs both ways),
  0.66-0.71 with Fashion-MNIST's look-alike pairs swapped at 40% (its networks also
  confuse the pairs' clean images). It needs several disagreements per class: with a
  handful, even noise can look concentrated (three spread evenly over nine other
  classes read about 0.5), so the rule reads it only where the smallest class is
  expected to hold ``MIN_DISAGREEING`` of them (noise rate x smallest class).
* ``smallest_class``: the fewest examples of any given class.

``choose`` sets, for each setting the config leaves to the data (None):

* ``gmm_per_class``: one GMM per given class (each class its own clean/noisy
  threshold) at an estimated noise rate up to ``PER_CLASS_UP_TO``, unless a class has
  fewer than ``MIN_CLASS_EXAMPLES`` examples, too few to fit a two-component mixture
  on. After the warm-up it divided as well as one GMM or better on every measured
  setting (fewer clean labels flagged), and later in training far better where
  classes differ in difficulty (Fashion-MNIST's shirts). At higher noise the clean
  labels are a small minority of each class, and one GMM, which pools them over the
  classes, trained better (the digits at 80% noise, seeds 0-1: 4.3% test error against
  5.3% per class).
* The data is *hard for the network* when it fits less than ``EASY_FIT`` of its
  clean side at an estimated noise rate up to ``HARD_UP_TO`` (above it, the clean
  side holds so many wrong labels that ``fit`` measures the noise, not the data), and
  wherever the noise looks class-dependent (``class_dependence`` at least
  ``CLASS_DEPENDENT``). There the warm-up networks have learnt part of the swaps, so
  ``fit`` measures the noise as well as the data and moves with the run: on
  Fashion-MNIST with its look-alike pairs swapped at 40%, with the official warm-up's
  confidence penalty, it read 0.81 and 0.98 for seeds 0 and 1 (one TensorFlow thread)
  and 0.90 for seed 1 with two threads; on the digits' asymmetric noise, 0.99-1.00.
* ``lambda_u``: the official CIFAR-10 table on the estimated noise rate (0 up to
  ``LOW_NOISE``, 25 up to ``HIGH_NOISE``, 50 above), and 0 on data hard for the
  network: there the unlabeled term teaches the peer's guesses back onto the right
  labels of hard examples that the division left unlabeled (measured on Fashion-MNIST
  at 50% noise: 14.7% test error with 0, 15.8% with 25). Where the noise looks
  class-dependent that is the official table's asymmetric row (measured on the digits
  with five pairs of classes swapped both ways at 40%, seeds 0-1, the other settings
  chosen by this rule: 1.61% test error with 0, 1.84% with 25).
* ``mixup_alpha``: 4, the CIFAR value, except on data hard for the network: 0.5,
  the official value on the real-world data sets (Clothing1M, WebVision). Strong
  mixing costs a network that cannot fit even its clean labels more than it
  regularises (the small CNN on clean Fashion-MNIST labels: 13.3% test error with
  mixup at alpha 4, 11.5% without). Under class-dependent noise, the other settings
  chosen by this rule: 1.61% with 0.5 against 1.94% with 4 on the digits with five
  pairs swapped at 40% (seeds 0-1); with the official warm-up's confidence penalty,
  3.78% against 3.82% on the digits' asymmetric 40% (seeds 0-1) and 18.44% against
  21.21% on Fashion-MNIST's pairs at 40% (seed 1, two threads).
"""
import numpy as np

# The settings the rule chooses, in the order they are logged.
CHOSEN = ("gmm_per_class", "lambda_u", "mixup_alpha")
# The estimates it chooses them by (``estimate``'s numbers, as recorded in the run).
ESTIMATES = ("noise_rate", "fit", "class_dependence", "smallest_class")
MIN_CLASS_EXAMPLES = 20
CLASS_DEPENDENT = 0.5
MIN_DISAGREEING = 10
LOW_NOISE = 0.35
HIGH_NOISE = 0.85
EASY_FIT = 0.92
HARD_UP_TO = 0.6
PER_CLASS_UP_TO = 0.6


def estimate(clean_prob, labels, predicted, num_classes, tau):
    """The estimates ``choose`` reads (see the module docstring), as a dict.

    Args:
      clean_prob: [N], the two networks' mean clean probability under one GMM over all
        (min-max normalised) losses: the official division.
      labels: the given labels [N].
      predicted: the ensemble's predicted class [N].
      tau: the division's threshold (``p_threshold``).
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    clean = np.asarray(clean_prob) > tau
    agree = predicted == labels
    counts = np.bincount(labels, minlength=num_classes)
    return {
        "noise_rate": float(np.mean(~agree)),
        "noise_per_class": {str(c): float(np.mean(~agree[labels == c]))
                            for c in range(num_classes) if counts[c]},
        "fit": float(agree[clean].mean()) if clean.any() else 0.0,
        "class_dependence": class_dependence(labels[~agree], predicted[~agree], num_classes),
        "smallest_class": int(counts[counts > 0].min()),
    }


def class_dependence(given, predicted, num_classes):
    """How concentrated the (given, predicted) confusion of disagreeing labels is: 0 when
    spread evenly over the other classes, 1 when each given class is predicted as one
    other class only; -1 with fewer than three classes or no disagreement."""
    if num_classes < 3 or len(given) == 0:
        return -1.0
    confusion = np.zeros([num_classes, num_classes])
    np.add.at(confusion, (given, predicted), 1.0)
    share = confusion.max(axis=1).sum() / len(given)
    even = 1.0 / (num_classes - 1)
    return float(max(0.0, (share - even) / (1.0 - even)))


def choose(estimates, given):
    """name -> value for each setting of ``CHOSEN`` that ``given`` (name -> the config's
    value) leaves None; the others are not returned."""
    rate = estimates["noise_rate"]
    dependent = (estimates["class_dependence"] >= CLASS_DEPENDENT
                 and rate * estimates["smallest_class"] >= MIN_DISAGREEING)
    hard = dependent or (estimates["fit"] < EASY_FIT and rate <= HARD_UP_TO)
    rules = {
        "gmm_per_class": (rate <= PER_CLASS_UP_TO
                          and estimates["smallest_class"] >= MIN_CLASS_EXAMPLES),
        "lambda_u": (0.0 if hard or rate <= LOW_NOISE
                     else 25.0 if rate <= HIGH_NOISE else 50.0),
        "mixup_alpha": 0.5 if hard else 4.0,
    }
    return {name: rules[name] for name in CHOSEN if given.get(name) is None}


def typed(name, value):
    """A chosen value as its setting's type (the state holds them as floats)."""
    return bool(value > 0) if name == "gmm_per_class" else float(value)


def describe(chosen, estimates, given):
    """One line: the chosen values, the given ones, and the estimates behind them."""
    parts = [f"{name}={typed(name, chosen[name])!r}" if name in chosen
             else f"{name}={given[name]!r} (given)" for name in CHOSEN]
    dependence = estimates["class_dependence"]
    return (", ".join(parts) + f" from an estimated noise rate of "
            f"{estimates['noise_rate']:.1%}, {estimates['fit']:.1%} of the clean side "
            f"fitted, class dependence "
            + (f"{dependence:.2f}" if dependence >= 0 else "unknown")
            + f", smallest class {estimates['smallest_class']} examples")
