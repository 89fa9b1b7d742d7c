"""REPORT.md and figures of a suite: mean and spread over seeds, paper numbers beside ours."""
import collections
import os

import numpy as np

from mixmatch_tf.reproduce.runner import run_dir
from mixmatch_tf.training.folder import read_json


def collect(specs, output_dir):
    """spec -> metrics.json of the finished runs."""
    out = {}
    for spec in specs:
        m = read_json(os.path.join(run_dir(output_dir, spec), "metrics.json"))
        if m is not None:
            out[spec] = m
    return out


def cell_stats(values):
    """(mean, sample std, n) of a list of numbers (std 0 for one value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    arr = np.asarray(values, float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, len(arr)


def mean_std(values, spec=".2f"):
    """'mean +- sample std' of numbers, each formatted with ``spec``."""
    mean, std, _ = cell_stats(list(values))
    return f"{mean:{spec}} +- {std:{spec}}"


def table(specs, results, key):
    """A markdown table: rows x columns with 'mean +- std (n)' and the paper's number."""
    rows = list(dict.fromkeys(s.row for s in specs))
    columns = list(dict.fromkeys(s.column for s in specs))
    cells = collections.defaultdict(list)
    paper = {}
    for spec in specs:
        number = spec.paper_for(key)
        if number is not None:
            paper[(spec.row, spec.column)] = number
        if spec in results:
            cells[(spec.row, spec.column)].append(results[spec].get(key))
    has_paper = bool(paper)
    header = "| | " + " | ".join(columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for r in rows:
        entries = []
        for c in columns:
            stats = cell_stats(cells.get((r, c), []))
            text = "--" if stats is None else f"{stats[0]:.2f} +- {stats[1]:.2f} ({stats[2]})"
            if has_paper and (r, c) in paper:
                text += f" [paper {paper[(r, c)]:.2f}]"
            entries.append(text)
        lines.append(f"| {r} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    """Lays out, writes (creating the folder) and closes ``fig``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def error_curves(specs, results, path):
    """Test error against training step, mean over seeds, one panel per column."""
    plt = pyplot()
    columns = list(dict.fromkeys(s.column for s in specs))
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        curves = collections.defaultdict(list)
        for spec in specs:
            if spec.column == column and spec in results:
                evals = results[spec].get("evals", [])
                curves[spec.row].append(([e["step"] for e in evals],
                                         [e["test_error"] for e in evals]))
        for row, runs in curves.items():
            length = min(len(x) for x, _ in runs)
            steps = runs[0][0][:length]
            mean = np.mean([y[:length] for _, y in runs], axis=0)
            ax.plot(steps, mean, label=row)
        ax.set_title(column)
        ax.set_xlabel("step")
        ax.set_ylabel("test error (%)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def division_auc(specs, results, path):
    """DivideMix: AUC of the clean probability against the true clean mask, per epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    by_column = collections.defaultdict(list)
    for spec, m in results.items():
        if m.get("division_history"):
            by_column[spec.column].append(m["division_history"])
    for column, histories in by_column.items():
        length = min(len(h) for h in histories)
        epochs = [e["epoch"] for e in histories[0][:length]]
        auc = np.mean([[e["net1_auc"] or np.nan for e in h[:length]] for h in histories], axis=0)
        ax.plot(epochs, auc, label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUC (clean vs noisy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def loss_histograms(specs, results, path):
    """DivideMix: histograms of normalised per-sample losses of clean and noisy examples."""
    plt = pyplot()
    chosen = {}
    for spec, m in results.items():
        if m.get("loss_histograms") and spec.column not in chosen:
            chosen[spec.column] = m["loss_histograms"]
    if not chosen:
        return False
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3.2), squeeze=False)
    for ax, (column, hist) in zip(axes[0], chosen.items()):
        edges = np.linspace(0, 1, len(hist["clean"]) + 1)
        centers = (edges[:-1] + edges[1:]) / 2
        width = edges[1] - edges[0]
        ax.bar(centers, hist["clean"], width=width, alpha=0.6, label="clean")
        ax.bar(centers, hist["noisy"], width=width, alpha=0.6, label="noisy")
        ax.set_title(f"{column}, epoch {hist['epoch']:g}")
        ax.set_xlabel("normalised loss")
        ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


FIGURES = {"error_curves": error_curves, "division_auc": division_auc,
           "loss_histograms": loss_histograms}


def write_report(suite, specs, output_dir, command):
    """Writes REPORT.md (and figures) into ``output_dir``; returns the markdown."""
    results = collect(specs, output_dir)
    lines = [f"# {suite.title}", "", suite.description, "", f"Command: `{command}`", "",
             f"Runs finished: {len(results)} of {len(specs)}.", ""]
    for key, label in suite.metrics:
        lines += [f"## {label}", "", table(specs, results, key), ""]
    for name in suite.figures:
        path = os.path.join(output_dir, "figures", f"{name}.png")
        if results and FIGURES[name](specs, results, path) is not False:
            lines += [f"![{name}](figures/{name}.png)", ""]
    text = "\n".join(lines)
    with open(os.path.join(output_dir, "REPORT.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text
