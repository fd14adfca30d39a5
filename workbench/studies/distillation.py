"""The teachers and the side-by-side distillation study of notebook 03.

    s = studies.distillation.study()                          # sized by the profile
    teacher = studies.distillation.specialist_teacher(s)      # a larger student trained here (cached)
    runs = studies.distillation.curve(s, teacher)             # accuracy vs labelled data, every regime
    studies.distillation.table(runs, s)

The data-efficiency curve follows Hsieh et al. (2023): the same student, the same steps, trained on
the first k labelled examples of one fixed pool, once per regime. Label-only training sees the
inputs and their gold answers; every distillation regime sees the same inputs plus what the teacher
makes of them (its rationales, its distributions, its scores of the student's own text).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from workbench import distill
from workbench.core import env
from workbench.core.models import StudentConfig
from workbench.tasks import Example

REGIMES = ("label_only", "sequence_level", "step_by_step", "logit_kd", "on_policy")


@dataclass
class Study:
    task: str = "boolean_expressions"
    pool: int = 1000  # labelled examples at 100% (boolean_expressions has ~1,400 distinct BBH-level inputs)
    fractions: tuple[float, ...] = (0.05, 0.25, 1.0)  # shares of the pool on the curve
    regimes: tuple[str, ...] = REGIMES
    full_regimes: tuple[str, ...] | None = ("label_only",)  # the regimes also trained on the whole pool (None: all);
    # laptop: label-only alone, the reference the distilled students with 5-25% of the labels are measured against
    student: StudentConfig = field(default_factory=lambda: StudentConfig(layers=2, width=64, heads=4, max_len=512))
    steps: int = 400  # the same budget for every regime and fraction
    batch_size: int = 16  # small batches, more updates: what a 0.1M student on 2 cores learns most from
    lr: float = 3e-3
    loss: str = "forward_kl"  # logit_kd's divergence
    temperature: float = 2.0
    alpha: float = 0.5  # logit_kd: the label cross-entropy's share
    mix: float = 0.5  # on_policy: share of steps on the student's own samples
    test_n: int = 100  # test examples at the BBH level
    teacher_profile: str = "laptop"  # the specialist recipe the teacher comes from
    side_share: float = 0.25  # the fraction where the divergences and the pretrained teacher are compared
    max_new_tokens: int | None = None  # cap on every generation (None: sized from the references; smoke caps it)
    seed: int = 0

    SIZES: ClassVar[dict] = {
        "smoke": dict(pool=40, fractions=(0.25, 1.0), full_regimes=None, steps=8, batch_size=8, test_n=4,
                      teacher_profile="smoke",
                      max_new_tokens=32, student=StudentConfig(layers=1, width=32, heads=2, max_len=512)),
        "gpu": dict(pool=8000, fractions=(0.05, 0.1, 0.25, 0.5, 1.0), full_regimes=None, steps=2000, batch_size=64,
                    student=StudentConfig(layers=4, width=128, heads=4, max_len=512), test_n=250,
                    teacher_profile="gpu"),
    }


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds; laptop: about ten minutes on 2 cores)."""
    return env.sized(Study, profile, **overrides)


# teachers -------------------------------------------------------------------------------------
def specialist_teacher(s: Study, progress: bool = False):
    """(model, tokenizer, card): the task's specialist of ``s.teacher_profile`` (laptop: the shipped one)."""
    from workbench.core.recipes import specialist

    return specialist(s.task, s.teacher_profile, progress=progress)


def specialist_id(card: dict) -> str:
    """The identity of a specialist teacher for ``teacher_texts``' cache: its name, the recipe that made it and the
    dtype its weights are stored in, so a re-shipped or retrained specialist never reuses another's texts."""
    return f"specialist:{card['name']}:{card.get('recipe_key')}:{card.get('stored_dtype', 'float32')}"


