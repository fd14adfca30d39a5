"""Plots for the notebooks (matplotlib). Each function returns the figure it drew."""

from __future__ import annotations

import matplotlib.pyplot as plt


def accuracy_bars(results, title: str = "Accuracy at the BBH level"):
    """Grouped bars: one group per task, one bar per model (EvalResults with ``model`` set)."""
    models = list(dict.fromkeys(r.model for r in results))
    task_names = list(dict.fromkeys(r.task for r in results))
    acc = {(r.model, r.task): r.accuracy for r in results}
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, m in enumerate(models):
        xs = [t + i * width for t in range(len(task_names))]
        ax.bar(xs, [100 * acc.get((m, t), 0.0) for t in task_names], width, label=m)
    ax.set_xticks([t + width * (len(models) - 1) / 2 for t in range(len(task_names))])
    ax.set_xticklabels([t.replace("_", "\n") for t in task_names])
    ax.set_ylabel("exact match, %")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
