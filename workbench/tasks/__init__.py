"""The task suite: five tasks whose answers a program can check (see shared/TASKS.md).

    >>> from workbench import tasks
    >>> t = tasks.get("boolean_expressions")
    >>> ex = t.sample(1, seed=0)[0]
    >>> t.score(ex.target, ex.target)
    True
"""

from __future__ import annotations

from . import splits  # noqa: F401  (wb.tasks.splits without a second import)
from .base import ANSWER_PREFIX, Example, Task, extract_answer, rationale_text
from .registry import NAMES, TASKS, describe, get

__all__ = [
    "ANSWER_PREFIX", "Example", "NAMES", "TASKS", "Task", "describe", "extract_answer", "get", "rationale_text",
]
