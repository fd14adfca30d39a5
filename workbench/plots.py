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


def training_curves(history: list[dict], title: str = "Training"):
    """Loss (left) and validation accuracy (right) against steps, from ``TrainResult.history``."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    logs = [h for h in history if "loss" in h]
    evals = [h for h in history if "val_accuracy" in h]
    a.plot([h["step"] for h in logs], [h["loss"] for h in logs])
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    a.set_yscale("log")
    b.plot([h["step"] for h in evals], [100 * h["val_accuracy"] for h in evals], marker="o")
    b.set_xlabel("step")
    b.set_ylabel("validation accuracy, %")
    b.set_ylim(0, 100)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def params_vs_accuracy(results, title: str = "Accuracy against size"):
    """One point per model: parameters (log scale) against accuracy."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in results:
        ax.scatter(r.params, 100 * r.accuracy, s=60)
        ax.annotate(r.model, (r.params, 100 * r.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("exact match, %")
    ax.set_ylim(-5, 105)
    ax.set_title(title)
    fig.tight_layout()
    return fig


class LiveCurve:
    """A training callback that redraws ``training_curves`` in the notebook as records arrive."""

    def __init__(self, every: int = 1, title: str = "Training"):
        self.history, self.every, self.title, self.handle, self.calls = [], every, title, None, 0

    def __call__(self, rec: dict) -> None:
        from IPython.display import display

        self.history.append(rec)
        self.calls += 1
        if self.calls % self.every and "val_accuracy" not in rec:
            return
        fig = training_curves(self.history, self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
