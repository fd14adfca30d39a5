"""Pruning: unstructured (magnitude, Wanda), semi-structured N:M, and structured removal.

    masks = prune.wanda(model, tok, prune.calibration("boolean_expressions"), sparsity=0.5)
    model = prune.recover(model, tok, "boolean_expressions", masks, steps=100)   # zeros stay zero
    small = prune.structured(model, tok, calib, heads=1, neurons=0.5)   # a smaller, faster Llama

What each buys, and what it does not:
- **Magnitude** (Han et al., 2015) zeroes the smallest |W|, over all layers at once (``scope="global"``)
  or within each layer. **Wanda** (Sun et al., 2023, *A simple and effective pruning approach for
  LLMs*) scores |W_ij| x ||X_j||, the weight times the norm of its input feature over a small
  calibration set from the task, and prunes the lowest scores within each output row. Both give
  masks: the saved model has as many bytes and the dense kernels run as fast as before.
- **N:M** keeps N of every M consecutive weights in a row (2:4 is 50%). Recent GPUs run 2:4 with
  sparse tensor cores; on a CPU it is a mask like the others.
- **Structured** removal takes whole attention heads (with their key/value heads), MLP neurons and
  decoder layers out of the matrices, chosen by activation-weighted importance on the calibration
  set (layers by how little they change the hidden state; Men et al., 2024, *ShortGPT*). The same
  number is removed in every layer, so the result is a plain Llama config that every runtime loads,
  and it is really smaller and faster.

Only the decoder's Linear layers are pruned; embeddings and the output head are kept, as in Wanda.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from workbench import tasks as task_suite
from workbench.core.models import linear_layers


# what can be pruned ---------------------------------------------------------------------------
def check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def sparsity(model, names=None) -> float:
    """Fraction of zero weights over the prunable layers."""
    layers = linear_layers(model, names)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    return zeros / max(1, sum(m.weight.numel() for m in layers.values()))


def _apply(layers: dict[str, nn.Linear], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask)
    return masks


def _lowest(scores: torch.Tensor, k: int, dim: int | None = None) -> torch.Tensor:
    """A keep-mask (1.0/0.0) that drops the ``k`` lowest scores (per row when ``dim=1``)."""
    mask = torch.ones_like(scores)
    if k <= 0:
        return mask
    if dim is None:
        idx = torch.topk(scores.flatten(), k, largest=False).indices
        mask.view(-1)[idx] = 0
    else:
        idx = torch.topk(scores, k, dim=dim, largest=False).indices
        mask.scatter_(dim, idx, 0)
    return mask


# unstructured ---------------------------------------------------------------------------------
def magnitude(model, sparsity: float, scope: str = "global", names=None) -> dict[str, torch.Tensor]:
    """Zero the smallest-magnitude weights; ``scope`` is ``global`` (one threshold) or ``layer``."""
    check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    layers = linear_layers(model, names)
    if scope == "layer":
        masks = {n: _lowest(m.weight.abs(), round(sparsity * m.weight.numel())) for n, m in layers.items()}
    else:
        flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        keep = _lowest(flat, round(sparsity * flat.numel()))
        masks, at = {}, 0
        for n, m in layers.items():
            masks[n] = keep[at:at + m.weight.numel()].view_as(m.weight)
            at += m.weight.numel()
    return _apply(layers, masks)


def calibration(task_name: str, n: int = 64, rationale: bool = True) -> list[str]:
    """``n`` training texts of the task (question and completion), for Wanda and structured scores."""
    from workbench.core.evaluate import student_completion, student_prompt
    from workbench.tasks import splits

    task_suite.get(task_name)
    return [student_prompt(e.input) + student_completion(e, rationale) for e in splits.load(task_name, "train", n=n)]


@torch.no_grad()
def input_norms(model, tokenizer, texts: list[str], names=None, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """||X_j||_2 of every input feature of each prunable layer over the calibration tokens."""
    layers = linear_layers(model, names)
    sq = {n: torch.zeros(m.in_features) for n, m in layers.items()}

    def hook(name):
        def f(_module, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sq[name] += (x * x).sum(0).cpu()
        return f

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        _run(model, tokenizer, texts, batch_size)
    finally:
        for h in handles:
            h.remove()
    return {n: v.sqrt() for n, v in sq.items()}


def _run(model, tokenizer, texts, batch_size):
    if tokenizer.pad_token_id is None:  # some pretrained tokenizers have no pad token: one text at a time
        batch_size = 1
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        model(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device))
    model.train(was)


def wanda(model, tokenizer, texts: list[str], sparsity: float, names=None) -> dict[str, torch.Tensor]:
    """Wanda: drop the lowest |W_ij| x ||X_j|| within each output row (one calibration pass, dense model)."""
    check_sparsity(sparsity)
    layers = linear_layers(model, names)
    norms = input_norms(model, tokenizer, texts, names)
    masks = {n: _lowest(m.weight.detach().abs() * norms[n], int(sparsity * m.in_features), dim=1)
             for n, m in layers.items()}
    return _apply(layers, masks)


def n_m(model, n: int = 2, m: int = 4, tokenizer=None, texts=None, names=None) -> dict[str, torch.Tensor]:
    """N:M semi-structured: keep the ``n`` largest of every ``m`` consecutive weights in a row
    (by |W|, or by Wanda's score when calibration ``texts`` are given)."""
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"N:M needs integers 0 < N < M, got {n}:{m}")
    layers = linear_layers(model, names)
    for name, lin in layers.items():
        if lin.in_features % m:
            raise ValueError(f"layer {name!r} has {lin.in_features} inputs, not a multiple of M={m}")
    norms = input_norms(model, tokenizer, texts, names) if texts else None
    masks = {}
    for name, lin in layers.items():
        score = lin.weight.detach().abs() * (norms[name] if norms else 1.0)
        groups = score.view(lin.out_features, -1, m)
        masks[name] = _lowest(groups, m - n, dim=2).view_as(lin.weight)
    return _apply(layers, masks)


