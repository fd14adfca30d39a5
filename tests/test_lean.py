"""The lean decode path: bitwise the logits of transformers' Llama, and the same tokens as the transformers
path, constrained (token for token over the tool_call test split) and free (against ``generate``)."""

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from workbench.agent.constrain import CallGrammar, ConstrainedDecoder
from workbench.agent.lean import LeanDecoder, LeanLlama, char_pieces, lean_greedy
from workbench.agent.router import Router
from workbench.core.evaluate import generate, student_prompt
from workbench.core.tokenizer import CharTokenizer
from workbench.tasks import ANSWER_PREFIX, splits

TOK = CharTokenizer()
CONFIGS = [  # (case, LlamaConfig fields beyond the vocabulary)
    ("tied, 4 heads", dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                           tie_word_embeddings=True)),
    ("untied, head_dim 8, 3 layers", dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                                          num_attention_heads=6, head_dim=8, tie_word_embeddings=False)),
]


def student(fields: dict, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=TOK.vocab_size, max_position_embeddings=256, initializer_range=0.3,
                      num_key_value_heads=fields["num_attention_heads"], pad_token_id=TOK.pad_token_id,
                      bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id, **fields)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("case, fields", CONFIGS, ids=[c for c, _ in CONFIGS])
def test_logits_are_bitwise_transformers(case, fields):
    model = student(fields)
    lm = LeanLlama(model)
    ids = TOK("Remind me to call Ana at 5pm\n").input_ids
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True).logits[0, -1]
        assert torch.equal(lm(ids, first=True), ref)  # the prompt
        for chunk in [[5], [17], [40, 41, 42], [9]]:  # single tokens, and a chunk after the cache (a forced prefix)
            ref = model(input_ids=torch.tensor([chunk]), cache=cache, use_cache=True).logits[0, -1]
            assert torch.equal(lm(chunk), ref)


REQUESTS = splits.load("tool_call", "test")[::25]  # 20 requests over every level
DECODES = [  # (case, answer prefix, rationale budget, grounded)
    ("answer only, grounded", None, 0, True),
    ("answer only, free text", None, 0, False),
    ("rationale, prefix forced", ANSWER_PREFIX, 12, True),
]


@pytest.mark.slow  # ~7 s for the three decodes: `make unit` and CI run it, the fast loop keeps the router test below
@pytest.mark.parametrize("jump", [True, False], ids=["jump-forward", "a step per token"])
@pytest.mark.parametrize("case, prefix, budget, ground", DECODES, ids=[c for c, *_ in DECODES])
def test_constrained_tokens_equal_the_transformers_path(varied_student, case, prefix, budget, ground, jump):
    model, tok = varied_student
    lean = LeanDecoder(LeanLlama(model), tok, CallGrammar(), prefix, jump=jump)
    for ex in REQUESTS:
        grammar = CallGrammar(request=ex.input, ground=ground)
        old = ConstrainedDecoder(model, tok, grammar, prefix)
        a = old.run(student_prompt(ex.input), budget, max_json_tokens=96)
        lean.grammar = grammar
        b = lean.run(student_prompt(ex.input), budget, max_json_tokens=96)
        assert b.text == a.text and lean.generated == old.generated, ex.input
        assert (b.forced, b.fallback, b.steps) == (a.forced, a.fallback, a.steps)
        assert b.model_seconds > 0 and b.grammar_seconds > 0 and b.seconds >= b.model_seconds + b.grammar_seconds


def test_jump_forward_writes_the_same_tokens_in_fewer_model_passes(varied_student):
    """The characters the grammar forces go in with the next token: the same call, fewer passes of the model."""
    model, tok = varied_student
    passes = {}

    class Counted(LeanLlama):
        def __call__(self, ids, first=False):
            passes[self.key] = passes.get(self.key, 0) + 1
            return super().__call__(ids, first)

    runs = {}
    for jump in (False, True):
        lm = Counted(model)
        lm.key = jump
        decoder = LeanDecoder(lm, tok, CallGrammar(), None, jump=jump)
        runs[jump] = [(decoder.run(student_prompt(ex.input), 0, suffix="", max_json_tokens=96).text, decoder.jumped)
                      for ex in REQUESTS[::4]]
    assert [t for t, _ in runs[True]] == [t for t, _ in runs[False]]
    assert all(n == 0 for _, n in runs[False]) and all(n >= len('{"arguments":{') for _, n in runs[True])
    assert passes[True] + sum(n for _, n in runs[True]) == passes[False]  # one pass saved per forced token


