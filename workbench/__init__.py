"""small-reasoners: a workbench for small, task-specific reasoners.

``import workbench as wb`` is cheap: submodules load on first use (``wb.tasks`` needs no torch).

    run = wb.setup()                       # profile, device, seed, threads in one call
    wb.tasks.get("boolean_expressions")    # the task suite
    wb.evaluate.evaluate(model, tok, ...)  # exact-match accuracy, latency, size
    wb.report.record(key, value)           # numbers that `make run` gathers

The house, in layers (arrows point down only; ``tests/test_layers.py`` checks it):

    widgets, plots, cli, bench      UI and entry points: nothing below imports them
    studies/                        one module per notebook: its Study, run, table, verdict, findings
    agent/                          tools, grammar, constrained decoding, router, export, runtimes, deploy,
                                    collection
    <pattern>.py                    curriculum, distill, vocab, prune, quantize, lowrank, lora, multitask,
                                    explain, faithfulness: one algorithm each
    core/                           env, tokenizer, models, measure, evaluate, train, artifacts, report,
                                    recipes, baselines
    tasks/                          generators and scorers: pure Python, no torch

``wb.<name>`` reaches every module by its short name (``wb.evaluate`` is ``workbench.core.evaluate``,
``wb.studies.pruning`` the study of notebook 04), so a notebook needs no import beyond ``workbench``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

CORE = ("env", "tokenizer", "models", "measure", "evaluate", "train", "artifacts", "report", "recipes", "baselines")
PATTERNS = ("curriculum", "distill", "vocab", "prune", "quantize", "lowrank", "lora", "multitask", "explain",
            "faithfulness")
AGENT = ("tools", "grammar", "jsonprefix", "constrain", "router", "export", "runtimes", "deploy", "collection")
TOP = ("widgets", "plots", "cli", "bench")
PACKAGES = ("tasks", "core", "agent", "studies")

# short name -> module path under workbench
_WHERE = {**{n: f"core.{n}" for n in CORE}, **{n: n for n in PATTERNS}, **{n: f"agent.{n}" for n in AGENT},
          **{n: n for n in TOP}, **{n: n for n in PACKAGES}}
_WHERE.update(agent="agent",  # the package; wb.agent.Router reaches the router
              distill_study="studies.distillation", multitask_study="studies.multitask")  # earlier names


def setup(seed: int = 0, profile: str | None = None):
    """Profile, device, seed and threads in one call (see ``workbench.core.env.setup``)."""
    from workbench.core.env import setup as _setup

    return _setup(seed, profile)


def __getattr__(name: str):
    if name in _WHERE:
        return importlib.import_module(f"{__name__}.{_WHERE[name]}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = ["setup", *_WHERE]
