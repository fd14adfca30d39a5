"""multistep_arithmetic_two: integer expressions like ``((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =``.

BBH format (Suzgun et al., 2022; see shared/TASKS.md): two bracketed groups of four integers in
-9..9 joined by ``+ - *``, ``*`` before ``+ -``, left to right. Other levels change the number of
groups and of terms per group.

Rationale formats (``Task.reformat``):

- ``full``: names each group (A, B, C), applies one operator per line and shows the group after it;
  a product of two multi-digit numbers is written as one digit-level partial product per line;
- ``rewrite``: one reduction per line, rewriting the whole expression each time
  (``= ((-1 + 2 + 45) - (-2 + -4 + 28))`` ... ``= 46 - 22`` ``= 24``), in the same order (each group's
  products, then its sums, then the groups); a product of two multi-digit numbers still gets its
  partial products first (MathGLM's step-by-step rewrites; Yang et al., 2023);
- ``rewrite_lsd`` and ``full_lsd``: the ``rewrite`` or ``full`` lines with every number of two or more
  digits written least-significant digit first (``-18`` as ``-81``, ``3780`` as ``0873``), so a sum's or a
  product's digits come out in the order their carries are computed (Lee et al., 2023: reversed outputs
  make addition learnable for small transformers). The inputs are single digits, so only computed values
  are reversed; the answer line is written the usual way round.
"""

from __future__ import annotations

import random
import re

from .base import Example, Task, rationale_text

# level -> (groups, terms per group); level 3 is BBH
LEVELS: dict[int, tuple[int, int]] = {
    1: (2, 2),  # ((a op b) OP (c op d)) =
    2: (2, 3),
    3: (2, 4),  # BBH: ((a op b op c op d) OP (e op f op g op h)) =
    4: (3, 4),  # ((g1) OP (g2) OP (g3)) =
    5: (3, 5),
}
BBH_RANGE = (-39960, 250992)  # smallest and largest BBH targets; level-3 draws outside are redrawn
OPS = ("+", "-", "*")
GROUP_NAMES = "ABC"


def _fmt(values: list, ops: list[str]) -> str:
    out = [str(values[0])]
    for op, v in zip(ops, values[1:], strict=True):
        out += [op, str(v)]
    return " ".join(out)


def _mul(a: int, b: int) -> tuple[list[str], int]:
    """Lines for ``a * b``: one line when a factor has one digit, else one partial product per line."""
    value = a * b
    x, y = abs(a), abs(b)
    sign = "" if (a < 0) == (b < 0) else "-"
    unsigned = f"{x} * {y}"
    signed = f"{a} * {b} = {sign}({unsigned})" if sign else f"{a} * {b} = {unsigned}"
    if min(x, y) < 10:
        middle = signed.split(" = ", 1)[1] + " = " if (a < 0 or b < 0) else ""
        return [f"{a} * {b} = {middle}{value}"], value
    # 1. sign, 2. one partial product per nonzero digit of the shorter factor, 3. running sums
    lines = [f"{signed}:" if (a < 0 or b < 0) else f"{unsigned}:"]
    long, short = (x, y) if len(str(y)) <= len(str(x)) else (y, x)
    partials = []
    for place, digit in enumerate(reversed(str(short))):
        if digit != "0":
            part = int(digit) * 10**place
            partials.append(long * part)
            lines.append(f"{long} * {part} = {long * part}")
    total = partials[0]
    for p in partials[1:]:
        lines.append(f"{total} + {p} = {total + p}")
        total += p
    lines.append(f"{a} * {b} = {value}")
    return lines, value


def _addsub(a: int, op: str, b: int) -> tuple[list[str], int]:
    """One line for ``a + b`` or ``a - b``; a negative ``b`` first flips the operator."""
    value = a + b if op == "+" else a - b
    if b < 0:
        flipped = "-" if op == "+" else "+"
        return [f"{a} {op} {b} = {a} {flipped} {-b} = {value}"], value
    return [f"{a} {op} {b} = {value}"], value


def _chain(name: str, values: list[int], ops: list[str]) -> tuple[list[str], int]:
    """Evaluate ``values`` joined by ``ops``: every ``*`` left to right, then ``+ -`` left to right."""
    values, ops = list(values), list(ops)
    lines = []
    while ops:
        i = ops.index("*") if "*" in ops else 0
        if ops[i] == "*":
            step, v = _mul(values[i], values[i + 1])
        else:
            step, v = _addsub(values[i], ops[i], values[i + 1])
        values[i : i + 2] = [v]
        del ops[i]
        step[-1] += f" ; {name} = {_fmt(values, ops)}"
        lines += step
    return lines, values[0]


