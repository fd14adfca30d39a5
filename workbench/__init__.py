"""small-reasoners: a workbench for small, task-specific reasoners.

``import workbench as wb`` is cheap: submodules load on first use (``wb.tasks`` needs no torch).

    run = wb.setup()                       # profile, device, seed, threads in one call
    wb.tasks.get("boolean_expressions")    # the task suite
    wb.evaluate.evaluate(model, tok, ...)  # exact-match accuracy, latency, size
    wb.report.record(key, value)           # numbers that `make run` gathers
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
_SUBMODULES = ("agent", "artifacts", "baselines", "bench", "constrain", "curriculum", "deploy", "distill",
               "distill_study", "env", "evaluate", "explain", "export", "faithfulness", "grammar", "jsonprefix",
               "lora", "lowrank", "models", "multitask", "multitask_study", "plots", "prune", "quantize", "recipes",
               "report", "runtimes", "tasks", "tokenizer", "tools", "train", "vocab", "widgets")


def setup(seed: int = 0, profile: str | None = None):
    """Profile, device, seed and threads in one call (see ``workbench.env.setup``)."""
    from .env import setup as _setup

    return _setup(seed, profile)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = ["setup", *_SUBMODULES]
