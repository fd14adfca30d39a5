"""The side-by-side multi-task study: specialists against multi-task students at equal compute.

    s = studies.multitask.study()                          # sized by the profile
    rows = studies.multitask.run(s)                        # one row per arm: accuracy per task, params, bytes
    studies.multitask.table(rows); studies.multitask.verdict(rows)
    matrix, raw = studies.multitask.transfer_matrix(s, rows[0]["accuracy"])   # plots.transfer_heatmap(matrix, s.tasks)

The arms, all scored at the BBH level on the same test questions (``multitask.evaluate_tasks``):
- ``specialist``: one student per task, ``steps_per_task`` steps each (one row for the five together:
  accuracy per task from its own specialist, parameters, bytes, time and tokens summed);
- ``multitask``: one student of a specialist's size on every task (tagged prompts, ``scheme`` mix), for
  k x ``steps_per_task`` steps;
- ``multitask-large``: one student of about the specialists' combined size, at the same compute;
- ``multitask+adapters``: the multitask body frozen, one small LoRA adapter per task on top, routed by
  the tag; its adapter steps are extra compute, reported as such.

Each task is written in the format its specialist recipe uses (``multitask.recipe_formats``: the full
rationale for boolean_expressions, one operation a line with numbers least-significant digit first for
arithmetic, bracket reductions for dyck, the answer alone for word_sorting and tool_call), by every arm
alike; ``Study.formats`` picks others (None: the full rationale for every task, the study's first setting).

The transfer matrix asks, for every pair of tasks, how much training on task A alongside task B moves
accuracy on B against B's specialist (positive transfer helps, interference hurts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import ClassVar

import torch

from workbench import tasks as task_suite
from workbench.core import env
from workbench.core.measure import count_params, param_bytes
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.core.train import TrainConfig, train
from workbench.multitask import MultiTaskSampler, TaskAdapters, check_formats, evaluate_tasks, recipe_formats, validate
from workbench.tasks.base import FULL

ARMS = ("specialist", "multitask", "multitask-large", "multitask+adapters")


def combined_size(cfg: StudentConfig, k: int, layers: int | None = None) -> StudentConfig:
    """A student with about ``k`` times ``cfg``'s parameters: ``layers`` deep (default cfg's), the closest width."""
    layers, step = layers or cfg.layers, 2 * cfg.heads  # an even head dimension, for rotary positions
    size = lambda m: _params(replace(cfg, layers=layers, width=m * step))
    target, lo, hi = k * _params(cfg), 1, 2
    while size(hi) < target:
        hi *= 2
    while hi - lo > 1:  # the parameter count grows with the width: bisect on multiples of step
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) < target else (lo, mid)
    return replace(cfg, layers=layers, width=step * min((lo, hi), key=lambda m: abs(size(m) - target)))


def _params(cfg: StudentConfig) -> int:
    """Parameters of a student built from ``cfg`` (on the meta device: shapes only, no memory)."""
    with torch.device("meta"):
        return count_params(student(cfg, CharTokenizer()))


@dataclass
class Study:
    tasks: tuple[str, ...] = task_suite.NAMES  # every multi-task student learns all of them
    student: StudentConfig = field(default_factory=lambda: StudentConfig(layers=2, width=64, heads=4, max_len=1024))
    large: StudentConfig | None = None  # about the specialists' combined parameters (None: combined_size)
    rationale: bool = True  # with formats=None: the full rationale (True) or the answer alone for every task
    formats: dict | str | None = "recipe"  # task -> rationale format or None (answer alone); "recipe": the recipes'
    levels: tuple[int, ...] | None = (1, 2)  # training levels (None: every level up to each task's BBH level)
    test_level: int | None = 2  # the level scored (None: each task's BBH level)
    steps_per_task: int = 300  # each specialist's steps; the multi-task arms get the same total compute
    batch_size: int = 16
    lr: float = 3e-3
    scheme: str | dict = "uniform"  # the multi-task mix (uniform: each task gets its specialist's data)
    temperature: float = 5.0  # for scheme="temperature"
    adapter_rank: int = 4
    adapter_steps: int = 75  # per task, on the frozen multi-task body (reported as extra compute)
    adapter_lr: float = 2e-3
    eval_every: int = 0  # validation during training, a multiple of 8 (loss_balanced re-weights then); 0: none
    eval_n: int = 16  # validation examples per task and evaluation
    test_n: int = 50  # BBH-level test examples per task in the final scoring
    eval_max_new_tokens: int | None = None  # cap on generated tokens (None: sized from the references)
    seed: int = 0
    arms: tuple[str, ...] = ARMS

    # laptop (the defaults): the two easiest levels of every task, scored at level 2 (tool_call's BBH level).
    # At the BBH level a 0.1M-parameter student trained for a minute per task scores 0 on four of the five tasks
    SIZES: ClassVar[dict] = {
        "smoke": dict(student=StudentConfig(layers=1, width=32, heads=2, max_len=512), levels=None, test_level=None,
                      steps_per_task=4, batch_size=4, adapter_rank=2, adapter_steps=2, test_n=2,
                      eval_max_new_tokens=24),
        "gpu": dict(student=StudentConfig(layers=4, width=256, heads=4, max_len=1024), levels=None, test_level=None,
                    steps_per_task=3000, batch_size=64, lr=1.5e-3, adapter_rank=8, adapter_steps=500, adapter_lr=1e-3,
                    test_n=250),
    }


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds; laptop: about ten minutes on 2 cores)."""
    return env.sized(Study, profile, **overrides)


