"""Constrained decoding: a small model's tool call that always parses and fits the registry.

    g = CallGrammar(request="Remind me to call Ana at 5pm", ground=True)
    r = constrained_generate(model, tok, student_prompt(g.request), g, max_new_tokens=320)
    r.json                             # a complete canonical call, whatever the model's weights

The grammar (``CallGrammar``, re-exported here) lives in ``workbench.grammar``: a prefix check of
canonical JSON calls against the registry's schemas.

Decoding follows PICARD (Scholak et al., 2021): free greedy tokens for the rationale, then, once
the answer prefix is written, the candidates in descending logit order are checked one by one and
the first whose text keeps the JSON viable is taken (argmax over viable tokens). Candidates are
compared as decoded text, so a BPE token that holds several characters works like a character.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

from .grammar import CallGrammar  # also importable from here: workbench.constrain.CallGrammar
from .tasks.base import ANSWER_PREFIX, extract_answer
from .tasks.tool_call import TOOLS


@dataclass
class Constrained:
    text: str  # the whole completion: rationale, answer prefix, the call, suffix
    json: str  # the call alone: always complete for the grammar
    forced: bool = False  # the model never wrote the answer prefix (budget or eos): it was appended
    fallback: bool = False  # no viable token in the top-k (or the JSON budget ran out): grammar.finish
    steps: int = 0  # tokens generated, free and constrained
    tried: int = 0  # candidate tokens checked against the grammar
    seconds: float = field(default=0.0, repr=False)


def constrained_generate(model, tokenizer, prompt: str, grammar: CallGrammar, max_new_tokens: int,
                         answer_prefix: str | None = ANSWER_PREFIX, suffix: str = ".", top_k: int | None = None,
                         max_json_tokens: int = 256) -> Constrained:
    """Greedy decoding (KV cache) whose call after ``answer_prefix`` is always complete and valid.

    ``max_new_tokens`` bounds the free rationale; the constrained call may then take up to
    ``max_json_tokens`` more. ``top_k`` candidates are tried per step (default: the whole
    vocabulary up to 4096 tokens, else 2000). ``answer_prefix=None`` constrains from the first token.
    """
    import torch

    t0 = time.perf_counter()
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    special, n_vocab = set(tokenizer.all_special_ids), len(tokenizer)
    st = {"text": "", "start": 0 if answer_prefix is None else None, "forced": False}
    gen: list[int] = []

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    # transformers 5 names the KV cache `cache` (in and out); older models and ours `past_key_values`
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def feed(ids: list[int], first: bool = False):
        past = None if first else st["past"]
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, **{cache_arg: past})
        past = getattr(out, "cache", None)
        st["past"] = past if past is not None else getattr(out, "past_key_values", None)
        st["logits"] = out.logits[0, -1].float()

    def force():  # append the answer prefix the model did not write, on a line of its own
        lead = "" if not st["text"] or st["text"].endswith("\n") else "\n"
        ids = tokenizer(lead + answer_prefix, add_special_tokens=False).input_ids
        gen.extend(ids)
        feed(ids)
        st["text"] = text = decode(gen)
        at = text.rfind(answer_prefix)
        st["start"], st["forced"] = (at + len(answer_prefix) if at >= 0 else len(text)), True

    def json_of(cand: str) -> str | None:  # the call part of a candidate text, None if it has none
        start = st["start"]
        if start is not None:
            return cand[start:] if cand.startswith(st["text"][:start]) else None
        at = cand.find(answer_prefix)
        return None if at < 0 else cand[at + len(answer_prefix):]

    with torch.inference_mode():
        feed(tokenizer(prompt, return_tensors="pt").input_ids[0].tolist(), first=True)
        vocab = st["logits"].shape[-1]
        k = min(vocab, top_k or (vocab if vocab <= 4096 else 2000))
        steps = tried = json_steps = 0
        fallback = False
        while True:
            if st["start"] is None:  # free rationale: plain greedy until the answer prefix shows up
                tok = int(st["logits"].argmax())
                if steps >= max_new_tokens or tok in special or tok >= n_vocab:
                    force()
                    continue
                cand = decode(gen + [tok])
                if answer_prefix not in cand:
                    gen.append(tok)
                    st["text"], steps = cand, steps + 1
                    feed([tok])
                    continue
            if json_steps >= max_json_tokens:
                fallback = True
                break
            chosen = None
            for tok in torch.topk(st["logits"], k).indices.tolist():  # argmax over viable tokens
                if tok in special or tok >= n_vocab:
                    continue
                tried += 1
                cand = decode(gen + [tok])
                part = json_of(cand)
                if part is not None and cand != st["text"] and grammar.viable(part):
                    chosen = tok
                    break
            if chosen is None:
                if st["start"] is None:  # the prefix appeared only in tokens that break the call
                    force()
                    continue
                fallback = True
                break
            gen.append(chosen)
            steps, json_steps = steps + 1, json_steps + 1
            if st["start"] is None:
                st["start"] = len(cand) - len(part)
            st["text"] = cand
            if grammar.complete(part):
                break
            feed([chosen])
    start = st["start"]
    call = st["text"][start:]
    if fallback:
        call += grammar.finish(call)
    return Constrained(st["text"][:start] + call + suffix, call, st["forced"], fallback, steps, tried,
                       time.perf_counter() - t0)


def batch(model, tokenizer, prompts: list[str], grammars: CallGrammar | list[CallGrammar], max_new_tokens: int,
          **kwargs) -> list[Constrained]:
    """``constrained_generate`` over several prompts (one grammar, or one per prompt), one at a time."""
    grammars = grammars if isinstance(grammars, list) else [grammars] * len(prompts)
    return [constrained_generate(model, tokenizer, p, g, max_new_tokens, **kwargs) for p, g in zip(prompts, grammars)]


def evaluate_calls(model, tokenizer, examples, ground: bool = False, max_new_tokens: int | None = None,
                   tools: dict[str, dict] = TOOLS) -> dict:
    """A student's constrained calls on tool_call ``examples``: accuracy, validity, fallbacks, time."""
    from .evaluate import student_prompt
    from .tasks import get

    task = get("tool_call")
    budget = max_new_tokens or int(max(len(tokenizer(ex.rationale).input_ids) for ex in examples) * 1.25) + 8
    shared = CallGrammar(tools)
    rows = []
    for ex in examples:
        grammar = CallGrammar(tools, ex.input, ground=True) if ground else shared
        r = constrained_generate(model, tokenizer, student_prompt(ex.input), grammar, budget)
        reason = task.diagnose(extract_answer(r.text), ex.target)
        rows.append({"input": ex.input, "target": ex.target, "prediction": r.json, "correct": reason is None,
                     "reason": reason, "forced": r.forced, "fallback": r.fallback, "seconds": r.seconds})
    n = len(rows)
    return {"n": n, "accuracy": sum(r["correct"] for r in rows) / n,
            "valid_call": sum(r["reason"] in (None, "wrong call") for r in rows) / n,
            "forced": sum(r["forced"] for r in rows) / n, "fallback": sum(r["fallback"] for r in rows) / n,
            "ms_per_request": 1000 * sum(r["seconds"] for r in rows) / n, "predictions": rows}
