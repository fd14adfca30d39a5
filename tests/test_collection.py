"""The collection of agents: templates and their parser, the mixed stream, the dispatcher, refusals."""

from collections import Counter

import pytest

from workbench.agent import collection
from workbench.agent.collection import REASONING, TEMPLATES, Collection, Dispatcher, Specialist, parse, stream, wrap
from workbench.studies import collection as study_module
from workbench.tasks import NAMES, get, splits

CASES = [(name, part, template) for name in REASONING for part in collection.SPLITS
         for template in TEMPLATES[name][part]]


@pytest.mark.parametrize("name,part,template", CASES)
def test_every_template_wraps_and_parses_back_to_the_exact_input(name, part, template):
    examples = splits.load(name, "test", level=get(name).bbh_level, n=40)
    examples += splits.load(name, "train", level=get(name).bbh_level, n=40)
    for ex in examples:
        request = wrap(name, ex.input, template)
        assert request != ex.input and "{x}" not in request
        assert parse(name, request) == ex.input, request


def test_the_held_out_phrasings_are_not_training_phrasings():
    for name in REASONING:
        assert not set(TEMPLATES[name]["train"]) & set(TEMPLATES[name]["heldout"])


def test_the_stream_is_seeded_mixed_and_labelled():
    a, b, c = stream(4, seed=3), stream(4, seed=3), stream(4, seed=4)
    assert a == b and a != c
    assert Counter(r.route for r in a) == {name: 4 for name in NAMES}
    assert len({r.route for r in a[:5]}) > 1  # shuffled, not in blocks of one task
    heldout = {t for name in REASONING for t in TEMPLATES[name]["heldout"]}
    for r in a:
        test = {ex.input: ex.target for ex in splits.load(r.route, "test", level=get(r.route).bbh_level)}
        assert test[r.task_input] == r.target  # the expected answer is the split's own
        if r.route == "tool_call":
            assert r.text == r.task_input and not r.template
        else:
            assert r.template in heldout and parse(r.route, r.text) == r.task_input
    assert all(r.template in TEMPLATES[r.route]["train"] for r in stream(2, split="train", templates="train")
               if r.route != "tool_call")


def test_the_dispatcher_trained_in_smoke_routes_requests():
    st = study_module.study("smoke")
    d = study_module.dispatcher(st)
    assert d.accuracy(stream(st.train_per_task, st.seed, "train", "train")) >= 0.97
    assert d.accuracy(stream(10, st.seed + 1, "test", "heldout")) >= 0.9
    assert d.route("What is ((1 + 2 - 3 * 4) - (5 + 6 + 7 + -8))?") == "multistep_arithmetic_two"
    top = d.evidence("Close this bracket sequence: [ { (", k=3)
    assert len(top) == 3 and top[0][1] >= top[-1][1] > 0
    assert 0 < d.nbytes < 1_000_000


@pytest.fixture(scope="module")
def tiny_collection(tiny_student):
    model, tok, _ = tiny_student
    d = Dispatcher.fit(stream(10, split="train", templates="train"))
    specs = {name: Specialist(model, tok, rationale=name != "word_sorting", max_new_tokens=4, nbytes=100)
             for name in NAMES}
    return Collection(d, specs)


@pytest.mark.parametrize("request_text,route", [
    ("Close this bracket sequence: hello there", "dyck_languages"),
    ("Is True and and or ( true?", "boolean_expressions"),
])
def test_an_unparseable_request_gets_a_one_line_refusal(tiny_collection, request_text, route):
    out = tiny_collection.answer(request_text)
    assert out.route == route and out.refused and out.answer == "" and out.completion == ""
    assert "\n" not in out.reason and route in out.reason


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_an_empty_request_is_refused(tiny_collection, bad):
    out = tiny_collection.answer(bad)
    assert out.refused and "empty" in out.reason


def test_a_request_is_answered_end_to_end(tiny_collection):
    out = tiny_collection.answer("Is not ( True and False ) or False true?")
    assert out.route == "boolean_expressions" and not out.refused
    assert out.task_input == "not ( True and False ) or False is" and out.ms > 0
    assert tiny_collection.nbytes == 5 * 100 + tiny_collection.dispatcher.nbytes


@pytest.mark.parametrize("call,bad", [
    (lambda: parse("chess", "e4"), "'chess'"),
    (lambda: collection.check_task("poetry"), "'poetry'"),
    (lambda: stream(2, task_names=("poetry",)), "'poetry'"),
    (lambda: stream(0), "0"),
    (lambda: stream(2, templates="test"), "'test'"),
    (lambda: wrap("tool_call", "Call Ana", "{x}"), "'tool_call'"),
])
def test_bad_inputs_raise_one_line_errors_naming_the_value_and_the_choices(call, bad):
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert bad in msg and "\n" not in msg
    assert any(word in msg for word in ("boolean_expressions", "positive", "heldout"))


def test_a_collection_without_a_specialist_for_a_route_is_refused(tiny_student):
    model, tok, _ = tiny_student
    d = Dispatcher.fit(stream(5, split="train", templates="train"))
    with pytest.raises(ValueError, match="tool_call"):
        Collection(d, {name: Specialist(model, tok) for name in REASONING})


def _oracle(requests, wrong_route=()):
    """An answer function that knows every request's route and answer (except on ``wrong_route``)."""
    by_text = {r.text: r for r in requests}

    def answer(text):
        r = by_text[text]
        route = "tool_call" if r.route in wrong_route else r.route
        return collection.Outcome(text, route, r.target, ms=1.0)

    return answer


def test_serve_scores_routes_and_answers_per_task():
    reqs = stream(2, seed=1)
    row = study_module.serve("oracle", _oracle(reqs), reqs, nbytes=10)
    assert row["routed"] == row["correct"] == 1.0 and row["n"] == 10 and row["bytes"] == 10
    assert all(row[name] == 1.0 and row[f"{name}_n"] == 2 for name in NAMES)
    half = study_module.serve("misrouted", _oracle(reqs, wrong_route=("word_sorting",)), reqs, nbytes=10)
    assert half["routed"] == half["correct"] == 0.8 and half["word_sorting"] == 0.0
    assert "| oracle | 10 | 100% | 100% |" in study_module.table([row, half])
    v = study_module.verdict([half, row])
    assert v["correct_pct"] == 0.8 and v["general_correct_pct"] == 1.0 and not v["more_correct"]


def test_alone_counts_answering_itself_as_routed_for_a_reasoning_request():
    reqs = stream(1, seed=2)
    by_text = {r.text: r for r in reqs}

    def itself(text):  # a general model that answers everything itself, right on boolean only
        r = by_text[text]
        return collection.Outcome(text, "itself", r.target if r.route == "boolean_expressions" else "?", ms=1.0)

    row = study_module.serve("alone", itself, reqs, nbytes=1, alone=True, warmup=False)
    assert row["routed"] == 0.8  # every route but tool_call
    assert row["correct"] == 0.2 and row["boolean_expressions"] == 1.0 and row["tool_call"] == 0.0


def test_the_general_model_gets_the_tasks_in_turn():
    st = study_module.study("smoke", per_task=3, pretrained_n=7)
    got = st.general_requests()
    assert [r.route for r in got[:5]] == list(NAMES) and len(got) == 7
    assert all(r in st.requests() for r in got)
