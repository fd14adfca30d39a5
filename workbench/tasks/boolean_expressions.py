"""boolean_expressions: evaluate `True`/`False` expressions with `not`, `and`, `or` and brackets.

BBH format (Suzgun et al., 2022; see shared/TASKS.md): exactly 8 tokens before ` is`, brackets
nested 0 to 3 deep, Python's precedence. The BBH level follows BBH's own distribution, measured on its
250 questions: the shape (bracket pairs, literals) is drawn from BBH's table (``BBH_SHAPES``: mostly flat,
40% without brackets) and runs of up to 7 ``not``s occur. Other levels change the token count and nesting
depth.
The rationale rewrites the expression one step per line: one bracket pair removed or one operator
applied, e.g. ``not True = False ; False and ( True )``.
"""

from __future__ import annotations

import random

from .base import Example, Task, rationale_text

# level -> (tokens before " is", deepest bracket nesting); level 3 is BBH
LEVELS: dict[int, tuple[int, int]] = {
    1: (4, 1),  # e.g. "not ( True ) is"
    2: (6, 2),
    3: (8, 3),  # BBH: exactly 8 tokens, nesting 0-3
    4: (12, 4),
    5: (16, 5),
}
MAX_NOTS = 3  # longest run of `not`s we generate below and above the BBH level; longer runs are redrawn
BBH_MAX_NOTS = 7  # BBH's longest run ("not not not not not not not True is")
# BBH's 250 questions (suzgunmirac/BIG-Bench-Hard, bbh/boolean_expressions.jsonl) by (bracket pairs, literals)
BBH_SHAPES = {(0, 1): 2, (0, 2): 6, (0, 3): 31, (0, 4): 62, (1, 1): 2, (1, 2): 30, (1, 3): 87, (2, 2): 29, (3, 1): 1}
LITERALS = ("True", "False")


