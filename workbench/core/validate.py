"""The boundary: every file, folder, argument and environment variable the workbench reads, checked before
work starts.

Each check raises ``BadInput`` (a ``ValueError``) whose message is one line: the value, with its file and
line where there is one, and what would be accepted. The CLI prints it as ``error: <message>`` and exits
with status 2; notebooks and widgets see the same exception from the same functions (``load_pretrained``,
``read_card``, ``read_jsonl``, ``train_specialist`` call them). Nothing here writes a file, and nothing here
imports torch: a bad input is refused in milliseconds, before a model loads.

What is refused, and why (README, "What the workbench refuses"):
- weights other than safetensors (a pickle can run code when loaded), unless the caller opts in;
- safetensors whose header or size do not add up (a truncated download, a half-copied folder);
- output folders holding files this project did not write, or a model of another task;
- checkpoint pointers that lead outside their run's folder, and resumed states of another run.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

CARD = "workbench.json"  # a model folder's card: how it was trained and what it scored
CKPT_DIR = "checkpoints"
LOCK = ".workbench.lock"  # a run in progress (files.locked)
SCRATCH = (".save-", ".probe-", ".step-")  # temporary names the workbench's own atomic writes use


class BadInput(ValueError):
    """A value the workbench refuses. The message is one line: the value (file:line where there is one) and
    what would be accepted."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())


# environment -------------------------------------------------------------------------------------
def env_folder(name: str) -> Path | None:
    """The folder named by environment variable ``name`` (None when unset or empty); it may not exist yet."""
    value = os.environ.get(name)
    if not value:
        return None
    if not value.strip() or "\0" in value:
        raise BadInput(f"{name}={value!r} is not a folder name; give a folder (it is created when missing)")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInput(f"{name}={value!r} is a file; give a folder (it is created when missing)")
    return path


