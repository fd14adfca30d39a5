"""Constrained decoding: whatever the model's logits, the call after the answer prefix is complete and valid."""


from dataclasses import replace

import pytest
import torch

from workbench.agent import constrain
from workbench.agent.constrain import CallGrammar, ConstrainedDecoder, constrained_generate
from workbench.core.evaluate import student_prompt
from workbench.tasks import ANSWER_PREFIX, extract_answer, splits
from workbench.tasks.tool_call import is_canonical_call as valid_call

GRAMMAR = CallGrammar()
REMIND = '{"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"}'
NONE_CALL = '{"arguments":{},"name":"none"}'


class FakeLM(torch.nn.Module):
    """Random logits (seeded by position), boosted toward a scripted completion while the output
    follows it. Its "KV cache" is just the ids seen so far."""

    def __init__(self, tokenizer, scripts: dict[str, str] | None = None, seed: int = 0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.vocab, self.seed = len(tokenizer), seed
        self.scripts = {tuple(tokenizer(p).input_ids): tokenizer(c, add_special_tokens=False).input_ids
                        for p, c in (scripts or {}).items()}

    def forward(self, input_ids, past_key_values=None, use_cache=True):
        seen = tuple(past_key_values or ()) + tuple(input_ids[0].tolist())
        gen = torch.Generator().manual_seed(self.seed * 100_003 + len(seen))
        last = torch.randn(self.vocab, generator=gen)
        for prompt, script in self.scripts.items():
            done = list(seen[len(prompt):])
            if seen[:len(prompt)] == prompt and done == script[:len(done)] and len(done) < len(script):
                last[script[len(done)]] = 100.0
        logits = torch.zeros(1, input_ids.shape[1], self.vocab)
        logits[0, -1] = last
        return type("Out", (), {"logits": logits, "past_key_values": seen})()


def _check(r, grammar):
    assert grammar.complete(r.json) and valid_call(r.json)
    assert extract_answer(r.text) == r.json


@pytest.mark.parametrize("ground", [False, True])
def test_random_student_always_writes_a_valid_call(tiny_student, ground):
    model, tok, _ = tiny_student
    for ex in splits.load("tool_call", "test")[::80]:  # 5 requests over the levels
        g = CallGrammar(request=ex.input, ground=ground)
        r = constrained_generate(model, tok, student_prompt(ex.input), g, max_new_tokens=20, max_json_tokens=120)
        _check(r, g)
        assert r.forced and r.text.endswith(".")
    r = constrained_generate(model, tok, "Tell me a joke\n", GRAMMAR, 20, answer_prefix=None, suffix="")
    assert r.text == r.json and not r.forced and GRAMMAR.complete(r.json)


def test_the_best_viable_token_replaces_a_bad_one():
    tok = tiny_tok()
    script = 'tool: set_reminder\nSo the answer is {"arguments":{"text":"call Ana","time":"25:00"}'
    model = FakeLM(tok, {"p\n": script})
    r = constrained_generate(model, tok, "p\n", GRAMMAR, max_new_tokens=100)
    _check(r, GRAMMAR)
    assert not r.forced and not r.fallback
    kept = '{"arguments":{"text":"call Ana","time":"2'
    assert r.text.startswith("tool: set_reminder\nSo the answer is " + kept)
    assert r.json[len(kept)] in "0123"  # argmax over the digits that keep the hour valid


def tiny_tok():
    from workbench.core.tokenizer import CharTokenizer

    return CharTokenizer()


def test_evaluate_calls_scores_a_scripted_student():
    tok = tiny_tok()
    exs = splits.load("tool_call", "test")[:3]
    scripts = {student_prompt(ex.input): ex.rationale for ex in exs}
    scripts[student_prompt(exs[2].input)] = "tool: none\nSo the answer is " + '{"arguments":{},"name":"none"}.'
    res = constrain.evaluate_calls(FakeLM(tok, scripts), tok, exs, ground=True, max_new_tokens=300)
    assert res["accuracy"] == pytest.approx(2 / 3) and res["valid_call"] == 1.0
    assert res["forced"] == 0 and res["fallback"] == 0


def test_a_prefix_written_inside_a_bad_token_is_forced_instead():
    from workbench.core.tokenizer import ALPHABET, CharTokenizer

    tok = CharTokenizer(alphabet=[*ALPHABET, "answer is ?"])  # one token ends the prefix and breaks the call
    prompt, rationale = "p\n", "tool: none\nSo the "
    model = FakeLM(tok, {prompt: rationale})
    model.scripts[tuple(tok(prompt).input_ids)].append(tok.convert_tokens_to_ids("answer is ?"))
    forced = rationale + "\n" + ANSWER_PREFIX
    model.scripts[tuple(tok(prompt + forced).input_ids)] = tok(NONE_CALL, add_special_tokens=False).input_ids
    r = constrained_generate(model, tok, prompt, GRAMMAR, max_new_tokens=100)
    assert r.text == forced + NONE_CALL + "." and r.json == NONE_CALL
    assert r.forced and not r.fallback and r.steps == len(rationale) + len(NONE_CALL)


def test_a_call_past_its_token_budget_is_finished_by_the_grammar(tiny_student):
    model, tok, _ = tiny_student
    ex = splits.load("tool_call", "test")[0]
    g = CallGrammar(request=ex.input, ground=True)
    decoder = ConstrainedDecoder(model, tok, g)
    r = decoder.run(student_prompt(ex.input), max_new_tokens=10, max_json_tokens=5)
    _check(r, g)
    assert r.forced and r.fallback and decoder.json_steps == 5
    cut = decoder.text[decoder.start:]
    assert len(cut) == 5 and r.json.startswith(cut) and len(r.json) > 5  # grammar.finish wrote the rest


@pytest.mark.parametrize("answer_prefix", [ANSWER_PREFIX, None])
def test_one_decoder_reused_over_requests_matches_the_function(tiny_student, answer_prefix):
    model, tok, _ = tiny_student
    decoder = ConstrainedDecoder(model, tok, GRAMMAR, answer_prefix)
    for ex in splits.load("tool_call", "test")[:3]:
        prompt = student_prompt(ex.input)
        a = decoder.run(prompt, 20, max_json_tokens=40)
        b = constrained_generate(model, tok, prompt, GRAMMAR, 20, answer_prefix=answer_prefix, max_json_tokens=40)
        assert replace(a, seconds=0) == replace(b, seconds=0)
        assert a.text.startswith(decoder.text) and decoder.json_steps <= 40 and decoder.steps == a.steps


@pytest.fixture(scope="module")
def bpe_tok():
    """SmolLM2's BPE tokenizer from the converted local cache (its weights are not loaded)."""
    from transformers import AutoTokenizer

    from workbench.core.models import cache_dir

    folder = cache_dir() / "pretrained" / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").exists():
        pytest.skip("SmolLM2 is not converted locally (python -m workbench baselines converts it)")
    return AutoTokenizer.from_pretrained(str(folder))


def test_bpe_tokens_follow_the_script_when_it_is_valid(bpe_tok):
    script = "tool: set_reminder\ntext: call Ana\nSo the answer is " + REMIND
    r = constrained_generate(FakeLM(bpe_tok, {"p": script}), bpe_tok, "p", GRAMMAR, max_new_tokens=60)
    assert r.json == REMIND and not r.forced and not r.fallback
    assert r.steps == len(bpe_tok(script, add_special_tokens=False).input_ids) < len(script)  # multi-char tokens


def test_bpe_skips_tokens_that_break_the_call(bpe_tok):
    script = "tool: set_reminder\nSo the answer is " + REMIND.replace("17:00", "25:00")
    r = constrained_generate(FakeLM(bpe_tok, {"p": script}), bpe_tok, "p", GRAMMAR, max_new_tokens=60, top_k=300)
    _check(r, GRAMMAR)
    assert r.json.startswith('{"arguments":{"text":"call Ana","time":"2') and not r.forced


@pytest.mark.parametrize("seed", [0, 1])
def test_bpe_random_model_gives_a_valid_call(bpe_tok, seed):
    r = constrained_generate(FakeLM(bpe_tok, seed=seed), bpe_tok, "p", GRAMMAR, max_new_tokens=5, top_k=300,
                             max_json_tokens=40)
    _check(r, GRAMMAR)
    assert r.forced
