"""Low-rank factorisation: each Linear W (out x in) becomes B @ A with a rank chosen from its spectrum.

    small = lowrank.factorize(model, energy=0.9)      # per layer: the smallest rank keeping 90% of sum(s^2)
    small = lowrank.factorize(model, rank=16)         # or one rank for every layer
    lowrank.linear_params(small) / lowrank.linear_params(model)

The truncated SVD W ~ U_r S_r V_r^T is the best rank-r approximation in Frobenius norm
(Eckart & Young, 1936); storing B = U_r S_r (out x r) and A = V_r^T (r x in) costs r (in + out)
numbers instead of in x out, which pays when r < in x out / (in + out). A short recovery
fine-tune (``prune.recover``; it trains whatever the model holds) wins back what truncation costs.
The factorised layers are two ordinary Linears, so the model still trains, runs and saves with
plain PyTorch; ``save``/``load`` keep the ranks beside the weights.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from workbench.core.artifacts import compression, mark_compressed
from workbench.core.models import linear_layers

SPEC = "lowrank.json"


class LowRankLinear(nn.Module):
    """``x -> up(down(x))``: down is (rank x in), up is (out x rank, with the original bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x):
        return self.up(self.down(x))


def max_rank(lin: nn.Linear) -> int:
    """The largest rank that still saves parameters: r (in + out) < in x out."""
    return (lin.in_features * lin.out_features - 1) // (lin.in_features + lin.out_features)


def rank_for_energy(s: torch.Tensor, energy: float) -> int:
    """The smallest r whose top singular values keep ``energy`` of sum(s^2)."""
    cum = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum()
    return int(torch.searchsorted(cum, torch.tensor(energy, dtype=torch.float64)).item()) + 1


def factorize(model, energy: float | None = 0.9, rank: int | None = None, names=None) -> nn.Module:
    """A copy of ``model`` with its decoder Linears factorised (by ``energy`` per layer, or one ``rank``).

    A layer whose chosen rank would not save parameters is left as it is.
    """
    if rank is not None:
        energy = None
        if not (isinstance(rank, int) and rank >= 1):
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
    elif not (isinstance(energy, (int, float)) and 0 < energy <= 1):
        raise ValueError(f"energy must be in (0, 1], got {energy!r}")
    model = copy.deepcopy(model)
    layers = linear_layers(model, names)
    if rank is not None:
        for name, lin in layers.items():
            if rank > min(lin.in_features, lin.out_features):
                raise ValueError(f"rank {rank} is larger than layer {name!r} allows "
                                 f"(at most {min(lin.in_features, lin.out_features)} for {lin.out_features}x"
                                 f"{lin.in_features}; it saves parameters below {max_rank(lin) + 1})")
    chosen = {}
    for name, lin in layers.items():
        u, s, vh = torch.linalg.svd(lin.weight.detach().float(), full_matrices=False)
        r = rank if rank is not None else rank_for_energy(s, energy)
        if r > max_rank(lin):
            continue
        new = LowRankLinear(lin.in_features, lin.out_features, r, lin.bias is not None)
        with torch.no_grad():
            new.up.weight.copy_(u[:, :r] * s[:r])
            new.down.weight.copy_(vh[:r])
            if lin.bias is not None:
                new.up.bias.copy_(lin.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new.to(lin.weight.device, lin.weight.dtype))
        chosen[name] = r
    return mark_compressed(model, "lowrank", chosen)


def linear_params(model) -> int:
    """Parameters in the decoder's linear layers (factorised ones counted as their two factors)."""
    total = 0
    for name, m in model.named_modules():
        if ".layers." not in f".{name}":
            continue
        if isinstance(m, LowRankLinear):
            total += sum(p.numel() for p in m.parameters())
        elif isinstance(m, nn.Linear) and not name.endswith((".down", ".up")):
            total += sum(p.numel() for p in m.parameters())
    return total


def save(model, tokenizer, out: str | Path) -> Path:
    """Weights as safetensors (``save_pretrained``) plus the rank of every factorised layer."""
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / SPEC).write_text(json.dumps(getattr(compression(model, "lowrank"), "spec", {}), indent=1))
    return out


def load(path: str | Path):
    """(model, tokenizer) from ``save``'s folder: the architecture rebuilt, then safetensors weights."""
    from workbench.core.artifacts import rebuild

    model, tok, ranks, weights = rebuild(path, SPEC, "factorised")
    for name, r in ranks.items():
        lin = model.get_submodule(name)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LowRankLinear(lin.in_features, lin.out_features, r,
                                                                   lin.bias is not None))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ValueError(f"{path}: weights do not match the factorised model (missing {missing}, "
                         f"unexpected {unexpected})")
    model.tie_weights()
    return mark_compressed(model, "lowrank", ranks).eval(), tok