def keep_masks(model, masks: dict[str, torch.Tensor]) -> list:
    """Gradient hooks that keep pruned weights at zero while training (AdamW then leaves them at 0)."""
    layers = linear_layers(model, list(masks))
    return [layers[n].weight.register_hook(lambda g, mask=mask: g * mask) for n, mask in masks.items()]


def recover(model, tokenizer, task_name: str, masks: dict | None = None, steps: int = 100, lr: float = 1e-3,
            batch_size: int = 32, rationale: bool = True, seed: int = 0, lora_rank: int = 0):
    """A short fine-tune after pruning, on the one training loop; returns the recovered model.

    Full (``lora_rank=0``): every weight trains and masked weights get no gradient, so they stay
    zero. LoRA (peft, ``lora_rank=r`` on every linear layer): only the adapters train, then they are
    merged; a merged update is dense, so the masks are applied again after merging.
    """
    from workbench.core.train import finetune

    if not (isinstance(lora_rank, int) and lora_rank >= 0):
        raise ValueError(f"lora_rank must be a non-negative integer (0: full fine-tune), got {lora_rank!r}")
    if lora_rank:
        from workbench.lora import wrap

        peft_model = wrap(model, lora_rank)
        finetune(peft_model, tokenizer, task_name, steps, lr, batch_size, rationale, seed)
        model = peft_model.merge_and_unload()
        if masks:
            _apply(linear_layers(model, list(masks)), masks)
        return model.eval()
    handles = keep_masks(model, masks) if masks else []
    try:
        finetune(model, tokenizer, task_name, steps, lr, batch_size, rationale, seed)
    finally:
        for h in handles:
            h.remove()
    return model


# structured -----------------------------------------------------------------------------------
@torch.no_grad()
def importance(model, tokenizer, texts: list[str]) -> dict:
    """Per layer: head-group scores, MLP-neuron scores, and 1 - cos(input, output) of the layer."""
    cfg = model.config
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    layers = model.model.layers
    heads = [torch.zeros(cfg.num_key_value_heads) for _ in layers]
    neurons = [torch.zeros(cfg.intermediate_size) for _ in layers]
    change = [0.0 for _ in layers]
    handles = []
    for i, layer in enumerate(layers):
        o_w = layer.self_attn.o_proj.weight.detach().float()  # (hidden, heads * d)
        down_w = layer.mlp.down_proj.weight.detach().float()  # (hidden, inner)

        def attn_hook(_m, args, i=i, o_w=o_w):
            x = args[0].detach().float()  # (B, T, heads * d): each head's output before o_proj
            per_head = (x.reshape(*x.shape[:-1], -1, d).pow(2).sum(-1).sum((0, 1)).sqrt()
                        * o_w.reshape(o_w.shape[0], -1, d).pow(2).sum((0, 2)).sqrt())
            heads[i] += per_head.reshape(-1, group).sum(1)  # one score per key/value group

        def mlp_hook(_m, args, i=i, down_w=down_w):
            x = args[0].detach().float()
            neurons[i] += x.reshape(-1, x.shape[-1]).pow(2).sum(0).sqrt() * down_w.norm(dim=0)

        def layer_hook(_m, args, kwargs, out, i=i):
            h_in = args[0] if args else kwargs["hidden_states"]
            h_out = out[0] if isinstance(out, tuple) else out
            cos = nn.functional.cosine_similarity(h_in.float(), h_out.float(), dim=-1)
            change[i] += float((1 - cos).mean())

        handles += [layer.self_attn.o_proj.register_forward_pre_hook(attn_hook),
                    layer.mlp.down_proj.register_forward_pre_hook(mlp_hook),
                    layer.register_forward_hook(layer_hook, with_kwargs=True)]
    try:
        _run(model, tokenizer, texts, 16)
    finally:
        for h in handles:
            h.remove()
    return {"heads": heads, "neurons": neurons, "layer_change": change}


