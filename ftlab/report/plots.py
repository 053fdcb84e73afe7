"""Figures: learning curves averaged over seeds (±std band) per group, a confusion matrix per run.

matplotlib's object API with the Agg canvas: no pyplot state, no display needed.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ftlab.report.grouping import Group
from ftlab.report.runs import Run
from ftlab.report.tables import lower_is_better, scale


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def curve_axis(group: Group) -> str:
    """"step" when some run evaluated more than once per epoch (eval_every_n_steps), else "epoch"."""
    for run in group.runs:
        epochs = [row.get("epoch") for row in run.results.get("history") or [] if any(k.startswith("val/") for k in row)]
        if len(epochs) != len(set(epochs)):
            return "step"
    return "epoch"


def epoch_curves(group: Group) -> dict[str, tuple[list, list, list]]:
    """metric -> (epochs or steps, mean, std) over the group's seeds; train/loss and val/* from history."""
    axis = curve_axis(group)
    per_metric: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in group.runs:
        for row in run.results.get("history") or []:
            epoch = row.get(axis)
            for key, value in row.items():
                if (key == "train/loss" or key.startswith("val/")) and isinstance(value, (int, float)) and epoch is not None:
                    per_metric[key][int(epoch)].append(float(value) * scale(key))
    curves = {}
    for key, by_epoch in per_metric.items():
        epochs = sorted(by_epoch)
        means = [statistics.fmean(by_epoch[e]) for e in epochs]
        stds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
        curves[key] = (epochs, means, stds)
    return curves


def learning_curves(group: Group, path: Path) -> Path | None:
    curves = epoch_curves(group)
    if not curves:
        return None
    panels = [("loss", [k for k in curves if lower_is_better(k)]),
              ("validation metrics", [k for k in curves if not lower_is_better(k)])]
    panels = [(name, keys) for name, keys in panels if keys]
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    for i, (name, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for key in sorted(keys):
            epochs, mean, std = curves[key]
            mean, std = np.asarray(mean), np.asarray(std)
            label = key + (" (%)" if scale(key) != 1.0 else "")
            line, = ax.plot(epochs, mean, marker="o", markersize=3, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(curve_axis(group))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{group.label} on {group.dataset}: mean ± std over {len(group.runs)} seed(s)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(run: Run, path: Path) -> Path | None:
    """Rows true class, columns predicted; colour is the row-normalised rate, text the count."""
    matrix = run.results.get("test_confusion_matrix")
    if not matrix:
        return None
    counts = np.asarray(matrix, dtype=float)
    k = counts.shape[0]
    names = list((run.results.get("task") or {}).get("label_names") or [])
    names = names if len(names) == k else [str(i) for i in range(k)]
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(4.0, 0.45 * k + 2.5)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"{run.model}/{run.peft} on {run.dataset}, seed {run.seed}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
