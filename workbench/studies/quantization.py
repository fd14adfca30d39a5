"""The study of notebook 05: quantization and low-rank factorisation of a specialist, side by side, and LoRA
on a real pretrained model against full fine-tuning.

    s = studies.quantization.study()
    rows = studies.quantization.run(model, tok, s.task, examples)   # fp32, int8, int4, QAT, low-rank
    studies.quantization.verdict(rows)
    studies.quantization.lora_compare(s.lora_model, s.task, s.lora_ranks)   # LoRA vs full fine-tuning

Rows hold parameters, bytes on disk as each scheme saves them, the decoder's linear-layer bytes, forward
latency at batch 1 and 16, and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench import lora, lowrank, quantize
from workbench.core import env, report
from workbench.core.evaluate import EvalConfig, account, evaluate
from workbench.core.measure import count_params, forward_latency
from workbench.core.models import copy_model, load_pretrained
from workbench.prune import recover
from workbench.tasks import get, splits


@dataclass
class Study:
    task: str = "boolean_expressions"  # the specialist to compress
    eval_n: int = 100  # BBH-level test questions per variant
    recovery_steps: int = 100  # fine-tune after low-rank factorisation
    qat_steps: int = 100  # quantization-aware fine-tune
    recovery_batch: int = 16  # examples a recovery or QAT step; 16 scored as 32 did (or better) in half the time
    ranks: tuple[int, ...] = (32, 16)  # low-rank variants (one rank for every layer)
    lora_model: str = "smollm2-135m-instruct"  # the real pretrained model LoRA fine-tunes
    lora_ranks: tuple[int, ...] = (1, 8)
    lora_steps: int = 48
    lora_batch: int = 8
    lora_n: int = 30  # test questions for the LoRA comparison
    lora_full: bool = True  # also fine-tune every weight, for the gap LoRA should close

    SIZES: ClassVar[dict] = {
        "smoke": dict(eval_n=4, recovery_steps=4, qat_steps=4, ranks=(16,), lora_ranks=(1,), lora_steps=2,
                      lora_batch=2, lora_n=2),
        "gpu": dict(lora_ranks=(1, 2, 4, 8, 16), lora_steps=200, lora_batch=16, lora_n=100, recovery_batch=32),
    }


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


def run(model, tokenizer, s: Study, examples, callback=None) -> list[dict]:
    """fp32, dynamic int8, weight-only int8 and int4, QAT int4, and low-rank at ``s.ranks`` (+ recovery), each
    ``evaluate.account``'s row plus the decoder's linear parameters and bytes; ``callback(row)`` after each."""
    rows = []
    forward_latency(model, 16, repeats=1)  # warm the thread pool before the first (fp32) measurement

    def add(m, label, save=None, same_weights_as=None):
        counted = same_weights_as if same_weights_as is not None else m  # quantized: the fp32 count
        rows.append(account(m, tokenizer, s.task, examples, label, params=count_params(counted), save=save,
                            linear_params=lowrank.linear_params(counted), linear_bytes=quantize.linear_bytes(m)))
        if callback:
            callback(rows[-1])

    add(model, "fp32")
    add(quantize.dynamic_int8(model), "int8 dynamic", quantize.save, model)
    add(quantize.weight_only(model, 8), "int8 weight-only", quantize.save, model)
    add(quantize.weight_only(model, 4), "int4 weight-only", quantize.save, model)
    qat = quantize.qat_finetune(model, tokenizer, s.task, bits=4, steps=s.qat_steps, batch_size=s.recovery_batch)
    add(qat, f"int4 QAT ({s.qat_steps} steps)", quantize.save, model)
    for r in s.ranks:
        small = lowrank.factorize(model, rank=r)
        add(small, f"low-rank r={r}", lowrank.save)
        if s.recovery_steps:
            small = recover(copy_model(small), tokenizer, s.task, None, steps=s.recovery_steps,
                            batch_size=s.recovery_batch)
            add(small, f"low-rank r={r} + recovery", lowrank.save)
    return rows


def table(rows: list[dict]) -> str:
    return report.table(rows, {
        "variant": "{model}", "params": "{params:,}", "linear params": "{linear_params:,}",
        "bytes on disk": "{bytes:,}", "linear-layer bytes": "{linear_bytes:,}", "latency b1, ms": "{latency_b1_ms:.1f}",
        "latency b16, ms": "{latency_b16_ms:.1f}", "accuracy": "{accuracy:.1%}"})


def verdict(rows: list[dict]) -> dict:
    """The issue's targets: int8 >= 3.5x smaller linear layers, >= 2x faster at batch 16, within 1 point;
    a low-rank variant with half the linear parameters within 2 points after recovery."""
    fp = next(r for r in rows if r["model"] == "fp32")
    int8 = next(r for r in rows if r["model"] == "int8 dynamic")
    out = {"int8_linear_bytes_ratio": fp["linear_bytes"] / int8["linear_bytes"],
           "int8_speedup_b16": fp["latency_b16_ms"] / int8["latency_b16_ms"],
           "int8_gap_points": 100 * (fp["accuracy"] - int8["accuracy"])}
    out["int8_met"] = (out["int8_linear_bytes_ratio"] >= 3.5 and out["int8_speedup_b16"] >= 2
                       and out["int8_gap_points"] <= 1)
    low = [r for r in rows if r["model"].startswith("low-rank") and r["model"].endswith("recovery")
           and r["linear_params"] <= fp["linear_params"] / 2]
    out["lowrank"] = [{"model": r["model"], "linear_params_ratio": r["linear_params"] / fp["linear_params"],
                       "gap_points": 100 * (fp["accuracy"] - r["accuracy"])} for r in low]
    out["lowrank_met"] = any(x["gap_points"] <= 2 for x in out["lowrank"])
    return out


# LoRA on a real pretrained model -------------------------------------------------------------
def lora_compare(name: str, task_name: str, ranks=(1, 4, 16), steps: int = 40, batch_size: int = 8, n: int = 30,
            full: bool = True, callback=None) -> list[dict]:
    """A real pretrained model fine-tuned answer-only on ``task_name``: before, LoRA at each rank
    (merged, and checked against the adapter model), and full fine-tuning, scored on ``n`` BBH-level
    test questions in the student format (question, newline, answer)."""
    examples = splits.load(task_name, "test", level=get(task_name).bbh_level, n=n)
    cfg = EvalConfig(rationale=False, batch_size=8)
    rows = []

    def score(model, label, **info):
        rows.append({"model": label, "accuracy": evaluate(model, tok, task_name, examples, cfg).accuracy, **info})
        if callback:
            callback(rows[-1])

    base, tok = load_pretrained(name)
    probe = tok([examples[0].input + "\n"], return_tensors="pt").input_ids
    score(base, f"{name} before fine-tuning", rank=None, trainable=0, trainable_fraction=0.0)
    for rank in list(ranks) + ([0] if full else []):
        model, tok = load_pretrained(name)
        run = lora.finetune(model, tok, task_name, rank=rank, steps=steps, batch_size=batch_size)
        info = {k: run[k] for k in ("rank", "trainable", "trainable_fraction", "seconds_per_step",
                                    "train_state_bytes")}
        if rank:
            with torch.no_grad():
                before = run["model"](input_ids=probe).logits
                merged = lora.merge(run["model"])
                info["merged_max_abs_diff"] = float((merged(input_ids=probe).logits - before).abs().max())
            score(merged, f"LoRA r={rank} (merged)", **info)
        else:
            score(run["model"].eval(), "full fine-tune", **info)
    return rows


def lora_verdict(rows: list[dict]) -> dict:
    """The issue's LoRA target: under 2% trainable and at least 90% of the gap full fine-tuning closes."""
    before = rows[0]["accuracy"]
    full = next((r for r in rows if r.get("rank") == 0), None)
    gap = (full["accuracy"] - before) if full else None
    out = {"before": before, "full": full and full["accuracy"], "full_gap_points": None if gap is None else 100 * gap,
           "lora": []}
    for r in rows:
        if r.get("rank"):
            closed = (r["accuracy"] - before) / gap if gap else None
            meets = r["trainable_fraction"] < 0.02 and closed is not None and closed >= 0.9
            out["lora"].append({"rank": r["rank"], "trainable_fraction": r["trainable_fraction"],
                                "share_of_full_gap": closed, "meets_target": meets})
    out["met"] = any(x["meets_target"] for x in out["lora"])
    return out


