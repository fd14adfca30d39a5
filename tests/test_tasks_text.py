"""word_sorting and tool_call: formats, independent answer checks, determinism, the tool_call scorer."""

import json
import random
import re

import pytest
from jsonschema import Draft202012Validator

from workbench.tasks.base import ANSWER_PREFIX, extract_answer
from workbench.tasks.tool_call import TOOLS, ToolCall, validate_call
from workbench.tasks.word_sorting import PROMPT, WordSorting

WS, TC = WordSorting(), ToolCall()
N = 300
BBH_PREFIX = "Sort the following words alphabetically: List: "
CASES = [(WS, lv) for lv in WS.levels] + [(TC, lv) for lv in TC.levels]
IDS = [f"{t.name}-L{lv}" for t, lv in CASES]


@pytest.mark.parametrize("level", WS.levels)
def test_word_sorting_target_is_sorted_words(level):
    for ex in WS.sample(N, seed=1, level=level):
        assert ex.input.startswith(BBH_PREFIX)
        words = ex.input[len(BBH_PREFIX):].split(" ")
        assert ex.target == " ".join(sorted(words))
        assert len(set(words)) == len(words)


def test_word_sorting_bbh_format():
    assert PROMPT == BBH_PREFIX
    lengths = set()
    for ex in WS.sample(N, seed=2, level=WS.bbh_level):
        body = ex.input[len(BBH_PREFIX):]
        assert ex.input == BBH_PREFIX + body
        assert re.fullmatch(r"[a-z'&]+( [a-z'&]+)*", body), body  # lowercase, single spaces
        words = body.split(" ")
        assert 2 <= len(words) <= 20
        assert all(sum(c.isalpha() for c in w) >= 2 for w in words)
        lengths.add(len(words))
    assert {2, 20} <= lengths  # the whole BBH range is drawn


@pytest.mark.parametrize("level", WS.levels)
def test_word_sorting_levels_grow(level):
    lo, hi = {1: (2, 4), 2: (5, 9), 3: (2, 20), 4: (21, 30), 5: (31, 40)}[level]
    assert all(lo <= len(ex.target.split(" ")) <= hi for ex in WS.sample(50, seed=3, level=level))


def test_word_sorting_has_apostrophe_words():
    assert any("'" in ex.input for ex in WS.sample(N, seed=4))


@pytest.mark.parametrize("level", TC.levels)
def test_tool_call_targets_are_canonical_and_valid(level):
    validators = {name: Draft202012Validator(schema) for name, schema in TOOLS.items()}
    names = set()
    for ex in TC.sample(N, seed=1, level=level):
        call = json.loads(ex.target)
        assert json.dumps(call, sort_keys=True, separators=(",", ":")) == ex.target
        assert set(call) == {"name", "arguments"}
        names.add(call["name"])
        if call["name"] == "none":
            assert call["arguments"] == {}
        else:
            assert list(validators[call["name"]].iter_errors(call["arguments"])) == []
        assert validate_call(call) is None
    assert names == set(TOOLS) | {"none"}


@pytest.mark.parametrize("level", TC.levels)
def test_tool_call_copied_values_are_in_the_request(level):
    copied = {"city", "query", "text", "title", "origin", "destination", "location"}
    for ex in TC.sample(N, seed=9, level=level):
        args = json.loads(ex.target)["arguments"]
        assert all(v in ex.input for k, v in args.items() if k in copied), ex
        assert all(name in ex.input for name in args.get("attendees", []))


def test_tool_registry_schemas():
    assert len(TOOLS) >= 8
    for schema in TOOLS.values():
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])


def test_tool_call_level1_is_plain():
    for ex in TC.sample(N, seed=5, level=1):
        call = json.loads(ex.target)
        if call["name"] != "none":
            assert set(call["arguments"]) == set(TOOLS[call["name"]]["required"])


@pytest.mark.parametrize(("task", "level"), CASES, ids=IDS)
def test_rationale_ends_with_answer(task, level):
    for ex in task.sample(100, seed=6, level=level):
        assert ex.rationale.endswith(f"\n{ANSWER_PREFIX}{ex.target}.")
        assert extract_answer(ex.rationale) == ex.target
        assert task.score(extract_answer(ex.rationale), ex.target)
        assert ex.task == task.name and ex.level == level


@pytest.mark.parametrize(("task", "level"), CASES, ids=IDS)
def test_seed_determinism(task, level):
    a = task.sample(30, seed=7, level=level)
    assert a == task.sample(30, seed=7, level=level)
    assert a != task.sample(30, seed=8, level=level)


@pytest.mark.parametrize("task", [WS, TC], ids=lambda t: t.name)
def test_default_level_is_bbh_level(task):
    assert task.generate(random.Random(0)).level == task.bbh_level


@pytest.mark.parametrize("task", [WS, TC], ids=lambda t: t.name)
def test_unknown_level_raises(task):
    with pytest.raises(ValueError, match=r"level 9\b.*" + re.escape(str(list(task.levels)))):
        task.sample(1, level=9)


TARGET = '{"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"}'
DIAGNOSES = [
    (TARGET, None),
    (' {"name": "set_reminder", "arguments": {"time": "17:00", "text": "call Ana"}} ', None),
    ('{"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"', "invalid JSON"),
    ("So the answer is", "invalid JSON"),
    ('{"arguments":{},"name":"send_sms"}', "unknown tool 'send_sms'"),
    ('{"arguments":{"text":"call Ana","time":"5pm"},"name":"set_reminder"}',
     "arguments break the schema of 'set_reminder': "),
    ('{"arguments":{"text":"call Ana"},"name":"set_reminder"}',
     "arguments break the schema of 'set_reminder': 'time' is a required property"),
    ('{"arguments":{"text":"call Ana","time":"17:00","x":1},"name":"set_reminder"}',
     "arguments break the schema of 'set_reminder': "),
    ('{"arguments":{"city":"x"},"name":"none"}', "arguments break the schema of 'none': "),
    ('{"arguments":{"text":"call Ana","time":"18:00"},"name":"set_reminder"}', "wrong call"),
    ('{"arguments":{},"name":"none"}', "wrong call"),
    ('["set_reminder"]', "not a tool call: "),
    ('{"name":"set_reminder"}', "not a tool call: "),
]


@pytest.mark.parametrize(("prediction", "reason"), DIAGNOSES)
def test_tool_call_diagnose(prediction, reason):
    got = TC.diagnose(prediction, TARGET)
    if reason is None:
        assert got is None
    else:
        assert got is not None and got.startswith(reason), got
    assert TC.score(prediction, TARGET) == (reason is None)
