"""One module per notebook: the experiment it runs (its ``Study`` with sizes per profile, the run, the
table, the verdict against the issue's targets, the sentences the notebook prints). Studies use the
core, the patterns and the agent; nothing below imports a study.

    curriculum (02)  distillation (03)  pruning (04)  quantization (05)  multitask (06)
    interpretability (07)  deployment (08)  capstone (09)  collection (10)
    formats (01a: what a student writes down)
    pipeline (04, 05, 07, 08: the agent's specialist compressed, explained and deployed, one stage a notebook)
"""

from __future__ import annotations

import importlib

MODULES = ("curriculum", "distillation", "pruning", "quantization", "multitask", "interpretability", "deployment",
           "formats", "capstone", "collection", "pipeline")


def __getattr__(name: str):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'workbench.studies' has no attribute {name!r}")
