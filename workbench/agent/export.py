"""Export: a specialist as files for lightweight runtimes (ONNX fp32 and int8; torch.export).

    onnx_file = export.to_onnx(model, "artifacts/tool-onnx", tokenizer=tok, card=card)  # + tokenizer, export.json
    export.quantize_onnx(onnx_file)                   # model.int8.onnx beside it (int8 weights, per channel)
    export.to_torch_export(model, "artifacts/tool-onnx")                                 # model.pt2 beside it

What is exported is the plain forward ``input_ids [batch, seq] int64 -> logits [batch, seq, vocab]``,
both axes dynamic, without a KV cache: these models are tiny, and one graph with one input is
what any runtime can take. ``workbench.agent.runtimes`` runs the files and compares them with PyTorch.

ONNX comes from the dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs onnxscript):
the TorchScript exporter stops at ``aten::diff`` in transformers' mask code. Int8 is onnxruntime's
dynamic quantization (Jacob et al., 2018), the counterpart of ``quantize.dynamic_int8``.
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
SPEC = EXPORT_SPEC  # "export.json": opset, exporter, vocabulary, and what each file is
# the dynamo exporter writes opset 18 at the least (asked for less, it quietly writes 18); from 23 it fuses
# rotary embeddings into ONNX's RotaryEmbedding op, which onnxruntime 1.32 refused here at batch > 1
OPSETS = range(18, 23)
DEFAULT_OPSET = 20
INSTALL_HINT = "pip install onnx onnxruntime onnxscript"
CARD_KEYS = ("name", "tasks", "profile", "student", "params", "eval")  # what export.json keeps of a model card


def require_packages(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"exporting needs {', '.join(missing)}, not installed; install with: {INSTALL_HINT}")


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


def onnx_file(path: str | Path, int8: bool = False) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / (ONNX_INT8_FILE if int8 else ONNX_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {str(path)!r} does not exist; write one with to_onnx"
                                + (" and quantize_onnx" if int8 else ""))
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

    ``src`` is an .onnx file or ``to_onnx``'s folder; ``dst`` defaults to ``model.int8.onnx`` beside it.
    """
    require_packages("onnx", "onnxruntime")
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = onnx_file(src)
    check_onnx(src)
    dst = Path(dst) if dst is not None else src.parent / ONNX_INT8_FILE
    with _quiet():
        _atomic(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True))
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
