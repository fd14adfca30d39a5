"""The grammar: every prefix of a valid canonical call is viable, the first bad character is caught,
and it agrees with jsonschema (workbench.tasks.tool_call.validate_call) on mutated targets."""

import json
import random
import subprocess
import sys

import pytest

from workbench.agent.grammar import P_VALUE, CallGrammar
from workbench.tasks import splits
from workbench.tasks.tool_call import is_canonical_call as valid_call

GRAMMAR = CallGrammar()
REMIND = '{"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"}'


def test_every_prefix_of_every_test_target_is_viable():
    for ex in splits.load("tool_call", "test"):
        grounded = CallGrammar(request=ex.input, ground=True)
        for g in (GRAMMAR, grounded):
            bad = next((i for i in range(len(ex.target) + 1) if not g.viable(ex.target[:i])), None)
            assert bad is None, f"{ex.target[:bad]!r} rejected"
            assert g.complete(ex.target) and not g.complete(ex.target[:-1])
        assert valid_call(ex.target)


# (longest viable prefix, the rest): the first character of the rest is the first bad one
INVALID = [
    ("unknown tool", '{"arguments":{"city":"Paris"},"name":"get_weath', 'r"}'),
    ("no tool for these arguments", '{"arguments":{"city":"Paris"},"name":"', 'web_search"}'),
    ("unknown tool without arguments", '{"arguments":{},"name":"', 'lights"}'),
    ("key out of order", '{"arguments":{"city":"Paris","units":"celsius"',
     ',"date":"2026-03-04"},"name":"get_weather"}'),
    ("required key skipped", '{"arguments":{"t', 'ime":"17:00","text":"call Ana"},"name":"set_reminder"}'),
    ("unknown key", '{"arguments":{"city":"Paris","', 'country":"France"},"name":"get_weather"}'),
    ("bad enum", '{"arguments":{"city":"Paris","units":"', 'kelvin"},"name":"get_weather"}'),
    ("bad time pattern", '{"arguments":{"text":"call Ana","time":"2', '5:00"},"name":"set_reminder"}'),
    ("bad date pattern", '{"arguments":{"city":"Paris","date":"2026-1', '3-01"},"name":"get_weather"}'),
    ("missing required at close", '{"arguments":{"text":"call Ana"', '},"name":"set_reminder"}'),
    ("string for a number", '{"arguments":{"amount":', '"12","from_currency":"EUR","to_currency":"USD"},'
                                                       '"name":"convert_currency"}'),
    ("float for an integer", '{"arguments":{"num_results":5', '.5,"query":"tides"},"name":"web_search"}'),
    ("integer above maximum", '{"arguments":{"decimals":', '7,"from_unit":"km","to_unit":"mi","value":3},'
                                                           '"name":"convert_units"}'),
    ("integer below minimum", '{"arguments":{"num_results":', '0,"query":"tides"},"name":"web_search"}'),
    ("negative amount", '{"arguments":{"amount":-', '5,"from_currency":"EUR","to_currency":"USD"},'
                                                    '"name":"convert_currency"}'),
    ("leading zero", '{"arguments":{"amount":0', '12,"from_currency":"EUR","to_currency":"USD"},'
                                                 '"name":"convert_currency"}'),
    ("empty array", '{"arguments":{"attendees":[', '],"date":"2026-03-04","title":"Sync"},'
                                                   '"name":"create_calendar_event"}'),
    ("empty text", '{"arguments":{"city":"', '"},"name":"get_weather"}'),
    ("extra space", '{"arguments":{"city":', ' "Paris"},"name":"get_weather"}'),
    ("non-ASCII left unescaped", '{"arguments":{"city":"Z', '\u00fcrich"},"name":"get_weather"}'),
    ("text after the call", REMIND, " "),
]


