"""The shape every task shares: an example, a generator with levels, rationales and a scorer.

Pure Python on purpose (no torch, no workbench core): generators can be read, tested and reused
on their own. Formats are specified in ``shared/TASKS.md``; four tasks follow BIG-Bench Hard
(Suzgun et al., 2022) to the letter, the fifth (tool_call) is the workbench's own.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, replace

ANSWER_PREFIX = "So the answer is "
FULL = "full"  # the rationale format every task has: its generator's own step-by-step trace


@dataclass(frozen=True)
class Example:
    task: str  # task name, e.g. "boolean_expressions"
    level: int  # difficulty level; the task's ``bbh_level`` is the published format
    input: str  # the question, exactly as a model sees it
    rationale: str  # one small step per line, the last line "So the answer is <target>."
    target: str  # the exact answer

    def to_dict(self) -> dict:
        return asdict(self)


class Task:
    """A task: a seeded generator over levels, rationales, and an exact-match scorer.

    Subclasses set ``name``, ``levels`` and ``bbh_level`` and implement ``_generate``.
    """

    name: str = ""
    levels: tuple[int, ...] = ()  # every level this task can generate, easiest first
    bbh_level: int = 0  # the level whose examples follow the BBH format (the reference level)
    formats: tuple[str, ...] = (FULL,)  # rationale formats a student can be trained to write (see ``reformat``)
    answer_form: str = r"[^\n]*\S[^\n]*"  # a regex every answer of the task matches (default: one non-blank line)
    augments: bool = False  # whether ``generate(..., augment=True)`` has a training-side variant to draw
    answer_hint: str = "a non-empty answer on one line"  # ``answer_form`` in words, for error messages

    def check_level(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or level not in self.levels:  # True is not level 1
            raise ValueError(
                f"task {self.name!r} has no level {level!r}; levels are {list(self.levels)}"
            )
        return level

    def generate(self, rng: random.Random, level: int | None = None, augment: bool = False) -> Example:
        """One example drawn with ``rng``; ``level=None`` means the BBH level. ``augment`` draws the task's
        training-side variant (tasks with ``augments``; training only, never the stored splits)."""
        level = self.bbh_level if level is None else self.check_level(level)
        if augment:
            self.check_augment()
            return self._generate(rng, level, augment=True)
        return self._generate(rng, level)

    def check_augment(self) -> None:
        if not self.augments:
            with_one = ", ".join(sorted(t.name for t in Task.__subclasses__() if t.augments))
            raise ValueError(f"task {self.name!r} has no training augmentation (augment=True); tasks with one: "
                             f"{with_one}")

    def _generate(self, rng: random.Random, level: int) -> Example:  # pragma: no cover
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0, level: int | None = None) -> list[Example]:
        """``n`` examples from one seed; the same seed always gives the same list."""
        rng = random.Random(f"{self.name}:{seed}:{level}")
        return [self.generate(rng, level) for _ in range(n)]

    def check_target(self, target: str) -> str | None:
        """None when ``target`` could be an answer of this task, else what an answer looks like."""
        return None if re.fullmatch(self.answer_form, target) else self.answer_hint

    # what a student writes before the answer -------------------------------------------------
    def check_format(self, fmt: str) -> str:
        if fmt not in self.formats:
            raise ValueError(f"task {self.name!r} has no rationale format {fmt!r}; formats are {list(self.formats)}")
        return fmt

    def reformat(self, ex: Example, fmt: str = FULL) -> Example:
        """``ex`` with its rationale written in format ``fmt`` (``full``: as generated). Answer-only training
        needs no format: it writes the target alone (``rationale=False`` in the training config)."""
        self.check_format(fmt)
        return ex if fmt == FULL else replace(ex, rationale=rationale_text(self._steps(ex, fmt), ex.target))

    def _steps(self, ex: Example, fmt: str) -> list[str]:  # pragma: no cover - tasks with formats define it
        raise NotImplementedError

    # scoring -----------------------------------------------------------------------------------
    def diagnose(self, prediction: str, target: str) -> str | None:
        """None when ``prediction`` is right, else a short reason (e.g. ``"wrong answer"``).

        Tasks with structured answers (tool_call) say which rule the prediction broke.
        """
        return None if prediction.strip() == target.strip() else "wrong answer"

    def score(self, prediction: str, target: str) -> bool:
        return self.diagnose(prediction, target) is None


def rationale_text(steps: list[str], target: str) -> str:
    """Join rationale steps, one per line, ending with the answer line of TASKS.md."""
    return "\n".join([*steps, f"{ANSWER_PREFIX}{target}."])


def extract_answer(text: str) -> str:
    """The final answer in a model's output: after the last "So the answer is ", else the first line.

    Works for both outputs we train: a rationale ending in "So the answer is X." and an
    answer-only completion "X".
    """
    idx = text.rfind(ANSWER_PREFIX)
    if idx >= 0:
        answer = text[idx + len(ANSWER_PREFIX):].split("\n", 1)[0].strip()
        return answer[:-1] if answer.endswith(".") else answer
    lines = text.strip().split("\n")
    return lines[0].strip() if lines else ""