@dataclass
class LoraTeacher:
    base: str = "smollm2-135m-instruct"  # a name load_pretrained knows, a folder, or a hub id
    rank: int = 8
    steps: int = 120  # 2.7 s a step of 16 rationales on 2 cores: 5.5 min (measured); laptop ships it (data/teachers)
    batch_size: int = 16
    lr: float = 1e-3
    test_n: int = 100  # test examples at the BBH level the card reports (the study's test set when n matches)

    SIZES: ClassVar[dict] = {"smoke": dict(steps=2, batch_size=4, test_n=2),
                             "gpu": dict(base="gemma-3-270m", steps=600, batch_size=32, lr=5e-4, test_n=250)}


def lora_teacher_config(profile: str | None = None, **overrides) -> LoraTeacher:
    """The LoRA teacher's recipe sized for ``profile``."""
    return env.sized(LoraTeacher, profile, **overrides)


SHIPPED_TEACHERS = Path(__file__).resolve().parents[2] / "data" / "teachers"  # `ship_teacher`'s adapters


def teacher_id(task: str, cfg: LoraTeacher) -> str:
    """The name of this recipe's teacher: its cache folder, its shipped folder and the id of its cached texts."""
    key = hashlib.sha256(json.dumps({"task": task, **asdict(cfg)}, sort_keys=True).encode()).hexdigest()[:12]
    return f"{Path(cfg.base).name}-{task}-{key}"


def lora_teacher(task: str, cfg: LoraTeacher, progress: bool = False, fresh: bool = False):
    """(model, tokenizer, card): a pretrained model fine-tuned with LoRA on the task's rationales, adapters
    merged. The adapters the repository ships (``data/teachers``, `ship_teacher`) are loaded when they were made
    by this recipe (their folder is named by it); otherwise the adapters (a few MB, safetensors) and the card are
    trained once and cached, and later calls only load them (``fresh``: never the shipped ones). The card's
    ``id`` names this recipe: the teacher id for ``teacher_texts``."""
    from peft import PeftModel

    from workbench import lora
    from workbench.core.artifacts import read_card, write_card
    from workbench.core.files import readable
    from workbench.core.measure import count_params
    from workbench.core.models import cache_dir, load_pretrained

    folder = cache_dir() / "teachers" / teacher_id(task, cfg)
    model, tok = load_pretrained(cfg.base)
    for where in ([] if fresh else [SHIPPED_TEACHERS / folder.name]) + [folder]:
        if (where / "workbench.json").exists():
            merged = lora.merge(PeftModel.from_pretrained(model, where))
            return merged, tok, {**read_card(where), "id": folder.name}
    t0 = time.perf_counter()
    run = lora.finetune(model, tok, task, rank=cfg.rank, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                        rationale=True)
    seconds = time.perf_counter() - t0
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    run["model"].save_pretrained(tmp, safe_serialization=True)
    merged = lora.merge(run["model"])
    card = {"name": f"{cfg.base} + LoRA r={cfg.rank} on {task}", "id": folder.name, "tasks": [task], "base": cfg.base,
            "description": f"`{cfg.base}` with rank-{cfg.rank} LoRA adapters fine-tuned by small-reasoners on the "
                           f"rationales of `{task}`; this folder holds the adapters only (peft, safetensors).",
            "lora": asdict(cfg), "params": count_params(merged), "trainable": run["trainable"],
            "train_seconds": seconds, "seconds_per_step": run["seconds_per_step"],
            "eval": _score_teacher(merged, tok, task, cfg)}
    write_card(tmp, card)  # the card last: a folder with a card is complete
    os.replace(readable(tmp), folder)
    return merged, tok, card


def _score_teacher(model, tokenizer, task: str, cfg: LoraTeacher) -> dict:
    """The card's ``eval``: the teacher's rationales and answers on ``cfg.test_n`` BBH-level test questions."""
    from workbench.core.evaluate import EvalConfig, evaluate
    from workbench.tasks import splits

    test = splits.load(task, "test", level=_bbh(task), n=cfg.test_n)
    cap = 32 if cfg.steps < 10 else None
    res = evaluate(model, tokenizer, task, test, EvalConfig(rationale=True, batch_size=32, max_new_tokens=cap))
    return {"n": res.n, "accuracy": res.accuracy, "latency_ms": res.latency_ms, "max_new_tokens": cap}


