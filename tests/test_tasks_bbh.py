"""The three BBH-format generators: targets agree with independent solvers, formats match BBH.

Solvers here share no code with the generators: Python's own ``eval`` for the boolean and
arithmetic strings (safe: we generated them) and an explicit stack for the brackets.
"""

from __future__ import annotations

import random
import re
import statistics

import pytest

from workbench.tasks.base import ANSWER_PREFIX, extract_answer
from workbench.tasks.boolean_expressions import BooleanExpressions
from workbench.tasks.dyck_languages import DyckLanguages
from workbench.tasks.multistep_arithmetic import MultistepArithmeticTwo

N = 300  # examples per (task, level)
DYCK_PREFIX = (
    "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: "
)
CLOSER = {"(": ")", "[": "]", "{": "}", "<": ">"}


def solve_boolean(text: str) -> str:
    assert text.endswith(" is")
    return str(eval(text[: -len(" is")], {"__builtins__": {}}, {}))


def solve_arithmetic(text: str) -> str:
    assert text.endswith(" =")
    return str(eval(text[: -len(" =")], {"__builtins__": {}}, {}))


def solve_dyck(text: str) -> str:
    assert text.startswith(DYCK_PREFIX)
    stack = []
    for tok in text[len(DYCK_PREFIX) :].split(" "):
        if tok in CLOSER:
            stack.append(tok)
        else:
            assert stack and CLOSER[stack.pop()] == tok, f"closer {tok} does not match in {text!r}"
    return " ".join(CLOSER[t] for t in reversed(stack))


def nesting(tokens: list[str], openers: str) -> int:
    depth = deepest = 0
    for tok in tokens:
        depth += 1 if tok in openers else -1 if tok in ")]}>" else 0
        assert depth >= 0
        deepest = max(deepest, depth)
    return deepest


TASKS = [
    (BooleanExpressions(), solve_boolean),
    (MultistepArithmeticTwo(), solve_arithmetic),
    (DyckLanguages(), solve_dyck),
]
CASES = [(task, solver, level) for task, solver in TASKS for level in task.levels]
IDS = [f"{task.name}-L{level}" for task, _, level in CASES]
# mean rationale length (characters) at the BBH level must stay below this, so a tiny model can learn it
RATIONALE_BUDGET = {"boolean_expressions": 400, "multistep_arithmetic_two": 600, "dyck_languages": 1000}


@pytest.fixture(scope="module")
def samples():
    cache = {}

    def get(task, level):
        if (task.name, level) not in cache:
            cache[task.name, level] = task.sample(N, seed=0, level=level)
        return cache[task.name, level]

    return get


@pytest.mark.parametrize("task,solver,level", CASES, ids=IDS)
def test_targets_match_independent_solver(task, solver, level, samples):
    for ex in samples(task, level):
        assert (ex.task, ex.level) == (task.name, level)
        assert solver(ex.input) == ex.target, ex


@pytest.mark.parametrize("task,solver,level", CASES, ids=IDS)
def test_rationale_ends_with_answer(task, solver, level, samples):
    for ex in samples(task, level):
        lines = ex.rationale.split("\n")
        assert len(lines) >= 2
        assert lines[-1] == f"{ANSWER_PREFIX}{ex.target}."
        assert extract_answer(ex.rationale) == ex.target
        assert all(line.strip() for line in lines), "no blank rationale lines"
        if level <= task.bbh_level:
            assert max(len(line) for line in lines) <= 120


@pytest.mark.parametrize("task", [t for t, _ in TASKS], ids=lambda t: t.name)
def test_bbh_rationale_length_budget(task, samples):
    mean = statistics.mean(len(ex.rationale) for ex in samples(task, task.bbh_level))
    assert mean <= RATIONALE_BUDGET[task.name], mean


@pytest.mark.parametrize("task", [t for t, _ in TASKS], ids=lambda t: t.name)
def test_rationale_grows_with_level(task, samples):
    means = [statistics.mean(len(ex.rationale) for ex in samples(task, lv)) for lv in task.levels]
    assert means == sorted(means), means


@pytest.mark.parametrize("task", [t for t, _ in TASKS], ids=lambda t: t.name)
def test_seed_determinism(task):
    first, again, other = task.sample(50, seed=1), task.sample(50, seed=1), task.sample(50, seed=2)
    assert first == again
    assert first != other
    assert all(ex.level == task.bbh_level for ex in first)
    assert task.generate(random.Random(7), 2) == task.generate(random.Random(7), 2)


