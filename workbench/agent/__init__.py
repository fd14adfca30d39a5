"""What you ship to an agent: tools with JSON Schemas, the grammar and constrained decoding (with its lean
decode path for tiny students), the router, export, runtimes, the deployment checks
and a collection of specialists behind one dispatcher.
``workbench.agent.Router`` (and every other name of ``workbench.agent.router``) is reached
from here; ``workbench.agent.tools`` needs no torch."""

from __future__ import annotations

import importlib

MODULES = ("tools", "grammar", "jsonprefix", "constrain", "lean", "libgrammars", "router", "export", "runtimes",
           "deploy", "collection")


def __getattr__(name: str):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    router = importlib.import_module(f"{__name__}.router")
    try:
        return getattr(router, name)
    except AttributeError:
        raise AttributeError(f"module 'workbench.agent.router' has no attribute {name!r}") from None
