"""The JSON Schema libraries as constrained decoders of our model: xgrammar, outlines, lm-format-enforcer.

    rows = libgrammars.compare(model, tok, requests, targets, rationale=False)
    print(libgrammars.table(rows))     # ours (workbench.agent.grammar) against each library, and free decoding

Each library gets the same call schema (``call_schema``: one branch per allowed tool, ``{"arguments": <the
tool's schema>, "name": <its name>}``, plus the no-tool call) and the same greedy loop (``LibRouter``: the
model's next-token logits, the library's mask of allowed tokens, argmax, until the library allows only eos).
So the model's time is the same for all, and the grammar's time (compiling the mask, advancing the matcher)
is measured apart. ``LibRouter`` is a ``Router``: the same input checks, parsing, schema check and tools, so
``router.score`` scores every row alike.

Key order: the model was trained on ``json.dumps(call, sort_keys=True, separators=(",", ":"))``, so
"arguments" before "name" and arguments' keys sorted. ``call_schema`` lists every object's properties in that
order; xgrammar and outlines emit properties in the schema's order (optional ones may be left out), so their
grammar is the trained one. lm-format-enforcer accepts the keys of an object in any order (its one option,
``force_json_field_order``, puts the required keys first, which is not the sorted order where an optional key
sorts before a required one: cabin before date): its grammar is looser, and greedy decoding follows the
order the model writes. None of the three can ground a free-text
value in the request (ours: ``CallGrammar(..., ground=True)``), so ``compare`` also runs ours ungrounded.

The libraries are optional (``pip install xgrammar outlines lm-format-enforcer``, pinned in the dev extra);
``BACKENDS`` lists them and ``available()`` those installed.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from workbench.agent.lean import char_pieces
from workbench.agent.router import Reply, Router, score
from workbench.tasks.tool_call import NONE


def call_schema(schemas: dict[str, dict]) -> dict:
    """One JSON Schema for a whole call of any tool in ``schemas`` (or the no-tool call), keys in trained order."""
    def ordered(s):
        if isinstance(s, list):
            return [ordered(x) for x in s]
        if not isinstance(s, dict):
            return s
        s = {k: ordered(v) for k, v in s.items() if k not in ("$schema", "description")}
        if "properties" in s:
            s["properties"] = dict(sorted(s["properties"].items()))  # the canonical call's sort_keys order
        return s

    def branch(name, args):
        return {"type": "object", "properties": {"arguments": args, "name": {"enum": [name]}},
                "required": ["arguments", "name"], "additionalProperties": False}

    empty = {"type": "object", "properties": {}, "additionalProperties": False}
    return {"anyOf": [branch(n, ordered(copy.deepcopy(s))) for n, s in schemas.items()] + [branch(NONE, empty)]}


# --- backends: one matcher per request, the allowed tokens per step ------------------------------------------
class Backend:
    """A library compiled once for the call schema; ``start`` a request, then ``allowed`` and ``accept`` per token."""

    name = ""
    package = ""  # what pip installs
    module = ""  # what imports

    def __init__(self, schema: dict, tokenizer, vocab_size: int):
        import torch

        self.eos, self.vocab_size = tokenizer.eos_token_id, vocab_size
        self.mask = torch.zeros(vocab_size, dtype=torch.bool)  # allowed ids, rewritten by ``allowed``
        t0 = time.perf_counter()
        self.build(schema, tokenizer)
        self.compile_s = time.perf_counter() - t0

    def build(self, schema: dict, tokenizer):
        raise NotImplementedError

    def start(self, prompt_ids: list[int]):
        raise NotImplementedError

    def allowed(self):
        """A bool tensor [vocab]: the tokens the grammar allows next (eos once the call may end)."""
        raise NotImplementedError

    def accept(self, tok: int):
        raise NotImplementedError

    def _from_ids(self, ids):
        self.mask.zero_()
        self.mask[list(ids)] = True
        return self.mask


class XGrammar(Backend):
    """xgrammar (Dong et al., 2024): a pushdown automaton with a cache of token masks, filled into a bitmask."""

    name, package, module = "xgrammar", "xgrammar", "xgrammar"

    def build(self, schema, tokenizer):
        import torch
        import xgrammar as xgr

        # special ids as empty strings: xgrammar never allows those, the stop token (eos) apart
        vocab = [p or "" for p in char_pieces(tokenizer)] + [""] * (self.vocab_size - len(tokenizer))
        info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=self.vocab_size, stop_token_ids=[self.eos])
        self.grammar = xgr.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False,
                                                                     separators=(",", ":"))
        self.bitmask = xgr.allocate_token_bitmask(1, self.vocab_size)  # int32 [1, ceil(vocab / 32)]
        ids = torch.arange(self.vocab_size)
        self.word, self.bit = ids // 32, ids % 32
        self.xgr = xgr

    def start(self, prompt_ids):
        self.matcher = self.xgr.GrammarMatcher(self.grammar)

    def allowed(self):
        self.matcher.fill_next_token_bitmask(self.bitmask)
        return (self.bitmask[0, self.word] >> self.bit) & 1 == 1

    def accept(self, tok):
        if not self.matcher.accept_token(tok):
            raise RuntimeError(f"xgrammar refused token {tok}, which it allowed")


class Outlines(Backend):
    """outlines (Willard & Louf, 2023) through outlines-core: the schema as a regex whose DFA is indexed by token."""

    name, package, module = "outlines", "outlines", "outlines_core"

    def build(self, schema, tokenizer):
        import json

        from outlines_core import Guide, Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema

        ids: dict[str, list[int]] = {}
        for i, p in enumerate(char_pieces(tokenizer)):
            if p is not None:
                ids.setdefault(p, []).append(i)
        self.regex = build_regex_from_schema(json.dumps(schema), whitespace_pattern="")  # no spaces: the trained form
        self.index, self.Guide = Index(self.regex, Vocabulary(self.eos, ids)), Guide

    def start(self, prompt_ids):
        self.guide = self.Guide(self.index)

    def allowed(self):
        return self._from_ids(self.guide.get_tokens())

    def accept(self, tok):
        self.guide.advance(tok, return_tokens=False)


class FormatEnforcer(Backend):
    """lm-format-enforcer: a character-level JSON Schema parser walked over a prefix tree of the vocabulary."""

    name, package, module = "lm-format-enforcer", "lm-format-enforcer", "lmformatenforcer"

    def build(self, schema, tokenizer):
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData

        regular = [(i, p, False) for i, p in enumerate(char_pieces(tokenizer)) if p is not None]
        self.data = TokenEnforcerTokenizerData(regular, lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                                               self.eos, False, self.vocab_size)
        self.parser, self.Enforcer = JsonSchemaParser(schema), TokenEnforcer  # parsers are immutable: shared

    def start(self, prompt_ids):
        self.enforcer, self.seq = self.Enforcer(self.data, self.parser), list(prompt_ids)
        # TokenEnforcer replaces the parser's config with a default one (up to 12 spaces in a row; keys in any
        # order): no whitespace, as trained. Its force_json_field_order puts the required keys first, which is
        # not the sorted order where an optional key sorts before a required one (cabin before date): left off
        self.parser.config = dataclasses.replace(self.parser.config, max_consecutive_whitespaces=0)

    def allowed(self):
        return self._from_ids(self.enforcer.get_allowed_tokens(self.seq).allowed_tokens)  # a list (use_bitmask=False)

    def accept(self, tok):
        self.seq.append(tok)


BACKENDS = (XGrammar, Outlines, FormatEnforcer)


def available() -> list[type[Backend]]:
    """The backends whose library imports here."""
    import importlib.util

    return [b for b in BACKENDS if importlib.util.find_spec(b.module) is not None]


# --- the decoder -------------------------------------------------------------------------------------------
@dataclass
class LibRouter(Router):
    """A ``Router`` whose call is decoded under a library's mask (``backend``) instead of our grammar.

    Answer-only students: the call is the whole reply (``rationale=False``, set here). Greedy over the
    allowed tokens, one at a time with the lean step where it applies (else the transformers forward and its
    KV cache), until the library allows only eos or ``max_new_tokens`` run out."""

    backend: type[Backend] | None = None
    rationale: bool = False
    _lib: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        if self.kind != "student" or self.backend is None:
            raise ValueError("LibRouter decodes an answer-only student (kind='student') under a backend")
        vocab = self.model.get_output_embeddings().weight.shape[0]
        self._lib = self.backend(call_schema(self.registry.schemas()), self.tokenizer, vocab)

    def _ask(self, text: str) -> Reply:
        import torch

        lm, lib = self._lean(), self._lib
        if lm is None:
            from workbench.agent.constrain import ConstrainedDecoder

            lm = ConstrainedDecoder(self.model, self.tokenizer, None, None).forward  # the transformers forward
        prompt = self.tokenizer(self._prompt(text)).input_ids
        out, model_s, grammar_s = [], 0.0, 0.0
        with torch.inference_mode():
            t0 = time.perf_counter()
            logits = lm(prompt, first=True)
            t1 = time.perf_counter()
            lib.start(prompt)
            allowed = lib.allowed()
            while len(out) < self.max_new_tokens:
                # 1. greedy over the allowed tokens; 2. the library takes it and says what may follow
                tok = int(logits[:len(allowed)].masked_fill(~allowed[:len(logits)], float("-inf")).argmax())
                if tok == lib.eos:
                    break
                out.append(tok)
                lib.accept(tok)
                allowed = lib.allowed()
                t2 = time.perf_counter()
                grammar_s += t2 - t1
                model_s += t1 - t0
                if allowed.sum() == 1 and allowed[lib.eos]:  # the call is complete: no forward for its eos
                    t0 = t1 = t2
                    break
                t0 = t2
                logits = lm([tok])  # 3. the model reads it
                t1 = time.perf_counter()
            grammar_s += time.perf_counter() - t1
            model_s += t1 - t0
        return Reply(self.tokenizer.decode(out, skip_special_tokens=True), tokens=len(out), model_s=model_s,
                     grammar_s=grammar_s)


# --- the comparison ----------------------------------------------------------------------------------------
def paths(model, tokenizer, rationale: bool = False, backends=None) -> dict[str, Router]:
    """Ours (grounded: lean and transformers; ungrounded: lean), each library's (lean), and free decoding."""
    out = {"ours, grounded, lean": Router(model, tokenizer, rationale=rationale),
           "ours, grounded, transformers": Router(model, tokenizer, rationale=rationale, lean=False),
           "ours, ungrounded, lean": Router(model, tokenizer, rationale=rationale, ground=False)}
    if not rationale:  # the libraries constrain the whole reply: an answer-only student's
        for b in available() if backends is None else backends:
            out[f"{b.name}, lean"] = LibRouter(model, tokenizer, backend=b)
    out["free, lean"] = Router(model, tokenizer, rationale=rationale, constrained=False)
    return out


