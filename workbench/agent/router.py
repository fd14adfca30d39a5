"""Agent: the small reasoner as an agent's tool router, safe by construction.

    reg = Registry()                                   # every tool of tool_call.TOOLS, offline
    router = Router(model, tok, reg)                   # a student; kind="chat" for an instruct model
    d = router.route("Remind me to call Ana at 5pm")
    d.call, d.result   # {"arguments": {...}, "name": "set_reminder"}, {"id": "reminder-1", ...}

A request meets four walls, and whatever gets through one is only data to the next. (1) Input
checks before any model call: text or UTF-8 bytes, control characters stripped, not empty, not
longer than ``max_chars`` nor than the model's context. (2) The model writes a call; with
``constrained=True`` decoding follows the grammar of the allowed tools (``constrain.CallGrammar``,
PICARD-style), so the call always parses and fits a schema. (3) ``json.loads`` and the registry's
check: known tool, on the allow-list, arguments valid under the tool's JSON Schema (draft 2020-12).
(4) The tool runs on those arguments as values: every tool (``workbench.agent.tools``) is offline and
deterministic, and the calculator parses its expression with ``ast`` (numbers and + - * / ** only),
never ``eval``. ``route`` never raises: each failure becomes a refusal whose ``reason`` says which
wall stopped it.
"""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from workbench.agent.constrain import CallGrammar, ConstrainedDecoder
from workbench.agent.tools import (
    CONDITIONS,
    EXAMPLE_RATES,
    FACTORS,
    MAX_EXPONENT,
    MAX_EXPRESSION,
    MAX_MAGNITUDE,
    ToolError,
    calculator,
    convert_currency,
    convert_units,
    get_weather,
    implementations,
    search_flights,
    web_search,
)
from workbench.tasks.base import ANSWER_PREFIX, extract_answer
from workbench.tasks.tool_call import NONE, TOOLS, canonical, parse_call

# the tools live in workbench.agent.tools; re-exported so wb.agent.calculator and friends keep working
__all__ = ["CONDITIONS", "EXAMPLE_RATES", "FACTORS", "MAX_EXPONENT", "MAX_EXPRESSION", "MAX_MAGNITUDE", "Decision",
           "Registry", "Reply", "Router", "Tool", "ToolError", "calculator", "canonical", "convert_currency",
           "convert_units", "get_weather", "score", "search_flights", "system_prompt", "web_search"]


# --- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    name: str
    schema: dict  # JSON Schema (draft 2020-12) of the arguments object
    fn: Callable[..., Any]  # called with the validated arguments as keyword arguments


@dataclass
class Registry:
    """Tools by name, an allow-list, and the check every call passes before it runs."""

    tools: dict[str, Tool] | None = None  # None: every tool of tool_call.TOOLS, from tools.py
    allow: set[str] | None = None  # the allow-list; None: every tool in ``tools``
    events: list[dict] = field(default_factory=list)  # what create_calendar_event stored
    reminders: list[dict] = field(default_factory=list)  # what set_reminder stored

    def __post_init__(self):
        if self.tools is None:
            fns = implementations(self.events, self.reminders)
            self.tools = {name: Tool(name, schema, fns[name]) for name, schema in TOOLS.items()}
        self.allow = set(self.tools) if self.allow is None else set(self.allow)
        if self.allow - set(self.tools):
            raise ValueError(f"the allow-list names unknown tools: {sorted(self.allow - set(self.tools))}")
        self._validators = {n: Draft202012Validator(t.schema) for n, t in self.tools.items()}

    def schemas(self) -> dict[str, dict]:
        """The allowed tools' schemas: what the grammar and the chat prompt offer the model."""
        return {n: t.schema for n, t in self.tools.items() if n in self.allow}

    def validate(self, call) -> tuple[bool, str]:
        """(True, "") when ``call`` is a call of a known, allowed tool whose arguments fit its schema."""
        if not (isinstance(call, dict) and set(call) == {"arguments", "name"} and isinstance(call["name"], str)
                and isinstance(call["arguments"], dict)):
            return False, 'not a tool call: expected an object {"arguments": {...}, "name": "..."}'
        name = call["name"]
        if name not in self.tools:
            return False, f"unknown tool {name!r}; known tools: {', '.join(sorted(self.tools))}"
        if name not in self.allow:
            return False, f"tool {name!r} is not on the allow-list ({', '.join(sorted(self.allow))})"
        error = best_match(self._validators[name].iter_errors(call["arguments"]))
        if error is not None:
            return False, f"arguments break the schema of {name!r}: {error.message}"
        return True, ""

    def execute(self, call: dict) -> Any:
        """Run a call that ``validate`` accepts (checked again here); ToolError otherwise."""
        ok, reason = self.validate(call)
        if not ok:
            raise ToolError(reason)
        return self.tools[call["name"]].fn(**call["arguments"])


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # embeddings, overrides, isolates