def ship_teacher(task: str, cfg: LoraTeacher, progress: bool = False) -> dict:
    """Ship this recipe's LoRA teacher in ``data/teachers`` so a workshop loads it instead of training it: the
    adapters (trained once, cached) stored in float16, scored again as stored (the card's ``eval``; the trained
    adapters' score stays as ``trained_eval``), with the card and a model card. Shipped teachers of the same base
    and task made by other recipes are removed. Returns the new card."""
    import shutil

    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    from workbench import lora
    from workbench.core.artifacts import read_card, write_card
    from workbench.core.files import replace_folder
    from workbench.core.models import cache_dir, load_pretrained

    name = teacher_id(task, cfg)
    src = cache_dir() / "teachers" / name
    if not (src / "workbench.json").exists():  # the recipe's own run, trained once (its card is written last)
        lora_teacher(task, cfg, progress=progress, fresh=True)
    SHIPPED_TEACHERS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=SHIPPED_TEACHERS))
    try:
        tensors = load_file(src / "adapter_model.safetensors")
        save_file({k: v.half().contiguous() for k, v in tensors.items()}, tmp / "adapter_model.safetensors",
                  metadata={"format": "pt"})
        shutil.copy(src / "adapter_config.json", tmp / "adapter_config.json")
        model, tok = load_pretrained(cfg.base)
        merged = lora.merge(PeftModel.from_pretrained(model, tmp))
        trained = read_card(src)
        card = {**trained, "id": name, "stored_dtype": "float16", "trained_eval": trained["eval"],
                "eval": _score_teacher(merged, tok, task, cfg)}
        write_card(tmp, card)
        replace_folder(tmp, SHIPPED_TEACHERS / name, stale=SHIPPED_TEACHERS.glob(f"{Path(cfg.base).name}-{task}-*"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card


def _cache_file(kind: str, key: dict) -> Path:
    from workbench.core.models import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_dir() / "distill" / f"{kind}-{digest}.jsonl"


def _write_jsonl(path: Path, examples: list[Example]) -> None:
    from workbench.core.files import write_atomic

    write_atomic(path, "".join(json.dumps(asdict(ex)) + "\n" for ex in examples))  # never read back half-written


def _cached_texts(path: Path, examples: list[Example]) -> list[Example] | None:
    """The cached teacher texts for ``examples``, or None (with a warning naming the file and line) when the cache
    is damaged: it is the project's own derived file, so it is discarded and made again, not left to the user."""
    from workbench.core.validate import BadInput, read_records

    try:
        cached = read_records(path, "teacher texts cache")
        if [e.input for e in cached] != [e.input for e in examples]:
            raise BadInput(f"{path}: holds {len(cached)} texts, not the {len(examples)} inputs it was made for")
    except BadInput as err:
        warnings.warn(f"{err}; discarding it and asking the teacher again", stacklevel=3)
        return None
    return cached


def teacher_texts(teacher, tokenizer, examples: list[Example], teacher_id: str, batch_size: int = 64,
                  max_new_tokens: int | None = None) -> list[Example]:
    """``distill.teacher_examples`` for a pool, cached on disk under the teacher's identity and the inputs."""
    key = {"teacher": teacher_id, "inputs": [e.input for e in examples], "budget": max_new_tokens, "version": 1}
    path = _cache_file("texts", key)
    if path.exists():
        cached = _cached_texts(path, examples)
        if cached is not None:
            return cached
    made = distill.teacher_examples(teacher, tokenizer, examples, batch_size=batch_size, max_new_tokens=max_new_tokens)
    _write_jsonl(path, made)
    return made


# one run --------------------------------------------------------------------------------------
def run_one(s: Study, regime: str, share: float, labelled: list[Example], texts: list[Example], teacher=None,
            tokenizer=None, test: list[Example] | None = None, loss: str | None = None,
            student_config: StudentConfig | None = None, progress: bool = False) -> dict:
    """Train one student under ``regime`` on the first ``share`` of the pool and score it at the BBH level.

    ``labelled``: the gold pool; ``texts``: the teacher's rationale and answer for each of its inputs.
    Students of step_by_step and label_only answer directly; the others write a rationale first.
    """
    from workbench.core import env
    from workbench.core.evaluate import EvalConfig, evaluate
    from workbench.core.measure import count_params
    from workbench.core.models import student
    from workbench.core.tokenizer import CharTokenizer
    from workbench.core.train import TrainConfig, lm_loss, train

    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; accepted: {', '.join(REGIMES)}")
    tok = tokenizer or CharTokenizer()
    gold, made = distill.fraction(labelled, share), distill.fraction(texts, share)
    rationale, loss_fn = True, None
    if regime == "label_only":
        pool, rationale = distill.label_only(gold), False
    elif regime == "step_by_step":
        pool, rationale = distill.step_by_step_examples(gold, made), False
    else:
        pool = made
        if regime == "logit_kd":
            loss_fn = distill.LogitKD(teacher, loss or s.loss, s.temperature, s.alpha, student_tokenizer=tok,
                                      teacher_tokenizer=tok, cache=True)
        elif regime == "on_policy":  # supervised for the first half, then half the steps on the student's samples
            loss_fn = distill.OnPolicyKD(teacher, tok, loss or "jsd", mix=s.mix, alpha=s.alpha, start=s.steps // 2,
                                         seed=s.seed, cache=True)
    cfg = TrainConfig(tasks=(s.task,), rationale=rationale, steps=s.steps, batch_size=s.batch_size, lr=s.lr,
                      warmup=max(1, s.steps // 10), eval_every=0, checkpoint_every=0,
                      log_every=max(1, s.steps // 4), seed=s.seed)
    env.set_seed(s.seed)  # the same initial weights for every regime
    model = student(student_config or s.student, tok)
    t0 = time.perf_counter()
    train(model, tok, cfg, sampler=distill.PoolSampler(pool, s.seed), loss_fn=loss_fn or lm_loss,
          progress=progress, validate_at_end=False)
    seconds = time.perf_counter() - t0
    test = test if test is not None else test_set(s)
    asked = distill.label_prompts(test) if regime == "step_by_step" else test
    res = evaluate(model, tok, s.task, asked, EvalConfig(rationale=rationale, batch_size=64,
                                                          max_new_tokens=s.max_new_tokens))
    return {"regime": regime, "loss": loss or (s.loss if regime == "logit_kd" else "jsd" if regime == "on_policy"
                                               else None),
            "share": share, "labelled": len(gold), "accuracy": res.accuracy, "params": count_params(model),
            "train_seconds": seconds, "latency_ms": res.latency_ms, "model": model}


def _bbh(task_name: str) -> int:
    from workbench import tasks

    return tasks.get(task_name).bbh_level


def test_set(s: Study) -> list[Example]:
    """The questions every model of the study is scored on: ``s.test_n`` BBH-level test examples."""
    from workbench.tasks import splits

    return splits.load(s.task, "test", level=_bbh(s.task), n=s.test_n)


def curve(s: Study, teacher, tokenizer, texts: list[Example], labelled: list[Example], callback=None,
          progress: bool = False) -> list[dict]:
    """Every regime of ``s`` at every fraction (at the whole pool: ``s.full_regimes``), side by side;
    ``callback(run)`` after each (a live plot). Each run keeps its trained student under ``"model"``."""

    test = test_set(s)
    runs = []
    jobs = [(s, regime, share, labelled, texts, teacher, tokenizer, test, None, None, progress)
            for share in s.fractions for regime in s.regimes
            if not (share >= 1.0 and s.full_regimes is not None and regime not in s.full_regimes)]
    for run in env.starmap(run_one, jobs):  # independent students: side by side on a CPU, a process per core
        runs.append(run)
        if callback:
            callback(run)
    return runs


def table(runs: list[dict], s: Study) -> str:
    """Markdown: one row per regime, accuracy at each fraction of the labelled pool."""
    shares = sorted({r["share"] for r in runs})
    head = "| regime | " + " | ".join(f"{100 * f:g}% ({round(f * s.pool)})" for f in shares) + " |"
    lines = [head, "|---" * (len(shares) + 1) + "|"]
    for regime in dict.fromkeys(r["regime"] for r in runs):
        acc = {r["share"]: r["accuracy"] for r in runs if r["regime"] == regime}
        lines.append(f"| {regime} | " + " | ".join(f"{100 * acc[f]:.0f}%" if f in acc else "" for f in shares) + " |")
    return "\n".join(lines)


def verdict(runs: list[dict], max_share: float = 0.25) -> dict:
    """Target 1: a distilled student with at most ``max_share`` of the labels matches or beats label-only at 100%."""
    full = max((r["accuracy"] for r in runs if r["regime"] == "label_only" and r["share"] == 1.0), default=None)
    best = max((r for r in runs if r["regime"] != "label_only" and r["share"] <= max_share),
               key=lambda r: r["accuracy"], default=None)
    return {"label_only_100": full, "best_distilled": best and {k: best[k] for k in ("regime", "share", "accuracy")},
            "met": bool(full is not None and best and best["accuracy"] >= full)}


def divergences(s: Study, labelled, texts, teacher, tokenizer, callback=None, done=()) -> list[dict]:
    """logit_kd at ``s.side_share`` once per divergence (forward KL, reverse KL, JSD), same student and steps.
    ``done``: runs already made (the curve's), reused where one matches."""

    test = test_set(s)
    made = {r["loss"]: r for r in done if r["regime"] == "logit_kd" and r["share"] == s.side_share}
    todo = [loss for loss in distill.LOSSES if loss not in made]
    jobs = [(s, "logit_kd", s.side_share, labelled, texts, teacher, tokenizer, test, loss) for loss in todo]
    trained = iter(list(env.starmap(run_one, jobs)))  # side by side on a CPU, a process per core
    runs = []
    for loss in distill.LOSSES:
        run = made.get(loss)
        if run is None:
            run = next(trained)
            run.pop("model")
        runs.append(run)
        if callback:
            callback(run)
    return runs


# across tokenizers ----------------------------------------------------------------------------
def across_tokenizers(s: Study, teacher, teacher_tok, teacher_id: str, labelled: list[Example],
                      extra_texts=()) -> dict:
    """A pretrained BPE teacher and students that do not share its vocabulary, at ``s.side_share``.

    1. sequence-level through text: a character-level student trains on the teacher's rationales;
    2. vocabulary trimming: the teacher's tokenizer cut to the tokens the task uses (the parameters that
       alone removes), the trimmed teacher, and a student built on that trimmed tokenizer, trained by
       logit distillation over the kept tokens (the teacher's distributions renormalised on them).
    """
    from workbench.vocab import TrimmedVocab

    gold = distill.fraction(labelled, s.side_share)
    t0 = time.perf_counter()
    made = teacher_texts(teacher, teacher_tok, gold, teacher_id, batch_size=32, max_new_tokens=s.max_new_tokens)
    text_seconds = time.perf_counter() - t0
    test = test_set(s)
    char = run_one(s, "sequence_level", 1.0, gold, made, test=test)
    # the task's text, in the teacher's tokens: every prompt and completion a student or teacher writes
    from workbench.core.evaluate import student_prompt

    texts = [student_prompt(e.input) + e.rationale for e in [*labelled, *made]] + list(extra_texts)
    vocab = TrimmedVocab.from_texts(teacher_tok, texts)
    small_tok = vocab.tokenizer(teacher_tok)
    trimmed_teacher = vocab.trim(teacher)
    bpe = run_one(s, "logit_kd", 1.0, gold, made, trimmed_teacher, small_tok, test=test)
    return {"teacher_texts_seconds": text_seconds, "agreement": distill.agreement(made, gold),
            "sequence_level": char, "trimming": vocab.report(teacher), "trimmed_teacher": trimmed_teacher,
            "vocab": vocab, "trimmed_student": bpe, "trimmed_tokenizer": small_tok}


def trimming_report(name: str, texts: list[str]) -> dict:
    """What trimming ``name``'s vocabulary to the tokens of ``texts`` removes (tokenizer and config only)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from workbench.core.models import resolve
    from workbench.core.tokenizer import load_tokenizer
    from workbench.vocab import TrimmedVocab

    where = resolve(name)
    tok = load_tokenizer(where)
    vocab = TrimmedVocab.from_texts(tok, texts)
    with torch.device("meta"):  # shapes only: the parameter count without loading any weights
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(where))
    return {"model": name, **vocab.report(model)}


def scored(label: str, model, tokenizer, task: str, test: list[Example], rationale: bool = True,
           role: str = "student", asked: list[Example] | None = None, max_new_tokens: int | None = None) -> dict:
    """One row of the teacher-vs-student table: params, fp32 bytes, latency and accuracy on ``test``."""
    from workbench.core.evaluate import EvalConfig, evaluate
    from workbench.core.measure import count_params, param_bytes

    res = evaluate(model, tokenizer, task, asked or test, EvalConfig(rationale=rationale, batch_size=32,
                                                                     max_new_tokens=max_new_tokens))
    return {"model": label, "role": role, "params": count_params(model), "bytes": param_bytes(model),
            "latency_ms": res.latency_ms, "accuracy": res.accuracy, "n": res.n}


def teacher_row(label: str, model, tokenizer, card: dict, s: Study) -> dict:
    """``scored``'s teacher row for a LoRA teacher: read from its card when the card scored the study's test
    set the same way (same questions, same cap), else scored now."""
    from workbench.core.measure import count_params, param_bytes

    ev = card.get("eval", {})
    same = (card.get("tasks") == [s.task] and ev.get("n") == s.test_n
            and "max_new_tokens" in ev and ev["max_new_tokens"] == s.max_new_tokens)
    if not same:
        return scored(label, model, tokenizer, s.task, test_set(s), role="teacher", max_new_tokens=s.max_new_tokens)
    return {"model": label, "role": "teacher", "params": count_params(model), "bytes": param_bytes(model),
            "latency_ms": ev["latency_ms"], "accuracy": ev["accuracy"], "n": ev["n"]}


def size_table(rows: list[dict]) -> str:
    lines = ["| model | role | params | fp32 bytes | ms / example | accuracy |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['role']} | {r['params'] / 1e6:.2f}M | {r['bytes'] / 2**20:.1f} MiB | "
                     f"{r['latency_ms']:.1f} | {100 * r['accuracy']:.0f}% |")
    return "\n".join(lines)


def smaller_and_close(rows: list[dict], ratio: float = 20.0, points: float = 2.0) -> dict:
    """Target 2: a student at least ``ratio`` x smaller than its teacher within ``points`` of its accuracy.
    Rows carry ``teacher`` (the label of the teacher row they were distilled from)."""
    by = {r["model"]: r for r in rows}
    pairs = []
    for r in rows:
        t = by.get(r.get("teacher"))
        if t is None:
            continue
        pairs.append({"student": r["model"], "teacher": t["model"], "ratio": t["params"] / r["params"],
                      "gap_points": 100 * (t["accuracy"] - r["accuracy"])})
    ok = [p for p in pairs if p["ratio"] >= ratio and p["gap_points"] <= points]
    return {"pairs": pairs, "met": bool(ok), "met_by": [p["student"] for p in ok]}


def sentences(curve_verdict: dict | None = None, close: dict | None = None) -> list[str]:
    """What ``verdict`` (target 1) and ``smaller_and_close`` (target 2) say, as notebook 03 prints them."""
    lines = []
    if curve_verdict is not None:
        best, full = curve_verdict["best_distilled"], curve_verdict["label_only_100"]
        if best is None or full is None:
            lines.append("Target 1: the curve lacks label-only at 100% or a distilled run at <= 25% of the labels.")
        else:
            lines.append(f"Target 1 {'met' if curve_verdict['met'] else 'NOT met'}: best distilled student "
                         f"({best['regime']}, {best['share']:.0%} of the labels) {best['accuracy']:.0%} against "
                         f"label-only with every label {full:.0%}.")
    if close is not None:
        for p in close["pairs"]:
            lines.append(f"{p['student']}: {p['ratio']:.0f}x smaller than {p['teacher']}, "
                         f"{p['gap_points']:+.0f} points behind it.")
        lines.append("Target 2 (>= 20x smaller, within 2 points) " + (
            f"met by {', '.join(close['met_by'])}." if close["met"] else "NOT met."))
    return lines