def solve(groups: list[list[int]], group_ops: list[list[str]], outer: list[str]) -> tuple[list[str], int]:
    """Rationale lines and value of ``((g1) OP (g2) ...)`` for groups of integers and operators."""
    lines, results = [], []
    for name, values, ops in zip(GROUP_NAMES[: len(groups)], groups, group_ops, strict=True):
        lines.append(f"{name} = {_fmt(values, ops)}")
        steps, v = _chain(name, values, ops)
        lines += steps
        results.append(v)
    names = list(GROUP_NAMES[: len(groups)])
    lines.append(f"R = {_fmt(names, outer)} = {_fmt(results, outer)}")
    steps, value = _chain("R", results, outer)
    return lines + steps, value


def parse(text: str) -> tuple[list[list[int]], list[list[str]], list[str]]:
    """(groups, their operators, the operators between groups) of a question ``((...) OP (...)) =``."""
    body = text.strip().removesuffix("=").strip()[1:-1]  # drop " =" and the outer brackets
    groups, group_ops, outer = [], [], []
    for i, part in enumerate(body.split(")")[:-1]):
        part = part.strip()
        if i:
            outer.append(part[0])
            part = part[1:].strip()
        toks = part.lstrip("(").split()
        groups.append([int(t) for t in toks[0::2]])
        group_ops.append(toks[1::2])
    return groups, group_ops, outer


def _expr(groups: list[list[int]], group_ops: list[list[str]], outer: list[str]) -> str:
    parts = [_fmt(g, o) if len(g) == 1 else f"({_fmt(g, o)})" for g, o in zip(groups, group_ops, strict=True)]
    text = parts[0] + "".join(f" {op} {p}" for op, p in zip(outer, parts[1:], strict=True))
    return f"({text})" if len(groups) > 1 else text


def rewrite_steps(groups: list[list[int]], group_ops: list[list[str]], outer: list[str]) -> list[str]:
    """One line per operator applied, each the whole expression after it (see the module docstring)."""
    groups, group_ops, outer = [list(g) for g in groups], [list(o) for o in group_ops], list(outer)
    lines = []

    def reduce(values: list[int], ops: list[str]) -> None:
        i = ops.index("*") if "*" in ops else 0
        a, op, b = values[i], ops[i], values[i + 1]
        if op == "*":
            steps, v = _mul(a, b)
            lines.extend(steps[:-1])  # partial products of a multi-digit product, if any
        else:
            v = a + b if op == "+" else a - b
        values[i:i + 2] = [v]
        del ops[i]

    for values, ops in zip(groups, group_ops, strict=True):
        while ops:
            reduce(values, ops)
            lines.append(f"= {_expr(groups, group_ops, outer)}")
    results = [g[0] for g in groups]
    while outer:
        reduce(results, outer)
        lines.append(f"= {_expr([[r] for r in results], [[] for _ in results], outer)}")
    return lines


def lsd(line: str) -> str:
    """``line`` with every number of two or more digits written least-significant digit first."""
    return re.sub(r"\d{2,}", lambda m: m.group()[::-1], line)


class MultistepArithmeticTwo(Task):
    name = "multistep_arithmetic_two"
    levels = (1, 2, 3, 4, 5)
    bbh_level = 3
    answer_form = r"-?\d+"
    answer_hint = "an integer"
    formats = ("full", "rewrite", "rewrite_lsd", "full_lsd")

    def _steps(self, ex: Example, fmt: str) -> list[str]:
        if fmt == "full_lsd":
            return [lsd(line) for line in ex.rationale.split("\n")[:-1]]
        lines = rewrite_steps(*parse(ex.input))
        return [lsd(line) for line in lines] if fmt == "rewrite_lsd" else lines

    def _generate(self, rng: random.Random, level: int) -> Example:
        n_groups, n_terms = LEVELS[level]
        while True:
            groups = [[rng.randint(-9, 9) for _ in range(n_terms)] for _ in range(n_groups)]
            group_ops = [[rng.choice(OPS) for _ in range(n_terms - 1)] for _ in range(n_groups)]
            outer = [rng.choice(OPS) for _ in range(n_groups - 1)]
            steps, value = solve(groups, group_ops, outer)
            if level != self.bbh_level or BBH_RANGE[0] <= value <= BBH_RANGE[1]:
                break
        parts = [f"({_fmt(g, o)})" for g, o in zip(groups, group_ops, strict=True)]
        text = parts[0] + "".join(f" {op} {p}" for op, p in zip(outer, parts[1:], strict=True))
        return Example(
            task=self.name,
            level=level,
            input=f"({text}) =",
            rationale=rationale_text(steps, str(value)),
            target=str(value),
        )
