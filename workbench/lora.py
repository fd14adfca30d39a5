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

from workbench.core.models import linear_layers


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
    from workbench.core.train import finetune as short_run

    if rank:
        model = wrap(model, rank)
    n_train, n_all = trainable(model)
    lr = lr or (5e-4 if rank else 2e-5)  # adapters start at zero: LoRA takes a larger step
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = short_run(model, tokenizer, task_name, steps, lr, batch_size, rationale, seed)
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