@pytest.mark.parametrize("task", [t for t, _ in TASKS], ids=lambda t: t.name)
@pytest.mark.parametrize("bad_level", [0, 6, 99])
def test_unknown_level_raises(task, bad_level):
    with pytest.raises(ValueError, match=rf"no level {bad_level}\b.*\[1, 2, 3, 4, 5\]"):
        task.sample(1, level=bad_level)


@pytest.mark.parametrize("task", [t for t, _ in TASKS], ids=lambda t: t.name)
def test_scorer(task):
    ex = task.sample(1, seed=3)[0]
    assert task.score(ex.target, ex.target)
    assert task.score(f"  {ex.target}\n", ex.target)
    assert task.diagnose(ex.target, ex.target) is None
    wrong = {"True": "False", "False": "True"}.get(ex.target, ex.target + " 1")
    assert not task.score(wrong, ex.target)
    assert task.diagnose(wrong, ex.target)


# BBH formats to the letter ----------------------------------------------------------------------


def test_boolean_bbh_format(samples):
    task = BooleanExpressions()
    exs = samples(task, task.bbh_level)
    depths = set()
    for ex in exs:
        assert ex.input.endswith(" is") and "  " not in ex.input and ex.input == ex.input.strip()
        tokens = ex.input.split(" ")[:-1]
        assert len(tokens) == 8
        assert set(tokens) <= {"True", "False", "not", "and", "or", "(", ")"}
        depths.add(nesting(tokens, "("))
        assert ex.target in ("True", "False")
    assert depths <= {0, 1, 2, 3} and {0, 1, 2} <= depths
    share_true = sum(ex.target == "True" for ex in exs) / len(exs)
    assert 0.4 <= share_true <= 0.6
    for word in ("not", "and", "or", "("):
        assert any(word in ex.input.split() for ex in exs), word


def test_boolean_bbh_level_is_shaped_like_bbh():
    """BBH's 250 questions: 40% without brackets, 51% one deep, 9% deeper; runs of up to 7 nots; and the
    (bracket pairs, literals) shapes in BBH's proportions, which the generator's own mix misses."""
    from workbench.tasks.boolean_expressions import BBH_SHAPES, _max_nots, _shape

    exs = BooleanExpressions().sample(1000, seed=0, level=3)  # the rarest shapes are under 1 in 100
    tokens = [ex.input.split(" ")[:-1] for ex in exs]
    depth = [nesting(t, "(") for t in tokens]
    assert 0.33 <= depth.count(0) / len(exs) <= 0.47 and 0.44 <= depth.count(1) / len(exs) <= 0.58
    assert max(_max_nots(t) for t in tokens) == 7 and {_shape(t) for t in tokens} == set(BBH_SHAPES)
    for shape, count in BBH_SHAPES.items():
        assert abs(sum(_shape(t) == shape for t in tokens) / len(exs) - count / 250) < 0.05, shape


@pytest.mark.parametrize("level,n_tokens", [(1, 4), (2, 6), (3, 8), (4, 12), (5, 16)])
def test_boolean_token_counts(level, n_tokens, samples):
    for ex in samples(BooleanExpressions(), level):
        assert len(ex.input.split(" ")) - 1 == n_tokens


BBH_ARITH = re.compile(r"^\(\(-?\d(?: [-+*] -?\d){3}\) [-+*] \(-?\d(?: [-+*] -?\d){3}\)\) =$")


def test_arithmetic_bbh_format(samples):
    task = MultistepArithmeticTwo()
    exs = samples(task, task.bbh_level)
    for ex in exs:
        assert BBH_ARITH.match(ex.input), ex.input
        numbers = [int(x) for x in re.findall(r"-?\d+", ex.input.replace(" - ", " ~ "))]
        assert len(numbers) == 8 and all(-9 <= x <= 9 for x in numbers)
        assert -39960 <= int(ex.target) <= 250992
        assert ex.target == str(int(ex.target))
    assert any(" - -" in ex.input for ex in exs), "negatives after an operator"
    assert {"+", "-", "*"} <= {ex.input.split(") ")[1][0] for ex in exs}, "every outer operator"


@pytest.mark.parametrize("level,groups,terms", [(1, 2, 2), (2, 2, 3), (4, 3, 4), (5, 3, 5)])
def test_arithmetic_level_shapes(level, groups, terms, samples):
    for ex in samples(MultistepArithmeticTwo(), level):
        inner = ex.input[1 : -len(") =")]
        parts = re.findall(r"\(([^()]*)\)", inner)
        assert len(parts) == groups
        assert all(len(re.findall(r"(?:^| )-?\d+", p)) == terms for p in parts)


