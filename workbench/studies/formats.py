"""The study of what a small model should write down: per task, at equal compute, the answer alone against
the full rationale and compact formats (``Task.formats``), scored at the BBH level and on harder levels.

    s = studies.formats.study(task="dyck_languages")
    rows = studies.formats.run(s)              # one student per format, the same token budget each
    print(studies.formats.table(rows))

Equal compute means an equal number of training tokens (prompt and completion, padding excluded): a
format whose completions are half as long sees twice the examples. The literature this follows: Lee
et al. (2023, *Teaching Arithmetic to Small Transformers*: the format is the lever), Yang et al. (2023,
MathGLM: step-by-step rewrites), Feng et al. (2023: small transformers learn values from derivations,
not directly), Yao et al. (2021) and Ebrahimi et al. (2020: bounded Dyck languages).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import ClassVar

from workbench import tasks as task_suite
from workbench.core import env, report
from workbench.core.evaluate import EvalConfig, evaluate, student_completion, student_prompt
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.core.train import TrainConfig, sampler_for, train
from workbench.tasks import splits

ANSWER = "answer"  # the answer alone, no rationale (a format every task has)


@dataclass
class Study:
    task: str = "dyck_languages"
    formats: tuple[str, ...] = ()  # "answer" and the task's formats (empty: all of them)
    student: StudentConfig = field(default_factory=lambda: StudentConfig(layers=4, width=128, heads=4, max_len=1024))
    tokens: int = 2_000_000  # training tokens per format: the equal compute
    batch_size: int = 32
    lr: float = 3e-3
    levels: tuple[int, ...] | None = None  # trained levels (None: up to the BBH level)
    test_n: int = 100  # test questions at the BBH level
    other_n: int = 20  # test questions at every other level
    evals: int = 0  # validation accuracy this many times during training: the learning curve (0: none)
    eval_n: int = 64  # validation questions per evaluation, spread over the trained levels
    compile: bool = True  # torch.compile the training step (pays back after about a minute)
    seed: int = 0
    pool: int = 300  # memorisation: the size of the fixed pool trained on again and again

    SIZES: ClassVar[dict] = {
        "smoke": dict(student=StudentConfig(layers=1, width=32, heads=2, max_len=1024), tokens=20_000, batch_size=8,
                      test_n=4, other_n=2, compile=False),
        "gpu": dict(student=StudentConfig(layers=6, width=256, heads=8, max_len=1024), tokens=40_000_000,
                    batch_size=64),
    }


@dataclass
class Lesson(Study):
    """The notebook's live run, about 5 minutes on 2 cores in laptop (measured): boolean_expressions answer-only against
    the full rationale at equal tokens, then the memorisation pair. (``Study`` defaults are the longer
    comparisons ``scripts/formats.py`` records for every task.)"""

    task: str = "boolean_expressions"
    formats: tuple[str, ...] = (ANSWER, "full")
    tokens: int = 1_000_000
    evals: int = 4

    SIZES: ClassVar[dict] = {
        "smoke": dict(student=StudentConfig(layers=1, width=32, heads=2, max_len=1024), tokens=20_000, batch_size=8,
                      test_n=4, other_n=2, compile=False, eval_n=8, pool=16),
        "gpu": dict(task="dyck_languages", formats=(), tokens=20_000_000, batch_size=64,
                    student=StudentConfig(layers=6, width=256, heads=8, max_len=1024)),
    }


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


def lesson(profile: str | None = None, **overrides) -> Lesson:
    """The notebook's study sized for ``profile``."""
    return env.sized(Lesson, profile, **overrides)


def formats_of(s: Study) -> tuple[str, ...]:
    return s.formats or (ANSWER, *task_suite.get(s.task).formats)


def tokens_per_example(s: Study, fmt: str, n: int = 256) -> float:
    """Mean tokens of one training example (prompt, completion and end token) in format ``fmt``."""
    task, tok = task_suite.get(s.task), CharTokenizer()
    examples = [e for lv in (s.levels or [lv for lv in task.levels if lv <= task.bbh_level])
                for e in task.sample(n, seed=s.seed, level=lv)]
    rationale = fmt != ANSWER
    texts = [student_prompt(e.input) + student_completion(task.reformat(e, fmt) if rationale else e, rationale)
             for e in examples]
    return statistics.mean(len(tok(t, add_special_tokens=False).input_ids) + 1 for t in texts)


