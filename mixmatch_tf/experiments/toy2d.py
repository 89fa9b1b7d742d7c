"""The mixup paper's Figure 1(b): decision surfaces of ERM and mixup on a 2-D toy problem.

Two interleaved half-moons (scikit-learn's ``make_moons``) are the two classes.
An MLP is trained on them with ERM and with mixup (alpha 1) through the ordinary
Trainer (the points are tabular data), and p(y = 1 | x) is drawn over the plane.
mixup's surface changes linearly between the classes; ERM's jumps. The report
also measures that: the fraction of the plane where the model is unsure
(0.1 < p < 0.9) and the test error.
"""
import os

import numpy as np

from mixmatch_tf.data.arrays import tabular_data
from mixmatch_tf.training import RunConfig, Trainer, make_strategy

GRID = 120
CONFIG = {"model": "mlp", "batch_size": 64, "epochs": 100.0, "learning_rate": 0.1,
          "weight_decay": 1e-4}


def moons(seed, n=400, noise=0.15):
    from sklearn.datasets import make_moons
    x, y = make_moons(n, noise=noise, random_state=seed)
    xt, yt = make_moons(2000, noise=noise, random_state=10_000 + seed)
    return tabular_data("moons", x, y, ["0", "1"], x_test=xt, y_test=yt)


def surface(trainer, lo, hi):
    xs = np.linspace(lo[0], hi[0], GRID)
    ys = np.linspace(lo[1], hi[1], GRID)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    return xs, ys, trainer.predict(grid).numpy()[:, 1].reshape(GRID, GRID)


def run(output_dir, seeds, **_):
    """Trains, draws, and returns the markdown section of the report."""
    from mixmatch_tf.reproduce.report import mean_std, pyplot, save_figure
    plt = pyplot()

    strategy = make_strategy()
    rows = {"ERM": [], "mixup (alpha 1)": []}
    drawn = None
    for seed in seeds:
        data = moons(seed)
        lo = data.train_images.min(0) - 0.5
        hi = data.train_images.max(0) + 0.5
        for label, method, extra in (("ERM", "erm", {}),
                                     ("mixup (alpha 1)", "mixup", {"mixup_alpha": 1.0})):
            run_dir = os.path.join(output_dir, "runs", f"{method}-seed{seed}")
            trainer = Trainer(method, data, RunConfig(model_dir=run_dir, seed=seed),
                              config=dict(CONFIG, **extra), strategy=strategy)
            metrics = trainer.fit()
            xs, ys, p = surface(trainer, lo, hi)
            rows[label].append((metrics["test_error"], float(np.mean((p > 0.1) & (p < 0.9)))))
            if drawn is None or len(drawn) < 2:
                drawn = (drawn or []) + [(label, xs, ys, p, data)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, (label, xs, ys, p, data) in zip(axes, drawn):
        ax.contourf(xs, ys, p, levels=20, cmap="Blues", vmin=0, vmax=1)
        for c, color in ((0, "tab:green"), (1, "tab:orange")):
            pts = data.train_images[data.train_labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=6, c=color)
        ax.set_title(f"{label}: p(y=1|x)")
    save_figure(fig, os.path.join(output_dir, "figures", "toy2d.png"))
    lines = ["| | test error (%) | plane where 0.1 < p(y=1|x) < 0.9 (%) |", "|---|---|---|"]
    for label, values in rows.items():
        err = np.array([v[0] for v in values])
        unsure = 100 * np.array([v[1] for v in values])
        lines.append(f"| {label} | {mean_std(err)} | {mean_std(unsure, '.1f')} |")
    lines += ["", f"Seeds: {', '.join(map(str, seeds))}.", "", "![toy2d](figures/toy2d.png)", ""]
    return "\n".join(lines)
