"""Quantization: dynamic int8 on CPU, weight-only int8 / int4, quantization-aware fine-tuning, save and reload.

    fast = quantize.dynamic_int8(model)                 # int8 weights, int8 matmuls on CPU
    small = quantize.weight_only(model, bits=4)         # int4 weights (groups of 32), fp32 compute
    qat = quantize.qat_finetune(model, tok, "boolean_expressions", bits=4, steps=100)
    quantize.save(small, tok, "artifacts/bool-int4"); quantize.load("artifacts/bool-int4")

- **Dynamic int8** (Jacob et al., 2018): weights stored as int8 with one scale per output channel;
  activations quantized on the fly per batch; the matmul runs in int8. It uses
  ``torch.ao.quantization.quantize_dynamic`` although torch.ao is deprecated in favour of
  torchao: on this kind of machine it ran an 8-layer, 512-wide Llama 2.6x faster at batch 16,
  where torchao's ``Int8DynamicActivationInt8WeightConfig`` gave 1.4x (shared/MACHINE.md), and it
  needs no extra package.
- **Weight-only** int8 / int4: weights stored in fewer bits (int4 two to a byte, a scale per group
  of ``group`` inputs), dequantized to fp32 for every matmul. Smaller on disk and in memory, not
  faster on CPU (the dequantization costs time; fast int4 kernels are a GPU matter).
- **Quantization-aware fine-tuning** (QAT): a short fine-tune through fake quantization (the
  forward pass sees quantized weights, gradients pass straight through; Bengio et al., 2013), so
  the weights settle where rounding hurts least. Then they are quantized for real.

Only the decoder's Linear layers are quantized (as in most LLM quantization); embeddings and the
output head stay fp32.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from workbench.core.artifacts import compression, mark_compressed
from workbench.core.files import readable
from workbench.core.models import linear_layers

BITS = (8, 4)
SPEC = "quantization.json"


def _check_bits(bits) -> int:
    if bits not in BITS:
        raise ValueError(f"unsupported bit width {bits!r}; choose one of {', '.join(map(str, BITS))}")
    return bits


def is_quantized(model) -> bool:
    return any(isinstance(m, (QuantLinear, FakeQuantLinear)) or type(m).__module__.startswith("torch.ao.nn.quantized")
               for m in model.modules())


def _check_float(model) -> None:
    if is_quantized(model):
        raise ValueError("this model is already quantized; quantize the fp32 model it came from")


def _set(model, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


# weight-only ----------------------------------------------------------------------------------
def quantize_weight(w: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest: int values in [-(2^(b-1) - 1), 2^(b-1) - 1] and one scale per
    (row, group of ``group`` inputs)."""
    qmax = 2 ** (bits - 1) - 1
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    scale = (g.abs().amax(-1, keepdim=True) / qmax).clamp(min=1e-12)
    q = torch.round(g / scale).clamp(-qmax, qmax).to(torch.int8)
    return q.reshape(rows, cols), scale.squeeze(-1)


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, group: int) -> torch.Tensor:
    rows, cols = q.shape
    return (q.reshape(rows, cols // group, group).float() * scale.unsqueeze(-1)).reshape(rows, cols)


def _pack4(q: torch.Tensor) -> torch.Tensor:
    """Two int4 values per byte (offset by 8 into 0..15)."""
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return u[:, 0::2] | (u[:, 1::2] << 4)


def _unpack4(p: torch.Tensor) -> torch.Tensor:
    lo, hi = (p & 0xF).to(torch.int8) - 8, (p >> 4).to(torch.int8) - 8
    return torch.stack([lo, hi], -1).reshape(p.shape[0], -1)


class QuantLinear(nn.Module):
    """A Linear whose weight is stored in ``bits`` bits and dequantized for each forward pass."""

    def __init__(self, in_features: int, out_features: int, bits: int, group: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features, self.bits, self.group = in_features, out_features, bits, group
        cols = in_features // 2 if bits == 4 else in_features
        self.register_buffer("qweight", torch.zeros(out_features, cols, dtype=torch.uint8 if bits == 4 else torch.int8))
        self.register_buffer("scale", torch.ones(out_features, in_features // group))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_linear(cls, lin: nn.Linear, bits: int, group: int) -> QuantLinear:
        m = cls(lin.in_features, lin.out_features, bits, group, lin.bias is not None)
        q, scale = quantize_weight(lin.weight.detach().float().cpu(), bits, group)
        m.qweight = _pack4(q) if bits == 4 else q
        m.scale = scale
        if lin.bias is not None:
            m.bias.data.copy_(lin.bias.detach())
        return m.to(lin.weight.device)

    def weight_fp32(self) -> torch.Tensor:
        q = _unpack4(self.qweight) if self.bits == 4 else self.qweight
        return dequantize_weight(q, self.scale, self.group)

    def forward(self, x):
        return nn.functional.linear(x, self.weight_fp32().to(x.dtype), self.bias)


def _group_for(lin: nn.Linear, group: int) -> int:
    return group if lin.in_features % group == 0 else lin.in_features


def weight_only(model, bits: int = 8, group: int = 32) -> nn.Module:
    """A copy of ``model`` with every decoder Linear stored in ``bits`` bits (per-group scales)."""
    _check_bits(bits)
    _check_float(model)
    if not (isinstance(group, int) and group > 0 and group % 2 == 0):
        raise ValueError(f"group must be a positive even integer, got {group!r}")
    model = copy.deepcopy(model)
    for name, lin in linear_layers(model).items():
        _set(model, name, QuantLinear.from_linear(lin, bits, _group_for(lin, group)))
    return model.eval()


# dynamic int8 ---------------------------------------------------------------------------------
def dynamic_int8(model) -> nn.Module:
    """A copy of ``model`` with int8 weights and int8 matmuls for every decoder Linear (CPU)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    _check_float(model)
    names = list(linear_layers(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice; see the module docstring
        out = quantize_dynamic(copy.deepcopy(model).cpu().eval(), {n: per_channel_dynamic_qconfig for n in names},
                               dtype=torch.qint8)
    return mark_compressed(out, "dynamic_int8", {"layers": names})


# quantization-aware fine-tuning ---------------------------------------------------------------
class FakeQuantLinear(nn.Linear):
    """A Linear whose forward pass uses its weight rounded to ``bits`` bits; gradients pass straight through."""

    bits: int = 8
    group: int = 32

    def forward(self, x):
        q, scale = quantize_weight(self.weight, self.bits, self.group)
        wq = dequantize_weight(q, scale, self.group)
        w = self.weight + (wq - self.weight).detach()  # straight-through estimator
        return nn.functional.linear(x, w, self.bias)


def qat_finetune(model, tokenizer, task_name: str, bits: int = 8, group: int = 32, steps: int = 100,
                 lr: float = 5e-4, batch_size: int = 32, rationale: bool = True) -> nn.Module:
    """Fine-tune a copy of ``model`` through fake ``bits``-bit weights, then quantize it weight-only."""
    from workbench.core.train import finetune

    _check_bits(bits)
    _check_float(model)
    model = copy.deepcopy(model)
    for lin in linear_layers(model).values():
        lin.__class__ = FakeQuantLinear
        lin.bits, lin.group = bits, _group_for(lin, group)
    finetune(model, tokenizer, task_name, steps, lr, batch_size, rationale)
    for lin in linear_layers(model).values():
        lin.__class__ = nn.Linear
    return weight_only(model, bits, group)


# save and reload ------------------------------------------------------------------------------
def _dynamic_state(model) -> dict[str, torch.Tensor]:
    """int8 weights, per-channel scales and zero points of dynamic-int8 layers, as plain tensors."""
    out = {}
    for name in compression(model, "dynamic_int8").spec["layers"]:
        m = model.get_submodule(name)
        w, b = m.weight(), m.bias()
        out[f"{name}.qweight"] = w.int_repr()
        out[f"{name}.scale"] = w.q_per_channel_scales().float()
        out[f"{name}.zero_point"] = w.q_per_channel_zero_points().to(torch.int32)
        if b is not None:
            out[f"{name}.bias"] = b.detach()
    return out


def save(model, tokenizer, out: str | Path) -> Path:
    """Write a quantized model as safetensors (integer weights stay integers) plus its config and spec."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dynamic = compression(model, "dynamic_int8")
    if dynamic:
        spec = {"scheme": "dynamic_int8", **dynamic.spec}
        quant_names = set(spec["layers"])
        tensors = {k: v for k, v in model.state_dict().items()
                   if isinstance(v, torch.Tensor) and not any(k.startswith(n + ".") for n in quant_names)}
        tensors.update(_dynamic_state(model))
    else:
        layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}
        if not layers:
            raise ValueError("this model is not quantized; use save_pretrained, or quantize it first")
        spec = {"scheme": "weight_only", "layers": {n: {"bits": m.bits, "group": m.group} for n, m in layers.items()}}
        tensors = dict(model.state_dict())
    tensors.pop("lm_head.weight", None)  # tied to the embedding
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=".model-", dir=out)
    os.close(fd)
    save_file(tensors, tmp)
    os.replace(readable(tmp), out / "model.safetensors")
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SPEC).write_text(json.dumps(spec, indent=1))
    return out


def load(path: str | Path):
    """(model, tokenizer) from ``save``'s folder; weights load through safetensors only."""
    from workbench.core.artifacts import rebuild

    model, tok, spec, tensors = rebuild(path, SPEC, "quantized")
    if spec["scheme"] == "weight_only":
        for name, info in spec["layers"].items():
            lin = model.get_submodule(name)
            _set(model, name, QuantLinear(lin.in_features, lin.out_features, info["bits"], info["group"],
                                          lin.bias is not None))
        model.load_state_dict(tensors, strict=False)
        model.tie_weights()
        return model, tok
    model.load_state_dict({k: v for k, v in tensors.items()
                           if k.rsplit(".", 1)[-1] not in ("qweight", "scale", "zero_point")}, strict=False)
    model.tie_weights()
    model = dynamic_int8(model)
    for name in spec["layers"]:
        q = torch._make_per_channel_quantized_tensor(tensors[f"{name}.qweight"], tensors[f"{name}.scale"].double(),
                                                     tensors[f"{name}.zero_point"].long(), 0)
        model.get_submodule(name).set_weight_bias(q, tensors.get(f"{name}.bias"))
    return model, tok


# accounting -----------------------------------------------------------------------------------
def linear_bytes(model) -> int:
    """Bytes the decoder's linear layers take as ``save`` stores them (weights, scales, zero points, biases)."""
    total = 0
    for name, m in model.named_modules():
        if ".layers." not in f".{name}":
            continue
        if isinstance(m, QuantLinear):
            total += sum(t.numel() * t.element_size() for t in (m.qweight, m.scale))
            total += m.bias.numel() * 4 if m.bias is not None else 0
        elif isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            w = m.weight()
            total += w.numel() + 8 * w.shape[0]  # int8 weights; a float32 scale and an int32 zero point per row
        elif isinstance(m, nn.Linear) and not isinstance(m, FakeQuantLinear):
            total += sum(p.numel() * p.element_size() for p in m.parameters())
    return total
