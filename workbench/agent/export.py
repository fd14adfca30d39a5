"""Export: a specialist as files for lightweight runtimes (ONNX fp32 and int8; torch.export; GGUF).

    onnx_file = export.to_onnx(model, "artifacts/tool-onnx", tokenizer=tok, card=card)  # + tokenizer, export.json
    export.quantize_onnx(onnx_file)                   # model.int8.onnx beside it (int8 weights, per channel)
    export.to_torch_export(model, "artifacts/tool-onnx")                                 # model.pt2 beside it
    export.to_gguf(model, "artifacts/tool-onnx", tok)                  # model.gguf: llama.cpp, Ollama, LM Studio
    export.to_gguf(model, "artifacts/tool-onnx", tok, quant="q8_0")    # model.q8_0.gguf

What is exported is the plain forward ``input_ids [batch, seq] int64 -> logits [batch, seq, vocab]``,
both axes dynamic, without a KV cache: these models are tiny, and one graph with one input is
what any runtime can take. ``workbench.agent.runtimes`` runs the files and compares them with PyTorch.

ONNX comes from the dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs onnxscript):
the TorchScript exporter stops at ``aten::diff`` in transformers' mask code. Int8 is onnxruntime's
dynamic quantization (Jacob et al., 2018), the counterpart of ``quantize.dynamic_int8``.

GGUF is the file llama.cpp (and Ollama, LM Studio) run: the weights under llama.cpp's names, the
hyper-parameters and the tokenizer as metadata, one file. See ``to_gguf``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from workbench.core.validate import EXPORT_SPEC, read_export_spec

ONNX_FILE, ONNX_INT8_FILE, PT2_FILE = "model.onnx", "model.int8.onnx", "model.pt2"
GGUF_FILES = {"f32": "model.gguf", "q8_0": "model.q8_0.gguf"}  # to_gguf's quant -> the file it writes
ONNX_KV_FILE, ONNX_KV_INT8_FILE = "model.kv.onnx", "model.kv.int8.onnx"  # with a KV cache (to_onnx_kv)
KV_OPSET = 18
SPEC = EXPORT_SPEC  # "export.json": opset, exporter, vocabulary, and what each file is
# the dynamo exporter writes opset 18 at the least (asked for less, it quietly writes 18); from 23 it fuses
# rotary embeddings into ONNX's RotaryEmbedding op, which onnxruntime 1.32 refused here at batch > 1
OPSETS = range(18, 23)
DEFAULT_OPSET = 20
INSTALL_HINT = "pip install onnx onnxruntime onnxscript"
GGUF_HINT = "pip install gguf"
CARD_KEYS = ("name", "tasks", "profile", "student", "params", "eval")  # what export.json keeps of a model card


def require_packages(*modules: str, hint: str = INSTALL_HINT) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"exporting needs {', '.join(missing)}, not installed; install with: {hint}")


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' chatter (torchvision notices, deprecations, onnxruntime's pre-processing hint)."""
    loggers = [logging.getLogger(n) for n in ("", "torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


# what is exported -----------------------------------------------------------------------------
class _Logits(nn.Module):
    """``input_ids [B, T] -> logits [B, T, V]``: one tensor in, one out, no cache."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


def _check_model(model) -> None:
    from transformers import PreTrainedModel
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from workbench.quantize import is_quantized

    name = type(model).__name__
    if not isinstance(model, PreTrainedModel) or name not in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise ValueError(f"{name} is not a causal language model; export takes a transformers *ForCausalLM "
                         "(e.g. LlamaForCausalLM, as workbench.core.models.student builds) mapping input_ids to logits")
    if is_quantized(model):
        raise ValueError(f"this {name} is already quantized in PyTorch; export the fp32 model and quantize the "
                         "ONNX file with quantize_onnx")


def _dynamic_shapes() -> dict:
    return {"input_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")}}


def _example_ids(model) -> torch.Tensor:
    # batch 2 x seq 8: neither is 0 or 1, which torch.export would specialise on
    device = next(model.parameters()).device
    return (torch.arange(16, device=device) % model.config.vocab_size).reshape(2, 8)


@contextlib.contextmanager
def _eval(model):
    was = model.training
    model.eval()
    try:
        yield _Logits(model)
    finally:
        model.train(was)


# writing files ---------------------------------------------------------------------------------
def _atomic(dest: Path, write) -> Path:
    """Call ``write(tmp)`` on a file of ``dest``'s name in a temporary folder beside it, then move it in whole.

    The name matters: torch.export.save names the archive's top folder after the file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.stem}-", dir=dest.parent))
    try:
        write(str(tmp_dir / dest.name))
        os.replace(tmp_dir / dest.name, dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dest


def _record(out: Path, artifact: str, entry: dict, model=None, tokenizer=None, card: dict | None = None) -> None:
    """Add ``artifact``'s entry to ``out/export.json`` (and the tokenizer, once) atomically."""
    spec = read_export_spec(out) if (out / SPEC).exists() else {"artifacts": {}}
    if model is not None:
        spec.update(vocab=model.config.vocab_size, max_len=getattr(model.config, "max_position_embeddings", None),
                    model_class=type(model).__name__, source=model.config._name_or_path or None)
    if card:
        spec["card"] = {k: card[k] for k in CARD_KEYS if k in card}
    spec["artifacts"][artifact] = entry
    if tokenizer is not None:
        tmp = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=out))
        try:
            tokenizer.save_pretrained(tmp)
            for f in tmp.iterdir():
                os.replace(f, out / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _atomic(out / SPEC, lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=1)))


