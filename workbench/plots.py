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


def level_heatmaps(runs: list[dict], schedulers, levels, trained_levels=(),
                   title: str = "Validation accuracy by level"):
    """One heatmap per scheduler: accuracy at each level (rows) over training steps (columns), mean over seeds.

    ``runs`` are ``curriculum.run_one`` results; levels above ``trained_levels`` are marked as unseen.
    """
    import numpy as np

    schedulers = [s for s in schedulers if any(r["scheduler"] == s for r in runs)]
    cols = min(3, len(schedulers))
    rows = (len(schedulers) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, name in zip(axes.flat, schedulers):
        mine = [r for r in runs if r["scheduler"] == name]
        steps = [e["step"] for e in mine[0]["evals"]]
        grid = np.array([[np.mean([r["evals"][i].get(f"L{lv}", np.nan) for r in mine]) for i in range(len(steps))]
                         for lv in levels])
        im = ax.imshow(100 * grid, aspect="auto", origin="lower", vmin=0, vmax=100, cmap="viridis",
                       extent=(0, steps[-1], min(levels) - 0.5, max(levels) + 0.5))
        if trained_levels:
            ax.axhline(max(trained_levels) + 0.5, color="white", lw=1, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_yticks(list(levels))
    for ax in axes.flat[len(schedulers):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("level")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy, %")
    fig.suptitle(title)
    return fig


def steps_to_target_bars(runs: list[dict], schedulers, budget: int, target: float):
    """Steps each scheduler needed to reach ``target`` validation accuracy: mean bar, one dot per seed.

    A seed that never reached it is drawn at the budget with a hollow marker.
    """
    schedulers = [s for s in schedulers if any(r["scheduler"] == s for r in runs)]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, name in enumerate(schedulers):
        vals = [r["steps_to_target"] for r in runs if r["scheduler"] == name]
        hit = [v for v in vals if v is not None]
        shown = [v if v is not None else budget for v in vals]
        ax.bar(i, sum(shown) / len(shown), color="C0" if len(hit) == len(vals) else "0.75")
        for j, v in enumerate(vals):
            ax.scatter(i + 0.08 * (j - (len(vals) - 1) / 2), v if v is not None else budget, zorder=3,
                       facecolors="k" if v is not None else "none", edgecolors="k", s=18)
    ax.axhline(budget, color="0.5", ls=":", lw=1)
    ax.set_xticks(range(len(schedulers)))
    ax.set_xticklabels([s.replace("_", "\n") for s in schedulers], fontsize=8)
    ax.set_ylabel(f"steps to {100 * target:.0f}% validation")
    ax.set_title("Steps to target (bar: mean; dots: seeds; hollow: not reached within the budget)", fontsize=9)
    fig.tight_layout()
    return fig


def level_plan(steps, levels, shares, title: str = "Planned mix of levels"):
    """A stacked area of the share of each level over training (``curriculum.plan``'s output)."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    cols = list(zip(*shares))
    ax.stackplot(steps, cols, labels=[f"level {lv}" for lv in levels], alpha=0.85)
    ax.set_xlim(steps[0], steps[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("share of examples")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def accuracy_vs_sparsity(rows: list[dict], title: str = "Accuracy against sparsity"):
    """One line per unstructured method (solid: pruned only; dashed: after recovery), dense as a dotted line."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    dense = next(r for r in rows if r["method"] == "dense")
    ax.axhline(100 * dense["accuracy"], color="0.4", ls=":", lw=1, label="dense")
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in ("dense", "structured", "2:4")]
    for i, method in enumerate(methods):
        for recovered, style in ((False, "-"), (True, "--")):
            pts = sorted((r["sparsity"], r["accuracy"]) for r in rows if r["method"] == method
                         and r["recovered"] == recovered)
            if pts:
                ax.plot([100 * x for x, _ in pts], [100 * y for _, y in pts], style, marker="o", color=f"C{i}",
                        label=f"{method}{' + recovery' if recovered else ''}")
    for r in rows:
        if r["method"] == "2:4":
            ax.scatter(100 * r["sparsity"], 100 * r["accuracy"], marker="s", color="k" if r["recovered"] else "w",
                       edgecolors="k", zorder=3, label="2:4" + (" + recovery" if r["recovered"] else ""))
    ax.set_xlabel("sparsity of the decoder's linear layers, %")
    ax.set_ylabel("accuracy, %")
    ax.set_ylim(-5, 105)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def latency_vs_params(rows: list[dict], title: str = "Latency against parameters"):
    """Forward latency (batch 1 and 16) against parameters: masks stay on the dense line, removal moves left."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, batch in ((axes[0], "latency_b1_ms", 1), (axes[1], "latency_b16_ms", 16)):
        for r in rows:
            kind = "structured" if r["method"] == "structured" else "dense" if r["method"] == "dense" else "masked"
            color = {"dense": "k", "masked": "C0", "structured": "C3"}[kind]
            ax.scatter(r["params"], r[key], color=color, s=25, label=kind)
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        ax.legend(keep.values(), keep.keys(), fontsize=7)
        ax.set_xlabel("parameters")
        ax.set_ylabel(f"forward latency, ms (batch {batch})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def pareto(rows: list[dict], title: str = "Accuracy against size and speed"):
    """Two scatter panels: accuracy against bytes on disk, and against batch-16 latency; one labelled point per row."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "bytes", "bytes on disk"), (axes[1], "latency_b16_ms", "latency at batch 16, ms")):
        for i, r in enumerate(rows):
            ax.scatter(r[key], 100 * r["accuracy"], color=f"C{i % 10}", s=30)
            ax.annotate(r["model"], (r[key], 100 * r["accuracy"]), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy, %")
        ax.set_ylim(-5, 108)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def faithfulness_curves(curves: dict, title: str = "Deletion and insertion curves"):
    """p(answer token) as context tokens are removed (left) or restored (right) in each method's order;
    random order dashed. ``curves``: method -> {"deletion": [11], "insertion": [11]} (faithfulness.measure)."""
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.linspace(0, 100, 11)
    for ax, kind, better in ((axes[0], "deletion", "lower is better"), (axes[1], "insertion", "higher is better")):
        for i, (method, c) in enumerate(curves.items()):
            style = {"color": "0.4", "linestyle": "--"} if method == "random" else {"color": f"C{i % 10}"}
            ax.plot(x, c[kind], label=method, **style)
        ax.set_xlabel(f"% of context tokens {'removed' if kind == 'deletion' else 'restored'}, most important first")
        ax.set_ylabel("p(answer token)")
        ax.set_title(f"{kind} ({better})", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def router_bars(rows: list[dict], title: str = "Routers: exact calls and latency"):
    """Exact-call accuracy and p50 latency (log scale) per router row (deploy.benchmark)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.4), sharey=True)
    labels = [r["router"] for r in rows]
    y = range(len(rows))
    axes[0].barh(y, [100 * r["accuracy"] for r in rows], color=[f"C{i % 10}" for i in y])
    axes[0].set_xlabel("exact calls, %")
    axes[0].set_xlim(0, 100)
    axes[1].barh(y, [r["p50_ms"] for r in rows], color=[f"C{i % 10}" for i in y])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("p50 latency per request, ms (log)")
    axes[0].set_yticks(list(y), labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def transfer_heatmap(matrix, tasks, title: str = "Transfer: what training on task A does to accuracy on task B"):
    """``multitask.transfer_matrix``'s M[a][b] (accuracy change on b, vs b's specialist, from also training on a)
    as a diverging heatmap in points: blue helps, red hurts; the diagonal is 0 by definition."""
    import numpy as np

    grid = 100 * np.asarray(matrix, dtype=float)
    if grid.shape != (len(tasks), len(tasks)):
        raise ValueError(f"the matrix is {grid.shape[0]} x {grid.shape[-1]}, expected one row and column per task "
                         f"({len(tasks)})")
    span = max(1.0, float(np.abs(grid).max()))  # symmetric colour scale around 0
    fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 2.4, 1.0 * len(tasks) + 1.2))
    im = ax.imshow(grid, cmap="RdBu", vmin=-span, vmax=span)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, "-" if i == j else f"{grid[i, j]:+.0f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(grid[i, j]) > 0.6 * span else "black")
    labels = [t.replace("_", "\n") for t in tasks]
    ax.set_xticks(range(len(tasks)), labels, fontsize=7)
    ax.set_yticks(range(len(tasks)), labels, fontsize=7)
    ax.set_xlabel("B: the task scored")
    ax.set_ylabel("A: the task trained alongside")
    fig.colorbar(im, ax=ax, shrink=0.8, label="accuracy change, points")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def data_efficiency(runs: list[dict], pool: int, reference: float | None = None,
                    title: str = "Accuracy against labelled data"):
    """One line per regime: test accuracy against the share of the labelled pool it trained on (log x);
    ``reference``: a teacher's accuracy, drawn as a dashed line."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for regime in dict.fromkeys(r["regime"] for r in runs):
        pts = sorted((r["share"], r["accuracy"]) for r in runs if r["regime"] == regime)
        ax.plot([100 * s for s, _ in pts], [100 * a for _, a in pts], marker="o",
                linestyle="--" if regime == "label_only" else "-", label=regime)
    if reference is not None:
        ax.axhline(100 * reference, color="grey", linestyle=":", label="teacher")
    ax.set_xscale("log")
    shares = sorted({r["share"] for r in runs})
    ax.set_xticks([100 * s for s in shares])
    ax.set_xticklabels([f"{100 * s:g}%\n({round(s * pool)})" for s in shares])
    ax.set_xlabel("labelled examples (share of the pool)")
    return _percent_axes(fig, ax, "exact match at the BBH level, %", title)


def _percent_axes(fig, ax, ylabel: str, title: str):
    """The finish most plots share: a 0-100% y axis, its label, the title, a small legend; returns ``fig``."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def format_curves(rows: list[dict], title: str = "Validation accuracy against examples seen, per format"):
    """One line per rationale format (``studies.formats.run`` rows, each with ``curve``: (examples seen,
    validation accuracy) pairs), and each format's final test accuracy as a marker at its end."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for r in rows:
        xs, ys = zip(*r["curve"]) if r.get("curve") else ((), ())
        line, = ax.plot(xs, [100 * y for y in ys], marker="o", ms=3, label=f"{r['format']} ({r['accuracy']:.0%} test)")
        ax.plot([r["examples_seen"]], [100 * r["accuracy"]], marker="*", ms=10, color=line.get_color())
    ax.set_xlabel("training examples seen")
    return _percent_axes(fig, ax, "exact match, %", title)


def collection_bars(rows: list[dict], tasks, title: str = "A collection of specialists against one general model"):
    """Answers correct per task (grouped bars, one per system), then p50 latency and bytes (log) per system
    (``studies.collection.serve`` rows)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [3, 1, 1]})
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [t + i * width for t in range(len(tasks) + 1)]
        ys = [100 * (r[t] or 0) for t in tasks] + [100 * r["correct"]]
        axes[0].bar(xs, ys, width, label=r["system"], color=f"C{i}")
    axes[0].set_xticks([t + 0.4 - width / 2 for t in range(len(tasks) + 1)], [*tasks, "all"], fontsize=7,
                       rotation=15)
    _percent_axes(fig, axes[0], "answers correct, %", "per task")
    labels = [r["system"] for r in rows]
    for ax, key, xlabel in ((axes[1], "p50_ms", "p50 ms per request"), (axes[2], "bytes", "bytes (log)")):
        ax.bar(range(len(rows)), [r[key] for r in rows], color=[f"C{i}" for i in range(len(rows))])
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=15)
        ax.set_title(xlabel)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def waterfall(rows: list[dict], metric: str, title: str | None = None, log: bool | None = None):
    """Per-stage changes in ``metric`` as floating bars (``studies.capstone.waterfall``): each bar runs from the
    stage before's value to this stage's, green where the stage gained (more exact calls; fewer bytes, less
    latency), red where it cost. ``log``: a log axis (default for bytes, params and latency, which span orders
    of magnitude from the general model to the specialist)."""
    from matplotlib.patches import Patch

    from workbench.studies.capstone import waterfall as steps

    bars = steps(rows, metric)
    percent = metric in ("accuracy", "valid_call", "valid_json")
    log = metric in ("bytes", "params", "p50_ms") if log is None else log
    scale = 100 if percent else 1
    values = [scale * b["end"] for b in bars]
    floor = min([v for v in values if v > 0] or [1.0]) / 3 if log else 0.0  # where the first bar rises from
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(bars) + 1.5), 3.8))
    for i, b in enumerate(bars):
        lo, hi = sorted((floor if i == 0 else scale * b["start"], scale * b["end"]))
        lo = max(lo, floor)
        ax.bar(i, hi - lo, bottom=lo, width=0.7,
               color="tab:grey" if i == 0 else "tab:green" if b["better"] else "tab:red")
        if i:  # a dotted line carries the stage before's level across
            ax.plot([i - 1.35, i + 0.35], [max(scale * b["start"], floor)] * 2, color="black", lw=0.6, ls=":")
        text = (f"{values[i]:.0f}%" if percent and i == 0 else f"{scale * b['delta']:+.0f}" if percent
                else f"{b['end']:,.3g}" if i == 0 or not b["start"] else f"x{b['end'] / b['start']:.2g}")
        ax.annotate(text, (i, hi), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(bars)), [b["stage"].replace(", ", ",\n") for b in bars], fontsize=7, rotation=20,
                  ha="right")
    if log:
        ax.set_yscale("log")
    label = {"accuracy": "exact calls, %", "valid_call": "valid calls, %", "valid_json": "valid JSON, %",
             "bytes": "weights, bytes", "params": "parameters", "p50_ms": "p50 latency per request, ms",
             "train_minutes": "training minutes"}[metric]
    if percent:
        ax.set_ylim(0, 105)
    ax.legend(handles=[Patch(color="tab:grey", label="first stage"), Patch(color="tab:green", label="gained"),
                       Patch(color="tab:red", label="cost")], fontsize=8)
    ax.set_ylabel(label)
    ax.set_title(title or f"What each stage gained or cost: {label}", fontsize=10)
    fig.tight_layout()
    return fig