def config(s: Study, fmt: str) -> TrainConfig:
    """The training run of one format: as many steps as the token budget buys."""
    steps = max(8, round(s.tokens / (s.batch_size * tokens_per_example(s, fmt))) // 8 * 8)
    rationale = fmt != ANSWER
    every = max(8, steps // s.evals // 8 * 8) if s.evals else 0
    return TrainConfig(tasks=(s.task,), levels=s.levels, rationale=rationale, format=fmt if rationale else "full",
                       steps=steps, batch_size=s.batch_size, lr=s.lr, warmup=max(1, steps // 20), eval_every=every,
                       eval_n=s.eval_n, checkpoint_every=0, log_every=max(1, steps // 10), compile=s.compile,
                       seed=s.seed)


def score(model, tok, s: Study, cfg: TrainConfig) -> dict:
    """Test accuracy at the BBH level (``test_n``) and at every other level (``other_n`` each)."""
    task = task_suite.get(s.task)
    ecfg = EvalConfig(rationale=cfg.rationale, format=cfg.format, batch_size=64)
    test = splits.load(s.task, "test", level=task.bbh_level, n=s.test_n)
    res = evaluate(model, tok, s.task, test, ecfg)
    others = [e for lv in task.levels if lv != task.bbh_level for e in splits.load(s.task, "test", level=lv,
                                                                                   n=s.other_n)]
    by_level = {**evaluate(model, tok, s.task, others, ecfg).by_level, **res.by_level} if others else res.by_level
    return {"accuracy": res.accuracy, "by_level": {int(k): v for k, v in sorted(by_level.items())},
            "ms_per_question": res.latency_ms}


def run_one(s: Study, fmt: str, progress: bool = False, cfg: TrainConfig | None = None) -> dict:
    cfg = cfg or config(s, fmt)
    tok = CharTokenizer()
    env.set_seed(s.seed)  # the same initial weights for every format
    model = student(s.student, tok)
    t0 = time.perf_counter()
    res = train(model, tok, cfg, progress=progress, validate_at_end=False)
    seconds = time.perf_counter() - t0
    curve = [(h["step"] * cfg.batch_size, h["val_accuracy"]) for h in res.history if "val_accuracy" in h]
    return {"format": fmt, "steps": cfg.steps, "train_tokens": res.tokens, "train_seconds": seconds,
            "examples_seen": cfg.steps * cfg.batch_size, "curve": curve, **score(model, tok, s, cfg),
            "model": model}


def run(s: Study, progress: bool = False, callback=None) -> list[dict]:
    """One student per format, each on ``s.tokens`` training tokens; ``callback(row)`` after each. They train one
    after another on every core: 0.82M students gain from a second torch thread what a second process would give
    (the lesson's two: 156 s side by side in one-thread processes, 153 s in turn in the run before, measured)."""
    rows = []
    for fmt in formats_of(s):
        rows.append(run_one(s, fmt, progress))
        if callback:
            callback(rows[-1])
    return rows


def memorisation(s: Study, fmt: str = ANSWER, fresh: dict | None = None, progress: bool = False) -> list[dict]:
    """Memorisation against reasoning: the student of ``fmt``'s run, at the same steps, trained once on a
    fixed pool of ``s.pool`` examples (seen again and again) and once on fresh generator examples (``fresh``:
    that run's row from ``run``, with its model, to reuse). Each row has its accuracy on (up to 100 of) the
    examples it trained on, ``seen_accuracy``, beside the test scores."""
    from dataclasses import replace

    task = task_suite.get(s.task)
    rows = []
    for size in (s.pool, 0):
        cfg = replace(config(s, fmt), pool=size)
        if size == 0 and fresh is not None:
            row, model, tok = dict(fresh), fresh["model"], CharTokenizer()
        else:
            row = run_one(s, fmt, progress, cfg=cfg)
            model, tok = row["model"], CharTokenizer()
        sampler = sampler_for(cfg)
        seen = sampler.pool[:100] if size else sampler.examples(0, 0, 100)  # fresh: the first batches it saw
        row["seen_accuracy"] = evaluate(model, tok, task.name, seen, EvalConfig(
            rationale=cfg.rationale, format=cfg.format, batch_size=64)).accuracy
        row.update(data=f"fixed pool of {size}" if size else "fresh examples",
                   distinct_examples=size or row["examples_seen"])
        rows.append(row)
    return rows


def _with_levels(rows: list[dict]) -> tuple[list[int], list[dict]]:
    """Every level any row scored, and the rows with an ``L<level>`` percentage column each ("-" if absent)."""
    levels = sorted({lv for r in rows for lv in r["by_level"]})
    return levels, [{**r, **{f"L{lv}": f"{r['by_level'][lv]:.0%}" if lv in r["by_level"] else "-" for lv in levels}}
                    for r in rows]


def memorisation_table(rows: list[dict]) -> str:
    levels, flat = _with_levels(rows)
    return report.table(flat, {
        "training data": "{data}", "format": "{format}", "distinct examples": "{distinct_examples:,}",
        "accuracy on its own training examples": "{seen_accuracy:.0%}", "test, BBH level": "{accuracy:.0%}",
        **{f"L{lv}": f"{{L{lv}}}" for lv in levels}})


def table(rows: list[dict]) -> str:
    levels, flat = _with_levels(rows)
    return report.table(flat, {
        "format": "{format}", "accuracy, BBH level": "{accuracy:.0%}",
        **{f"L{lv}": f"{{L{lv}}}" for lv in levels}, "examples seen": "{examples_seen:,}",
        "train tokens": "{train_tokens:,}", "train s": "{train_seconds:.0f}", "ms / question": "{ms_per_question:.0f}"})


def sentences(s: Study, rows: list[dict], memo: list[dict] = ()) -> list[str]:
    """The comparison in words, computed from the rows: the leading format, the hardest level, and the
    memorisation gap (accuracy on its own training examples minus test accuracy) of each training set."""
    best = max(rows, key=lambda r: r["accuracy"])
    others = ", ".join(f"{r['format']} {r['accuracy']:.0%}" for r in rows if r is not best)
    out = [f"At {s.tokens:,} training tokens each, {best['format']} led at the BBH level with {best['accuracy']:.0%}"
           + (f" ({others})." if others else ".")]
    top = max(task_suite.get(s.task).levels)
    out.append(f"At the hardest level (L{top}): "
               + ", ".join(f"{r['format']} {r['by_level'].get(top, 0):.0%}" for r in rows) + ".")
    for m in memo:
        out.append(f"{m['data']}: {m['seen_accuracy']:.0%} on its own training examples, {m['accuracy']:.0%} on "
                   f"the test split (gap {100 * (m['seen_accuracy'] - m['accuracy']):+.0f} points).")
    return out