def test_arithmetic_digit_level_products():
    """A product of two multi-digit numbers is written one partial product per line, then summed."""
    exs = MultistepArithmeticTwo().sample(200, seed=0, level=5)
    seen = 0
    for ex in exs:
        lines = ex.rationale.split("\n")
        for i, line in enumerate(lines):
            if not line.endswith(":"):
                continue
            seen += 1
            a, b = (int(x) for x in re.match(r"^(-?\d+) \* (-?\d+)", line).groups())
            assert abs(a) >= 10 and abs(b) >= 10
            j = i + 1
            while not lines[j].startswith(f"{a} * {b} = "):
                m = re.fullmatch(r"(\d+) ([*+]) (\d+) = (\d+)", lines[j])
                assert m, lines[j]
                x, op, y, z = m.groups()
                if op == "*":
                    assert re.fullmatch(r"[1-9]0*", y), lines[j]  # one digit at a time
                assert (int(x) * int(y) if op == "*" else int(x) + int(y)) == int(z)
                j += 1
            assert lines[j].startswith(f"{a} * {b} = {a * b}")
    assert seen


def test_dyck_bbh_format(samples):
    task = DyckLanguages()
    for ex in samples(task, task.bbh_level):
        assert ex.input.startswith(DYCK_PREFIX)
        body = ex.input[len(DYCK_PREFIX) :]
        assert body == body.strip() and "  " not in body
        tokens = body.split(" ")
        assert 2 <= len(tokens) <= 99
        assert set(tokens) <= set("()[]{}<>")
        assert nesting(tokens, "([{<") <= 26
        target = ex.target.split(" ")
        assert 1 <= len(target) <= 3 and " ".join(target) == ex.target
        assert set(target) <= set(")]}>")


@pytest.mark.parametrize("level,lo,hi", [(1, 1, 2), (2, 1, 3), (4, 4, 6), (5, 7, 10)])
def test_dyck_target_lengths(level, lo, hi, samples):
    lengths = {len(ex.target.split(" ")) for ex in samples(DyckLanguages(), level)}
    assert lengths == set(range(lo, hi + 1))


def test_dyck_bbh_level_follows_bbh_lengths(samples):
    """BBH's dyck inputs: mean about 24 bracket tokens, median about 13, up to 99 (a long, thin tail)."""
    task = DyckLanguages()
    lengths = [len(ex.input[len(DYCK_PREFIX):].split(" ")) for ex in samples(task, task.bbh_level)]
    assert 20 <= statistics.mean(lengths) <= 30 and 10 <= statistics.median(lengths) <= 18
    assert max(lengths) <= 99 and sum(n >= 60 for n in lengths) >= 10  # the tail is there, and thin
    closers = [len(ex.target.split(" ")) for ex in samples(task, task.bbh_level)]
    assert statistics.mean(closers) == pytest.approx(2, abs=0.2)


def test_dyck_bbh_level_nests_as_deep_as_bbh(samples):
    """BBH's dyck inputs nest about 7 deep on average (median 6, up to 26), deeper for longer inputs: about
    1.5 times what a uniformly random walk of the same length reaches."""
    task = DyckLanguages()
    rows = []
    for ex in samples(task, task.bbh_level):
        depth = deepest = 0
        for tok in ex.input[len(DYCK_PREFIX):].split(" "):
            depth += 1 if tok in CLOSER else -1
            deepest = max(deepest, depth)
        rows.append((depth, deepest, len(ex.input[len(DYCK_PREFIX):].split(" "))))
    assert all(left == len(ex.target.split(" ")) for (left, _, _), ex in zip(rows, samples(task, task.bbh_level)))
    depths = [d for _, d, _ in rows]
    assert 6 <= statistics.mean(depths) <= 8.5 and max(depths) <= 26
    assert 2 <= statistics.mean(d for _, d, n in rows if n <= 5) <= 3.5
    assert 12 <= statistics.mean(d for _, d, n in rows if n > 40) <= 18


@pytest.mark.parametrize("task,solver,level", CASES, ids=IDS)
def test_every_format_keeps_the_answer(task, solver, level, samples):
    for fmt in task.formats:
        for ex in samples(task, level)[:50]:
            out = task.reformat(ex, fmt)
            assert (out.input, out.target) == (ex.input, ex.target)
            assert out.rationale.split("\n")[-1] == f"{ANSWER_PREFIX}{ex.target}."


