"""The five tasks by name: ``get(name)`` and ``NAMES``."""

from __future__ import annotations

from .base import Task
from .boolean_expressions import BooleanExpressions
from .dyck_languages import DyckLanguages
from .multistep_arithmetic import MultistepArithmeticTwo
from .tool_call import ToolCall
from .word_sorting import WordSorting

TASKS: dict[str, Task] = {
    t.name: t
    for t in (BooleanExpressions(), MultistepArithmeticTwo(), DyckLanguages(), WordSorting(), ToolCall())
}
NAMES = tuple(TASKS)


def get(name: str) -> Task:
    """The task called ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(NAMES)}") from None


def describe(name: str, levels=None, seed: int = 0) -> str:
    """One generated example per level (default: easiest, BBH, hardest) with its rationale, as text."""
    task = get(name)
    levels = levels or sorted({task.levels[0], task.bbh_level, task.levels[-1]})
    lines = [f"== {name}  (levels {list(task.levels)}; BBH level {task.bbh_level})"]
    for level in levels:
        ex = task.sample(1, seed=seed, level=level)[0]
        lines += [f"-- level {level}", f"input:  {ex.input}", "rationale:",
                  *("    " + s for s in ex.rationale.split("\n")), f"target: {ex.target}", ""]
    return "\n".join(lines)