# --- the router -----------------------------------------------------------------------------------
@dataclass
class Decision:
    request: str  # the request as checked (decoded, control characters stripped)
    call: dict | None = None  # the parsed call, when the model's text was JSON
    raw: str = ""  # the model's whole completion ("" when the input checks refused first)
    valid: bool = False  # the call passed the registry's check
    refused: bool = False  # no tool result comes back; ``reason`` says why
    reason: str = ""
    result: Any = None  # the tool's return value
    latency_ms: float = 0.0  # checks, model (its share of a batch) and tool
    model_ms: float | None = None  # of latency_ms, the model's forward passes (None: inside generate(), not apart)
    grammar_ms: float = 0.0  # of latency_ms, choosing the tokens the grammar allows
    tokens: int = 0  # tokens the model generated (0: not counted, a batch)
    jumped: int = 0  # of ``tokens``: those the grammar forced, fed without a model step each (jump-forward)
    forced: bool = False  # constrained decoding appended the answer prefix the model never wrote
    fallback: bool = False  # constrained decoding completed the call with grammar.finish
    no_tool: bool = False  # the model chose {"arguments":{},"name":"none"}: a correct routing, not an error


@dataclass
class Reply:
    """What the model wrote for one checked request, and where the time went."""

    text: str
    forced: bool = False  # see Decision
    fallback: bool = False
    tokens: int = 0
    model_s: float | None = None
    grammar_s: float = 0.0
    jumped: int = 0


def system_prompt(schemas: dict[str, dict]) -> str:
    """The chat model's instructions: each tool with its arguments, then the one output format.

    No worked example: with one, SmolLM2-135M copied its tool into every answer (0/10 vs 2/10 right).
    """
    lines = ["You route a user's request to exactly one tool. The tools:"]
    for name, schema in schemas.items():
        args = []
        for key, prop in schema["properties"].items():
            kind = "one of " + "|".join(map(str, prop["enum"])) if "enum" in prop else prop.get("type", "any")
            kind += " of strings" if kind == "array" else ""
            kind += f" ({prop['description']})" if "description" in prop else ""
            args.append(f"{key}: {kind}" + (", required" if key in schema.get("required", ()) else ""))
        lines.append(f"- {name}: {schema.get('description', '')} Arguments: {'; '.join(args)}.")
    lines += ['Reply with one JSON object and nothing else, keys sorted, no spaces: '
              '{"arguments":{...},"name":"<tool>"}. Copy argument text from the request.',
              f'If no tool serves the request, reply {{"arguments":{{}},"name":"{NONE}"}}.']
    return "\n".join(lines)


