"""Property tests of the boundary's readers (hypothesis): whatever bytes or JSON a file holds, the data loader,
the card reader and the checkpoint readers either return what they promise or raise BadInput with one line,
never another exception; and the Router returns a Decision for any model output, never raising."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import tasks
from workbench.core import validate
from workbench.core.validate import BadInput

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
# objects shaped like a data line, each field of any type (or a plausible value)
line_objects = st.fixed_dictionaries({}, optional={
    "input": st.text(max_size=30) | json_values,
    "target": st.sampled_from(["True", "False", "Maybe", "", "1"]) | json_values,
    "rationale": st.text(max_size=10) | json_values,
    "level": st.integers(-2, 7) | json_values,
    "task": st.sampled_from(["boolean_expressions", "dyck_languages"]) | json_values,
})


def _one_line(err: BadInput) -> None:
    assert str(err) and "\n" not in str(err)


def _refused_or(fn, *args):
    """``fn(*args)``, or None when it raised BadInput with a one-line message."""
    try:
        return fn(*args)
    except BadInput as err:
        _one_line(err)
        return None


SCRATCH = tempfile.TemporaryDirectory()  # removed when the test session ends


def _file(content: bytes) -> Path:
    """``content`` in a file of its own, in a folder of its own."""
    folder = Path(tempfile.mkdtemp(dir=SCRATCH.name))
    (folder / "f").write_bytes(content)
    return folder / "f"


@SETTINGS
@given(st.binary(max_size=200))
def test_data_loader_any_bytes(content):
    got = _refused_or(validate.read_examples, _file(content), tasks.get("boolean_expressions"))
    assert got is None or all(ex.target in ("True", "False") for _, ex in got)


@SETTINGS
@given(st.lists(line_objects | json_values, min_size=1, max_size=4), st.sampled_from(tasks.NAMES))
def test_data_loader_any_json_lines(objs, task_name):
    task = tasks.get(task_name)
    path = _file("".join(json.dumps(o) + "\n" for o in objs).encode())
    got = _refused_or(validate.read_examples, path, task)
    for lineno, ex in got or []:
        assert 1 <= lineno <= len(objs)  # the line it came from
        assert task.check_target(ex.target) is None and isinstance(ex.rationale, str) and ex.input.strip()
        assert ex.level == 0 or (type(ex.level) is int and ex.level in task.levels)


@SETTINGS
@given(st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"tasks": json_values}, optional={"train": json_values}).map(
           lambda v: json.dumps(v).encode()))
def test_card_reader_any_content(content):
    folder = _file(b"").parent
    (folder / validate.CARD).write_bytes(content)
    card = _refused_or(validate.read_card, folder)
    if card is not None:
        assert card["tasks"] and all(isinstance(t, str) for t in card["tasks"])
        assert isinstance(card.get("train", {}), dict)


@SETTINGS
@given(json_values | st.fixed_dictionaries({"step": json_values, "path": st.text(max_size=20) | json_values}))
def test_checkpoint_pointer_stays_inside_its_run(pointer):
    out = _file(b"").parent
    root = out / validate.CKPT_DIR
    (root / "step-0000008").mkdir(parents=True)
    (root / "latest.json").write_text(json.dumps(pointer))
    got = _refused_or(validate.checkpoint_pointer, out)
    assert got is None or (got.parent == root and got.is_dir())


@SETTINGS
@given(json_values | st.fixed_dictionaries({"step": json_values}, optional={"sampler": json_values,
                                                                           "history": json_values}))
def test_trainer_state_any_content(state):
    got = _refused_or(validate.check_trainer_state, Path("ckpt"), state, 16)
    assert got is None or (0 < got["step"] < 16 and isinstance(got["sampler"], dict))


@SETTINGS
@given(st.binary(max_size=120))
def test_safetensors_header_any_bytes(content):
    assert _refused_or(validate.safetensors_names, _file(content)) in (None, set())


# --- the Router's parsing: any model output -----------------------------------------------------------
@pytest.fixture(scope="module")
def routers():
    from workbench.agent.router import Router
    from workbench.core.tokenizer import CharTokenizer

    class Scripted(Router):
        """A Router whose model writes ``self.output``: the property is about what comes after the model."""
        output = ""

        def _generate(self, texts):
            return [self.output] * len(texts)

    tok = CharTokenizer()
    return {kind: Scripted(model=None, tokenizer=tok, kind=kind, constrained=False) for kind in ("student", "chat")}


calls = st.fixed_dictionaries({"name": st.sampled_from(["calculator", "set_reminder", "none", "x"]) | json_values,
                               "arguments": json_values}).map(json.dumps)
outputs = st.text(max_size=200) | calls | calls.map(lambda c: "So the answer is " + c + ".") | json_values.map(
    json.dumps) | st.integers(0, 3000).map(lambda n: "So the answer is " + "[" * n + "]" * n + ".")


@SETTINGS
@given(outputs)
def test_router_never_raises_on_model_output(routers, output):
    for kind, router in routers.items():
        router.output = output
        if kind == "student":
            d = router.route("what is 2 + 2")
        else:  # a chat template needs a chat tokenizer; the parse and checks after it are the same code
            from workbench.agent.router import Decision, Reply

            d = Decision(request="what is 2 + 2")
            router._finish(d, Reply(output))
        assert d.refused or d.valid, (kind, output)
        assert not d.refused or d.reason


def test_router_refuses_deep_nesting_nan_and_duplicate_keys(routers):
    router = routers["student"]
    for output, reason in [("So the answer is " + "[" * 1000 + "]" * 1000 + ".", "levels deep"),
                           ('So the answer is {"name": "calculator", "arguments": {"x": NaN}}.', "NaN"),
                           ('So the answer is {"name": "a", "name": "b", "arguments": {}}.', "duplicate")]:
        router.output = output
        d = router.route("what is 2 + 2")
        assert d.refused and reason in d.reason, (output[:40], d.reason)