def _split(rng: random.Random, n: int, max_parts: int) -> list[int]:
    """A random split of ``n`` tokens into k >= 1 operands joined by k - 1 binary operators."""
    # k operands and k - 1 operators: each operand gets >= 1 token, so k <= (n + 1) // 2
    kmax = min(max_parts, (n + 1) // 2)
    k = rng.choices(range(1, kmax + 1), weights=[1.0 / k for k in range(1, kmax + 1)])[0]
    cuts = sorted(rng.sample(range(1, n - k + 1), k - 1))  # cut points in the n - (k - 1) operand tokens
    bounds = [0, *cuts, n - k + 1]
    return [bounds[i + 1] - bounds[i] for i in range(k)]


def _or_expr(rng: random.Random, n: int, depth: int) -> list[str]:
    out: list[str] = []
    for size in _split(rng, n, max_parts=3):
        out += (["or"] if out else []) + _and_expr(rng, size, depth)
    return out


def _and_expr(rng: random.Random, n: int, depth: int) -> list[str]:
    out: list[str] = []
    for size in _split(rng, n, max_parts=3):
        out += (["and"] if out else []) + _not_term(rng, size, depth)
    return out


def _not_term(rng: random.Random, n: int, depth: int) -> list[str]:
    """``not``* followed by a literal or a bracketed expression, exactly ``n`` tokens."""
    if n == 1:
        return [rng.choice(LITERALS)]
    if n == 2 or depth == 0 or rng.random() < 0.3:
        return ["not", *_not_term(rng, n - 1, depth)]
    return ["(", *_or_expr(rng, n - 2, depth - 1), ")"]


RARE = ((0, 1), (0, 2), (1, 1))  # shapes the recursive generator draws less than once in 150 tries: built directly


def _rare(rng: random.Random, shape: tuple[int, int], n: int) -> list[str]:
    """An expression of a RARE shape, ``n`` tokens, every placement of its nots equally likely."""
    lit = lambda k: ["not"] * k + [rng.choice(LITERALS)]  # noqa: E731
    if shape == (0, 1):
        return lit(n - 1)
    a = rng.randint(0, n - 3)  # the nots of (0, 2) and (1, 1): n - 3 of them, split in two runs
    if shape == (0, 2):
        return [*lit(a), rng.choice(("and", "or")), *lit(n - 3 - a)]
    return ["not"] * a + ["(", *lit(n - 3 - a), ")"]


def _shape(tokens: list[str]) -> tuple[int, int]:
    return tokens.count("("), sum(tok in LITERALS for tok in tokens)


def _max_depth(tokens: list[str]) -> int:
    depth = deepest = 0
    for tok in tokens:
        depth += (tok == "(") - (tok == ")")
        deepest = max(deepest, depth)
    return deepest


def _max_nots(tokens: list[str]) -> int:
    run = longest = 0
    for tok in tokens:
        run = run + 1 if tok == "not" else 0
        longest = max(longest, run)
    return longest


def _reduce_flat(seg: list[str]) -> tuple[str, list[str]]:
    """One step on a bracket-free segment: the first `not`, else the first `and`, else the first `or`."""
    for i in range(len(seg) - 1):
        if seg[i] == "not" and seg[i + 1] in LITERALS:
            value = str(seg[i + 1] != "True")
            return f"not {seg[i + 1]} = {value}", [*seg[:i], value, *seg[i + 2 :]]
    for op in ("and", "or"):
        if op in seg:
            i = seg.index(op)
            a, b = seg[i - 1] == "True", seg[i + 1] == "True"
            value = str(a and b if op == "and" else a or b)
            return f"{seg[i - 1]} {op} {seg[i + 1]} = {value}", [*seg[: i - 1], value, *seg[i + 2 :]]
    raise ValueError(f"nothing to reduce in {' '.join(seg)!r}")


def reduce_step(tokens: list[str]) -> tuple[str, list[str]]:
    """One rewrite: inside the first innermost bracket pair if any, else on the whole expression."""
    if ")" not in tokens:
        return _reduce_flat(tokens)
    j = tokens.index(")")  # the first ")" closes a pair with no brackets inside
    i = max(k for k in range(j) if tokens[k] == "(")
    inner = tokens[i + 1 : j]
    if len(inner) == 1:
        return f"( {inner[0]} ) = {inner[0]}", [*tokens[:i], inner[0], *tokens[j + 1 :]]
    desc, new_inner = _reduce_flat(inner)
    return desc, [*tokens[: i + 1], *new_inner, *tokens[j:]]


def solve(tokens: list[str]) -> tuple[list[str], str]:
    """Rationale steps ("<step> ; <expression after it>") and the value of ``tokens``."""
    steps = []
    while len(tokens) > 1:
        desc, tokens = reduce_step(tokens)
        steps.append(f"{desc} ; {' '.join(tokens)}")
    return steps, tokens[0]


class BooleanExpressions(Task):
    name = "boolean_expressions"
    levels = (1, 2, 3, 4, 5)
    bbh_level = 3
    answer_form = r"True|False"
    answer_hint = "True or False"

    def _generate(self, rng: random.Random, level: int) -> Example:
        n_tokens, max_depth = LEVELS[level]
        want = rng.choice(LITERALS)  # draw the answer first so True and False come out balanced
        shape, max_nots = None, MAX_NOTS
        if level == self.bbh_level:  # BBH's shapes, drawn by their share; the rest is redrawn until it fits
            shape = rng.choices(list(BBH_SHAPES), weights=list(BBH_SHAPES.values()))[0]
            max_nots = BBH_MAX_NOTS
        while True:
            tokens = _rare(rng, shape, n_tokens) if shape in RARE else _or_expr(rng, n_tokens, max_depth)
            if _max_nots(tokens) > max_nots or (shape and _shape(tokens) != shape):
                continue
            for _ in range(8 if shape else 1):  # at the BBH level keep the found shape, redraw its literals
                steps, value = solve(tokens)
                if value == want or not shape:
                    break
                tokens = [rng.choice(LITERALS) if tok in LITERALS else tok for tok in tokens]
            if value == want:
                break
        assert len(tokens) == n_tokens and _max_depth(tokens) <= max_depth
        return Example(
            task=self.name,
            level=level,
            input=" ".join(tokens) + " is",
            rationale=rationale_text(steps, value),
            target=value,
        )
