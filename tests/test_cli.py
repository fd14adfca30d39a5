"""The command line as a user runs it: one JSON line on success, one clear line on bad input."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test runs the command line in a subprocess


def run(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=e,
                          timeout=300)


def test_eval_student_folder_prints_one_json_line(tiny_student):
    _, _, folder = tiny_student
    p = run("eval", "--model", str(folder), "--task", "boolean_expressions", "--n", "3")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["task"] == "boolean_expressions" and out["n"] == 3
    assert set(out) == {"task", "n", "accuracy", "by_level", "params", "latency_ms", "examples_per_s"}
    assert 0 <= out["accuracy"] <= 1 and out["params"] > 0


def test_eval_user_data_file(tiny_student, tmp_path):
    _, _, folder = tiny_student
    data = tmp_path / "mine.jsonl"
    data.write_text('{"input": "True is", "target": "True"}\n{"input": "False is", "target": "False"}\n')
    p = run("eval", "--model", str(folder), "--task", "boolean_expressions", "--data", str(data))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n"] == 2


@pytest.mark.parametrize("args, message", [
    (["--task", "chess"], "unknown task 'chess'; known tasks: boolean_expressions"),
    (["--task", "boolean_expressions", "--data", "/nonexistent/x.jsonl"], "does not exist"),
    (["--task", "boolean_expressions", "--data", "BAD"], "bad.jsonl:2: not valid JSON"),
    (["--task", "boolean_expressions", "--level", "9"], "has no level 9; levels are [1, 2, 3, 4, 5]"),
    (["--task", "boolean_expressions", "--n", "0"], "expected a positive integer, got '0'"),
    (["--task", "boolean_expressions", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--task", "boolean_expressions", "--model", "org/not-cached-xyz"], "downloads are off"),
])
def test_bad_input_gives_one_clear_line(tiny_student, tmp_path, args, message):
    _, _, folder = tiny_student
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "True is", "target": "True"}\n{"input": \n')
    args = [str(bad) if a == "BAD" else a for a in args]
    if "--model" not in args:
        args += ["--model", str(folder)]
    p = run("eval", *args, env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["bench", "agent", "--model", "/nonexistent/student"], "unknown model '/nonexistent/student'"),
    (["bench", "explain", "--task", "chess"], "unknown task 'chess'"),
    (["bench", "fly"], "invalid choice: 'fly'"),
])
def test_bench_bad_input_gives_one_clear_line(args, message):
    p = run(*args, env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