def to_onnx(model, out: str | Path, tokenizer=None, opset: int = DEFAULT_OPSET, card: dict | None = None) -> Path:
    """Export ``model``'s forward to ``out/model.onnx`` (dynamic batch and seq); return the file's path.

    ``out`` also gets ``export.json`` (opset, exporter, vocabulary, max length, the model card's
    summary when ``card`` is given) and, when given, the tokenizer.
    """
    require_packages("onnx", "onnxscript")
    import onnx
    import onnxscript

    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ValueError(f"opset {opset!r} is not supported: choose {OPSETS[0]} to {OPSETS[-1]} (the dynamo "
                         "exporter writes 18 at the least; from 23 it uses a RotaryEmbedding op that onnxruntime "
                         "ran at batch 1 only)")
    _check_model(model)
    out = Path(out)
    with _eval(model) as fwd, _quiet():
        prog = torch.onnx.export(fwd, (_example_ids(model),), input_names=["input_ids"], output_names=["logits"],
                                 dynamic_shapes=_dynamic_shapes(), opset_version=opset, dynamo=True, verbose=False)
        proto = prog.model_proto
    for node in [*proto.graph.node, *(n for f in proto.functions for n in f.node)]:
        del node.metadata_props[:]  # per-node stack traces and fx names: ~15% of the file, of no use to a runtime
    onnx.checker.check_model(proto)
    dest = _atomic(out / ONNX_FILE, lambda tmp: onnx.save(proto, tmp))
    entry = {"exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnxscript "
                         f"{onnxscript.__version__}", "opset": opset, "inputs": {"input_ids": ["batch", "seq"]},
             "outputs": {"logits": ["batch", "seq", "vocab"]}, "kv_cache": False}
    _record(out, ONNX_FILE, entry, model, tokenizer, card)
    return dest


# a KV cache: one step of LeanLlama as an ONNX graph ---------------------------------------------------
KV_INPUTS = "input_ids [batch, seq] int64; past_key.{i}, past_value.{i} [batch, heads, past, head_dim] float32"
KV_OUTPUTS = "logits [batch, seq, vocab]; present_key.{i}, present_value.{i} [batch, heads, past + seq, head_dim]"