def structured(model, tokenizer=None, texts=None, heads: int = 0, neurons: float = 0.0, layers: int = 0,
               scores: dict | None = None):
    """A new, smaller model without the ``heads`` least important key/value head groups and the
    ``neurons`` fraction of least important MLP neurons in every layer, and without the ``layers``
    decoder layers that change the hidden state least. Llama-architecture models only."""
    cfg = model.config
    if cfg.model_type != "llama":
        raise ValueError(f"structured pruning rebuilds Llama models; got model_type {cfg.model_type!r}")
    n_layers, n_kv = cfg.num_hidden_layers, cfg.num_key_value_heads
    group = cfg.num_attention_heads // n_kv
    # LlamaConfig requires hidden_size to be a multiple of the number of attention heads
    allowed = [h for h in range(n_kv) if cfg.hidden_size % ((n_kv - h) * group) == 0]
    if heads not in allowed:
        raise ValueError(f"heads must be one of {allowed} (key/value head groups removed per layer, leaving a "
                         f"head count that divides hidden_size {cfg.hidden_size}), got {heads!r}")
    check_sparsity(neurons)
    if not (isinstance(layers, int) and 0 <= layers < n_layers):
        raise ValueError(f"layers must be an integer in [0, {n_layers}), got {layers!r}")
    if scores is None:
        if texts is None:
            raise ValueError("structured pruning needs calibration texts (workbench.prune.calibration) or scores")
        scores = importance(model, tokenizer, texts)
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    n_inner = cfg.intermediate_size - int(neurons * cfg.intermediate_size)
    drop_layers = set(sorted(range(n_layers), key=lambda i: scores["layer_change"][i])[:layers])
    kept_layers = [i for i in range(n_layers) if i not in drop_layers]

    changes = {"num_hidden_layers": len(kept_layers), "num_key_value_heads": n_kv - heads,
               "num_attention_heads": (n_kv - heads) * group, "head_dim": d, "intermediate_size": n_inner}
    if getattr(cfg, "layer_types", None):
        changes["layer_types"] = [cfg.layer_types[i] for i in kept_layers]
    new_cfg = type(cfg).from_dict({**cfg.to_dict(), **changes})  # validated, as from_pretrained will
    small = type(model)(new_cfg).to(next(model.parameters()).device, next(model.parameters()).dtype)

    old_sd = model.state_dict()
    sd = {k: v for k, v in old_sd.items() if ".layers." not in k}
    for new_i, old_i in enumerate(kept_layers):
        kv = torch.sort(torch.topk(scores["heads"][old_i], n_kv - heads).indices).values
        q_rows = torch.cat([torch.arange(h * group * d, (h + 1) * group * d) for h in kv.tolist()])
        kv_rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in kv.tolist()])
        keep = torch.sort(torch.topk(scores["neurons"][old_i], n_inner).indices).values
        pre, new = f"model.layers.{old_i}.", f"model.layers.{new_i}."
        for k, v in old_sd.items():
            if not k.startswith(pre):
                continue
            name = new + k[len(pre):]
            if ".q_proj." in k:
                v = v[q_rows]
            elif ".k_proj." in k or ".v_proj." in k:
                v = v[kv_rows]
            elif ".o_proj.weight" in k:
                v = v[:, q_rows]
            elif ".gate_proj." in k or ".up_proj." in k:
                v = v[keep]
            elif ".down_proj.weight" in k:
                v = v[:, keep]
            sd[name] = v.clone()
    missing, unexpected = small.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"structured rebuild mismatch: missing {missing}, unexpected {unexpected}")
    small.tie_weights()
    small.generation_config = copy.deepcopy(model.generation_config)
    return small.eval()


# accounting -----------------------------------------------------------------------------------
def account(model, tokenizer, task_name: str, examples, label: str, eval_cfg=None,
            dense_params: int | None = None, latency_length: int = 128) -> dict:
    """``evaluate.account``'s row (parameters, bytes, latency, accuracy) with sparsity and the share removed."""
    from workbench.core.evaluate import account

    row = account(model, tokenizer, task_name, examples, label, eval_cfg=eval_cfg, latency_length=latency_length)
    removed = (1 - row["params"] / dense_params) if dense_params else 0.0
    return {"model": label, "sparsity": sparsity(model), **row, "params_removed": removed}


def prune_with(model, tokenizer, method: str, amount: float, texts=None):
    """Prune ``model`` in place by ``method`` (magnitude, magnitude_layer, wanda, 2:4); returns the masks."""
    if method == "magnitude":
        return magnitude(model, amount)
    if method == "magnitude_layer":
        return magnitude(model, amount, scope="layer")
    if method == "wanda":
        return wanda(model, tokenizer, texts, amount)
    if method == "2:4":
        return n_m(model, 2, 4, tokenizer, texts)
    raise ValueError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")


METHODS = ("magnitude", "magnitude_layer", "wanda", "2:4")
