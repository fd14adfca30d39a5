"""Bad inputs through the command line, as a hostile user sends them (issue 19): every one exits with status 2,
prints exactly one line on stderr naming the value, prints nothing on stdout, and changes no file.

Each case builds its files in a fresh folder (a tiny saved student with its card, data files, half-written
runs), hashes every file there, runs ``workbench.cli.main`` in this process (no subprocess: the whole table
takes seconds), and hashes again. The cases are grouped by the issue's classes: tracebacks, hangs,
overwrites, silently wrong results and misleading messages.
"""

import hashlib
import html
import json
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
import torch

from workbench import cli

LONG_INPUT = "not " * 150 + "True is"  # 607 characters: past the tiny student's 512-token context
FINISHED = {"tasks": ["boolean_expressions"], "train": {"rationale": False, "steps": 16}, "eval": {}}


@pytest.fixture(scope="module")
def base(tiny_student, tmp_path_factory):
    """A folder holding ``model/``: the tiny student, saved, with the card of a finished boolean_expressions run."""
    root = tmp_path_factory.mktemp("boundary")
    shutil.copytree(tiny_student[2], root / "model")
    (root / "model" / "workbench.json").write_text(json.dumps(FINISHED))
    return root


@pytest.fixture(autouse=True, scope="module")
def _splits_made_once():
    """``splits.texts`` remembered across this module: the cases test what ``data`` does with the text, and
    generating a task's splits takes seconds."""
    from workbench.tasks import splits

    made, texts = {}, splits.texts

    def remembered(task_name, data_dir=splits.DATA_DIR):
        if task_name not in made:
            made[task_name] = {p.relative_to(data_dir): t for p, t in texts(task_name, data_dir).items()}
        return {Path(data_dir) / rel: t for rel, t in made[task_name].items()}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(splits, "texts", remembered)
        yield


def _write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def _good(target="True", **extra):
    return {"input": "True and False is", "target": target, **extra}


# model folders, each made bad in one way ----------------------------------------------------------
def _truncate(d):
    f = d / "model" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _pad(d):
    with open(d / "model" / "model.safetensors", "ab") as f:
        f.write(b"\0" * 64)


def _tensors(d, keep=None, extra=None):
    from safetensors.torch import load_file, save_file

    f = d / "model" / "model.safetensors"
    weights = load_file(f)
    names = sorted(weights)
    weights = {k: weights[k] for k in (keep(names) if keep else names)}
    weights.update(extra or {})
    save_file(weights, str(f), metadata={"format": "pt"})


def _only_pickle(d):
    from safetensors.torch import load_file

    f = d / "model" / "model.safetensors"
    torch.save(load_file(f), d / "model" / "pytorch_model.bin")
    f.unlink()


def _header(d, n: int):
    f = d / "model" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", n) + f.read_bytes()[8:])


def _file(name, content):
    return lambda d: _write(d / "model" / name, content)


def _remove(name):
    return lambda d: (d / "model" / name).unlink()


# runs in --out, finished or not -------------------------------------------------------------------
def _run_config(task="boolean_expressions", **changes):
    from workbench.core.recipes import recipe

    return {**recipe(task, "smoke", steps=16)[1].as_json(), **changes}


def _unfinished(d, state=None, pointer=None, name="step-0000008"):
    """``d/run``: the checkpoints of a smoke run stopped at step 8 (the trainer state only, which is read first)."""
    state = state if state is not None else {"step": 8, "sampler": {}, "history": [], "config": _run_config()}
    _write(d / "run" / "checkpoints" / name / "trainer_state.json",
           state if isinstance(state, str) else json.dumps(state))
    pointer = pointer if pointer is not None else {"step": 8, "path": name}
    _write(d / "run" / "checkpoints" / "latest.json", pointer if isinstance(pointer, str) else json.dumps(pointer))


def _symlinked(d):
    _unfinished(d)
    outside = d / "elsewhere" / "step-0000009"
    shutil.copytree(d / "run" / "checkpoints" / "step-0000008", outside)
    (d / "run" / "checkpoints" / "step-0000009").symlink_to(outside)
    _write(d / "run" / "checkpoints" / "latest.json", json.dumps({"step": 9, "path": "step-0000009"}))


def _lock(d, pid, host=None, folder="run"):
    _write(d / folder / ".workbench.lock", f"{pid} {host or socket.gethostname()}\n" if pid is not None else host)


def _edited_split(d):
    """``d/splits`` as ``data --task tool_call`` writes it, but line 3 of the validation split edited by hand."""
    from workbench.tasks import splits

    for path, text in splits.texts("tool_call", d / "splits").items():
        lines = text.splitlines(keepends=True)
        if path.name == "validation.jsonl":
            lines[2] = lines[2].replace('"level": ', '"level":  ')
        _write(path, "".join(lines))