def _kv_graph(model, fused: bool = True):
    """The ONNX model of one cached step of ``model`` (a plain fp32 Llama: ``lean.LeanLlama.unsupported``).

    Written op by op from the weights, as ``lean.LeanLlama`` computes a step: q, k and v as one matmul, gate
    and up as one, RoPE from tables at positions past .. past + seq, the new keys and values appended to the
    past ones (``present_*``: the next step's ``past_*``), causal attention over past and new positions. Run
    with an empty past (length 0) it is the plain forward. ``fused``: attention as onnxruntime's
    ``GroupQueryAttention`` (RoPE, cache and causal softmax in one kernel) and each residual add with the norm
    after it as ``SkipSimplifiedLayerNormalization`` (com.microsoft ops: onnxruntime only; 51 nodes after
    onnxruntime's own fusions against 123, about 30% less CPU per token here); False: standard ONNX ops only.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from workbench.agent.lean import LeanLlama

    lm = LeanLlama(model)  # the fused weights and rotary tables, checked as the lean path checks them
    L, D, H = len(lm.layers), lm.head_dim, model.config.num_attention_heads
    half, inter = D // 2, lm.layers[0][4].shape[0] // 2
    inits, nodes = [], []

    def const(name, value, dtype=np.float32):
        if torch.is_tensor(value):
            value = value.detach().float().cpu().numpy()
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(kind, inputs, name, outputs=None, **attrs):  # its outputs' names: [name] unless given ("": unused)
        outputs = outputs or [name]
        domain = "com.microsoft" if kind in ("GroupQueryAttention", "SkipSimplifiedLayerNormalization") else ""
        nodes.append(helper.make_node(kind, inputs, outputs, name=f"{name}/{kind}", domain=domain, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def matmul(x, w, name):  # x @ W.T: the transposed weight stored
        return op("MatMul", [x, const(f"{name}.weight_t", w.detach().float().cpu().numpy().T.copy())], name)

    def rms(x, w, name):  # the pattern onnxruntime fuses into its SimplifiedLayerNormalization
        var = op("ReduceMean", [op("Pow", [x, "two"], f"{name}.sq"), "last_axis"], f"{name}.var", keepdims=1)
        std = op("Sqrt", [op("Add", [var, "eps"], f"{name}.var_eps")], f"{name}.std")
        return op("Mul", [const(f"{name}.weight", w), op("Div", [x, std], f"{name}.normed")], name)

    def add_norm(x, residual, w, name):  # (norm(x + residual), x + residual)
        if fused:
            normed, _, _, total = op("SkipSimplifiedLayerNormalization", [x, residual, const(f"{name}.weight", w)],
                                     name, outputs=[name, "", "", f"{name}.sum"], epsilon=lm.eps)
            return normed, total
        total = op("Add", [residual, x], f"{name}.sum")
        return rms(total, w, name), total

    for name, value, dtype in [("two", 2.0, np.float32), ("eps", lm.eps, np.float32), ("scale", lm.scale, np.float32),
                               ("last_axis", [-1], np.int64), ("zero_axis", [0], np.int64), ("zero", 0, np.int64),
                               ("one", 1, np.int64), ("one32", 1, np.int32), ("no_mask", 0.0, np.float32),
                               ("masked", -np.inf, np.float32), ("heads_dims", [0, 0, -1, D], np.int64),
                               ("flat", [0, 0, -1], np.int64), ("split_qk_v", [2 * H, H], np.int64),
                               ("split_q_k", [H, H], np.int64), ("split_gate_up", [inter, inter], np.int64)]:
        const(name, value, dtype)
    seq = op("Shape", ["input_ids"], "seq", start=1, end=2)
    past = op("Shape", ["past_key.0"], "past", start=2, end=3)
    total = op("Add", [past, seq], "total")  # [1] int64
    if fused:  # GroupQueryAttention's lengths: the total (a scalar) and, per sequence, the total - 1
        const("cos_cache", lm.cos[:, :half])  # [context, head_dim / 2]
        const("sin_cache", lm.sin[:, half:])  # the unflipped half of LeanLlama's sin table
        total32 = op("Cast", [total], "total32", to=TensorProto.INT32)
        batch = op("Shape", ["input_ids"], "batch", start=0, end=1)
        seqlens_k = op("Expand", [op("Sub", [total32, "one32"], "last32"), batch], "seqlens_k")
        total_len = op("Squeeze", [total32, "zero_axis"], "total_len")
    else:  # positions past .. past + seq and the mask [seq, past + seq]: position p sees key j when j <= p
        const("swap", lm.swap.cpu().numpy(), np.int64)
        const("cos_table", lm.cos)
        const("sin_table", lm.sin)  # the first half's sign flipped: rotate_half as one gather
        positions = op("Range", [op("Squeeze", [past, "zero_axis"], "first"),
                                 op("Squeeze", [total, "zero_axis"], "end"), "one"], "positions")
        keys = op("Range", ["zero", op("Squeeze", [total, "zero_axis"], "end2"), "one"], "keys")
        seen = op("LessOrEqual", [keys, op("Unsqueeze", [positions, "last_axis"], "positions_col")], "seen")
        mask = op("Where", [seen, "no_mask", "masked"], "mask")
        cos = op("Gather", ["cos_table", positions], "cos")
        sin = op("Gather", ["sin_table", positions], "sin")

    def attention(qkv, i, p):  # [batch, seq, 3 * heads * head_dim] -> [batch, seq, heads * head_dim]
        cache = [f"past_key.{i}", f"past_value.{i}"]
        if fused:
            return op("GroupQueryAttention", [qkv, "", "", *cache, seqlens_k, total_len, "cos_cache", "sin_cache"],
                      f"{p}.attn", outputs=[f"{p}.attn", f"present_key.{i}", f"present_value.{i}"], num_heads=H,
                      kv_num_heads=H, do_rotary=1, rotary_interleaved=0, scale=lm.scale)[0]
        qkv = op("Transpose", [op("Reshape", [qkv, "heads_dims"], f"{p}.qkv_heads")], f"{p}.qkv_t", perm=[0, 2, 1, 3])
        qk, v = op("Split", [qkv, "split_qk_v"], f"{p}.split_qkv", outputs=[f"{p}.qk", f"{p}.v"], axis=1)
        swapped = op("Gather", [qk, "swap"], f"{p}.qk_swapped", axis=3)
        qk = op("Add", [op("Mul", [qk, cos], f"{p}.qk_cos"), op("Mul", [swapped, sin], f"{p}.qk_sin")], f"{p}.rope")
        q, k = op("Split", [qk, "split_q_k"], f"{p}.split_qk", outputs=[f"{p}.q", f"{p}.k"], axis=1)
        k = op("Concat", [cache[0], k], f"present_key.{i}", axis=2)
        v = op("Concat", [cache[1], v], f"present_value.{i}", axis=2)
        scores = op("MatMul", [op("Mul", [q, "scale"], f"{p}.q_scaled"),
                               op("Transpose", [k], f"{p}.k_t", perm=[0, 1, 3, 2])], f"{p}.scores")
        probs = op("Softmax", [op("Add", [scores, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
        a = op("Transpose", [op("MatMul", [probs, v], f"{p}.attn")], f"{p}.attn_t", perm=[0, 2, 1, 3])
        return op("Reshape", [a, "flat"], f"{p}.attn_flat")

    x = op("Gather", [const("embed", lm.embed), "input_ids"], "embedded")
    h = rms(x, lm.layers[0][0], "layers.0.ln1")
    for i, (_, w_qkv, w_o, ln2, w_gate_up, w_down) in enumerate(lm.layers):
        p = f"layers.{i}"
        a = matmul(attention(matmul(h, w_qkv, f"{p}.qkv"), i, p), w_o, f"{p}.o")
        h, x = add_norm(a, x, ln2, f"{p}.ln2")
        gate, up = op("Split", [matmul(h, w_gate_up, f"{p}.gate_up"), "split_gate_up"], f"{p}.split_gate_up",
                      outputs=[f"{p}.gate", f"{p}.up"], axis=-1)
        act = op("Mul", [op("Mul", [gate, op("Sigmoid", [gate], f"{p}.sig")], f"{p}.silu"), up], f"{p}.act")
        last = i + 1 == len(lm.layers)
        h, x = add_norm(matmul(act, w_down, f"{p}.down"), x, lm.norm if last else lm.layers[i + 1][0],
                        "norm" if last else f"layers.{i + 1}.ln1")
    matmul(h, lm.head, "logits")

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cache = [helper.make_tensor_value_info(f"{kind}_{kv}.{i}", f32, ["batch", H, size, D])
             for kind, size in (("past", "past"), ("present", "total")) for i in range(L) for kv in ("key", "value")]
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["batch", "seq"])] + cache[:2 * L]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "seq", lm.head.shape[0]])] + cache[2 * L:]
    used = {n for node in nodes for n in node.input}
    graph = helper.make_graph(nodes, "llama_kv_step", inputs, outputs, [t for t in inits if t.name in used])
    opsets = [helper.make_opsetid("", KV_OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if fused else [])
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="workbench", ir_version=8)
    helper.set_model_props(proto, {"context": str(lm.context), "layers": str(L), "heads": str(H), "head_dim": str(D)})
    onnx.checker.check_model(proto)
    return proto


def to_onnx_kv(model, out: str | Path, tokenizer=None, card: dict | None = None, fused: bool | None = None) -> Path:
    """Export ``model``'s cached step to ``out/model.kv.onnx`` and return its path (``runtimes.OnnxKVRunner``
    runs it); ``out`` also gets ``export.json`` and, when given, the tokenizer (as ``to_onnx``).

    The graph is written from the weights (``_kv_graph``), not traced: a plain fp32 Llama only, checked as
    ``lean.LeanLlama`` checks it. Inputs: ``input_ids`` and every layer's past keys and values (length 0 for
    a new prompt); outputs: the logits of every new position and the keys and values with them appended.
    ``fused``: onnxruntime's contrib ops for attention and norms (faster; onnxruntime only), else standard ops;
    None: fused where onnxruntime's GroupQueryAttention takes the head size (a multiple of 16), else standard.
    """
    require_packages("onnx")
    import onnx

    _check_model(model)
    head_dim = getattr(model.config, "head_dim", None) or model.config.hidden_size // model.config.num_attention_heads
    if fused is None:
        fused = head_dim % 16 == 0
    elif fused and head_dim % 16:
        raise ValueError(f"fused=True needs a head size that is a multiple of 16 (onnxruntime's GroupQueryAttention);"
                         f" this model's is {head_dim}: pass fused=False or None")
    out = Path(out)
    with torch.no_grad():
        proto = _kv_graph(model, fused)
    dest = _atomic(out / ONNX_KV_FILE, lambda tmp: onnx.save(proto, tmp))
    entry = {"exporter": f"workbench.agent.export._kv_graph (from the weights), onnx {onnx.__version__}",
             "opset": KV_OPSET, "ops": "onnx + com.microsoft (onnxruntime)" if fused else "onnx",
             "inputs": KV_INPUTS, "outputs": KV_OUTPUTS, "kv_cache": True}
    _record(out, ONNX_KV_FILE, entry, model, tokenizer, card)
    return dest


def onnx_file(path: str | Path, int8: bool = False, kv: bool = False) -> Path:
    """The .onnx file ``path`` names, or in folder ``path`` the one ``int8`` and ``kv`` (KV cache) pick."""
    path = Path(path)
    if path.is_dir():
        path = path / [[ONNX_FILE, ONNX_INT8_FILE], [ONNX_KV_FILE, ONNX_KV_INT8_FILE]][kv][int8]
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {str(path)!r} does not exist; write one with "
                                + ("to_onnx_kv" if kv else "to_onnx") + (" and quantize_onnx" if int8 else ""))
    return path


def check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as err:  # protobuf DecodeError, ValidationError...: all mean the file is unusable
        raise ValueError(f"{str(path)!r} is not a valid ONNX model ({type(err).__name__}: "
                         f"{str(err).strip()[:200]}); export it again with to_onnx") from None


def quantize_onnx(src: str | Path, dst: str | Path | None = None) -> Path:
    """int8 weights (one scale per output channel), activations quantized on the fly; returns ``dst``.

    ``src`` is an .onnx file or ``to_onnx``'s folder; ``dst`` defaults to ``src``'s name with ``.int8`` before
    ``.onnx``, beside it (model.int8.onnx, model.kv.int8.onnx).
    """
    require_packages("onnx", "onnxruntime")
    import onnxruntime
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = onnx_file(src)
    check_onnx(src)
    dst = Path(dst) if dst is not None else src.with_suffix(".int8.onnx")
    with _quiet():
        # DefaultTensorType: past onnxruntime's own ops (the fused KV graph) onnx's shape inference knows no types
        _atomic(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True,
                                                  extra_options={"DefaultTensorType": TensorProto.FLOAT}))
    if (dst.parent / SPEC).exists():
        _record(dst.parent, dst.name, {"quantizer": f"onnxruntime {onnxruntime.__version__} quantize_dynamic",
                                       "weights": "int8, per channel", "activations": "uint8, dynamic",
                                       "from": src.name})
    return dst


def to_torch_export(model, out: str | Path, tokenizer=None, card: dict | None = None) -> Path:
    """``torch.export.export`` of the forward (dynamic batch and seq), saved as ``out/model.pt2``; returns it."""
    _check_model(model)
    out = Path(out)
    with _eval(model) as fwd, _quiet():
        program = torch.export.export(fwd, (_example_ids(model),), dynamic_shapes=_dynamic_shapes())
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)  # source lines of every op: ~6% of the file, of no use to run it
    dest = _atomic(out / PT2_FILE, lambda tmp: torch.export.save(program, tmp))
    _record(out, PT2_FILE, {"exporter": f"torch.export.export, torch {torch.__version__}",
                            "inputs": {"input_ids": ["batch", "seq"]}, "kv_cache": False}, model, tokenizer, card)
    return dest


def load_exported(path: str | Path):
    """The ``ExportedProgram`` in a .pt2 file (or ``to_torch_export``'s folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / PT2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"exported program {str(path)!r} does not exist; write one with to_torch_export")
    try:
        with _quiet():
            return torch.export.load(path)
    except Exception as err:
        raise ValueError(f"{str(path)!r} is not a torch.export .pt2 file ({type(err).__name__}: "
                         f"{str(err).strip()[:200]}); export it again with to_torch_export") from None


# GGUF ------------------------------------------------------------------------------------------
def _gguf_writer(path: str):
    """gguf's ``GGUFWriter``, able to write an empty array: the empty merge list below (gguf-py refuses
    one, though the format and llama.cpp take it, and llama.cpp needs the key of a "gpt2" vocabulary)."""
    import gguf

    class Writer(gguf.GGUFWriter):
        def _pack_val(self, val, vtype, add_vtype, sub_type=None):
            if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
                return ((self._pack("I", vtype) if add_vtype else b"") + self._pack("I", sub_type)
                        + self._pack("Q", 0))
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    return Writer(path, "llama")


def _check_llama(model) -> dict:
    """The llama hyper-parameters GGUF stores, or a ValueError naming what llama.cpp's llama cannot hold."""
    c = model.config
    if c.model_type != "llama":
        raise ValueError(f"GGUF export writes llama models (workbench.core.models.student's); this one is "
                         f"{c.model_type!r}")
    rope = getattr(c, "rope_parameters", None) or {"rope_theta": getattr(c, "rope_theta", 10000.0)}
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    want = {"rope_type": "default", "attention_bias": False, "mlp_bias": False,
            "head_dim": c.hidden_size // c.num_attention_heads, "hidden_act": "silu"}
    have = {"rope_type": rope.get("rope_type", "default"), "attention_bias": getattr(c, "attention_bias", False),
            "mlp_bias": getattr(c, "mlp_bias", False), "head_dim": head_dim, "hidden_act": c.hidden_act}
    odd = [f"{k}={have[k]!r}" for k in want if have[k] != want[k]]
    if odd:
        raise ValueError(f"GGUF export writes plain llama blocks; this model has {', '.join(odd)}")
    return {"context_length": c.max_position_embeddings, "embedding_length": c.hidden_size,
            "block_count": c.num_hidden_layers, "feed_forward_length": c.intermediate_size,
            "head_count": c.num_attention_heads, "head_count_kv": c.num_key_value_heads,
            "rope_dimension_count": head_dim, "rope_freq_base": float(rope["rope_theta"]),
            "layer_norm_rms_eps": float(c.rms_norm_eps), "vocab_size": c.vocab_size}


def _gguf_vocab(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """A character vocabulary as GGUF tokens (GPT-2's byte-level spelling: " " is "Ġ", "\\n" is "Ċ") and types."""
    from gguf import TokenType
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = tokenizer.get_vocab()
    if sorted(vocab.values()) != list(range(vocab_size)):
        raise ValueError(f"the tokenizer's ids are not 0..{vocab_size - 1}, the model's vocabulary; GGUF export "
                         "needs the tokenizer the model was trained with")
    special = set(tokenizer.all_special_tokens)
    tokens = sorted(vocab, key=vocab.get)
    wide = [t for t in tokens if t not in special and (len(t) != 1 or not t.isascii())]
    if wide:
        raise ValueError(f"GGUF export writes character vocabularies of ASCII characters (CharTokenizer's); this "
                         f"tokenizer has {len(wide)} other tokens, e.g. {wide[0]!r}")
    spelling = bytes_to_unicode()
    return ([t if t in special else spelling[ord(t)] for t in tokens],
            [TokenType.CONTROL if t in special else TokenType.NORMAL for t in tokens])


def _permute(w, n_head: int):
    """llama.cpp's order of a q or k projection's rows (rotary pairs interleaved; loaders undo it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down"}


def _gguf_tensors(model, hp: dict):
    """(llama.cpp name, fp32 numpy array) for every weight, q and k permuted; no output.weight when tied."""
    import re

    out = []
    for name, t in model.state_dict().items():
        w = t.detach().to("cpu", torch.float32).numpy()
        if name == "model.embed_tokens.weight":
            out.append(("token_embd.weight", w))
        elif name == "model.norm.weight":
            out.append(("output_norm.weight", w))
        elif name == "lm_head.weight":
            if not model.config.tie_word_embeddings:
                out.append(("output.weight", w))
        elif m := re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.weight", name):
            if m[2] not in _GGUF_NAMES:
                raise ValueError(f"GGUF export: no llama.cpp name for {name!r}")
            if m[2] == "self_attn.q_proj":
                w = _permute(w, hp["head_count"])
            elif m[2] == "self_attn.k_proj":
                w = _permute(w, hp["head_count_kv"])
            out.append((f"blk.{m[1]}.{_GGUF_NAMES[m[2]]}.weight", w))
        elif not name.endswith("rotary_emb.inv_freq"):
            raise ValueError(f"GGUF export: no llama.cpp name for {name!r}")
    return out


def check_gguf(model, tokenizer) -> tuple[dict, tuple[list[str], list[int]]]:
    """A ValueError unless ``to_gguf`` can write ``model`` with ``tokenizer`` (a llama student with a character
    vocabulary of ASCII characters); else its llama hyper-parameters and GGUF vocabulary."""
    if tokenizer is None:
        raise ValueError("a GGUF file holds the tokenizer too: pass tokenizer= (the model's CharTokenizer)")
    _check_model(model)
    return _check_llama(model), _gguf_vocab(tokenizer, model.config.vocab_size)


def to_gguf(model, out: str | Path, tokenizer=None, quant: str = "f32", card: dict | None = None) -> Path:
    """Write ``model`` and its character tokenizer as one GGUF file, ``out/model.gguf`` (``quant="f32"``) or
    ``out/model.q8_0.gguf`` (``quant="q8_0"``); return its path.

    The file is llama.cpp's llama: ``general.architecture`` "llama", the hyper-parameters under
    ``llama.*``, the tensors under llama.cpp's names with q and k in its rotary order
    (``convert_hf_to_gguf.py``'s permutation), and the vocabulary as a "gpt2" (byte-level BPE)
    tokenizer with no merges, so every character is one token, as in ``CharTokenizer``; pad, bos,
    eos and unk are control tokens, and llama.cpp adds neither bos nor eos. transformers loads the
    model back with ``AutoModelForCausalLM.from_pretrained(out, gguf_file="model.gguf")`` and
    rebuilds a tokenizer with ``AutoTokenizer.from_pretrained(out, gguf_file=...)`` that encodes
    ASCII text as ``CharTokenizer`` does (it adds GPT-2's ``<|endoftext|>`` as id ``vocab``, which
    the model never sees, and drops a character outside the vocabulary where ``CharTokenizer``
    writes ``<unk>``); ``CharTokenizer`` itself is saved beside the file when ``tokenizer`` is given.

    ``q8_0``: every matrix whose rows are a multiple of 32 long (``gguf.quants``' Q8_0 blocks) in
    Q8_0, 8.5 bits a weight; the others, and the norms, in F32. ``export.json`` names the F32 ones.
    """
    if quant not in GGUF_FILES:
        raise ValueError(f"quant {quant!r} is not supported: choose one of {', '.join(map(repr, GGUF_FILES))}")
    require_packages("gguf", hint=GGUF_HINT)
    import gguf
    from gguf import GGMLQuantizationType as GGML

    hp, (tokens, types) = check_gguf(model, tokenizer)
    tensors = _gguf_tensors(model, hp)
    kept_f32 = [n for n, w in tensors if quant == "q8_0" and w.ndim == 2 and w.shape[-1] % 32]

    def write(tmp: str) -> None:
        w = _gguf_writer(tmp)
        w.add_name((card or {}).get("name") or Path(model.config._name_or_path or "specialist").name)
        for key, value in hp.items():
            getattr(w, f"add_{key}")(value)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.ALL_F32)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_key_value(gguf.Keys.Tokenizer.MERGES, [], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
        for kind in ("bos", "eos", "pad", "unk"):
            token_id = getattr(tokenizer, f"{kind}_token_id")
            if token_id is not None:
                getattr(w, f"add_{kind}_token_id")(token_id)
        w.add_add_bos_token(False)  # prompts carry no bos: the task text starts them
        w.add_add_eos_token(False)
        for name, arr in tensors:
            if quant == "q8_0" and arr.ndim == 2 and name not in kept_f32:
                w.add_tensor(name, gguf.quants.quantize(arr, GGML.Q8_0), raw_dtype=GGML.Q8_0)
            else:
                w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    out = Path(out)
    dest = _atomic(out / GGUF_FILES[quant], write)
    n_q8 = sum(quant == "q8_0" and w.ndim == 2 and n not in kept_f32 for n, w in tensors)
    entry = {"writer": f"gguf {_version('gguf')}", "architecture": "llama", "quant": quant,
             "tensors": {"Q8_0": n_q8, "F32": len(tensors) - n_q8}, "f32_matrices": kept_f32,
             "tokenizer": "gpt2 vocabulary, no merges: one token per character",
             "loads_with": f"AutoModelForCausalLM.from_pretrained(folder, gguf_file={dest.name!r})"}
    _record(out, dest.name, entry, model, tokenizer, card)
    return dest


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def gguf_file(path: str | Path, quant: str = "f32") -> Path:
    """A GGUF file, or ``to_gguf``'s file of ``quant`` in a folder."""
    path = Path(path)
    if path.is_dir():
        if quant not in GGUF_FILES:
            raise ValueError(f"quant {quant!r} is not supported: choose one of {', '.join(map(repr, GGUF_FILES))}")
        path = path / GGUF_FILES[quant]
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model {str(path)!r} does not exist; write one with to_gguf")
    return path


def load_gguf(path: str | Path, quant: str = "f32"):
    """The transformers model in a GGUF file (or ``to_gguf``'s folder), de-quantized to fp32, in eval mode."""
    from transformers import AutoModelForCausalLM

    path = gguf_file(path, quant)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its de-quantizing bars, on stderr
    try:
        with _quiet():
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval()