# JSON files --------------------------------------------------------------------------------------
def read_json(path: str | Path, what: str, expected: str = "a JSON object"):
    """The parsed JSON of ``path`` (an object), or BadInput naming the file, the line and ``expected``."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{what} {str(path)!r} is a folder; expected a file holding {expected}")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{what} {str(path)!r} does not exist; expected a file holding {expected}") from None
    except OSError as err:
        raise BadInput(f"{what} {str(path)!r} cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: {what} is not UTF-8 text (byte {err.start}); expected {expected}") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as err:
        line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        raise BadInput(f"{path}{line}: {what} is not valid JSON ({getattr(err, 'msg', err)}); "
                       f"expected {expected}") from None
    except RecursionError:
        raise BadInput(f"{path}: {what} nests too deeply; expected {expected}") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: {what} holds {_kind(obj)}; expected {expected}")
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _kind(obj) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null", int: "a number",
            float: "a number", bytes: "bytes"}.get(type(obj), type(obj).__name__)


def is_int(value) -> bool:
    """An int that is not a bool (JSON ``true`` would otherwise pass as level 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_text(text, what: str = "the prompt") -> str:
    """A question typed for a model (a widget's text box, a notebook's argument): text that is not blank."""
    if not isinstance(text, str):
        raise BadInput(f"{what} is {_kind(text)}; expected text, a question for the model to answer")
    if not text.strip():
        raise BadInput(f"{what} is empty: type a question for the model to answer")
    return text


def check_count(value, what: str, low: int = 1, high: int | None = None) -> int:
    """An integer setting (a budget, a step, a number of samples) between ``low`` and ``high``."""
    if not is_int(value) or value < low or (high is not None and value > high):
        wanted = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise BadInput(f"{what} is {value!r}; expected {wanted}")
    return value


# model folders -----------------------------------------------------------------------------------
CARD_SHAPE = 'an object with "tasks" (a non-empty list of task names) and optional "train" and "eval" objects'


def read_card(folder: str | Path) -> dict:
    """``workbench.json`` of a model folder, checked: tasks listed, ``train`` and ``eval`` objects if present."""
    path = Path(folder) / CARD
    card = read_json(path, "model card", CARD_SHAPE)
    tasks = card.get("tasks")
    if not (isinstance(tasks, list) and tasks and all(isinstance(t, str) and t for t in tasks)):
        raise BadInput(f"{path}: \"tasks\" is {tasks!r}; expected {CARD_SHAPE}")
    for key in ("train", "eval", "student"):
        if key in card and not isinstance(card[key], dict):
            raise BadInput(f"{path}: \"{key}\" is {_kind(card[key])}; expected {CARD_SHAPE}")
    return card


def safetensors_names(path: str | Path) -> set[str]:
    """The tensor names a safetensors file declares, once its header parses and its size adds up."""
    path = Path(path)
    accepted = "a complete safetensors file (save_pretrained writes one)"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= n <= min(size - 8, 100 << 20):
                raise BadInput(f"{path}: not a safetensors file (header length {n}, file size {size}); "
                               f"expected {accepted}")
            header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"{path}: unreadable safetensors header ({err}); expected {accepted}") from None
    if not isinstance(header, dict):
        raise BadInput(f"{path}: safetensors header is {_kind(header)}; expected {accepted}")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise BadInput(f"{path}: safetensors header lists a tensor without offsets; expected {accepted}") from None
    if 8 + n + end != size:
        raise BadInput(f"{path}: {size} bytes, but its header describes {8 + n + end} (truncated or padded); "
                       f"expected {accepted}")
    return set(tensors)


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_folder(folder: str | Path, allow_pickle: bool = False) -> Path:
    """A local model folder whose config, weights, tokenizer files and card (if any) can all be read.

    Weights must be safetensors (``model.safetensors`` or a sharded index); pickle weights
    (``pytorch_model.bin``) only with ``allow_pickle``, since unpickling can run arbitrary code.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"model folder {str(folder)!r} is not a folder; give a folder written by save_pretrained")
    read_json(folder / "config.json", "model config", 'a transformers config object with "model_type"')
    weights = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if weights.exists():
        safetensors_names(weights)
    elif index.exists():
        shards = read_json(index, "safetensors index", 'an object with a "weight_map" of tensor -> shard file')
        files = shards.get("weight_map")
        if not isinstance(files, dict) or not all(isinstance(v, str) and "/" not in v for v in files.values()):
            raise BadInput(f"{index}: no \"weight_map\" of tensor -> shard file in this folder")
        for shard in sorted(set(files.values())):
            safetensors_names(folder / shard)
    elif any((folder / p).exists() for p in PICKLE_WEIGHTS):
        if not allow_pickle:
            raise BadInput(f"{folder} holds pickle weights only (pytorch_model.bin), which can run code when "
                           "loaded; convert them to safetensors, or pass --allow-pickle (allow_pickle=True) if "
                           "you trust their source")
    else:
        raise BadInput(f"{folder} holds no weights; expected model.safetensors (written by save_pretrained)")
    tok_config = folder / "tokenizer_config.json"
    if tok_config.exists():
        tc = read_json(tok_config, "tokenizer config")
        if tc.get("tokenizer_class") == "CharTokenizer":
            vocab = read_json(folder / "vocab.json", "character vocabulary", 'an object {"alphabet": "..."}')
            if not isinstance(vocab.get("alphabet"), str) or not vocab["alphabet"]:
                raise BadInput(f"{folder / 'vocab.json'}: no \"alphabet\" string; expected an object "
                               '{"alphabet": "..."}')
    if (folder / CARD).exists():
        read_card(folder)
    return folder


def check_loaded_weights(info: dict, where: str) -> None:
    """``from_pretrained(..., output_loading_info=True)``'s report: a missing or unexpected tensor is an error
    (transformers would initialise the missing ones at random and carry on)."""
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    for label, keys in (("misses", missing), ("has unexpected", unexpected), ("has wrongly shaped", mismatched)):
        if keys:
            raise BadInput(f"{where}: the weights {label} tensors ({len(keys)}, e.g. {keys[0]}); expected exactly "
                           "the tensors its config.json describes")


# data files --------------------------------------------------------------------------------------
LINE_SHAPE = ('an object {"input": str, "target": str} with optional "rationale" (str), "level" (one of the '
              "task's levels) and \"task\"")


def read_jsonl(path: str | Path, what: str, expected: str) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; BadInput naming the file and line of the
    first that is not a JSON object, or the file when it is missing, a folder, not UTF-8 or empty."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{what} {str(path)!r} is a folder; expected a JSONL file, one {expected} per line")
    if not path.is_file():
        raise BadInput(f"{what} file {str(path)!r} does not exist")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text (byte {err.start}); expected JSONL") from None
    except OSError as err:
        raise BadInput(f"{what} file {str(path)!r} cannot be read ({err.strerror or err})") from None
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant)
        except json.JSONDecodeError as err:
            raise BadInput(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        except (ValueError, RecursionError) as err:
            raise BadInput(f"{path}:{lineno}: not valid JSON ({err or 'nested too deeply'}); expected {expected}") \
                from None
        if not isinstance(obj, dict):
            raise BadInput(f"{path}:{lineno}: expected {expected}, got {_kind(obj)}")
        out.append((lineno, obj))
    if not out:
        raise BadInput(f"{path}: no examples in the file")
    return out


def read_examples(path: str | Path, task) -> list[tuple[int, object]]:
    """``(line number, Example)`` for each non-blank line of a user's JSONL file, every field checked
    against ``task`` (a ``workbench.tasks.Task``): types, the task's levels and the form of its answers."""
    from workbench.tasks import Example

    out = []
    for lineno, obj in read_jsonl(path, "data", LINE_SHAPE):
        where = f"{path}:{lineno}"
        if not isinstance(obj.get("input"), str) or not isinstance(obj.get("target"), str):
            raise BadInput(f'{where}: expected an object with string fields "input" and "target"')
        if not obj["input"].strip():
            raise BadInput(f'{where}: "input" is empty; expected {LINE_SHAPE}')
        reason = task.check_target(obj["target"])
        if reason is not None:
            raise BadInput(f"{where}: target {obj['target']!r} cannot be an answer of {task.name}; "
                           f"expected {reason}")
        rationale = obj.get("rationale", "")
        if not isinstance(rationale, str):
            raise BadInput(f'{where}: "rationale" is {_kind(rationale)}; expected a string')
        if obj.get("task", task.name) != task.name:
            raise BadInput(f"{where}: \"task\" is {obj['task']!r}, but --task is {task.name!r}")
        level = obj.get("level", 0)
        if "level" in obj and not (is_int(level) and level in task.levels):
            raise BadInput(f"{where}: level must be an integer, one of {list(task.levels)}, got {level!r}")
        out.append((lineno, Example(task.name, level, obj["input"], rationale, obj["target"])))
    return out


