"""The mixup paper's Figure 2 and its robustness experiment, on finished runs.

For a trained ERM and a trained mixup model (ordinary run folders):

* between training points: for random pairs (x_i, x_j) of training images and
  lambda in [0, 1], at x = lambda x_i + (1 - lambda) x_j, a prediction outside
  {y_i, y_j} is a *miss*; and the norm of the gradient of the cross-entropy
  (target lambda y_i + (1 - lambda) y_j) with respect to the input pixels;
* adversarial robustness: top-1 test error under FGSM and iterative FGSM
  (10 steps of eps / 10, projected on the eps-ball and on the valid pixel range)
  for several eps, in pixel units out of 255.
"""
import os

import numpy as np
import tensorflow as tf

from mixmatch_tf import ops
from mixmatch_tf.data.preprocess import normalize

LAMBDAS = np.linspace(0.0, 1.0, 11)


def _logits(trainer, pixels):
    """Log-probabilities of the method's predictor for float pixels [B, H, W, C] (0-255)."""
    probs = trainer.method.predict(trainer.state, normalize(pixels, trainer.normalization))
    return tf.math.log(tf.maximum(tf.cast(probs, tf.float32), 1e-12))


def between_points(trainer, pairs=500, seed=0):
    """(miss rate % per lambda, mean input-gradient norm per lambda)."""
    images = trainer.data.train_images.astype(np.float32)
    labels = trainer.train_labels
    rng = np.random.RandomState(seed)
    i, j = rng.randint(0, len(images), pairs), rng.randint(0, len(images), pairs)
    c = trainer.data.num_classes
    misses, norms = [], []
    for lam in LAMBDAS:
        x = tf.constant(lam * images[i] + (1 - lam) * images[j])
        target = lam * tf.one_hot(labels[i], c) + (1 - lam) * tf.one_hot(labels[j], c)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logp = _logits(trainer, x)
            loss = -tf.reduce_sum(target * logp, axis=-1)
        grad = tape.gradient(loss, x)
        pred = tf.argmax(logp, axis=-1).numpy()
        misses.append(100.0 * np.mean((pred != labels[i]) & (pred != labels[j])))
        norms.append(float(tf.reduce_mean(tf.norm(tf.reshape(grad, [pairs, -1]), axis=1))))
    return np.array(misses), np.array(norms)


def adversarial_error(trainer, eps, steps):
    """Top-1 test error (%) under FGSM (steps=1) or iterative FGSM."""
    x0 = tf.constant(trainer.data.test_images.astype(np.float32))
    y = tf.constant(trainer.data.test_labels)
    x = x0
    step_size = eps if steps == 1 else eps / steps
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(ops.cross_entropy(_logits(trainer, x), y))
        x = x + step_size * tf.sign(tape.gradient(loss, x))
        x = tf.clip_by_value(tf.clip_by_value(x, x0 - eps, x0 + eps), 0.0, 255.0)
    pred = tf.argmax(_logits(trainer, x), axis=-1).numpy()
    return 100.0 * float(np.mean(pred != trainer.data.test_labels))


EPSILONS = (4.0, 8.0, 16.0, 32.0)
RUNS = (("ERM", (("method", "erm"),)), ("mixup (alpha 1)", (("method", "mixup"),
                                                            ("mixup_alpha", "1"))))


def run(output_dir, seeds, jobs=1, **_):
    """Trains ERM and mixup on the clean digits (ordinary runs), then measures both."""
    from mixmatch_tf.reproduce.report import mean_std, pyplot, save_figure
    plt = pyplot()
    from mixmatch_tf.reproduce.runner import run_dir, run_suite
    from mixmatch_tf.reproduce.suites import RunSpec
    from mixmatch_tf.training import load_run, make_strategy

    specs = [RunSpec(label, "clean digits", (("dataset", "digits"),) + flags, s)
             for label, flags in RUNS for s in seeds]
    failed = run_suite(specs, output_dir, jobs=jobs)
    if failed:
        raise RuntimeError("runs failed: " + ", ".join(s.run_id for s, _ in failed))
    strategy = make_strategy()
    measured = {label: [] for label, _ in RUNS}
    for spec in specs:
        trainer = load_run(run_dir(output_dir, spec), strategy=strategy)
        misses, norms = between_points(trainer, seed=spec.seed)
        attacks = {f"FGSM eps {e:g}": adversarial_error(trainer, e, 1) for e in EPSILONS}
        attacks.update({f"I-FGSM eps {e:g}": adversarial_error(trainer, e, 10) for e in EPSILONS})
        measured[spec.row].append((misses, norms, trainer.evaluate(), attacks))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, values in measured.items():
        axes[0].plot(LAMBDAS, np.mean([v[0] for v in values], 0), marker="o", label=label)
        axes[1].plot(LAMBDAS, np.mean([v[1] for v in values], 0), marker="o", label=label)
    axes[0].set_ylabel("misses (%)")
    axes[1].set_ylabel("||d loss / d x||")
    for ax in axes:
        ax.set_xlabel("lambda")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, os.path.join(output_dir, "figures", "between_points.png"))

    inner = slice(1, -1)  # lambda strictly between 0 and 1
    lines = ["## Between training points (Figure 2)", "",
             "| | misses (%), mean over 0 < lambda < 1 | input-gradient norm, mean over "
             "0 < lambda < 1 | clean test error (%) |", "|---|---|---|---|"]
    for label, values in measured.items():
        lines.append(f"| {label} | {mean_std([v[0][inner].mean() for v in values])} | "
                     f"{mean_std([v[1][inner].mean() for v in values], '.4f')} | "
                     f"{mean_std([v[2] for v in values])} |")
    attack_names = list(measured[RUNS[0][0]][0][3])
    lines += ["", "![between_points](figures/between_points.png)", "",
              "## Adversarial robustness: top-1 test error (%), eps in pixels out of 255", "",
              "| | " + " | ".join(attack_names) + " |", "|---" * (len(attack_names) + 1) + "|"]
    for label, values in measured.items():
        lines.append(f"| {label} | " + " | ".join(mean_std([v[3][a] for v in values])
                                                  for a in attack_names) + " |")
    lines += ["", f"Seeds: {', '.join(map(str, seeds))}; 500 random pairs per run.", ""]
    return "\n".join(lines)
