"""LoRA as efficient training (Hu et al., 2021, *LoRA: Low-rank adaptation of large language models*), with peft.

    run = lora.finetune(model, tok, "boolean_expressions", rank=8, steps=40)   # adapters only
    run = lora.finetune(model, tok, "boolean_expressions", rank=0, steps=40)   # full fine-tune, for contrast
    merged = lora.merge(run["model"])                                          # a plain model again

Each frozen weight W gains a trainable update (alpha / r) B A with A (r x in) and B (out x r), B
starting at zero, on every linear layer of the decoder. Only A and B train, so gradients and AdamW
state exist for a small fraction of the parameters; after training, B A is added into W and the
model is an ordinary one again (``merge``), with the same outputs.
"""

from __future__ import annotations

import time

import torch

from .prune import linear_layers


def targets(model) -> list[str]:
    """Module names LoRA attaches to: every kind of Linear in the decoder (q, k, v, o, gate, up, down)."""
    return sorted({n.rsplit(".", 1)[-1] for n in linear_layers(model)})


def wrap(model, rank: int, alpha: float | None = None):
    """The peft model with rank-``rank`` adapters on every decoder Linear."""
    from peft import LoraConfig, get_peft_model

    if not (isinstance(rank, int) and rank >= 1):
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    widest = min(min(lin.in_features, lin.out_features) for lin in linear_layers(model).values())
    if rank > widest:
        raise ValueError(f"LoRA rank {rank} is larger than the narrowest layer allows ({widest})")
    cfg = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=targets(model), lora_dropout=0.0)
    return get_peft_model(model, cfg)


def trainable(model) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def finetune(model, tokenizer, task_name: str, rank: int = 8, steps: int = 40, batch_size: int = 8,
             lr: float | None = None, rationale: bool = False, seed: int = 0) -> dict:
    """LoRA (``rank`` >= 1) or full (``rank=0``) fine-tuning on the one training loop, with its costs.

    Returns the trained model and: trainable parameters and fraction, seconds per step, and the
    bytes that training state takes (fp32 gradients plus AdamW's two moments for every trainable
    parameter), which is what LoRA saves; on a GPU also the peak memory allocated.
    """
    from .train import finetune_config, train

    if rank:
        model = wrap(model, rank)
    n_train, n_all = trainable(model)
    lr = lr or (5e-4 if rank else 2e-5)  # adapters start at zero: LoRA takes a larger step
    cfg = finetune_config(task_name, steps, lr, batch_size, rationale, seed)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(model, tokenizer, cfg, progress=False, validate_at_end=False)
    seconds = time.perf_counter() - t0
    out = {"model": model, "rank": rank, "trainable": n_train, "params": n_all,
           "trainable_fraction": n_train / n_all, "seconds_per_step": seconds / steps,
           "train_state_bytes": 12 * n_train, "tokens": res.tokens}
    if torch.cuda.is_available():
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return out


def merge(model):
    """Fold the adapters into the weights: a plain transformers model with the same outputs."""
    if not hasattr(model, "merge_and_unload"):
        raise ValueError("this model has no LoRA adapters to merge (wrap it with workbench.lora.wrap first)")
    return model.merge_and_unload().eval()


def compare(name: str, task_name: str, ranks=(1, 4, 16), steps: int = 40, batch_size: int = 8, n: int = 30,
            full: bool = True, callback=None) -> list[dict]:
    """A real pretrained model fine-tuned answer-only on ``task_name``: before, LoRA at each rank
    (merged, and checked against the adapter model), and full fine-tuning, scored on ``n`` BBH-level
    test questions in the student format (question, newline, answer)."""
    from .evaluate import EvalConfig, evaluate
    from .models import load_pretrained
    from .tasks import get, splits

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
        run = finetune(model, tok, task_name, rank=rank, steps=steps, batch_size=batch_size)
        info = {k: run[k] for k in ("rank", "trainable", "trainable_fraction", "seconds_per_step",
                                    "train_state_bytes")}
        if rank:
            with torch.no_grad():
                before = run["model"](input_ids=probe).logits
                merged = merge(run["model"])
                info["merged_max_abs_diff"] = float((merged(input_ids=probe).logits - before).abs().max())
            score(merged, f"LoRA r={rank} (merged)", **info)
        else:
            score(run["model"].eval(), "full fine-tune", **info)
    return rows


def verdict(rows: list[dict]) -> dict:
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


def table(rows: list[dict]) -> str:
    """``compare``'s rows as a markdown table."""
    lines = ["| model | trainable | trainable % | s / step | training state, MB | merged vs adapters, max abs diff "
             "| accuracy |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        step = f"{r['seconds_per_step']:.2f}" if "seconds_per_step" in r else "-"
        state = f"{r['train_state_bytes'] / 1e6:.1f}" if "train_state_bytes" in r else "-"
        diff = f"{r['merged_max_abs_diff']:.1e}" if "merged_max_abs_diff" in r else "-"
        lines.append(f"| {r['model']} | {r['trainable']:,} | {100 * r['trainable_fraction']:.2f} | {step} | {state} "
                     f"| {diff} | {r['accuracy']:.1%} |")
    return "\n".join(lines)