def formats_of(s: Study) -> dict[str, str | None]:
    """What each task's student writes in ``s``: a rationale format per task, or None for the answer alone."""
    if s.formats == "recipe":
        return recipe_formats(s.tasks)
    if s.formats is None:
        return dict.fromkeys(s.tasks, FULL if s.rationale else None)
    if isinstance(s.formats, str):
        raise ValueError(f"formats is {s.formats!r}; accepted: 'recipe', None, or a dict of task -> format or None")
    return check_formats(s.formats, s.tasks)


def _train(s: Study, cfg: StudentConfig, task_names, steps: int, tags: bool = True, scheme="uniform",
           progress: bool = False):
    """A fresh student trained on ``task_names`` (tagged and mixed by ``scheme``, or plain for a specialist)."""
    if tags and scheme == "loss_balanced" and not s.eval_every:
        raise ValueError("the loss_balanced mix re-weights at each evaluation; set Study.eval_every (a multiple of 8)")
    every = formats_of(s)
    formats = {t: every[t] for t in task_names}
    alone = None if tags else formats[task_names[0]]  # a specialist writes its one task's format
    tcfg = TrainConfig(tasks=tuple(task_names), levels=s.levels, rationale=tags or alone is not None,
                       format=FULL if tags else alone or FULL, steps=steps,
                       batch_size=s.batch_size, lr=s.lr,
                       warmup=max(1, steps // 20), bucket=min(8, steps), eval_every=s.eval_every, eval_n=s.eval_n,
                       eval_max_new_tokens=s.eval_max_new_tokens, checkpoint_every=0, log_every=max(1, steps // 10),
                       seed=s.seed)
    sampler = MultiTaskSampler(task_names, scheme, None, s.temperature, s.levels, seed=s.seed, formats=formats) \
        if tags else None
    tok = CharTokenizer()
    env.set_seed(s.seed)  # the same initial weights for every arm of one size
    model = student(cfg, tok)
    res = train(model, tok, tcfg, sampler=sampler, progress=progress, validate_at_end=False,
                validate_fn=partial(validate, formats=formats) if tags else None)
    return model, tok, res


def _row(arm: str, accuracy: dict, params: int, nbytes: int, seconds: float, tokens: int, flops: float,
         steps: int, **extra) -> dict:
    return {"arm": arm, "accuracy": accuracy, "mean_accuracy": sum(accuracy.values()) / len(accuracy),
            "params": params, "bytes": nbytes, "train_seconds": seconds, "train_tokens": tokens,
            "train_flops": flops, "steps": steps, **extra}


def _specialist(s: Study, task_name: str, progress: bool = False) -> dict:
    model, tok, res = _train(s, s.student, (task_name,), s.steps_per_task, tags=False, progress=progress)
    acc = evaluate_tasks(model, tok, (task_name,), s.test_n, level=s.test_level, tags=False,
                         max_new_tokens=s.eval_max_new_tokens, formats={task_name: formats_of(s)[task_name]})[task_name]
    n = count_params(model)
    return {"task": task_name, "accuracy": acc, "params": n, "bytes": param_bytes(model), "train_seconds": res.seconds,
            "train_tokens": res.tokens, "train_flops": 6 * n * res.tokens}


def run(s: Study, progress: bool = False, callback=None) -> list[dict]:
    """Every arm of ``s`` trained and scored; one plain-data row per arm, ``callback(row)`` after each.

    Equal compute is counted as 6 N D (parameters x training tokens, Kaplan et al., 2020): k specialists of
    N_s parameters cost k x 6 N_s D; the multi-task student of N_s parameters gets k x steps_per_task steps
    of the same batch, and one of N_L parameters k x steps_per_task x N_s / N_L steps.
    """
    unknown = [a for a in s.arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r}; accepted: {', '.join(ARMS)}")
    formats = formats_of(s)
    rows, k, scoring = [], len(s.tasks), {"formats": formats, "max_new_tokens": s.eval_max_new_tokens,
                                         "level": s.test_level}

    def add(row):
        rows.append(row)
        if callback:
            callback(row)

    if "specialist" in s.arms:
        parts = list(env.starmap(_specialist, [(s, t, progress) for t in s.tasks]))  # side by side on a CPU
        add(_row("specialist", {p["task"]: p["accuracy"] for p in parts},
                 *(sum(p[key] for p in parts) for key in ("params", "bytes", "train_seconds", "train_tokens",
                                                          "train_flops")), k * s.steps_per_task, models=parts))
    if "multitask" in s.arms or "multitask+adapters" in s.arms:
        body, tok, res = _train(s, s.student, s.tasks, k * s.steps_per_task, scheme=s.scheme, progress=progress)
        n, steps = count_params(body), k * s.steps_per_task
        if "multitask" in s.arms:  # scored before the adapters wrap the body in place
            add(_row("multitask", evaluate_tasks(body, tok, s.tasks, s.test_n, **scoring), n, param_bytes(body),
                     res.seconds, res.tokens, 6 * n * res.tokens, steps))
    if "multitask-large" in s.arms:
        large = s.large or combined_size(s.student, k)
        n_large = _params(large)
        steps_large = max(1, round(k * s.steps_per_task * _params(s.student) / n_large))  # equal 6 N D
        model, tok_l, res_l = _train(s, large, s.tasks, steps_large, scheme=s.scheme, progress=progress)
        add(_row("multitask-large", evaluate_tasks(model, tok_l, s.tasks, s.test_n, **scoring), n_large,
                 param_bytes(model), res_l.seconds, res_l.tokens, 6 * n_large * res_l.tokens, steps_large))
    if "multitask+adapters" in s.arms:
        adapters = TaskAdapters(body, s.tasks, s.adapter_rank)
        acfg = TrainConfig(steps=s.adapter_steps, batch_size=s.batch_size, lr=s.adapter_lr,
                           warmup=max(1, s.adapter_steps // 10), bucket=min(8, s.adapter_steps), eval_every=0,
                           checkpoint_every=0, log_every=max(1, s.adapter_steps // 4), seed=s.seed)
        runs = [adapters.train(tok, t, acfg, progress, fmt=formats[t]) for t in s.tasks]
        size = adapters.sizes()
        total = size["body_params"] + sum(size["adapter_params"].values())
        tokens = res.tokens + sum(r.tokens for r in runs)
        acc = evaluate_tasks(adapters.model, tok, s.tasks, s.test_n, adapters=adapters, **scoring)
        # 6 N D overstates adapter training a little: the frozen body needs no weight gradients
        add(_row("multitask+adapters", acc, total, size["total_bytes"], res.seconds + sum(r.seconds for r in runs),
                 tokens, 6 * n * res.tokens + 6 * total * (tokens - res.tokens), steps + k * s.adapter_steps,
                 adapter_steps=k * s.adapter_steps, adapter_params=size["adapter_params"],
                 adapter_bytes=size["adapter_bytes"]))
    return rows


def transfer_matrix(s: Study, specialist_accuracy: dict | None = None, progress: bool = False,
                    callback=None, tasks: tuple[str, ...] | None = None) -> tuple[list[list[float]], dict]:
    """M[a][b]: accuracy on task b of a student trained on {a, b} (2 x steps_per_task, uniform mix) minus
    that of b's specialist (steps_per_task); the diagonal is 0. Rows and columns follow ``tasks`` (None:
    ``s.tasks``; ``learned_tasks`` leaves out those no arm learned, whose pairs say nothing).

    ``specialist_accuracy`` (task -> accuracy, e.g. ``run``'s specialist row) saves training them again.
    Returns the matrix and the raw accuracies: ``{"specialist": {b: acc}, "pair": {"a+b": {a: acc, b: acc}}}``.
    """
    tasks = tuple(s.tasks if tasks is None else tasks)
    unknown = [t for t in tasks if t not in s.tasks]
    if unknown or len(tasks) < 2:
        raise ValueError(f"tasks {list(tasks)!r}: need two or more of the study's tasks ({', '.join(s.tasks)})")
    spec = dict(specialist_accuracy) if specialist_accuracy else {
        p["task"]: p["accuracy"] for p in env.starmap(_specialist, [(s, t, progress) for t in tasks])}
    pairs = {}
    jobs = [(s, a, b, progress) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    for (_, a, b, _), acc in zip(jobs, env.starmap(_pair, jobs)):  # independent students: side by side on a CPU
        pairs[f"{a}+{b}"] = acc
        if callback:
            callback({"pair": (a, b), **acc})

    def pair(a, b):
        return pairs.get(f"{a}+{b}") or pairs[f"{b}+{a}"]

    matrix = [[0.0 if a == b else pair(a, b)[b] - spec[b] for b in tasks] for a in tasks]
    return matrix, {"specialist": spec, "pair": pairs, "tasks": tasks}


def _pair(s: Study, a: str, b: str, progress: bool = False) -> dict:
    """A student trained on tasks ``a`` and ``b`` (2 x steps_per_task, uniform mix): its accuracy on each."""
    model, tok, _ = _train(s, s.student, (a, b), 2 * s.steps_per_task, progress=progress)
    return evaluate_tasks(model, tok, (a, b), s.test_n, level=s.test_level, max_new_tokens=s.eval_max_new_tokens,
                          formats=formats_of(s))


def learned_tasks(s: Study, verdict_: dict) -> tuple[str, ...]:
    """The tasks worth pairing in ``transfer_matrix``: those some arm scored above 0% on (``verdict``'s
    ``unlearned`` left out), or every task when fewer than two were learned (nothing to leave out then)."""
    learned = tuple(t for t in s.tasks if t not in verdict_.get("unlearned", ()))
    return learned if len(learned) >= 2 else tuple(s.tasks)


def table(rows: list[dict]) -> str:
    """``run``'s rows as a markdown table (accuracy in %, at the BBH level)."""
    names = list(rows[0]["accuracy"])
    lines = ["| arm | " + " | ".join(names) + " | mean | params | MB (fp32) | train s | train tokens | 6ND |",
             "|---" * (len(names) + 7) + "|"]
    for r in rows:
        accs = " | ".join(f"{100 * r['accuracy'][t]:.1f}" for t in names)
        lines.append(f"| {r['arm']} | {accs} | {100 * r['mean_accuracy']:.1f} | {r['params']:,} | "
                     f"{r['bytes'] / 1e6:.2f} | {r['train_seconds']:.1f} | {r['train_tokens']:,} | "
                     f"{r['train_flops']:.2e} |")
    return "\n".join(lines)


def verdict(rows: list[dict], points: float = 1.0, param_share: float = 1 / 3) -> dict:
    """The issue's target, computed for every multi-task arm: within ``points`` of each specialist on every
    task (gaps in points, + when the arm is better) while holding at most ``param_share`` of their
    combined parameters. ``met``: the multi-task student of a specialist's size meets it; ``met_by``: every
    arm that does."""
    by = {r["arm"]: r for r in rows}
    if "specialist" not in by:
        raise ValueError("the verdict compares against the specialists; include the 'specialist' arm")
    spec = by["specialist"]
    out = {"specialist_params": spec["params"], "arms": {}}
    for arm, r in by.items():
        if arm == "specialist":
            continue
        gaps = {t: 100 * (r["accuracy"][t] - a) for t, a in spec["accuracy"].items()}
        share = r["params"] / spec["params"]
        close = all(g >= -points - 1e-9 for g in gaps.values())
        out["arms"][arm] = {"gaps": gaps, "worst_gap": min(gaps.values()), "within_points": close,
                            "param_share": share, "meets_target": close and share <= param_share + 1e-9}
    # every specialist at 0% makes "within 1 point" empty: say so rather than call it met
    out["specialists_learned"] = any(a > 0 for a in spec["accuracy"].values())
    # a task every arm scored 0% on says nothing about transfer: the sentences name it
    out["tasks"] = list(spec["accuracy"])
    out["unlearned"] = [t for t in out["tasks"] if all(r["accuracy"][t] == 0 for r in rows)]
    if not out["specialists_learned"]:
        for v in out["arms"].values():
            v["meets_target"] = False
    plain = out["arms"].get("multitask")
    out["gaps"] = plain["gaps"] if plain else None
    out["met"] = bool(plain and plain["meets_target"])
    out["met_by"] = [arm for arm, v in out["arms"].items() if v["meets_target"]]
    return out


def sentences(verdict: dict) -> list[str]:
    """What the verdict says, as the sentences notebook 06 prints (with its caveat when nothing was learned)."""
    lines = []
    if not verdict["specialists_learned"]:
        lines.append("Every specialist scored 0% at this size: 'within 1 point' says nothing here, so no arm is "
                     "called a success.")
    elif verdict.get("unlearned"):
        n = len(verdict["unlearned"])
        lines.append(f"0% in every arm on {', '.join(verdict['unlearned'])}: at this size no arm learned "
                     f"{'that task' if n == 1 else 'those tasks'}, so 'within 1 point' holds there trivially and the "
                     f"comparison rests on the other {len(verdict['tasks']) - n}.")
    for arm, v in verdict["arms"].items():
        lines.append(f"{arm}: worst gap {v['worst_gap']:+.1f} points against the specialists, "
                     f"{v['param_share']:.2f}x their combined parameters"
                     + (" (meets the target)." if v["meets_target"] else "."))
    lines.append("Target (a specialist-sized multi-task student within 1 point with <= 1/3 of the parameters) "
                 + ("met." if verdict["met"] else "NOT met."))
    return lines