@pytest.mark.parametrize("why,good,rest", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_calls_are_rejected_at_the_first_bad_character(why, good, rest):
    assert all(GRAMMAR.viable(good[:i]) for i in range(len(good) + 1))
    assert not GRAMMAR.viable(good + rest[0])
    assert not GRAMMAR.complete(good + rest) and not valid_call(good + rest)


def test_grammar_agrees_with_jsonschema_on_mutated_targets():
    rng = random.Random(0)
    targets = [ex.target for ex in splits.load("tool_call", "train")]
    chars = '{}[]":,.-0123456789e+ adxT\\u'
    for _ in range(3000):
        m = list(rng.choice(targets))
        i = rng.randrange(len(m))
        if rng.random() < 0.5:
            m[i] = rng.choice(chars)
        else:
            m.insert(i, rng.choice(chars))
        text = "".join(m)
        assert GRAMMAR.complete(text) == valid_call(text), text


@pytest.mark.parametrize("number,ok", [("0", True), ("12.5", True), ("-0.0", True), ("1e-05", True),
                                       ("1e+16", True), ("0.0001", True), ("0.00001", False), ("1.50", False),
                                       ("1.0e+16", False), ("10.", False), ("-", False), ("5.0", True)])
def test_numbers_are_written_as_json_dumps_writes_them(number, ok):
    text = f'{{"arguments":{{"amount":{number},"from_currency":"EUR","to_currency":"USD"}},"name":"convert_currency"}}'
    assert GRAMMAR.complete(text) == ok == valid_call(text)


def test_grounding_accepts_substrings_of_the_request_only():
    g = CallGrammar(request="Remind me to call Ana at 5pm", ground=True)
    assert g.complete(REMIND)  # "17:00" has a pattern: it is read off the request by a rule, not copied
    assert g.viable('{"arguments":{"text":"call A') and not g.viable('{"arguments":{"text":"call B')
    assert not g.complete(REMIND.replace("call Ana", "Call Ana"))
    assert GRAMMAR.complete(REMIND.replace("call Ana", "call Bob"))  # ungrounded: any text
    with pytest.raises(ValueError):
        CallGrammar(ground=True)


def test_allowed_next_and_finish():
    assert GRAMMAR.allowed_next('{"arguments":{"city":"Paris","units":"') == {"c", "f"}
    assert GRAMMAR.allowed_next('{"arguments":{') == {'"', "}"}
    assert GRAMMAR.finish("") == '{"arguments":{},"name":"none"}'
    one_per_tool = {json.loads(ex.target)["name"]: ex.target for ex in splits.load("tool_call", "test", level=4)}
    assert len(one_per_tool) == 9
    for target in one_per_tool.values():  # every prefix: inside keys, strings, numbers, arrays, the name
        for i in range(len(target)):
            assert valid_call(target[:i] + GRAMMAR.finish(target[:i])), target[:i]


@pytest.mark.parametrize("ground", [False, True])
def test_a_state_advanced_a_character_at_a_time_agrees_with_the_prefix_check(ground):
    import string

    for ex in splits.load("tool_call", "test")[::50]:
        g = CallGrammar(request=ex.input, ground=ground)
        s = g.state()
        for i, c in enumerate(ex.target):
            assert set(g.allowed(s, string.printable)) == g.allowed_next(ex.target[:i]), ex.target[:i]
            assert g.allowed(s, string.printable) == g.allowed(s, string.printable)  # the table's second read
            assert g.advance(s, "\x01") is None and not g.done(s)
            s = g.advance(s, c)
            assert s is not None and s.signature() == g.state(ex.target[:i + 1]).signature()
        assert g.done(s) and g.allowed(s, string.printable) == ""
        assert g.advance(g.state(), ex.target).signature() == s.signature()


@pytest.mark.parametrize("ground", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_forced_text_is_exactly_where_one_character_is_allowed(ground):
    """Every character ``forced`` returns is the only one the grammar allows there, and it stops only where the
    next character is a choice (or inside a value, which it leaves to the model); the forced text after the
    opening, a key's first letter and the arguments' close is the fixed text, the key, the tool's name."""
    import string

    printable = string.printable
    seen = 0
    for ex in splits.load("tool_call", "test")[::125]:  # one request per level
        g = CallGrammar(request=ex.input, ground=ground)
        for i in range(len(ex.target)):
            s = g.state(ex.target[:i])
            text = g.forced(s, printable)
            for j, c in enumerate(text):
                assert g.allowed_next(ex.target[:i] + text[:j]) == {c}, (ex.target[:i], text)
            assert ex.target[i:].startswith(text)  # the target, like any viable call, writes it
            after = g.state(ex.target[:i] + text)
            if not g.done(after) and not (after.phase == P_VALUE and after.raw):  # P_VALUE under way: the model's
                assert len(g.allowed(after, printable)) > 1, (ex.target[:i], text)
            seen += len(text)
    assert seen > 0
    assert GRAMMAR.forced(GRAMMAR.state(), printable) == '{"arguments":{'
    rest = GRAMMAR.forced(GRAMMAR.state('{"arguments":{"text":"call Ana","time":"17:00"}'), printable)
    assert rest == ',"name":"set_reminder"}'
    assert GRAMMAR.forced(GRAMMAR.state(), "abc") == ""  # a character the model cannot write stops it


@pytest.mark.slow  # a fresh interpreter
def test_grammar_imports_no_torch():
    code = "import sys, workbench.agent.grammar; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