@pytest.mark.parametrize("level", MultistepArithmeticTwo.levels)
def test_arithmetic_rewrite_lines_each_hold_the_value(level, samples):
    """Every ``= ...`` line of the rewrite format is the whole expression, one operator further on: each
    evaluates (independently) to the target, and each is one operator shorter than the line before."""
    task = MultistepArithmeticTwo()
    for ex in samples(task, level)[:100]:
        lines = [ln[2:] for ln in task.reformat(ex, "rewrite").rationale.split("\n") if ln.startswith("= ")]
        assert [solve_arithmetic(ln + " =") for ln in lines] == [ex.target] * len(lines)
        ops = [len(re.findall(r"(?<=\s)[-+*](?=\s)", ln)) for ln in [ex.input[:-2], *lines]]
        assert ops == list(range(ops[0], -1, -1)), (ex.input, lines)


@pytest.mark.parametrize("level", DyckLanguages.levels)
def test_dyck_compact_formats_end_with_the_open_stack(level, samples):
    task = DyckLanguages()
    for ex in samples(task, level)[:100]:
        opened = "".join({v: k for k, v in CLOSER.items()}[c] for c in reversed(ex.target.split(" ")))
        assert task.reformat(ex, "stack").rationale.split("\n")[0] == f"stack: {opened}"
        closes = task.reformat(ex, "closes").rationale.split("\n")
        n_close = sum(t in ")]}>" for t in ex.input[len(DYCK_PREFIX):].split(" "))
        assert len(closes) == n_close + 2 and closes[-2] == f"stack: {opened}"


@pytest.mark.parametrize("level", DyckLanguages.levels)
def test_dyck_reduce_cancels_adjacent_pairs_until_only_the_open_brackets_are_left(level, samples):
    """Each line of ``reduce`` is the line before with every adjacent matched pair deleted (no pair survives
    that was adjacent before), the lines get strictly shorter, and the last one is the open stack."""
    task = DyckLanguages()
    pair = re.compile(r"\(\)|\[\]|\{\}|<>")
    for ex in samples(task, level)[:100]:
        lines = task.reformat(ex, "reduce").rationale.split("\n")[:-1]
        rows = ["".join(ex.input[len(DYCK_PREFIX):].split(" ")), *[ln.replace("empty", "") for ln in lines]]
        for before, after in zip(rows, rows[1:]):
            assert after == pair.sub("", before) or (before == after == rows[0] and len(rows) == 2)
        assert all(len(a) < len(b) for b, a in zip(rows[1:], rows[2:]))
        opened = "".join({v: k for k, v in CLOSER.items()}[c] for c in reversed(ex.target.split(" ")))
        assert rows[-1] == opened and not pair.search(rows[-1])


def test_dyck_reduce_example():
    from workbench.tasks.dyck_languages import reduce_lines

    assert reduce_lines("[ [ ] ] < ( ) ( ) > [ ( ) { ( ) } ] { } <".split()) == ["[]<>[{}]<", "[]<", "<"]
    assert reduce_lines(["[", "("]) == ["[("]  # nothing to cancel: the input, once


@pytest.mark.parametrize("level", MultistepArithmeticTwo.levels)
def test_arithmetic_lsd_formats_reverse_only_the_computed_numbers(level, samples):
    """``rewrite_lsd`` and ``full_lsd`` write the ``rewrite`` and ``full`` lines with every multi-digit number
    least-significant digit first: reading each number back the usual way round gives those lines exactly."""
    task = MultistepArithmeticTwo()
    for ex in samples(task, level)[:100]:
        for fmt, plain in (("rewrite_lsd", "rewrite"), ("full_lsd", "full")):
            lsd = task.reformat(ex, fmt).rationale.split("\n")
            lines = task.reformat(ex, plain).rationale.split("\n")
            assert lsd[-1] == lines[-1]  # the answer line, the usual way round
            assert [re.sub(r"\d+", lambda m: m.group()[::-1], ln) for ln in lsd[:-1]] == lines[:-1]
    ex = MultistepArithmeticTwo().sample(1)[0]
    assert task.reformat(ex, "full_lsd").rationale != ex.rationale


def test_an_unknown_format_is_named():
    task = DyckLanguages()
    ex = task.sample(1)[0]
    with pytest.raises(ValueError, match=r"task 'dyck_languages' has no rationale format 'lsd'; formats are "
                                         r"\['full', 'closes', 'stack', 'reduce'\]"):
        task.reformat(ex, "lsd")