def compare(model, tokenizer, requests: list[str], targets: list[str], rationale: bool = False, backends=None,
            repeats: int = 1) -> list[dict]:
    """One row per decoding path (``paths``) on the same requests: exact and valid calls (``router.score``),
    p50 ms per request, ms per generated token, the grammar's ms per token, and the library's compile ms.

    Requests go through the paths interleaved, the order rotating, so a busy machine slows every path alike;
    p50 is the median over ``repeats`` passes, exact and valid come from the first."""
    import numpy as np

    routers = paths(model, tokenizer, rationale, backends)
    for r in routers.values():
        r.route(requests[0])  # warm-up: thread pools, the lean step's tables, the libraries' caches
    runs = {p: [[] for _ in range(repeats)] for p in routers}
    for rep in range(repeats):
        for i, req in enumerate(requests):
            names = list(routers)
            k = (i + rep) % len(names)
            for p in names[k:] + names[:k]:
                runs[p][rep].append(routers[p].route(req))
    rows = []
    for p, reps in runs.items():
        s, ds = score(reps[0], targets), [d for ds in reps for d in ds]
        tokens = sum(d.tokens for d in ds) or 1
        lib = getattr(routers[p], "_lib", None)
        rows.append({"path": p, "n": len(requests), "repeats": repeats, "exact": s["accuracy"], "valid": s["valid"],
                     "p50_ms": statistics.median(float(np.percentile([d.latency_ms for d in r], 50)) for r in reps),
                     "ms_per_token": sum(d.latency_ms for d in ds) / tokens,
                     "grammar_ms_per_token": sum(d.grammar_ms for d in ds) / tokens,
                     "compile_ms": None if lib is None else 1000 * lib.compile_s, "tokens": tokens / len(ds),
                     "calls": [d.raw for d in reps[0]]})
    return rows


def table(rows: list[dict]) -> str:
    """``compare``'s rows as a markdown table."""
    from workbench.core.report import table as markdown

    rows = [{**r, "compile": "—" if r["compile_ms"] is None else f"{r['compile_ms']:.0f}"} for r in rows]
    return markdown(rows, {"decoder": "{path}", "requests": "{n}", "exact calls": "{exact:.0%}",
                           "valid calls": "{valid:.0%}", "p50 ms / request": "{p50_ms:.1f}",
                           "ms / token": "{ms_per_token:.2f}", "grammar ms / token": "{grammar_ms_per_token:.3f}",
                           "compile ms": "{compile}"})