RECORD_SHAPE = 'an object {"task": str, "level": int, "input": str, "rationale": str, "target": str}'


def read_records(path: str | Path, what: str) -> list:
    """The Examples of a JSONL file the workbench wrote itself (a cache): every line an object with exactly the
    fields of an Example, of their types; BadInput naming the file and the line of the first that is not."""
    from workbench.tasks import Example

    out = []
    for lineno, obj in read_jsonl(path, what, RECORD_SHAPE):
        if set(obj) != {"task", "level", "input", "rationale", "target"} or not is_int(obj["level"]) \
                or not all(isinstance(obj[k], str) for k in ("task", "input", "rationale", "target")):
            raise BadInput(f"{path}:{lineno}: {what} line is not {RECORD_SHAPE}")
        out.append(Example(**obj))
    return out


def checkpoint_pointer(out: str | Path) -> Path | None:
    """The checkpoint ``OUT/checkpoints/latest.json`` points at (None without a pointer); it must name a
    ``step-N`` folder inside ``OUT/checkpoints``, never a path elsewhere."""
    root = Path(out) / CKPT_DIR
    pointer = root / "latest.json"
    if not pointer.exists():
        return None
    shape = 'an object {"step": N, "path": "step-000000N"}'
    obj = read_json(pointer, "checkpoint pointer", shape)
    name = obj.get("path")
    if not isinstance(name, str) or not re.fullmatch(r"step-\d{7}", name) or not is_int(obj.get("step")):
        raise BadInput(f"{pointer}: expected {shape}, got {json.dumps(obj)[:120]}; "
                       "delete it to start the run afresh")
    path = root / name
    if path.is_symlink() or path.resolve().parent != root.resolve():
        raise BadInput(f"{pointer}: {name!r} leads outside {root}; checkpoints are read only from their run's folder")
    if not path.is_dir():
        raise BadInput(f"{pointer}: checkpoint {name!r} is missing; delete the pointer to start the run afresh")
    return path


STATE_SHAPE = 'an object with "step" (an integer), "sampler" (an object) and "history" (a list)'


def check_trainer_state(path: Path, state, steps: int | None = None, config: dict | None = None) -> dict:
    """A checkpoint's ``trainer_state.json``, checked against the run resuming it: the step lies inside the run,
    the sampler's state is there, and the run's config (task, recipe) is the one that wrote it."""
    where = path / "trainer_state.json"
    if not isinstance(state, dict):
        raise BadInput(f"{where}: holds {_kind(state)}; expected {STATE_SHAPE}")
    step = state.get("step")
    if not is_int(step) or step < 1 or (steps is not None and step >= steps):
        limit = f"between 1 and {steps - 1}" if steps is not None else "a positive integer"
        raise BadInput(f"{where}: step {step!r} is not inside this run; expected {limit}")
    if not isinstance(state.get("sampler"), dict) or not isinstance(state.get("history"), list):
        raise BadInput(f"{where}: sampler state or history missing; expected {STATE_SHAPE}")
    written = state.get("config")
    if config is not None and written is not None:
        differ = [k for k in sorted(set(config) | set(written)) if config.get(k) != written.get(k)]
        if differ:
            k = differ[0]
            raise BadInput(f"{where}: written by a run with {k}={written.get(k)!r}, this run has "
                           f"{k}={config.get(k)!r}; resume with the arguments that started it, or use another --out")
    return state


EXPORT_SPEC = "export.json"  # what ``agent.export`` writes beside the files it exports
EXPORT_SHAPE = 'an object with "artifacts" (an object), as an export writes it'


def read_export_spec(folder: str | Path) -> dict:
    """An export folder's ``export.json``, checked: an object with an ``artifacts`` object."""
    path = Path(folder) / EXPORT_SPEC
    spec = read_json(path, "export spec", EXPORT_SHAPE)
    if not isinstance(spec.get("artifacts"), dict):
        raise BadInput(f"{path}: no \"artifacts\" object; expected {EXPORT_SHAPE}")
    return spec