def test_the_best_allowed_token_replaces_a_rejected_greedy_one(varied_student):
    """A random student's greedy character mostly breaks the call: the table decides, as the sorted search would."""
    model, tok = varied_student
    lean = LeanDecoder(LeanLlama(model), tok, CallGrammar(), None)
    lean.run("Weather in Oslo?\n", 0, suffix="", max_json_tokens=40)
    assert lean.tried > 2 * lean.steps  # tables were read


@pytest.mark.parametrize("case, fields", CONFIGS, ids=[c for c, _ in CONFIGS])
def test_free_tokens_equal_generate(case, fields):
    model = student(fields, seed=1)
    lm = LeanLlama(model)
    for ex in REQUESTS[:6]:
        prompt = student_prompt(ex.input)
        assert lean_greedy(lm, TOK, prompt, 40, ids=True) == generate(model, TOK, [prompt], 40, 1, ids=True)[0]
    eos = student(fields, seed=1)
    with torch.no_grad():
        eos.lm_head.weight[TOK.eos_token_id] = 0  # an eos the model always takes after any hidden state...
        eos.lm_head.weight[TOK.eos_token_id, 0] = 1e4
    want = generate(eos, TOK, ["x\n"], 40, 1, ids=True)[0]
    assert lean_greedy(LeanLlama(eos), TOK, "x\n", 40, ids=True) == want


class PairTokenizer:
    """A tokenizer whose ids write two characters each, as BPE merges do."""

    all_special_ids = [0]

    def __len__(self):
        return 8

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(97 + i) * 2 for i in ids if i)


def test_only_plain_tiny_llamas_and_character_tokenizers_take_the_lean_path(varied_student):
    from workbench import quantize

    model, tok = varied_student
    int8 = quantize.dynamic_int8(model)
    gqa = LlamaForCausalLM(LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    assert LeanLlama.unsupported(model) is None and char_pieces(tok)[TOK.eos_token_id] is None
    assert "quantized" in LeanLlama.unsupported(int8) and "grouped-query" in LeanLlama.unsupported(gqa)
    assert char_pieces(PairTokenizer()) is None
    with pytest.raises(ValueError, match="lean path cannot run this model"):
        LeanLlama(int8)
    assert Router(model, tok).decoder == "lean" and Router(model, tok, lean=False).decoder == "transformers"
    assert Router(int8, tok).decoder == "transformers"
    assert Router(model, PairTokenizer()).decoder == "transformers"


@pytest.mark.parametrize("constrained", [True, False])
def test_router_decisions_are_the_same_on_both_paths(varied_student, constrained):
    model, tok = varied_student
    requests = [e.input for e in REQUESTS[:5]]
    lean = Router(model, tok, constrained=constrained, max_new_tokens=24).route_many(requests, batch_size=1)
    ref = Router(model, tok, constrained=constrained, max_new_tokens=24, lean=False).route_many(requests, 1)
    assert [d.raw for d in lean] == [d.raw for d in ref]
    assert all(d.model_ms > 0 and d.tokens > 0 for d in lean)
    assert all(d.model_ms is None for d in ref) != constrained  # generate() hides the model's share


def test_the_lean_step_follows_weights_changed_in_place():
    model = student(CONFIGS[0][1], seed=2)
    router = Router(model, TOK, constrained=False, max_new_tokens=12)
    before = router.route("What is 2+3?").raw
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight.mul_(-3)  # the lean step's fused q/k/v copy is out of date
    after = router.route("What is 2+3?").raw
    assert after == Router(model, TOK, constrained=False, max_new_tokens=12, lean=False).route("What is 2+3?").raw
    assert after != before
