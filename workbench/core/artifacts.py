"""Artifacts a user keeps: one folder per model, and a cache of specialists trained once.

A model folder holds ``save_pretrained`` weights (safetensors), the tokenizer, ``workbench.json``
(how it was trained and what it scored) and a ``README.md`` model card written from it. Files
are written to a temporary folder and moved in one by one with ``os.replace``, so an interrupted
save never leaves a half-written model behind.

``specialist(task)`` is the content-addressed cache the notebooks use: the key hashes the
recipe (student size, training config, profile), so asking again for the same specialist loads
it, and changing any number trains a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.core.files import readable, write_atomic
from workbench.core.measure import bytes_on_disk
from workbench.core.validate import CARD, BadInput, check_model_folder, read_json
from workbench.core.validate import read_card as read_card  # where callers have always found it


def is_model_folder(path: str | Path) -> bool:
    return (Path(path) / CARD).exists() and (Path(path) / "config.json").exists()


def check_writable(out: str | Path, flag: str = "--out") -> Path:
    """``out`` as a Path once a file could really be written there; else one clear ValueError.

    The folder is created if missing (nothing else is touched), and a probe file is written and
    removed, which also catches read-only file systems and permission checks root would pass.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise BadInput(f"{flag} {str(out)!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise BadInput(f"{flag} {str(out)!r} is not writable ({err.strerror or err})") from None
    return out


def save_model(out: str | Path, model, tokenizer, card: dict) -> Path:
    """Write weights, tokenizer, ``workbench.json`` and ``README.md`` into ``out`` atomically per file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".save-", dir=out))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for f in readable(tmp).iterdir():
            os.replace(f, out / f.name)  # each file arrives whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_card(out, {**card, "bytes": bytes_on_disk(out)})  # last: a folder with a card is complete
    return out


def write_card(out: Path, card: dict) -> None:
    """``workbench.json`` and the ``README.md`` model card, each written atomically."""
    for name, text in ((CARD, json.dumps(card, indent=1, sort_keys=True)), ("README.md", model_card(card))):
        write_atomic(Path(out) / name, text)


def model_card(card: dict) -> str:
    """A human-readable card from the JSON one (a LoRA teacher's adapters, whose card has ``lora``: `adapter_card`)."""
    if "lora" in card:
        return adapter_card(card)
    ev = card.get("eval", {})
    levels = ", ".join(f"L{k}: {100 * v:.0f}%" for k, v in sorted(ev.get("by_level", {}).items()))
    lines = [
        f"# {card.get('name', 'workbench student')}", "",
        card.get("description") or "A character-level Llama-style student trained by small-reasoners on "
                                   f"`{', '.join(card.get('tasks', []))}`.",
        "",
        "| field | value |", "|---|---|",
        f"| tasks | {', '.join(card.get('tasks', []))} |",
        f"| profile | {card.get('profile', '')} |",
        f"| data | {card.get('data', '')} |",
        f"| rationale | {card.get('train', {}).get('rationale', '')} |",
        f"| steps | {card.get('train', {}).get('steps', '')} |",
        f"| seed | {card.get('train', {}).get('seed', '')} |",
        f"| parameters | {card.get('params', '')} |",
        f"| bytes on disk | {card.get('bytes', '')} |",
        f"| test accuracy (BBH level, n={ev.get('n', '')}) | {100 * ev.get('accuracy', 0):.1f}% |",
        f"| test accuracy by level | {levels} |",
        f"| latency per example | {ev.get('latency_ms', 0):.1f} ms ({card.get('machine', '')}) |",
        f"| training time | {card.get('train_seconds', 0):.0f} s |",
        *([f"| recipe key | `{card['recipe_key']}` (data version {card.get('data_version', 1)}"
           + (f", augmented draws version {card['augment_version']}" if "augment_version" in card else "") + ") |"]
          if card.get("recipe_key") else []),
        *([f"| weights stored as | {card['stored_dtype']} (computed in float32) |"]
          if card.get("stored_dtype") else []),
        "",
        "Load it with `workbench.core.models.load_pretrained(PATH)`; score it with "
        "`python -m workbench eval --model PATH --task TASK`.",
    ]
    return "\n".join(lines) + "\n"


def recipe_key(recipe: dict) -> str:
    """A short content hash of everything that decides what a training run produces."""
    blob = json.dumps(recipe, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


# compressed models: a declared record instead of ad hoc attributes -----------------------------
@dataclass(frozen=True)
class Compression:
    """One change a pattern made to a model's weights, and what its loader needs to rebuild them.

    ``quantize.dynamic_int8`` records ``Compression("dynamic_int8", {"layers": [...]})``; ``lowrank.factorize``
    records ``Compression("lowrank", {layer: rank})``. ``save`` functions write ``spec`` beside the weights.
    """

    method: str  # "dynamic_int8" or "lowrank"
    spec: dict  # layers, bits, ranks: what the spec file holds


def mark_compressed(model, method: str, spec: dict):
    """Record ``Compression(method, spec)`` on ``model`` (replacing an earlier record of that method)."""
    kept = tuple(c for c in compressions(model) if c.method != method)
    model.workbench_compressions = (*kept, Compression(method, dict(spec)))
    return model


def compressions(model) -> tuple[Compression, ...]:
    """Every change recorded on ``model``, oldest first (none for a plain model)."""
    return tuple(getattr(model, "workbench_compressions", ()))


def compression(model, method: str) -> Compression | None:
    """The record of ``method`` on ``model``, or None."""
    return next((c for c in compressions(model) if c.method == method), None)


def rebuild(path: str | Path, spec_file: str, what: str):
    """For folders whose modules plain ``from_pretrained`` cannot rebuild (quantized, factorised):
    ``(model from config.json, tokenizer, the spec JSON, the safetensors weights)``."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from workbench.core.tokenizer import load_tokenizer

    path = Path(path)
    if not (path / spec_file).is_file():
        raise ValueError(f"{str(path)!r} holds no {what} model (no {spec_file}); load it with load_pretrained")
    check_model_folder(path)
    spec = read_json(path / spec_file, f"{what} spec")
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).eval()
    return model, load_tokenizer(str(path)), spec, load_file(path / "model.safetensors")


def adapter_card(card: dict) -> str:
    """The model card of a pretrained model's LoRA adapters (notebook 03's teacher) from its JSON card."""
    ev, lo = card["eval"], card["lora"]
    return "\n".join([
        f"# {card['name']}", "", card["description"], "",
        "| field | value |", "|---|---|",
        f"| base model | `{card['base']}` (loaded offline by `workbench.core.models.load_pretrained`) |",
        f"| LoRA | rank {lo['rank']}, {lo['steps']} steps of {lo['batch_size']} rationales, lr {lo['lr']} |",
        f"| trainable parameters | {card['trainable']:,} of {card['params']:,} |",
        f"| adapters stored as | {card.get('stored_dtype', 'float32')} (computed in float32) |",
        f"| test accuracy (BBH level, n={ev['n']}, as stored) | {100 * ev['accuracy']:.1f}% |",
        *([f"| test accuracy as trained | {100 * card['trained_eval']['accuracy']:.1f}% |"]
          if "trained_eval" in card else []),
        f"| training time | {card['train_seconds']:.0f} s ({card['seconds_per_step']:.1f} s a step) |",
        "",
        f"Load it with `workbench.studies.distillation.lora_teacher({card['tasks'][0]!r}, "
        "workbench.studies.distillation.lora_teacher_config())`: the folder name is the recipe's key, so a changed "
        "recipe trains its own teacher; `make specialists` refreshes the shipped one.", ""])
