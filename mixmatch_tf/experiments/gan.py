"""The mixup paper's Figure 5: mixup stabilises GAN training on a 2-D mixture of Gaussians.

Real data: 8 Gaussians (std 0.02) on a circle of radius 2. Generator and
discriminator are MLPs trained with Adam; the plain GAN minimises the usual
binary cross-entropy; the mixup GAN trains the discriminator on
x = lambda x_real + (1 - lambda) x_fake with target lambda, lambda ~ Beta(alpha, alpha)
per example (the generator loss is unchanged). Samples are drawn at several
iterations, and the report counts the modes covered and the share of
high-quality samples (within 3 std of a mode) at the end.

References:
  Zhang et al., mixup, ICLR 2018, section 3.6 and Figure 5.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf import ops

MODES = 8
RADIUS, STD = 2.0, 0.02
SNAPSHOTS = (10, 100, 1000, 10000, 20000)


def real_batch(seed, n):
    angle = 2 * np.pi * tf.cast(tf.random.stateless_uniform([n], seed, 0, MODES, tf.int32),
                                tf.float32) / MODES
    centers = RADIUS * tf.stack([tf.cos(angle), tf.sin(angle)], 1)
    noise = STD * tf.random.stateless_normal([n, 2], tf.random.experimental.stateless_fold_in(
        seed, 1))
    return centers + noise


def mlp(out, name, hidden=128):
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(out)], name=name)


def quality(samples):
    """(modes with >= 1% of the samples nearby, % of samples within 3 std of a mode)."""
    angles = 2 * np.pi * np.arange(MODES) / MODES
    centers = RADIUS * np.stack([np.cos(angles), np.sin(angles)], 1)
    d = np.linalg.norm(samples[:, None] - centers[None], axis=-1)
    near = d.min(1) < 3 * STD
    nearest = d.argmin(1)
    counts = np.bincount(nearest[near], minlength=MODES)
    return int(np.sum(counts >= 0.01 * len(samples))), 100.0 * float(near.mean())


def train(seed, use_mixup, alpha=0.2, iterations=20000, batch=128, lr=1e-3):
    """Returns {iteration: generated samples [1000, 2]} at the snapshot iterations."""
    keras.utils.set_random_seed(seed)
    gen, disc = mlp(2, "generator"), mlp(1, "discriminator")
    g_opt = keras.optimizers.Adam(lr, beta_1=0.5)
    d_opt = keras.optimizers.Adam(lr, beta_1=0.5)
    g_opt.build(gen.trainable_variables)
    d_opt.build(disc.trainable_variables)
    bce = lambda logits, y: tf.reduce_mean(  # noqa: E731
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))

    @tf.function
    def step(it):
        seeds = tf.unstack(tf.random.experimental.stateless_split(ops.make_seed(seed, it), 4))
        real = real_batch(seeds[0], batch)
        z = tf.random.stateless_normal([batch, 2], seeds[1])
        with tf.GradientTape() as tape:
            fake = gen(z, training=True)
            if use_mixup:
                lam = ops.sample_beta(alpha, [batch], seeds[2])[:, None]
                mixed = lam * real + (1 - lam) * fake
                d_loss = bce(disc(mixed, training=True), lam)
            else:
                d_loss = (bce(disc(real, training=True), tf.ones([batch, 1]))
                          + bce(disc(fake, training=True), tf.zeros([batch, 1])))
        d_opt.apply_gradients(zip(tape.gradient(d_loss, disc.trainable_variables),
                                  disc.trainable_variables))
        z = tf.random.stateless_normal([batch, 2], seeds[3])
        with tf.GradientTape() as tape:
            g_loss = bce(disc(gen(z, training=True), training=True), tf.ones([batch, 1]))
        g_opt.apply_gradients(zip(tape.gradient(g_loss, gen.trainable_variables),
                                  gen.trainable_variables))

    probe = tf.random.stateless_normal([1000, 2], [seed, 99])
    snapshots = {}
    for it in range(1, iterations + 1):
        step(tf.constant(it, tf.int64))
        if it in SNAPSHOTS or it == iterations:
            snapshots[it] = gen(probe, training=False).numpy()
    return snapshots


def run(output_dir, seeds, iterations=20000, **_):
    from mixmatch_tf.reproduce.report import mean_std, pyplot, save_figure
    plt = pyplot()
    rows = {"GAN": [], "GAN + mixup (alpha 0.2)": []}
    shown = {}
    for seed in seeds:
        for label, use_mixup in (("GAN", False), ("GAN + mixup (alpha 0.2)", True)):
            snaps = train(seed, use_mixup, iterations=iterations)
            rows[label].append(quality(snaps[max(snaps)]))
            shown.setdefault(label, snaps)
    steps = sorted(next(iter(shown.values())))
    fig, axes = plt.subplots(2, len(steps), figsize=(2.2 * len(steps), 4.6), squeeze=False)
    for r, (label, snaps) in enumerate(shown.items()):
        for c, it in enumerate(steps):
            ax = axes[r][c]
            ax.scatter(snaps[it][:, 0], snaps[it][:, 1], s=2, alpha=0.5)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label.split(' (')[0]}, it {it}", fontsize=8)
    save_figure(fig, os.path.join(output_dir, "figures", "gan2d.png"))
    lines = [f"| | modes covered (of {MODES}) | high-quality samples (%) |", "|---|---|---|"]
    for label, values in rows.items():
        modes = np.array([v[0] for v in values], float)
        good = np.array([v[1] for v in values])
        lines.append(f"| {label} | {modes.mean():.1f} (min {modes.min():.0f}) | "
                     f"{mean_std(good, '.1f')} |")
    lines += ["", f"{iterations} iterations, seeds {', '.join(map(str, seeds))}.", "",
              "![gan2d](figures/gan2d.png)", ""]
    return "\n".join(lines)
