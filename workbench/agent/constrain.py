"""Constrained decoding: a small model's tool call that always parses and fits the registry.

    g = CallGrammar(request="Remind me to call Ana at 5pm", ground=True)
    r = constrained_generate(model, tok, student_prompt(g.request), g, max_new_tokens=320)
    r.json                             # a complete canonical call, whatever the model's weights

The grammar (``CallGrammar``, re-exported here) lives in ``workbench.agent.grammar``: a prefix check of
canonical JSON calls against the registry's schemas.

Decoding follows PICARD (Scholak et al., 2021): free greedy tokens for the rationale, then, once
the answer prefix is written, the candidates in descending logit order are checked one by one and
the first whose text keeps the JSON viable is taken (argmax over viable tokens). Candidates are
compared as decoded text, so a BPE token that holds several characters works like a character.

``ConstrainedDecoder`` holds one run's state (text so far, where the call starts, KV cache, counters)
and takes it a step at a time; ``constrained_generate`` builds one and runs it.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

from workbench.agent.grammar import CallGrammar  # also importable from here: workbench.agent.constrain.CallGrammar
from workbench.tasks.base import ANSWER_PREFIX, extract_answer
from workbench.tasks.tool_call import TOOLS


@dataclass
class Constrained:
    text: str  # the whole completion: rationale, answer prefix, the call, suffix
    json: str  # the call alone: always complete for the grammar
    forced: bool = False  # the model never wrote the answer prefix (budget or eos): it was appended
    fallback: bool = False  # no viable token in the top-k (or the JSON budget ran out): grammar.finish
    steps: int = 0  # tokens generated, free and constrained
    tried: int = 0  # candidate tokens checked against the grammar
    seconds: float = field(default=0.0, repr=False)
    model_seconds: float = field(default=0.0, repr=False, compare=False)  # of ``seconds``: running the model
    grammar_seconds: float = field(default=0.0, repr=False, compare=False)  # of it: the grammar's token choice
    jumped: int = field(default=0, compare=False)  # of ``steps``: tokens the grammar forced, fed without a step each


class ConstrainedDecoder:
    """Greedy decoding (KV cache) of ``model`` whose call after ``answer_prefix`` follows ``grammar``.

    ``top_k`` candidates are tried per constrained step (default: the whole vocabulary up to 4096
    tokens, else 2000). ``answer_prefix=None`` constrains from the first token. ``run`` resets and
    fills the per-run state:

    - ``text``: the decoded completion so far; ``generated``: its token ids
    - ``start``: where the call begins in ``text`` (None while the rationale is free)
    - ``forced``: the answer prefix was appended; ``fallback``: ``grammar.finish`` completed the call
    - ``past``, ``logits``: the model's KV cache and next-token logits after the last ``feed``
    - ``steps``: tokens generated; ``json_steps``: those of the call (at most ``max_json_tokens``); ``tried``:
      candidates checked; ``jumped``: of ``steps``, those fed without a step of their own (none here)
    - ``model_s``, ``grammar_s``: seconds in ``feed`` (the model) and in ``best_viable`` (the grammar's choice)
    """

    def __init__(self, model, tokenizer, grammar: CallGrammar, answer_prefix: str | None = ANSWER_PREFIX,
                 top_k: int | None = None):
        self.model, self.tokenizer, self.grammar = model, tokenizer, grammar
        self.answer_prefix, self.top_k = answer_prefix, top_k
        param = next(model.parameters(), None)
        self.device = param.device if param is not None else "cpu"
        # transformers 5 names the KV cache `cache` (in and out); older models and ours `past_key_values`
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.special, self.n_vocab = set(tokenizer.all_special_ids), len(tokenizer)
        self.reset()

    def reset(self):
        self.text, self.generated = "", []
        self.start = 0 if self.answer_prefix is None else None
        self.forced = self.fallback = False
        self.past = self.logits = None
        self.steps = self.json_steps = self.tried = 0
        self.jumped = 0  # of ``steps``: tokens the grammar forced, fed without a step each (``LeanDecoder``)
        self.model_s = self.grammar_s = 0.0

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def writable(self, tok: int) -> bool:
        # ids past the tokenizer (a padded output layer) have no text; special ones (eos, pad) end no call
        return tok not in self.special and tok < self.n_vocab

    def feed(self, ids: list[int], first: bool = False):
        """Run ``ids`` through the model (from scratch when ``first``), keeping its cache and last logits."""
        t0 = time.perf_counter()
        self.logits = self.forward(ids, first)
        self.model_s += time.perf_counter() - t0

    def forward(self, ids: list[int], first: bool):
        """The next-token logits [vocab] after ``ids``; keeps the model's cache in ``past``."""
        import torch

        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True,
                         **{self.cache_arg: None if first else self.past})
        past = getattr(out, "cache", None)
        self.past = past if past is not None else getattr(out, "past_key_values", None)
        return out.logits[0, -1].float()

    def force_prefix(self):
        """Append the answer prefix the model did not write, on a line of its own."""
        lead = "" if not self.text or self.text.endswith("\n") else "\n"
        ids = self.tokenizer(lead + self.answer_prefix, add_special_tokens=False).input_ids
        self.generated.extend(ids)
        self.feed(ids)
        self.text = self.decode(self.generated)
        # the prefix's tokens may merge with the text before them, so look for it in the decoded text
        at = self.text.rfind(self.answer_prefix)
        self.start = at + len(self.answer_prefix) if at >= 0 else len(self.text)
        self.forced = True

    def call_part(self, cand: str) -> str | None:
        """The call part of a candidate text, None if it has none (yet)."""
        if self.start is not None:
            # decoding one more token may rewrite earlier characters; a candidate that touches the prefix is out
            return cand[self.start:] if cand.startswith(self.text[:self.start]) else None
        at = cand.find(self.answer_prefix)
        return None if at < 0 else cand[at + len(self.answer_prefix):]

    def free_step(self, max_new_tokens: int) -> bool:
        """One plain greedy token of the rationale, or the forced prefix once the budget is spent or the
        model stops. False, with nothing taken, when the token would write the answer prefix: the
        constrained step then checks it with the call it starts."""
        tok = int(self.logits.argmax())
        if self.steps >= max_new_tokens or not self.writable(tok):
            self.force_prefix()
            return True
        cand = self.decode(self.generated + [tok])
        if self.answer_prefix in cand:
            return False
        self.generated.append(tok)
        self.text, self.steps = cand, self.steps + 1
        self.feed([tok])
        return True

    def best_viable(self) -> tuple[int, str, str] | None:
        """(token, candidate text, its call part) for the most likely top-k token that keeps the call viable."""
        import torch

        t0 = time.perf_counter()
        vocab = self.logits.shape[-1]
        k = min(vocab, self.top_k or (vocab if vocab <= 4096 else 2000))
        best = None
        for tok in torch.topk(self.logits, k).indices.tolist():
            if not self.writable(tok):
                continue
            self.tried += 1
            cand = self.decode(self.generated + [tok])
            part = self.call_part(cand)
            # a token that decodes to nothing would loop forever without moving the call on
            if part is not None and cand != self.text and self.grammar.viable(part):
                best = tok, cand, part
                break
        self.grammar_s += time.perf_counter() - t0
        return best

    def constrained_step(self) -> bool:
        """Take the best viable token of the call; True once the call is over (complete, or ``fallback``
        when no top-k token fits)."""
        best = self.best_viable()
        if best is None:
            if self.start is None:  # the prefix appeared only in tokens that break the call
                self.force_prefix()
                return False
            self.fallback = True
            return True
        tok, cand, part = best
        self.generated.append(tok)
        self.steps, self.json_steps = self.steps + 1, self.json_steps + 1
        if self.start is None:
            self.start = len(cand) - len(part)
        self.text = cand
        if self.grammar.complete(part):
            return True
        self.feed([tok])
        return False

    def run(self, prompt: str, max_new_tokens: int, suffix: str = ".", max_json_tokens: int = 256) -> Constrained:
        """The completion of ``prompt``: at most ``max_new_tokens`` of free rationale, then a call of at most
        ``max_json_tokens`` (``grammar.finish`` completes it past that), then ``suffix``. Both budgets are cut so
        that prompt, rationale, prefix and call fit the model's context; a prompt that fills it is refused."""
        import torch

        from workbench.core.evaluate import context_left

        t0 = time.perf_counter()
        self.reset()
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids[0].tolist()
        room = context_left(self.model, len(ids), "the request's prompt")
        prefix = len(self.tokenizer("\n" + self.answer_prefix).input_ids) if self.answer_prefix else 0
        max_json_tokens = min(max_json_tokens, max(1, room // 2))
        max_new_tokens = min(max_new_tokens, room - max_json_tokens - prefix - 1)  # <= 0: straight to the call
        self.max_json_tokens = max_json_tokens
        with torch.inference_mode():
            self.feed(ids, first=True)
            while True:
                if self.start is None and self.free_step(max_new_tokens):
                    continue
                if self.json_steps >= max_json_tokens:
                    self.fallback = True
                    break
                if self.constrained_step():
                    break
        call = self.text[self.start:]
        if self.fallback:
            call += self.grammar.finish(call)
        return Constrained(self.text[:self.start] + call + suffix, call, self.forced, self.fallback, self.steps,
                           self.tried, time.perf_counter() - t0, self.model_s, self.grammar_s, self.jumped)


def constrained_generate(model, tokenizer, prompt: str, grammar: CallGrammar, max_new_tokens: int,
                         answer_prefix: str | None = ANSWER_PREFIX, suffix: str = ".", top_k: int | None = None,
                         max_json_tokens: int = 256) -> Constrained:
    """Greedy decoding (KV cache) whose call after ``answer_prefix`` is always complete and valid.

    ``max_new_tokens`` bounds the free rationale; the constrained call may then take up to
    ``max_json_tokens`` more. ``top_k`` candidates are tried per step (default: the whole
    vocabulary up to 4096 tokens, else 2000). ``answer_prefix=None`` constrains from the first token.
    """
    decoder = ConstrainedDecoder(model, tokenizer, grammar, answer_prefix, top_k)
    return decoder.run(prompt, max_new_tokens, suffix, max_json_tokens)


def batch(model, tokenizer, prompts: list[str], grammars: CallGrammar | list[CallGrammar], max_new_tokens: int,
          **kwargs) -> list[Constrained]:
    """``constrained_generate`` over several prompts (one grammar, or one per prompt), one at a time."""
    grammars = grammars if isinstance(grammars, list) else [grammars] * len(prompts)
    return [constrained_generate(model, tokenizer, p, g, max_new_tokens, **kwargs) for p, g in zip(prompts, grammars)]


def evaluate_calls(model, tokenizer, examples, ground: bool = False, max_new_tokens: int | None = None,
                   tools: dict[str, dict] = TOOLS) -> dict:
    """A student's constrained calls on tool_call ``examples``: accuracy, validity, fallbacks, time."""
    from workbench.core.evaluate import student_prompt
    from workbench.tasks import get

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