def lora_table(rows: list[dict]) -> str:
    """``lora_compare``'s rows as a markdown table."""
    lines = ["| model | trainable | trainable % | s / step | training state, MB | merged vs adapters, max abs diff "
             "| accuracy |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        step = f"{r['seconds_per_step']:.2f}" if "seconds_per_step" in r else "-"
        state = f"{r['train_state_bytes'] / 1e6:.1f}" if "train_state_bytes" in r else "-"
        diff = f"{r['merged_max_abs_diff']:.1e}" if "merged_max_abs_diff" in r else "-"
        lines.append(f"| {r['model']} | {r['trainable']:,} | {100 * r['trainable_fraction']:.2f} | {step} | {state} "
                     f"| {diff} | {r['accuracy']:.1%} |")
    return "\n".join(lines)


def sentences(verdict: dict | None = None, lora: dict | None = None) -> list[str]:
    """What ``verdict`` and ``lora_verdict`` say, as the sentences notebook 05 prints."""
    lines = []
    if verdict is not None:
        lines.append(f"int8 dynamic: linear layers {verdict['int8_linear_bytes_ratio']:.1f}x smaller, "
                     f"{verdict['int8_speedup_b16']:.2f}x faster at batch 16, "
                     f"{verdict['int8_gap_points']:+.0f} points: "
                     f"target (3.5x, 2x, within 1 point) {'met' if verdict['int8_met'] else 'NOT met'}.")
        for r in verdict["lowrank"]:
            lines.append(f"{r['model']}: {r['linear_params_ratio']:.0%} of the linear parameters, "
                         f"{r['gap_points']:+.0f} points.")
        lines.append("Low-rank target (half the linear parameters within 2 points after recovery) "
                     + ("met." if verdict["lowrank_met"] else "NOT met."))
    if lora is not None:
        full = lora["full_gap_points"]
        lines.append(f"Full fine-tuning moved the pretrained model {full:+.0f} points." if full is not None
                     else "No full fine-tune to compare LoRA with.")
        for r in lora["lora"]:
            share = r["share_of_full_gap"]
            lines.append(f"LoRA r={r['rank']}: {100 * r['trainable_fraction']:.2f}% trainable, "
                         + ("-" if share is None else f"{share:.0%}") + " of full fine-tuning's gain.")
        lines.append("LoRA target (< 2% trainable, >= 90% of the gain) " + ("met." if lora["met"] else "NOT met."))
    return lines
