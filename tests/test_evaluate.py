import json

import pytest
import torch

from workbench.core import evaluate as ev
from workbench.tasks import Example, get, splits


class Oracle(torch.nn.Module):
    """A stand-in model whose greedy output is a fixed completion per prompt: tests the pipeline."""

    def __init__(self, tok, answers: dict[str, str]):
        super().__init__()
        self.tok, self.answers = tok, answers
        self.w = torch.nn.Parameter(torch.zeros(3))

    def generate(self, input_ids, attention_mask, max_new_tokens, **kw):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            prompt = self.tok.decode(ids[mask.bool()])
            new = self.tok(self.answers[prompt], add_special_tokens=False).input_ids[:max_new_tokens]
            rows.append(ids.tolist() + new)
        width = max(map(len, rows))
        return torch.tensor([r + [self.tok.pad_token_id] * (width - len(r)) for r in rows])


def _examples(task="boolean_expressions", n=6):
    return splits.load(task, "test", n=n)


@pytest.mark.parametrize("rationale", [False, True])
def test_scores_exact_match_by_level(tiny_student, rationale):
    _, tok, _ = tiny_student
    exs = _examples(n=40)[::5]  # several levels
    wrong = {exs[0].input, exs[3].input}
    answers = {}
    for ex in exs:
        answer = ("True" if ex.target == "False" else "False") if ex.input in wrong else ex.target
        text = ex.rationale.replace(f"answer is {ex.target}.", f"answer is {answer}.") if rationale else answer
        answers[ev.student_prompt(ex.input)] = text + "\nrubbish after the answer"
    res = ev.evaluate(Oracle(tok, answers), tok, "boolean_expressions", exs, ev.EvalConfig(rationale=rationale))
    assert res.n == len(exs)
    assert res.accuracy == pytest.approx((len(exs) - 2) / len(exs))
    levels = {str(e.level) for e in exs}
    assert set(res.by_level) == levels
    assert [p["correct"] for p in res.predictions] == [e.input not in wrong for e in exs]
    assert json.loads(json.dumps(res.summary())).keys() == {
        "task", "n", "accuracy", "by_level", "params", "latency_ms", "examples_per_s"}


def test_batched_generation_matches_one_by_one(tiny_student):
    model, tok, _ = tiny_student
    prompts = [ev.student_prompt(e.input) for e in _examples("dyck_languages", 5)] + ["True is\n"]
    model.generation_config.suppress_tokens = [0, 1, 2, 3]  # the random model would stop at once
    try:
        one = ev.generate(model, tok, prompts, max_new_tokens=12, batch_size=1)
        many = ev.generate(model, tok, prompts, max_new_tokens=12, batch_size=4)
    finally:
        model.generation_config.suppress_tokens = None
    assert one == many
    assert sum(map(len, one)) > 20  # the random model does write text, so the comparison means something


def test_stop_string_cuts_generation(tiny_student):
    _, tok, _ = tiny_student
    ex = _examples(n=1)[0]
    oracle = Oracle(tok, {ev.student_prompt(ex.input): ex.target + "\nmore text that must not count"})
    res = ev.evaluate(oracle, tok, ex.task, [ex])
    assert res.predictions[0]["prediction"] == ex.target and res.accuracy == 1.0


def test_fewshot_prompt_uses_train_shots_not_test():
    ex = _examples(n=1)[0]
    shots = ev.shots_for(ex.task, 3, get(ex.task).bbh_level)
    train = {e.input for e in splits.load(ex.task, "train")}
    assert len(shots) == 3 and all(s.input in train for s in shots)
    prompt = ev.fewshot_prompt(ex.input, shots)
    assert prompt.endswith(f"Q: {ex.input}\nA:") and prompt.count("Q: ") == 4


def test_chain_of_thought_prompt_and_answer(tiny_student):
    """CoT few-shot: each shot's rationale after "Let's think step by step.", the answer read from the model's own
    chain (not from the next question it goes on to invent)."""
    _, tok, _ = tiny_student
    exs = _examples(n=2)
    cfg = ev.EvalConfig(shots=2, rationale=True, batch_size=2)
    prompts = ev.build_prompts(tok, [get(e.task).reformat(e) for e in exs], cfg)
    shot = ev.shots_for(exs[0].task, 2, exs[0].level)[0]
    assert prompts[0].startswith(f"Q: {shot.input}\nA: {ev.COT}\n{shot.rationale}\n\nQ: ")
    assert prompts[0].endswith(f"Q: {exs[0].input}\nA: {ev.COT}\n") and prompts[0].count("Q: ") == 3
    wrong = {"True": "False", "False": "True"}
    answers = {p: f"some steps\nSo the answer is {e.target}.\n\nQ: not ( True )\nA: {ev.COT}\nSo the answer is "
                  f"{wrong[e.target]}." for p, e in zip(prompts, exs)}
    res = ev.evaluate(Oracle(tok, answers), tok, exs[0].task, exs, cfg)
    assert res.accuracy == 1.0 and res.mode == "few-shot"
    assert all(p["completion"].endswith(f"So the answer is {p['target']}.\n") for p in res.predictions)


def test_tool_call_reason_reported(tiny_student):
    _, tok, _ = tiny_student
    ex = splits.load("tool_call", "test", n=1)[0]
    oracle = Oracle(tok, {ev.student_prompt(ex.input): '{"name": "launch_rocket", "arguments": {}}'})
    res = ev.evaluate(oracle, tok, "tool_call", [ex])
    assert res.accuracy == 0 and "unknown tool" in res.predictions[0]["reason"]


@pytest.mark.parametrize("content, message", [
    ('{"input": "True is", "target": "True"}\n{oops\n', ":2: not valid JSON"),
    ('{"input": "True is"}\n', ':1: expected an object with string fields "input" and "target"'),
    ('[1, 2]\n', ":1: expected an object"),
    ('{"input": "a", "target": "True", "level": "x"}\n', ":1: level must be an integer"),
    ("\n", "no examples"),
])
def test_read_jsonl_names_the_bad_line(tmp_path, content, message):
    f = tmp_path / "data.jsonl"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        ev.read_jsonl(f, "boolean_expressions")


def test_read_jsonl_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ev.read_jsonl(tmp_path / "nope.jsonl", "boolean_expressions")


def test_read_jsonl_accepts_user_data(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"input": "True and False is", "target": "False"}\n\n'
                 '{"input": "True is", "target": "True", "level": 1}\n')
    exs = ev.read_jsonl(f, "boolean_expressions")
    assert [(e.input, e.target, e.level) for e in exs] == [("True and False is", "False", 0), ("True is", "True", 1)]


def test_results_table_and_mistakes(tiny_student):
    _, tok, _ = tiny_student
    exs = _examples(n=4)
    oracle = Oracle(tok, {ev.student_prompt(e.input): "True" for e in exs})
    res = ev.evaluate(oracle, tok, "boolean_expressions", exs, model_name="always-true")
    table = ev.results_table([res])
    assert "| always-true |" in table and f"{100 * res.accuracy:.0f}%" in table
    wrong = sum(not p["correct"] for p in res.predictions)
    assert ev.mistakes([res], k=10).count("wrong answer") == wrong


def test_no_examples_is_an_error(tiny_student):
    model, tok, _ = tiny_student
    with pytest.raises(ValueError, match="no examples"):
        ev.evaluate(model, tok, "boolean_expressions", [])


def test_example_roundtrip():
    ex = Example("boolean_expressions", 3, "True is", "So the answer is True.", "True")
    assert Example(**ex.to_dict()) == ex