def _copy_model_to_run(d, card=None):
    shutil.copytree(d / "model", d / "run")
    if card is not None:
        (d / "run" / "workbench.json").write_text(json.dumps(card))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


EVAL = ["eval", "--task", "boolean_expressions", "--model", "{d}/model"]
DATA = [*EVAL, "--data", "{d}/data.jsonl"]
TRAIN = ["train", "--task", "boolean_expressions", "--profile", "smoke", "--steps", "16", "--out", "{d}/run"]
RESUME = [*TRAIN, "--resume"]
BENCH = ["bench", "agent", "--profile", "smoke", "--out", "{d}/exp"]
SPLITS = ["data", "--task", "tool_call", "--dir", "{d}/splits"]
REPORT, REPORTS = ["report", "--profile", "smoke"], {"WORKBENCH_REPORT_DIR": "{d}/reports"}


def results(text):
    return lambda d: _write(d / "reports" / "smoke" / "results.json", text)


def data(*objs):
    return lambda d: _write(d / "data.jsonl", _lines(*objs))


# (id, argv, setup(d), a part of the message, environment)
CASES = [
    # --- tracebacks today -------------------------------------------------------------------------
    ("data-rationale-number", DATA, data(_good(rationale=3)), '"rationale" is a number', {}),
    ("data-rationale-list", DATA, data(_good(rationale=["a"])), '"rationale" is a list', {}),
    ("data-nan", DATA, data('{"input": "True is", "target": "True", "level": NaN}'), "NaN is not a JSON number", {}),
    ("data-deep-nesting", DATA, data("[" * 100000 + "]" * 100000), "data.jsonl:1: not valid JSON", {}),
    ("data-not-utf8", DATA, lambda d: _write(d / "data.jsonl", b'{"input": "\xff\xfe", "target": "True"}\n'),
     "not UTF-8", {}),
    ("predictions-missing-folder", [*EVAL, "--n", "2", "--predictions", "{d}/no/such/p.jsonl"], None,
     "does not exist; create it first", {}),
    ("model-truncated-safetensors", EVAL, _truncate, "model.safetensors: ", {}),
    ("model-empty-safetensors", EVAL, _file("model.safetensors", b""), "not a safetensors file", {}),
    ("model-header-too-long", EVAL, lambda d: _header(d, 1 << 40), "not a safetensors file", {}),
    ("model-header-garbage", EVAL, lambda d: _header(d, 50), "safetensors", {}),
    ("model-padded-safetensors", EVAL, _pad, "truncated or padded", {}),
    ("card-not-json", EVAL, _file("workbench.json", "not json"), "workbench.json:1: model card is not valid JSON", {}),
    ("card-empty-object", EVAL, _file("workbench.json", "{}"), '"tasks" is None', {}),
    ("card-list", EVAL, _file("workbench.json", "[]"), "model card holds a list", {}),
    ("card-tasks-number", EVAL, _file("workbench.json", '{"tasks": 3}'), '"tasks" is 3', {}),
    ("card-train-list", EVAL, _file("workbench.json", '{"tasks": ["boolean_expressions"], "train": []}'),
     '"train" is a list', {}),
    ("card-binary", EVAL, _file("workbench.json", b"\x80\x81"), "not UTF-8", {}),
    ("card-infinity", EVAL, _file("workbench.json", '{"tasks": ["x"], "eval": {"n": Infinity}}'),
     "Infinity is not a JSON number", {}),
    ("card-is-folder", EVAL, lambda d: (_remove("workbench.json")(d), (d / "model" / "workbench.json").mkdir()),
     "is a folder", {}),
    ("vocab-not-json", EVAL, _file("vocab.json", "{"), "vocab.json:1: character vocabulary is not valid JSON", {}),
    ("vocab-no-alphabet", EVAL, _file("vocab.json", "{}"), 'no "alphabet" string', {}),
    ("tokenizer-config-not-json", EVAL, _file("tokenizer_config.json", "x"), "tokenizer config is not valid JSON", {}),
    ("latest-json-list", RESUME, lambda d: _unfinished(d, pointer="[]"), "checkpoint pointer holds a list", {}),
    ("latest-json-empty-object", RESUME, lambda d: _unfinished(d, pointer="{}"),
     'expected an object {"step": N, "path": "step-000000N"}', {}),
    ("latest-json-garbage", RESUME, lambda d: _unfinished(d, pointer="garbage"),
     "checkpoint pointer is not valid JSON", {}),
    ("latest-json-path-number", RESUME, lambda d: _unfinished(d, pointer='{"step": 8, "path": 8}'),
     "latest.json: expected", {}),
    ("latest-json-missing-step-folder", RESUME,
     lambda d: _unfinished(d, pointer={"step": 24, "path": "step-0000024"}), "'step-0000024' is missing", {}),
    ("trainer-state-list", RESUME, lambda d: _unfinished(d, state="[]"), "trainer state holds a list", {}),
    ("trainer-state-not-json", RESUME, lambda d: _unfinished(d, state="{"),
     "trainer state is not valid JSON", {}),
    ("results-json-garbage", REPORT, results("{"), "results file is not valid JSON", REPORTS),
    ("results-json-list", REPORT, results("[]"), "results file holds a list", REPORTS),
    ("results-without-results", REPORT, results('{"results": []}'), 'no "results" object', REPORTS),
    # --- hangs today ----------------------------------------------------------------------------------
    ("data-input-past-context", [*DATA, "--rationale"], data({"input": LONG_INPUT, "target": "True"}),
     "data.jsonl:1: the input's prompt is 608 tokens long; this model reads at most 512", {}),
    ("data-input-past-context-line-3", DATA, data(_good(), _good(), {"input": "x" * 600, "target": "True"}),
     "data.jsonl:3: the input's prompt is 601 tokens", {}),
    # --- overwrites today --------------------------------------------------------------------------
    ("train-out-empty-string", [*TRAIN[:-1], ""], None, "--out '' names no folder", {}),
    ("train-out-blank", [*TRAIN[:-1], "  "], None, "--out '  ' names no folder", {}),
    ("train-out-current-folder", [*TRAIN[:-1], "."], lambda d: _write(d / "README.md", "# mine\n"),
     "holds files this workbench did not write (README.md", {}),
    ("train-out-other-project", TRAIN,
     lambda d: (_write(d / "run" / "README.md", "# x"), _write(d / "run" / "config.json", "{}")),
     "holds files this workbench did not write (README.md, config.json)", {}),
    ("train-out-a-file", TRAIN, lambda d: _write(d / "run", "x"), "exists and is not a folder", {}),
    ("train-out-finished-model", TRAIN, _copy_model_to_run, "already holds a trained model", {}),
    ("resume-finished-model", RESUME, _copy_model_to_run, "a finished model is never rewritten", {}),
    ("resume-finished-model-of-other-task", RESUME,
     lambda d: _copy_model_to_run(d, {**FINISHED, "tasks": ["dyck_languages"]}), "holds a model of dyck_languages", {}),
    ("resume-unfinished-run-of-other-task", RESUME,
     lambda d: _unfinished(d, state={"step": 8, "sampler": {}, "history": [],
                                     "config": _run_config("dyck_languages")}),
     "holds an unfinished run of dyck_languages", {}),
    ("train-over-unfinished-run", TRAIN, _unfinished, "holds checkpoints of an unfinished run; pass --resume", {}),
    ("train-out-in-use", TRAIN, lambda d: _lock(d, os.getpid()), "is in use by process", {}),
    ("resume-out-in-use", RESUME, lambda d: (_unfinished(d), _lock(d, os.getpid())),
     "is in use by process", {}),
    ("train-out-locked-on-other-host", TRAIN, lambda d: _lock(d, _dead_pid(), "other-host"),
     "on host 'other-host' ({d}/run/.workbench.lock), which this machine cannot check; "
     "wait for that run, or if it has ended delete", {}),
    ("resume-out-locked-on-other-host", RESUME, lambda d: (_unfinished(d), _lock(d, os.getpid(), "other-host")),
     "on host 'other-host'", {}),
    ("train-out-lock-garbage", TRAIN, lambda d: _lock(d, None, "garbage"),
     "lock file {d}/run/.workbench.lock holding 'garbage', not 'PID HOST'; if no run is using the folder, delete",
     {}),
    ("train-out-lock-empty", TRAIN, lambda d: _lock(d, None, ""), "holding '', not 'PID HOST'", {}),
    ("bench-out-user-files", BENCH, lambda d: _write(d / "exp" / "model.onnx", "mine"),
     "--out '{d}/exp' holds files that are not an export of this workbench (model.onnx)", {}),
    ("bench-out-current-folder", [*BENCH[:-1], "."], lambda d: _write(d / "README.md", "# mine\n"),
     "holds files that are not an export of this workbench (README.md, model)", {}),
    ("bench-out-a-model-folder", [*BENCH[:-1], "{d}/model"], None, "/model' holds files that are not an export", {}),
    ("bench-out-a-file", BENCH, lambda d: _write(d / "exp", "x"), "exists and is not a folder", {}),
    ("bench-out-empty-string", [*BENCH[:-1], ""], None, "--out '' names no folder", {}),
    ("bench-out-export-spec-garbage", BENCH, lambda d: _write(d / "exp" / "export.json", "{"),
     "exp/export.json:1: export spec is not valid JSON", {}),
    ("bench-out-export-spec-no-artifacts", BENCH, lambda d: _write(d / "exp" / "export.json", '{"artifacts": []}'),
     'export.json: no "artifacts" object', {}),
    ("bench-out-in-use", BENCH,
     lambda d: (_write(d / "exp" / "export.json", '{"artifacts": {}}'), _lock(d, os.getpid(), folder="exp")),
     "--out '{d}/exp' is in use by process", {}),
    ("data-split-edited", SPLITS, lambda d: _write(d / "splits" / "tool_call" / "test.jsonl", "mine\n"),
     "splits/tool_call/test.jsonl:1: differs from what the workbench would write there; pass --force", {}),
    ("data-split-a-line-edited", SPLITS, _edited_split, "splits/tool_call/validation.jsonl:3: differs", {}),
    ("data-split-is-a-folder", SPLITS, lambda d: (d / "splits" / "tool_call" / "train.jsonl").mkdir(parents=True),
     "splits/tool_call/train.jsonl is a folder", {}),
    ("data-task-folder-is-a-file", SPLITS, lambda d: _write(d / "splits" / "tool_call", "x"),
     "splits/tool_call is a file; expected a folder holding", {}),
    ("data-dir-a-file", SPLITS, lambda d: _write(d / "splits", "x"), "--dir '{d}/splits' exists and is not a folder",
     {}),
    ("data-dir-empty-string", [*SPLITS[:-1], ""], None, "--dir '' names no folder", {}),
    ("data-task-unknown", [*SPLITS[:2], "chess", *SPLITS[3:]], None, "unknown task 'chess'", {}),
    ("data-task-empty-string", [*SPLITS[:2], "", *SPLITS[3:]], None, "unknown task ''", {}),
    ("predictions-existing-file", [*EVAL, "--n", "2", "--predictions", "{d}/p.jsonl"],
     lambda d: _write(d / "p.jsonl", "keep me\n"), "exists; pass --force to replace it", {}),
    ("predictions-a-folder", [*EVAL, "--n", "2", "--predictions", "{d}/pdir"], lambda d: (d / "pdir").mkdir(),
     "is a folder", {}),
    ("predictions-empty-name", [*EVAL, "--n", "2", "--predictions", ""], None, "names no file", {}),
    # --- silently wrong today ------------------------------------------------------------------------
    ("model-only-pickle", EVAL, _only_pickle, "pickle weights only (pytorch_model.bin)", {}),
    ("model-half-the-tensors", EVAL, lambda d: _tensors(d, keep=lambda n: n[: len(n) // 2]),
     "the weights misses tensors", {}),
    ("model-unexpected-tensor", EVAL, lambda d: _tensors(d, extra={"extra.weight": torch.zeros(2)}),
     "the weights has unexpected tensors", {}),
    ("model-wrong-shape", EVAL, lambda d: _tensors(d, extra={"model.norm.weight": torch.zeros(3)}),
     "could not load model", {}),
    ("pointer-outside-out", RESUME, lambda d: _unfinished(d, pointer={"step": 8, "path": "../../x"}),
     "latest.json: expected", {}),
    ("pointer-absolute", RESUME, lambda d: _unfinished(d, pointer={"step": 8, "path": "/tmp"}),
     "latest.json: expected", {}),
    ("pointer-symlink-outside", RESUME, _symlinked, "leads outside", {}),
    ("resume-step-past-the-run", RESUME,
     lambda d: _unfinished(d, state={"step": 99, "sampler": {}, "history": [], "config": _run_config()}),
     "step 99 is not inside this run; expected between 1 and 15", {}),
    ("resume-step-zero", RESUME,
     lambda d: _unfinished(d, state={"step": 0, "sampler": {}, "history": [], "config": _run_config()}),
     "step 0 is not inside this run", {}),
    ("resume-step-bool", RESUME,
     lambda d: _unfinished(d, state={"step": True, "sampler": {}, "history": [], "config": _run_config()}),
     "step True is not inside this run", {}),
    ("resume-no-sampler-state", RESUME,
     lambda d: _unfinished(d, state={"step": 8, "history": [], "config": _run_config()}), "sampler state", {}),
    ("resume-other-recipe", RESUME,
     lambda d: _unfinished(d, state={"step": 8, "sampler": {}, "history": [], "config": _run_config(lr=0.5)}),
     "written by a run with lr=0.5", {}),
    ("resume-other-steps", [*TRAIN[:-3], "32", "--out", "{d}/run", "--resume"], _unfinished,
     "written by a run with", {}),
    ("data-target-maybe", DATA, data(_good("Maybe")), "target 'Maybe' cannot be an answer of boolean_expressions; "
     "expected True or False", {}),
    ("data-target-lowercase", DATA, data(_good("true")), "expected True or False", {}),
    ("data-target-empty", DATA, data(_good("")), "cannot be an answer", {}),
    ("data-target-number", DATA, data({"input": "True is", "target": 1}), 'string fields "input" and "target"', {}),
    ("data-dyck-target-words", [*DATA[:2], "dyck_languages", *DATA[3:]], data({"input": "[ (", "target": "close it"}),
     "expected closing brackets", {}),
    ("data-arithmetic-target-words", [*DATA[:2], "multistep_arithmetic_two", *DATA[3:]],
     data({"input": "((1 + 2)) =", "target": "three"}), "expected an integer", {}),
    ("data-level-bool", DATA, data(_good(level=True)), "level must be an integer, one of [1, 2, 3, 4, 5], got True",
     {}),
    ("data-level-unknown", DATA, data(_good(level=9)), "got 9", {}),
    ("data-level-string", DATA, data(_good(level="2")), "got '2'", {}),
    ("data-level-float", DATA, data(_good(level=2.0)), "got 2.0", {}),
    ("data-task-mismatch", DATA, data(_good(task="dyck_languages")), "but --task is 'boolean_expressions'", {}),
    ("data-input-empty", DATA, data({"input": " ", "target": "True"}), '"input" is empty', {}),
    ("level-with-data", [*DATA, "--level", "2"], data(_good()), "--level selects a level of the task's test split", {}),
    # --- misleading messages today -------------------------------------------------------------------
    ("data-is-a-folder", DATA, lambda d: (d / "data.jsonl").mkdir(), "is a folder; expected a JSONL file", {}),
    ("config-broken", EVAL, _file("config.json", "{"), "config.json:1: model config is not valid JSON", {}),
    ("config-list", EVAL, _file("config.json", "[]"), "model config holds a list", {}),
    # --- what was refused already: kept so ------------------------------------------------------------
    ("data-missing", DATA, None, "does not exist", {}),
    ("data-not-json", DATA, data(_good(), "{oops"), "data.jsonl:2: not valid JSON", {}),
    ("data-line-a-list", DATA, data("[1, 2]"), "data.jsonl:1: expected an object", {}),
    ("data-no-target", DATA, data({"input": "True is"}), '"input" and "target"', {}),
    ("data-empty-file", DATA, data(), "no examples in the file", {}),
    ("model-no-config", EVAL, _remove("config.json"), "holds no config.json", {}),
    ("model-no-weights", EVAL, _remove("model.safetensors"), "holds no weights", {}),
    ("model-is-a-file", [*EVAL[:-1], "{d}/data.jsonl"], data(_good()), "is a path but not a folder", {}),
    ("model-unknown", [*EVAL[:-1], "no-such-model"], None, "unknown model 'no-such-model'", {}),
    ("model-hub-not-cached", [*EVAL[:-1], "org/not-cached-xyz"], None, "downloads are off", {}),
    ("eval-task-unknown", [*EVAL[:2], "chess", *EVAL[3:]], None, "unknown task 'chess'", {}),
    ("eval-level-unknown", [*EVAL, "--level", "9"], None, "has no level 9", {}),
    ("eval-level-not-a-number", [*EVAL, "--level", "two"], None, "argument --level: invalid int value", {}),
    ("eval-n-zero", [*EVAL, "--n", "0"], None, "expected a positive integer, got '0'", {}),
    ("eval-shots-negative", [*EVAL, "--shots", "-1"], None, "expected an integer >= 0", {}),
    ("eval-batch-size-zero", [*EVAL, "--batch-size", "0"], None, "expected a positive integer", {}),
    ("eval-unknown-flag", [*EVAL, "--bogus"], None, "unrecognized arguments: --bogus", {}),
    ("eval-no-model", EVAL[:3], None, "the following arguments are required: --model", {}),
    ("no-command", [], None, "the following arguments are required: command", {}),
    ("train-task-unknown", [*TRAIN[:2], "chess", *TRAIN[3:]], None, "unknown task 'chess'", {}),
    ("train-task-empty-string", [*TRAIN[:2], "", *TRAIN[3:]], None, "unknown task ''", {}),
    ("train-two-tasks", [*TRAIN[:2], "boolean_expressions,dyck_languages", *TRAIN[3:]], None, "takes one task", {}),
    ("train-steps-zero", [*TRAIN[:6], "0", *TRAIN[7:]], None, "--steps must be a positive integer", {}),
    ("train-steps-text", [*TRAIN[:6], "many", *TRAIN[7:]], None, "invalid int value: 'many'", {}),
    ("train-profile-unknown", [*TRAIN[:4], "huge", *TRAIN[5:]], None, "unknown profile 'huge' (from profile)", {}),
    ("train-profile-empty-string", [*TRAIN[:4], "", *TRAIN[5:]], None, "profile '' is empty", {}),
    ("env-profile-unknown", ["train", "--task", "boolean_expressions", "--out", "{d}/run"], None,
     "unknown profile 'huge' (from WORKBENCH_PROFILE)", {"WORKBENCH_PROFILE": "huge"}),
    ("env-cache-is-a-file", [*EVAL[:-1], "smollm2-135m-instruct"], lambda d: _write(d / "cache", "x"),
     "WORKBENCH_CACHE='{d}/cache' is a file", {"WORKBENCH_CACHE": "{d}/cache"}),
    ("env-cache-blank", [*EVAL[:-1], "smollm2-135m-instruct"], None, "WORKBENCH_CACHE=' ' is not a folder name",
     {"WORKBENCH_CACHE": " "}),
    ("env-report-dir-is-a-file", ["report", "--profile", "smoke"], lambda d: _write(d / "reports", "x"),
     "WORKBENCH_REPORT_DIR='{d}/reports' is a file", {"WORKBENCH_REPORT_DIR": "{d}/reports"}),
    ("report-profile-unknown", ["report", "--profile", "huge"], None, "unknown profile 'huge'", {}),
    ("bench-what-unknown", ["bench", "fly"], None, "invalid choice: 'fly'", {}),
    ("bench-model-truncated", ["bench", "agent", "--model", "{d}/model"], _truncate, "model.safetensors: ", {}),
    ("bench-router-level-unknown", ["bench", "router", "--level", "9"], None, "tool_call' has no level 9", {}),
    ("bench-task-unknown", ["bench", "explain", "--task", "chess"], None, "unknown task 'chess'", {}),
]


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


@pytest.mark.parametrize("argv, setup, message, environ", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(base, tmp_path, monkeypatch, capsys, argv, setup,
                                                            message, environ):
    d = tmp_path
    shutil.copytree(base / "model", d / "model")
    if setup is not None:
        setup(d)
    monkeypatch.chdir(d)
    for key, value in environ.items():
        monkeypatch.setenv(key, value.replace("{d}", str(d)))
    before = _hashes(d)
    status = cli.main([a.replace("{d}", str(d)) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert message.replace("{d}", str(d)) in err
    assert _hashes(d) == before


def test_the_table_covers_every_class_with_at_least_80_cases():
    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)


def test_a_stale_lock_is_reported_and_taken_over(tmp_path, capsys):
    from workbench.core.files import locked

    pid = _dead_pid()
    _lock(tmp_path, pid)
    with locked(tmp_path / "run"):
        assert (tmp_path / "run" / ".workbench.lock").read_text().split()[0] == str(os.getpid())
    assert f"left by process {pid}, which is no longer running" in capsys.readouterr().err
    assert not (tmp_path / "run" / ".workbench.lock").exists()  # released


def test_a_stale_lock_taken_over_by_another_run_in_between_is_left_to_it(tmp_path):
    from workbench.core.files import take_over_stale

    lock = tmp_path / ".workbench.lock"
    lock.write_text("12 this-host\n")  # another run replaced the stale "11 this-host" a moment ago
    assert not take_over_stale(lock, "11 this-host\n", "13 this-host\n")
    assert lock.read_text() == "12 this-host\n" and [p.name for p in tmp_path.iterdir()] == [lock.name]
    assert take_over_stale(lock, "12 this-host\n", "13 this-host\n") and lock.read_text() == "13 this-host\n"


def test_a_live_lock_refuses_a_second_run(tmp_path):
    from workbench.core.files import locked
    from workbench.core.validate import BadInput

    with locked(tmp_path):
        with pytest.raises(BadInput, match=f"is in use by process {os.getpid()}"):
            with locked(tmp_path):
                pass
    assert not (tmp_path / ".workbench.lock").exists()


def test_allow_pickle_loads_pickle_weights(base, tmp_path):
    from workbench.core.models import load_pretrained
    from workbench.core.validate import BadInput

    shutil.copytree(base / "model", tmp_path / "model")
    _only_pickle(tmp_path)
    with pytest.raises(BadInput, match="can run code"):
        load_pretrained(str(tmp_path / "model"))
    model, _ = load_pretrained(str(tmp_path / "model"), allow_pickle=True)
    assert model.config.max_position_embeddings == 512


STORED = {"task": "tool_call", "level": 1, "input": "x", "rationale": "", "target": "y"}


def _split(text):
    return lambda d: _write(d / "tool_call" / "test.jsonl", text)


def _load_split(d):
    from workbench.tasks import splits

    return splits.load("tool_call", "test", data_dir=d)


def _char_tokenizer(d):
    from workbench.core.tokenizer import CharTokenizer

    return CharTokenizer(vocab_file=str(d / "model" / "vocab.json"))


def _load_tokenizer(d):
    from workbench.core.tokenizer import load_tokenizer

    return load_tokenizer(str(d / "model"))


# files the Python API reads (no CLI in front): (id, call(d), setup(d), a part of the one-line message)
READS = [
    ("split-missing", _load_split, None, "tool_call/test.jsonl is missing; write it with: python -m workbench data"),
    ("split-not-json", _load_split, _split(_lines(STORED, "{")), "tool_call/test.jsonl:2: not a stored example"),
    ("split-other-fields", _load_split, _split('{"question": "x"}\n'), "test.jsonl:1: not a stored example"),
    ("split-a-list", _load_split, _split("[1]\n"), "test.jsonl:1: not a stored example"),
    ("split-not-utf8", _load_split, _split(b"\xff\n"), "test.jsonl: not a stored example"),
    ("char-vocab-not-json", _char_tokenizer, _file("vocab.json", "{"), "vocab.json:1: character vocabulary is not"),
    ("char-vocab-no-alphabet", _char_tokenizer, _file("vocab.json", '{"alphabet": 3}'), 'no "alphabet" string'),
    ("tokenizer-config-list", _load_tokenizer, _file("tokenizer_config.json", "[]"), "tokenizer config holds a list"),
]


@pytest.mark.parametrize("call, setup, message", [c[1:] for c in READS], ids=[c[0] for c in READS])
def test_a_damaged_file_read_by_the_api_is_one_line_naming_it(base, tmp_path, call, setup, message):
    from workbench.core.validate import BadInput

    shutil.copytree(base / "model", tmp_path / "model")
    if setup is not None:
        setup(tmp_path)
    before = _hashes(tmp_path)
    with pytest.raises(ValueError) as err:
        call(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, BadInput) or "stored example" in message or "missing" in message
    assert _hashes(tmp_path) == before


@pytest.mark.parametrize("damage", ["garbage\n", '{"task": "boolean_expressions"}\n', "", "\xff"])
def test_a_damaged_teacher_texts_cache_is_discarded_with_a_warning_and_made_again(tmp_path, monkeypatch, damage):
    from workbench import distill
    from workbench.studies import distillation
    from workbench.tasks import Example

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    asked = []
    pool = [Example("boolean_expressions", 1, q, "", "True") for q in ("True is", "not False is")]
    monkeypatch.setattr(distill, "teacher_examples", lambda _t, _tok, ex, **_kw: asked.append(1) or list(ex))
    assert distillation.teacher_texts(None, None, pool, "teacher") == pool
    assert distillation.teacher_texts(None, None, pool, "teacher") == pool and len(asked) == 1  # from the cache
    (cache,) = (tmp_path / "distill").iterdir()
    cache.write_bytes(damage.encode("latin-1"))
    with pytest.warns(UserWarning, match=f"{cache.name}.*discarding it and asking the teacher again"):
        assert distillation.teacher_texts(None, None, pool, "teacher") == pool
    assert len(asked) == 2 and distillation.teacher_texts(None, None, pool, "teacher") == pool and len(asked) == 2


def test_data_writes_missing_splits_keeps_identical_ones_and_replaces_edits_only_with_force(tmp_path, capsys):
    argv = [a.replace("{d}", str(tmp_path)) for a in SPLITS]
    assert cli.main(argv) == 0
    assert len(json.loads(capsys.readouterr().out)["written"]) == 3
    test = tmp_path / "splits" / "tool_call" / "test.jsonl"
    made = test.read_text()
    assert cli.main(argv) == 0 and json.loads(capsys.readouterr().out) == {"written": [], "unchanged": 3}
    test.write_text("mine\n")
    assert cli.main(argv) == 2 and test.read_text() == "mine\n"
    assert cli.main([*argv, "--force"]) == 0 and test.read_text() == made
    assert oct(test.stat().st_mode & 0o777) == "0o644"


def test_predictions_with_force_replace_the_file(base, tmp_path, capsys):
    target = tmp_path / "p.jsonl"
    target.write_text("old\n")
    argv = ["eval", "--task", "boolean_expressions", "--model", str(base / "model"), "--n", "2",
            "--predictions", str(target), "--force"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in target.read_text().splitlines()]
    assert len(rows) == 2 and oct(target.stat().st_mode & 0o777) == "0o644"


def test_generation_is_capped_by_the_context(tiny_student):
    from workbench.core import evaluate as ev

    model, tok, _ = tiny_student
    text = ev.generate(model, tok, ["x" * 500], max_new_tokens=4096)[0]  # 512 - 500 tokens are left
    assert len(tok(text, add_special_tokens=False).input_ids) <= 12


def test_artifacts_are_readable_by_other_users(tiny_student, tmp_path):
    from workbench.core.artifacts import save_model

    model, tok, _ = tiny_student
    old = os.umask(0o077)  # the strictest umask a shared machine would set
    try:
        save_model(tmp_path / "m", model, tok, dict(FINISHED))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes and all(m == 0o644 for m in modes.values()), modes


def test_replacing_a_shipped_folder_keeps_the_new_one_whole_and_removes_only_stale_copies(tmp_path):
    import tempfile

    from workbench.core.files import replace_folder

    dest, stale, mine = tmp_path / "task-new", tmp_path / "task-older", tmp_path / "notes"
    for folder, text in ((dest, "before"), (stale, "older"), (mine, "user's")):
        folder.mkdir()
        (folder / "f").write_text(text)
    tmp = Path(tempfile.mkdtemp(dir=tmp_path))  # private (0700), as mkdtemp makes it
    (tmp / "f").write_text("after")
    assert replace_folder(tmp, dest, stale=tmp_path.glob("task-*")) == dest
    assert (dest / "f").read_text() == "after" and dest.stat().st_mode & 0o777 == 0o755
    assert not tmp.exists() and not stale.exists() and (mine / "f").read_text() == "user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "task-new"]  # nothing left aside


def test_constrained_decoding_is_capped_by_the_context(tiny_student):
    from workbench.agent.constrain import CallGrammar, constrained_generate
    from workbench.agent.router import Registry
    from workbench.core.validate import BadInput

    model, tok, _ = tiny_student
    grammar = CallGrammar(Registry().schemas())
    r = constrained_generate(model, tok, "x" * 480, grammar, max_new_tokens=480)  # 32 tokens of room
    assert r.steps < 32 and r.text.endswith(".")
    with pytest.raises(BadInput, match="reads at most 512 tokens"):
        constrained_generate(model, tok, "x" * 600, grammar, max_new_tokens=8)


# the widgets' own inputs, driven headlessly ------------------------------------------------------
def _explorer(model, tok, **kw):
    from workbench.tasks import Example
    from workbench.widgets import AttributionExplorer

    kw = {"n_steps": 4, "n_samples": 1, "max_new_tokens": 4, **kw}
    return AttributionExplorer(model, tok, [Example("boolean_expressions", 1, "True is", "", "True")], **kw)


def _console(model, tok, **kw):
    from workbench.agent.router import Router
    from workbench.widgets import AgentConsole

    return AgentConsole(Router(model, tok, max_new_tokens=4), **kw)


def _planner(_model, _tok, **kw):
    from workbench.widgets import CurriculumPlanner

    return CurriculumPlanner("boolean_expressions", total_steps=100, **kw)


def _typed(requests):
    def act(console):
        console.text.value = requests
        console.button.click()
        return console.output.value
    return act


# (id, build(model, tok), act(widget) -> what the widget shows, or None: building it refuses; a part of the message)
WIDGETS = [
    ("explorer-question-a-number", _explorer, lambda e: (e.show(text=5), e.status.value)[1],
     "the prompt is a number; expected text"),
    ("explorer-question-bytes", _explorer, lambda e: (e.show(text=b"True is"), e.status.value)[1],
     "the prompt is bytes; expected text"),
    ("explorer-question-blank", _explorer, lambda e: (e.show(text=" \n "), e.status.value)[1], "the prompt is empty"),
    ("explorer-question-past-context", _explorer, lambda e: (e.show(text=LONG_INPUT), e.status.value)[1],
     "is 608 tokens long; this model reads at most 512"),
    ("explorer-step-bool", _explorer, lambda e: (e.show(step=True), e.status.value)[1], "step True is not an integer"),
    ("explorer-budget-zero", lambda m, t: _explorer(m, t, max_new_tokens=0), None,
     "max_new_tokens is 0; expected an integer >= 1"),
    ("explorer-n-steps-one", lambda m, t: _explorer(m, t, n_steps=1), None, "n_steps is 1; expected an integer >= 2"),
    ("console-too-many-requests", _console, _typed("What is 2 + 2?\n" * 21),
     "21 requests; the console routes at most 20 at a time"),
    ("console-max-requests-zero", lambda m, t: _console(m, t, max_requests=0), None, "max_requests is 0"),
    ("planner-no-levels", lambda m, t: _planner(m, t, levels=()), None, "no levels given for boolean_expressions"),
    ("planner-level-bool", lambda m, t: _planner(m, t, levels=(True, 2)), None, "has no level True"),
    ("planner-level-float", lambda m, t: _planner(m, t, levels=(2.0,)), None, "has no level 2.0"),
    ("planner-level-out-of-range", lambda m, t: _planner(m, t, levels=(1, 9)), None, "has no level 9"),
]


@pytest.mark.parametrize("build, act, message", [c[1:] for c in WIDGETS], ids=[c[0] for c in WIDGETS])
def test_a_widget_shows_bad_input_as_one_line_never_a_traceback(tiny_student, build, act, message):
    model, tok, _ = tiny_student
    if act is None:  # the notebook's own call: refused at once, in one line
        with pytest.raises(ValueError) as err:
            build(model, tok)
        assert message in str(err.value) and "\n" not in str(err.value)
        return
    shown = html.unescape(act(build(model, tok)))
    assert message in shown and "\n" not in shown and "Traceback" not in shown
