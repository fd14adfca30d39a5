"""Checkpoints of a training run: ``OUT/checkpoints/step-N`` folders and a ``latest.json`` pointer.

A checkpoint holds the weights (safetensors), the tokenizer, the optimizer's and scheduler's state, the
random generators and the sampler's state, so ``train(..., resume=True)`` continues bit for bit. Each is
written in a temporary folder and renamed into place, and the pointer moves last: a run killed at any
moment leaves the previous checkpoint intact. The newest two are kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

from workbench.core.files import readable, write_atomic
from workbench.core.validate import CKPT_DIR, STATE_SHAPE, BadInput, check_trainer_state, checkpoint_pointer, read_json

BEST = "best.safetensors"  # the best validation's weights so far (TrainConfig.keep_best)


def _write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1))


def save_checkpoint(out: Path, step: int, model, tokenizer, optimizer, scheduler, sampler, history,
                    best=None, config: dict | None = None) -> Path:
    """Write ``checkpoints/step-N`` in a temporary folder, rename it, then point ``latest`` at it. ``best``
    (validation accuracy, step, weights), when given, goes with it as ``best.safetensors``; ``config`` (the
    run's TrainConfig as JSON) lets a resumed run check that it is the same run."""
    root = Path(out) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".step-", dir=root))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng.pt")
    state = {"step": step, "sampler": sampler.state_dict(), "history": history}
    if config is not None:
        state["config"] = config
    if best is not None:
        from safetensors.torch import save_file

        save_file(best[2], str(tmp / BEST))
        state["best"] = {"val_accuracy": best[0], "step": best[1]}
    _write_json(tmp / "trainer_state.json", state)
    final = root / f"step-{step:07d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(readable(tmp), final)
    _write_json(root / "latest.json", {"step": step, "path": final.name})
    for old in sorted(root.glob("step-*"))[:-2]:  # keep the newest two
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    """The checkpoint ``latest.json`` points at (None without one); BadInput when the pointer is damaged or
    leads outside ``out/checkpoints``."""
    return checkpoint_pointer(out)


def load_checkpoint(path: Path, model, optimizer, scheduler, sampler, steps: int | None = None,
                    config: dict | None = None) -> tuple[int, list]:
    """Restore everything ``save_checkpoint`` wrote; a damaged file raises one clear ValueError (BadInput), and
    so does a state of another run: a step outside ``steps``, no sampler state, or another ``config``."""
    from safetensors.torch import load_file

    state = read_json(path / "trainer_state.json", "trainer state", STATE_SHAPE)
    check_trainer_state(path, state, steps, config)  # before anything is restored
    try:
        weights = load_file(path / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:  # lm_head is tied to the embedding
            raise ValueError(f"weights do not match the model (missing {missing}, unexpected {unexpected})")
        model.tie_weights()
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng = torch.load(path / "rng.pt", weights_only=True)
    except Exception as err:  # any damage: truncated safetensors, pickles
        raise BadInput(f"checkpoint {path} is corrupted or incomplete: {err}") from None
    torch.set_rng_state(rng["torch"])
    random.setstate(_as_tuple(rng["python"]))
    sampler.load_state_dict(state["sampler"])
    return state["step"], state["history"]


def load_best(path: Path):
    """(validation accuracy, step, weights) of the best validation a checkpoint kept, or None."""
    from safetensors.torch import load_file

    try:
        meta = read_json(path / "trainer_state.json", "trainer state", STATE_SHAPE).get("best")
        return None if meta is None else (meta["val_accuracy"], meta["step"], load_file(path / BEST))
    except Exception as err:
        raise BadInput(f"checkpoint {path} is corrupted or incomplete: {err}") from None


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