@dataclass
class Router:
    """A model that turns requests into checked, executed tool calls (see the module docstring)."""

    model: Any
    tokenizer: Any
    registry: Registry | None = None  # None: a fresh Registry() with every tool
    kind: str = "student"  # "student": rationale then "So the answer is {json}."; "chat": JSON only
    rationale: bool = True  # a student trained answer-only (its card's train.rationale is False) writes the JSON alone
    constrained: bool = True  # decode with the grammar of the allowed tools
    ground: bool = True  # constrained: free-text values must be copied from the request
    max_new_tokens: int | None = None  # None: 480 for a student (one character a token), 160 for a chat answer
    max_chars: int = 2000  # longer requests are refused before the model sees them
    lean: bool = True  # decode with workbench.agent.lean where it applies (a tiny fp32 Llama, one char per token)
    jump: bool = True  # lean, constrained: feed the characters the grammar forces without a step each (LeanDecoder)
    _lm: Any = field(default=None, init=False, repr=False)  # the lean step, built on first use
    _lean_off: str = field(default="", init=False, repr=False)  # why the lean path does not apply to this model

    def __post_init__(self):
        if self.kind not in ("student", "chat"):
            raise ValueError(f'kind must be "student" or "chat", got {self.kind!r}')
        self.registry = self.registry if self.registry is not None else Registry()
        # a student writes a character a token: a long call (a flight with every option) passes 160 on its own
        self.max_new_tokens = self.max_new_tokens or (480 if self.kind == "student" else 160)
        self._grammar = CallGrammar(self.registry.schemas())  # shared when not grounded

    def route(self, request: str | bytes) -> Decision:
        return self.route_many([request], batch_size=1)[0]

    def route_many(self, requests: list, batch_size: int = 8) -> list[Decision]:
        """Decisions in the order of ``requests``; unconstrained generation runs ``batch_size`` at a time."""
        decisions = []
        for r in requests:
            t0 = time.perf_counter()
            decisions.append(self._check(r))
            decisions[-1].latency_ms = 1000 * (time.perf_counter() - t0)
        todo = [d for d in decisions if not d.refused]
        try:
            answers = self._ask_many([d.request for d in todo], batch_size)
        except Exception as err:  # the model failed (out of memory, a tokenizer error): refuse, never raise
            answers = [(err, 0.0)] * len(todo)
        for d, (answer, seconds) in zip(todo, answers):
            t0 = time.perf_counter()
            self._finish(d, answer)
            d.latency_ms += 1000 * (seconds + time.perf_counter() - t0)
        return decisions

    # 1. input checks, before any model call ---------------------------------------------------------
    def _check(self, request) -> Decision:
        d = Decision(request="")
        if isinstance(request, bytes):
            try:
                request = request.decode("utf-8")
            except UnicodeDecodeError as err:
                d.request = request.decode("utf-8", "replace")
                return self._refuse(d, f"request is not valid UTF-8 ({err.reason} at byte {err.start})")
        if not isinstance(request, str):
            d.request = repr(request)[:200]
            return self._refuse(d, f"request must be text (str or UTF-8 bytes), got {type(request).__name__}")
        # control, surrogate and bidi-override characters go (newline and tab stay): they can hide text
        # from a reader (Trojan Source, Boucher & Anderson 2021) or break a tokenizer
        d.request = text = "".join(c for c in request if c in "\n\t" or (
            unicodedata.category(c) not in ("Cc", "Cs") and c not in _BIDI)).strip()
        if not text:
            return self._refuse(d, "request is empty")
        if len(text) > self.max_chars:
            return self._refuse(d, f"request is {len(text):,} characters long; the limit is {self.max_chars:,}")
        context = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        try:
            n_tokens = len(self.tokenizer(self._prompt(text)).input_ids)
        except Exception as err:  # a chat template or tokenizer that rejects the text
            return self._refuse(d, f"could not build the prompt: {type(err).__name__}: {err}")
        if context and n_tokens >= context:
            return self._refuse(d, f"request takes {n_tokens:,} tokens; this model reads at most {context:,}")
        return d

    @staticmethod
    def _refuse(d: Decision, reason: str) -> Decision:
        d.refused, d.reason = True, reason
        return d

    # 2. the model -----------------------------------------------------------------------------------
    def _prompt(self, text: str) -> str:
        if self.kind == "student":
            return text + "\n"  # evaluate.student_prompt, without importing torch for a prompt
        messages = [{"role": "system", "content": system_prompt(self.registry.schemas())},
                    {"role": "user", "content": text}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @property
    def decoder(self) -> str:
        """"lean" (``workbench.agent.lean``) or "transformers" (the model's own forward, and ``generate``)."""
        return "lean" if self._lean() is not None else "transformers"

    def _lean(self):
        """The lean step for this model, built once (again after its weights change); None where it does not apply."""
        if not self.lean or self._lean_off:
            return None
        if self._lm is None or self._lm.stale():
            from workbench.agent.lean import LeanLlama, char_pieces

            own = getattr(self.model, "lean_step", None)  # a runtime's own step (runtimes.AsCausalLM)
            step = own() if own is not None else None
            if own is not None:
                self._lean_off = "" if step is not None else "its runtime keeps no KV cache"
            else:
                self._lean_off = LeanLlama.unsupported(self.model) or ""
            if not self._lean_off and char_pieces(self.tokenizer) is None:
                self._lean_off = "its tokenizer writes more than one character per token"
            self._lm = None if self._lean_off else step or LeanLlama(self.model)
        return self._lm

    def _ask(self, text: str) -> Reply:
        """What the model writes for one checked request."""
        lm = self._lean()
        if not self.constrained:
            if lm is None:
                return Reply(self._generate([text])[0])
            from workbench.agent.lean import lean_greedy

            t0 = time.perf_counter()
            ids = lean_greedy(lm, self.tokenizer, self._prompt(text), self.max_new_tokens,
                              add_special_tokens=self.kind == "student", ids=True)
            return Reply(self.tokenizer.decode(ids, skip_special_tokens=True), tokens=len(ids),
                         model_s=time.perf_counter() - t0)
        grammar = CallGrammar(self.registry.schemas(), text, ground=True) if self.ground else self._grammar
        prefix, suffix = (ANSWER_PREFIX, ".") if self.kind == "student" and self.rationale else (None, "")
        if lm is None:
            decoder = ConstrainedDecoder(self.model, self.tokenizer, grammar, prefix)
        else:
            from workbench.agent.lean import LeanDecoder

            decoder = LeanDecoder(lm, self.tokenizer, grammar, prefix, jump=self.jump)
        r = decoder.run(self._prompt(text), self.max_new_tokens, suffix)
        return Reply(r.text, r.forced, r.fallback, r.steps, r.model_seconds, r.grammar_seconds, r.jumped)

    def _ask_many(self, texts: list[str], batch_size: int) -> list[tuple[Reply, float]]:
        """(reply, seconds) per text: batched (through ``generate``) when unconstrained and ``batch_size`` > 1."""
        if self.constrained or len(texts) <= 1 or batch_size == 1:  # constrained decoding: one request at a time
            out = []
            for t in texts:
                t0 = time.perf_counter()
                out.append((self._ask(t), time.perf_counter() - t0))
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            t0 = time.perf_counter()
            done = self._generate([texts[i] for i in idx])
            share = (time.perf_counter() - t0) / len(idx)
            for i, text in zip(idx, done):
                out[i] = (Reply(text), share)
        return out

    def _generate(self, texts: list[str]) -> list[str]:
        """Plain greedy completions of ``texts``, as one batch."""
        from workbench.core.evaluate import generate  # torch: only once a model is asked

        return generate(self.model, self.tokenizer, [self._prompt(t) for t in texts], self.max_new_tokens,
                        len(texts), add_special_tokens=self.kind == "student")

    # 3. parse, check, run -----------------------------------------------------------------------------
    def _answer(self, raw: str) -> str:
        """The call's text: after the last "So the answer is" (student), or the outermost {...} (chat)."""
        if self.kind == "student":
            return extract_answer(raw)
        lo, hi = raw.find("{"), raw.rfind("}")
        return raw[lo:hi + 1] if 0 <= lo < hi else raw.strip()  # tolerates a ```json fence around the call

    def _finish(self, d: Decision, answer) -> None:
        if isinstance(answer, Exception):
            self._refuse(d, f"the model failed: {type(answer).__name__}: {answer}")
            return
        d.raw, d.forced, d.fallback, d.tokens = answer.text, answer.forced, answer.fallback, answer.tokens
        d.jumped = answer.jumped
        d.model_ms = None if answer.model_s is None else 1000 * answer.model_s
        d.grammar_ms = 1000 * answer.grammar_s
        try:
            d.call = parse_call(self._answer(d.raw))
        except ValueError as err:
            self._refuse(d, f"the model's call is not valid JSON: {err}")
            return
        if d.call == {"arguments": {}, "name": NONE}:
            d.no_tool = True
            self._refuse(d, "no tool serves this request")
            return
        d.valid, reason = self.registry.validate(d.call)
        if not d.valid:
            self._refuse(d, reason)
            return
        try:
            d.result = self.registry.execute(d.call)
        except Exception as err:  # the tool's own error (ToolError) or a bug in it: reported, never raised
            self._refuse(d, f"{d.call['name']} failed: {err}")


# --- scoring --------------------------------------------------------------------------------------
def score(decisions: list[Decision], targets: list[str]) -> dict:
    """Exact-call accuracy against canonical targets, valid rate, refusal reasons, mean latency."""
    def rate(flags) -> float:
        return sum(flags) / len(decisions)

    reasons = Counter(d.reason.split(":")[0].split(";")[0] for d in decisions if d.refused)
    return {"n": len(decisions), "accuracy": rate(d.call is not None and canonical(d.call) == t
                                                  for d, t in zip(decisions, targets)),
            "valid": rate(d.valid or d.no_tool for d in decisions), "no_tool": rate(d.no_tool for d in decisions),
            "executed": rate(d.result is not None for d in decisions), "forced": rate(d.forced for d in decisions),
            "fallback": rate(d.fallback for d in decisions),
            "ms_per_request": rate(d.latency_ms for d in decisions), "reasons": dict(reasons.most_common())}
