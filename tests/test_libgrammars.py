"""The JSON Schema libraries as constrained decoders: each one's mask follows the call schema, and its calls
through the shipped specialist parse, fit the schema of the tool they name, and match ours."""

import json

import pytest

from workbench.agent import libgrammars
from workbench.agent.router import Registry, Router
from workbench.core.tokenizer import CharTokenizer

BACKENDS = [pytest.param(b, id=b.name) for b in libgrammars.BACKENDS]
CALL = '{"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"}'
REQUESTS = ["Remind me to call Ana at 5pm", "What's the weather in Paris tomorrow?", "What is 12*7+3?"]


@pytest.fixture(scope="module")
def compiled():
    """Each installed backend compiled once for every tool's call schema (xgrammar takes seconds)."""
    tok, out = CharTokenizer(), {}

    def get(backend):
        pytest.importorskip(backend.module)
        if backend not in out:
            out[backend] = backend(libgrammars.call_schema(Registry().schemas()), tok, tok.vocab_size)
        return out[backend], tok

    return get


def test_call_schema_lists_keys_in_the_trained_order():
    schema = libgrammars.call_schema(Registry().schemas())
    for branch in schema["anyOf"]:
        assert list(branch["properties"]) == ["arguments", "name"]
        keys = list(branch["properties"]["arguments"]["properties"])
        assert keys == sorted(keys)
    assert [b["properties"]["name"]["enum"] for b in schema["anyOf"]][-1] == ["none"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_allows_a_canonical_call_then_only_eos(compiled, backend):
    lib, tok = compiled(backend)
    lib.start(tok("Remind me to call Ana at 5pm\n").input_ids)
    for ch in CALL:
        allowed = lib.allowed()
        assert allowed[tok.convert_tokens_to_ids(ch)], f"{backend.name} forbids {ch!r} in the canonical call"
        assert not allowed[tok.pad_token_id] and not allowed[tok.eos_token_id]
        lib.accept(tok.convert_tokens_to_ids(ch))
    allowed = lib.allowed()
    assert allowed[tok.eos_token_id] and int(allowed.sum()) == 1


# no tool has a key starting with z; "{}" then "}" ends a call without a name; only get_weather has a city,
# so no name starts with s (search_flights, set_reminder); the trained form has no spaces
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prefix, bad", [('{"arguments":{"', "z"), ('{"arguments":{}', "}"),
                                         ('{"arguments":{"city":"Paris"},"name":"', "s"), ('{"arguments":', " ")])
def test_mask_forbids_what_no_call_can_continue(compiled, backend, prefix, bad):
    lib, tok = compiled(backend)
    lib.start([])
    for ch in prefix:
        lib.accept(tok.convert_tokens_to_ids(ch))
    assert not lib.allowed()[tok.convert_tokens_to_ids(bad)]


@pytest.fixture(scope="module")
def specialist():
    from workbench.core import recipes

    model, tok, card = recipes.specialist("tool_call", "laptop", progress=False)
    assert card.get("train", {}).get("rationale") is False  # the libraries constrain a whole answer-only reply
    return model, tok


@pytest.mark.parametrize("backend", BACKENDS)
def test_library_calls_parse_validate_and_match_ours(specialist, backend):
    pytest.importorskip(backend.module)
    model, tok = specialist
    reg = Registry()
    lib = libgrammars.LibRouter(model, tok, reg, backend=backend)
    ours = Router(model, tok, reg, rationale=False, ground=False)
    for request in REQUESTS:
        d = lib.route(request)
        call = json.loads(d.raw)
        assert reg.validate(call) == (True, "")
        assert d.valid and d.tokens == len(d.raw) and d.grammar_ms > 0
        assert d.raw == ours.route(request).raw  # same model, same greedy order, the same schema


def test_compare_rows_score_every_path_on_the_same_requests(specialist):
    model, tok = specialist
    backends = libgrammars.available()[-1:]  # the cheapest to compile is listed last
    rows = libgrammars.compare(model, tok, REQUESTS[:1], ['{"arguments":{"text":"call Ana","time":"17:00"},'
                                                          '"name":"set_reminder"}'], backends=backends)
    names = [r["path"] for r in rows]
    assert names[:3] == ["ours, grounded, lean", "ours, grounded, transformers", "ours, ungrounded, lean"]
    assert names[-1] == "free, lean" and len(names) == 4 + len(backends)
    for r in rows:
        assert r["valid"] == 1.0 and r["ms_per_token"] > 0
        assert (r["compile_ms"] is None) == (not r["path"].startswith(tuple(b.name for b in backends)))
    assert "| ours, grounded, lean | 1 |" in libgrammars.table(rows)
