"""dyck_languages: close the open brackets of a prefix of a Dyck word over ``( [ { <``.

BBH format (Suzgun et al., 2022; see shared/TASKS.md): inputs of 2 to 99 tokens, nesting up to 26
deep, targets of 1 to 3 closers. The BBH level follows BBH's own distribution, measured on its 250
questions: the input length is drawn from BBH's length histogram (``BBH_LENGTHS``: mean about 24 tokens,
median 13) and the deepest nesting from a triangular law per length bucket spanning BBH's minimum,
median and maximum depth there (``BBH_DEPTHS``: BBH nests about 1.5 times deeper than a uniformly random
walk of the same length would). Levels 4 and 5 keep the long tail and longer answers. Other levels
change input length, depth and target length.

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
    bbh: bool = False  # length and depth drawn from BBH's distribution (BBH_LENGTHS, BBH_DEPTHS), else uniform


LEVELS: dict[int, Level] = {
    1: Level(2, 10, 4, 1, 2),  # short and shallow
    2: Level(2, 30, 10, 1, 3),
    3: Level(2, 99, 26, 1, 3, bbh=True),  # BBH: mostly short, a few long, deep for their length
    4: Level(20, 120, 32, 4, 6),  # longer inputs, longer answers
    5: Level(40, 160, 40, 7, 10),
}

# BBH's 250 dyck questions (suzgunmirac/BIG-Bench-Hard, bbh/dyck_languages.jsonl): the share of inputs per
# length bucket (tokens), and the deepest nesting per bucket as (fewest, median, most)
BBH_LENGTHS = {(2, 5): 0.204, (6, 10): 0.224, (11, 20): 0.22, (21, 40): 0.164, (41, 60): 0.08, (61, 80): 0.048,
               (81, 99): 0.06}
BBH_DEPTHS = {(2, 5): (1, 3, 4), (6, 10): (2, 4, 6), (11, 20): (3, 6, 10), (21, 40): (4, 9, 14),
              (41, 60): (7, 12, 19), (61, 80): (11, 15.5, 24), (81, 99): (11, 16, 26)}


def _walks(n: int, end: int, cap: int) -> list[list[int]]:
    """ways[i][h]: walks of +-1 steps from height h after i steps to ``end`` after n, staying within 0..cap."""
    ways = [[0] * (cap + 2) for _ in range(n + 1)]
    if 0 <= end <= cap:
        ways[n][end] = 1
    for i in range(n - 1, -1, -1):
        for h in range(cap + 1):
            ways[i][h] = ways[i + 1][h + 1] + (ways[i + 1][h - 1] if h > 0 else 0)
    return ways


def _heights(rng: random.Random, n: int, end: int, max_depth: int, reach: bool = False) -> list[int]:
    """A uniformly random walk of ``n`` +-1 steps from 0 to ``end`` that stays within 0..max_depth (and, with
    ``reach``, touches max_depth)."""
    within = _walks(n, end, max_depth)
    # walks that still have to touch max_depth: those within it minus those that stay below it
    below = _walks(n, end, max_depth - 1) if reach and max_depth > 0 else None

    def count(i: int, h: int, touched: bool) -> int:
        return within[i][h] if touched or h >= max_depth else within[i][h] - below[i][h]

    heights, h, touched = [0], 0, below is None
    for i in range(n):
        up = count(i + 1, h + 1, touched) if h < max_depth else 0
        if rng.randrange(count(i, h, touched)) < up:
            h += 1
            touched = touched or h == max_depth
        else:
            h -= 1
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
    lo, hi = cfg.min_len, cfg.max_len
    if cfg.bbh:
        lo, hi = rng.choices(list(BBH_LENGTHS), weights=list(BBH_LENGTHS.values()))[0]
    lengths = [k for k in range(max(lo, n_close), hi + 1) if (k - n_close) % 2 == 0]
    return rng.choice(lengths)


def _depth(rng: random.Random, cfg: Level, n: int, n_close: int) -> tuple[int, bool]:
    """(the cap on nesting, whether the walk must reach it): BBH's depth for the length at the BBH level."""
    if not cfg.bbh:
        return cfg.max_depth, False
    low, mode, high = next(d for (a, b), d in BBH_DEPTHS.items() if a <= n <= b)
    depth = round(rng.triangular(low, high, mode))
    return min(max(depth, n_close), (n + n_close) // 2, cfg.max_depth), True  # what n tokens can reach


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
        heights = _heights(rng, n, n_close, *_depth(rng, cfg, n, n_close))
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
