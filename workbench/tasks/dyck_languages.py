"""dyck_languages: close the open brackets of a prefix of a Dyck word over ``( [ { <``.

BBH format (Suzgun et al., 2022; see shared/TASKS.md): inputs of 2 to 99 tokens, nesting up to 26
deep, targets of 1 to 3 closers. BBH's lengths are skewed short (mean about 24 bracket tokens,
median about 13), so the BBH level draws the length log-uniformly from 2 to 99 (mean 24.8, median
14); levels 4 and 5 keep the long tail and longer answers. Other levels change input length, depth
and target length.

Rationale formats (``Task.reformat``):

- ``full``: a stack trace, one token per line: ``[ ; ([`` (the token, then the open brackets after
  it, bottom first), then one ``close ] ; (`` line per closer until the stack is empty;
- ``closes``: only the lines of the input's closing brackets (the stack after each), then
  ``stack: ([`` with what is left open;
- ``stack``: only ``stack: ([``, the brackets left open;
- ``reduce``: the sequence rewritten, one line a round, with every adjacent matched pair (``()``, ``[]``,
  ``{}``, ``<>``) deleted, written without spaces, until no pair is left: the last line is the brackets
  left open (``[[]]<()()>[`` -> ``[]<>[`` -> ``[``). Each step is local (a token and its neighbour), the
  way one cancels brackets by hand; the number of lines is the nesting depth of the closed part.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from .base import Example, Task, rationale_text

PREFIX = "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: "
PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
EMPTY = "empty"  # how the trace writes an empty stack


@dataclass(frozen=True)
class Level:
    min_len: int  # fewest input tokens
    max_len: int  # most input tokens
    max_depth: int  # deepest nesting in the input
    min_target: int  # fewest closers in the answer
    max_target: int  # most closers in the answer
    log_length: bool = False  # input length log-uniform in [min_len, max_len] (BBH's skew), else uniform


LEVELS: dict[int, Level] = {
    1: Level(2, 10, 4, 1, 2),  # short and shallow
    2: Level(2, 30, 10, 1, 3),
    3: Level(2, 99, 26, 1, 3, log_length=True),  # BBH: mostly short, a few long
    4: Level(20, 120, 32, 4, 6),  # longer inputs, longer answers
    5: Level(40, 160, 40, 7, 10),
}


def _heights(rng: random.Random, n: int, end: int, max_depth: int) -> list[int]:
    """A uniformly random walk of ``n`` +-1 steps from 0 to ``end`` that stays within 0..max_depth."""
    # ways[i][h]: walks from height h after i steps to ``end`` after n steps
    ways = [[0] * (max_depth + 2) for _ in range(n + 1)]
    ways[n][end] = 1
    for i in range(n - 1, -1, -1):
        for h in range(max_depth + 1):
            ways[i][h] = ways[i + 1][h + 1] + (ways[i + 1][h - 1] if h > 0 else 0)
    heights, h = [0], 0
    for i in range(n):
        h += 1 if rng.randrange(ways[i][h]) < ways[i + 1][h + 1] else -1
        heights.append(h)
    return heights


def solve(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Trace lines and the closers that complete ``tokens``."""
    stack: list[str] = []
    lines = []
    for tok in tokens:
        if tok in PAIRS:
            stack.append(tok)
        else:
            stack.pop()
        lines.append(f"{tok} ; {''.join(stack) or EMPTY}")
    closers = []
    while stack:
        closers.append(PAIRS[stack.pop()])
        lines.append(f"close {closers[-1]} ; {''.join(stack) or EMPTY}")
    return lines, closers


def _length(rng: random.Random, cfg: Level, n_close: int) -> int:
    """An input length at least ``n_close`` with its parity (n pushes and pops leave n_close open)."""
    lengths = [k for k in range(max(cfg.min_len, n_close), cfg.max_len + 1) if (k - n_close) % 2 == 0]
    if not cfg.log_length:
        return rng.choice(lengths)
    want = math.exp(rng.uniform(math.log(cfg.min_len), math.log(cfg.max_len + 1)))
    return min(lengths, key=lambda k: (abs(k - want), k))


def tokens_of(text: str) -> list[str]:
    """The bracket tokens of a question."""
    return text.removeprefix(PREFIX).split()


def reduce_lines(tokens: list[str]) -> list[str]:
    """The ``reduce`` format's lines: each round deletes every adjacent matched pair, until none is left."""
    lines, seq = [], list(tokens)
    while True:
        keep, i = [], 0
        while i < len(seq):
            if i + 1 < len(seq) and PAIRS.get(seq[i]) == seq[i + 1]:
                i += 2
            else:
                keep.append(seq[i])
                i += 1
        if lines and len(keep) == len(seq):  # nothing left to cancel
            return lines
        lines.append("".join(keep) or EMPTY)
        seq = keep


def stack_line(tokens: list[str]) -> str:
    stack: list[str] = []
    for tok in tokens:
        if tok in PAIRS:
            stack.append(tok)
        else:
            stack.pop()
    return f"stack: {''.join(stack) or EMPTY}"


class DyckLanguages(Task):
    name = "dyck_languages"
    levels = (1, 2, 3, 4, 5)
    bbh_level = 3
    answer_form = r"[)\]}>]( [)\]}>])*"
    answer_hint = "closing brackets separated by spaces, e.g. \") ] >\""
    formats = ("full", "closes", "stack", "reduce")

    def _steps(self, ex: Example, fmt: str) -> list[str]:
        tokens = tokens_of(ex.input)
        if fmt == "reduce":
            return reduce_lines(tokens)
        if fmt == "stack":
            return [stack_line(tokens)]
        lines, _ = solve(tokens)
        return [line for tok, line in zip(tokens, lines) if tok not in PAIRS] + [stack_line(tokens)]

    def _generate(self, rng: random.Random, level: int) -> Example:
        cfg = LEVELS[level]
        n_close = rng.randint(cfg.min_target, cfg.max_target)
        n = _length(rng, cfg, n_close)
        heights = _heights(rng, n, n_close, cfg.max_depth)
        stack: list[str] = []
        tokens = []
        for before, after in itertools.pairwise(heights):
            if after > before:
                stack.append(rng.choice(list(PAIRS)))
                tokens.append(stack[-1])
            else:
                tokens.append(PAIRS[stack.pop()])
        lines, closers = solve(tokens)
        target = " ".join(closers)
        return Example(
            task=self.name,
            level=level,
            input=PREFIX + " ".join(tokens),
            rationale=rationale_text(lines, target),
            target=target,
        )
