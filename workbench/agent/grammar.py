"""The grammar of a tool call: a prefix check of canonical JSON calls against the registry's JSON Schemas.

    g = CallGrammar(request="Remind me to call Ana at 5pm", ground=True)
    g.viable('{"arguments":{"te')     # True: "text" can open the arguments of set_reminder
    g.complete(call)                   # a whole call that validates against its tool's schema
    g.finish(prefix)                   # a short completion of any viable prefix

``CallGrammar`` accepts the canonical serialisation of tool_call
(``json.dumps(call, sort_keys=True, separators=(",", ":"))``) of a call that validates against
the registry, and nothing else; it is stricter than jsonschema in two corners only: an integer
is written as an int ("5", not "5.0") and a float has at most 15 significant digits. Every prefix
it calls viable can still be completed (``finish`` writes a short completion). Grounding
(``ground=True``) also requires every free-text value to be a substring of the request.

The check is a hand-written incremental parser, one character at a time, whose state is cached
per prefix: a candidate token costs a few microseconds on top of its parent prefix. A decoder that
keeps the state itself (``state``, ``advance``, ``done``, ``allowed``: the lean path of
``workbench.agent.lean``) skips the prefix lookup, and ``allowed`` keeps each state's set of
allowed characters in a table. Because keys
are sorted, "arguments" comes before "name": the parser keeps the set of tools still compatible
with the keys and values written so far, and the name must be one of them. Strings and numbers
are checked as JSON by ``workbench.agent.jsonprefix``. Pure Python, no torch: ``workbench.agent.constrain``
decodes with it.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass

import regex

from workbench.agent.jsonprefix import escape_chars, ok_number, string_char
from workbench.tasks.tool_call import NONE, TOOLS

HEAD, MID = '{"arguments":{', '},"name":"'  # the fixed text around the arguments
# parser phases
P_HEAD, P_OPEN, P_KEY_START, P_KEY, P_COLON, P_VALUE, P_AFTER, P_MID, P_NAME, P_DONE = range(10)

_SCALARS = frozenset(("string", "number", "integer", "boolean", "null"))
_KNOWN = {"type", "enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum", "items",
          "minItems", "maxItems", "description", "title", "format", "$schema"}
# the order in which `finish` tries characters: closers first, so completions stay short
_STRUCT = '}"]' + string.digits + string.ascii_letters + ",:[-._" + string.punctuation + " "
# what may come where a phase offers a choice outside a value: closing the arguments, the next key, a value's start
_OPENERS = '}",[-0123456789tfn'
_IN_STRING = '"' + string.digits + string.ascii_letters + " " + string.punctuation


@dataclass(frozen=True)
class Spec:
    """One property schema, compiled to the checks a partial JSON value needs."""

    kinds: frozenset  # JSON types allowed: string, number, integer, boolean, null, array
    enum: tuple[str, ...] | None = None  # canonical encodings of the allowed values
    pattern: regex.Pattern | None = None  # searched like jsonschema does (re.search semantics)
    min_len: int = 0
    max_len: int | None = None
    lo: float | None = None  # minimum
    hi: float | None = None  # maximum
    min_items: int = 0
    max_items: int | None = None
    items: Spec | None = None  # arrays: the schema of each item (strings)
    free: bool = False  # free text (a string without enum or pattern): grounded when asked

    @classmethod
    def of(cls, schema: dict) -> Spec:
        unknown = set(schema) - _KNOWN
        if unknown:
            raise NotImplementedError(f"schema keywords {sorted(unknown)} are not supported by CallGrammar")
        enum = [schema["const"]] if "const" in schema else schema.get("enum")
        kinds = schema.get("type", _SCALARS if enum is None else {_kind(v) for v in enum})
        kinds = frozenset([kinds] if isinstance(kinds, str) else kinds)
        if "object" in kinds:
            raise NotImplementedError("nested objects are not supported by CallGrammar")
        items = None
        if "array" in kinds:
            items = cls.of(schema.get("items", {"type": "string"}))
            if items.kinds != {"string"}:
                raise NotImplementedError("CallGrammar supports arrays of strings only")
        pattern = schema.get("pattern")
        return cls(kinds, None if enum is None else tuple(json.dumps(v) for v in enum),
                   regex.compile(pattern) if pattern else None, schema.get("minLength", 0),
                   schema.get("maxLength"), schema.get("minimum"), schema.get("maximum"),
                   schema.get("minItems", 0), schema.get("maxItems"), items,
                   kinds == {"string"} and enum is None and not pattern)


def _kind(v) -> str:
    return {bool: "boolean", type(None): "null", int: "integer", float: "number", str: "string"}[type(v)]


class State:
    """Where the parser is: phase, keys written, tools still possible, and the value in progress."""

    __slots__ = ("phase", "i", "keys", "tools", "key", "raw", "kind", "sval", "esc", "hi", "items", "ast", "at")

    def __init__(self, tools: frozenset):
        self.phase, self.i, self.keys, self.tools, self.key = P_HEAD, 0, (), tools, ""
        self.raw, self.kind, self.sval, self.esc, self.hi = "", "", "", "", 0  # value: raw text, s/n/l/a
        self.items, self.ast, self.at = (), 0, 0  # arrays: finished items, sub-phase, where the item began

    def copy(self) -> State:
        s = State.__new__(State)
        s.phase, s.i, s.keys, s.tools, s.key = self.phase, self.i, self.keys, self.tools, self.key
        s.raw, s.kind, s.sval, s.esc, s.hi = self.raw, self.kind, self.sval, self.esc, self.hi
        s.items, s.ast, s.at = self.items, self.ast, self.at
        return s

    def signature(self) -> tuple:
        """Every field: two states with equal signatures accept the same continuations."""
        return (self.phase, self.i, self.keys, self.tools, self.key, self.raw, self.kind, self.sval, self.esc,
                self.hi, self.items, self.ast, self.at)


class CallGrammar:
    """The canonical JSON calls of ``tools`` (plus ``none``), as a prefix check for decoding.

    ``ground=True`` also requires every free-text string value (a string without enum or pattern,
    and the items of arrays of such) to be a substring of ``request``, which is how the tool_call
    generator builds its targets.
    """

    def __init__(self, tools: dict[str, dict] = TOOLS, request: str | None = None, ground: bool = False):
        if ground and request is None:
            raise ValueError("ground=True needs the request whose text the values must come from")
        self.request, self.ground = request, ground
        self._props = {t: {k: Spec.of(s) for k, s in sorted(schema["properties"].items())}
                       for t, schema in tools.items()}
        self._required = {t: frozenset(schema.get("required", ())) for t, schema in tools.items()}
        self._enc = {k: json.dumps(k) for props in self._props.values() for k in props}
        self._tail = {n: json.dumps(n)[1:] + "}" for n in [*tools, NONE]}  # the name, closing quote and brace
        groups: dict[str, dict[Spec, set]] = {}  # key -> schema -> tools giving the key that schema
        for t, props in self._props.items():
            for k, spec in props.items():
                groups.setdefault(k, {}).setdefault(spec, set()).add(t)
        self._groups = {k: [(s, frozenset(ts)) for s, ts in g.items()] for k, g in groups.items()}
        self._next: dict = {}
        self._start = State(frozenset(tools))
        self._cache: dict[str, State | None] = {"": self._start}
        self._allowed: dict[tuple, str] = {}  # (state signature, alphabet) -> the characters it allows

    # the public checks -------------------------------------------------------------------------
    def viable(self, prefix: str) -> bool:
        """True iff ``prefix`` extends to a complete canonical call."""
        return self._state(prefix) is not None

    def complete(self, text: str) -> bool:
        """True iff ``text`` is a whole canonical call that validates against its tool's schema."""
        s = self._state(text)
        return s is not None and s.phase == P_DONE

    def allowed_next(self, prefix: str, alphabet: str = string.printable) -> set[str]:
        """The characters of ``alphabet`` that keep ``prefix`` viable."""
        return {c for c in alphabet if self.viable(prefix + c)}

    # incremental use, a character at a time (workbench.agent.lean) ------------------------------
    def state(self, prefix: str = "") -> State | None:
        """The parse state after ``prefix`` (None when it is not viable); ``advance`` takes it on."""
        return self._state(prefix)

    def advance(self, s: State, text: str) -> State | None:
        """The state once ``text`` follows ``s`` (``s`` itself unchanged); None when the call stops being viable."""
        s = s.copy()
        for c in text:
            if not self._step(s, c):
                return None
        return s

    @staticmethod
    def done(s: State) -> bool:
        """Whether ``s`` ends a whole call (nothing may follow)."""
        return s.phase == P_DONE

    def allowed(self, s: State, alphabet: str) -> str:
        """The characters of ``alphabet`` that keep the call viable after ``s``, in alphabet order; computed
        once per state signature and alphabet, then read from a table."""
        key = (s.signature(), alphabet)
        hit = self._allowed.get(key)
        if hit is None:
            if len(self._allowed) > 20_000:
                self._allowed.clear()
            hit = self._allowed[key] = "".join(c for c in alphabet if self._step(s.copy(), c))
        return hit

    def forced(self, s: State, alphabet: str) -> str:
        """The characters of ``alphabet`` that every viable continuation of ``s`` writes next, up to the first
        place the call has a choice ('' where the next character is already a choice): the rest of the fixed
        text, of a key or a tool name that only one candidate still fits, a colon, the quote that opens a
        string. Jump-forward decoding (SGLang's compressed finite-state machine; Zheng et al., 2024) feeds them
        to the model in one pass instead of a step each; the choice they stand for is the grammar's, not the
        model's, so the tokens written are the same. Cheap: literal text is read off the phase, and only the
        structural characters are tried where a phase has more than one way on."""
        out, s = "", s.copy()
        while s.phase != P_DONE:
            p = s.phase
            if p == P_HEAD or p == P_MID:
                text = (HEAD if p == P_HEAD else MID)[s.i:]
            elif p == P_KEY_START:
                text = '"'
            elif p == P_COLON:
                text = ":"
            elif p == P_KEY:
                text = _common([enc[len(s.key):] for enc in self._next_keys(s) if enc.startswith(s.key)])
            elif p == P_NAME:
                text = _common([self._tail[n][len(s.key):] for n in s.tools if self._tail[n].startswith(s.key)])
            elif p == P_OPEN or p == P_AFTER or (p == P_VALUE and not s.raw):
                chars = self.allowed(s, _OPENERS)  # no other character can come here (``_step``)
                text = chars if len(chars) == 1 else ""
            else:
                text = ""
            if not text:
                break
            for c in text:
                if c not in alphabet or not self._step(s, c):  # a character the model has no token for
                    return out
                out += c
        return out

    def finish(self, prefix: str) -> str:
        """A short text that completes ``prefix``: the fallback of decoding.

        A key is written whole (the next required one when there is one: it brings the close
        nearer); elsewhere characters are tried closers first, so a string or a number ends as
        soon as its schema allows and an array after its first item.
        """
        s = self._state(prefix)
        if s is None:
            raise ValueError(f"{prefix!r} is not a viable prefix of a call")
        out = ""
        while s.phase != P_DONE:
            if s.phase in (P_KEY_START, P_KEY):
                keys = [(not any(k in self._required[t] for t in ts), len(enc), enc)
                        for enc, (k, ts) in self._next_keys(s).items() if enc.startswith(s.key)]
                rest, s = min(keys)[2][len(s.key):], s.copy()
                if not all(self._step(s, c) for c in rest):
                    raise RuntimeError(f"key {rest!r} does not fit after {prefix + out!r}")  # cannot happen
                out += rest
                continue
            in_string = s.phase == P_VALUE and (s.kind == "s" or s.kind == "a" and s.ast == 1)
            in_number = s.phase == P_VALUE and s.kind == "n"
            for c in _IN_STRING if in_string else "}," + _STRUCT if in_number else _STRUCT:
                nxt = s.copy()
                if self._step(nxt, c):
                    s, out = nxt, out + c
                    break
            else:
                raise RuntimeError(f"{prefix + out!r} is a dead end of the grammar")  # viable() is exact
            if len(out) > 4096:
                raise RuntimeError(f"no short completion of {prefix!r}: a pattern needs a long string")
        return out

    # the parser --------------------------------------------------------------------------------
    def _state(self, text: str) -> State | None:
        """The parse state after ``text``: from the longest cached prefix (among the last 32)."""
        if text in self._cache:
            return self._cache[text]
        for cut in range(len(text) - 1, max(-1, len(text) - 33), -1):
            if text[:cut] in self._cache:
                base = self._cache[text[:cut]]
                break
        else:
            cut, base = 0, self._start
        s = None if base is None else base.copy()
        for c in text[cut:]:
            if s is None or not self._step(s, c):
                s = None
                break
        if len(self._cache) > 20_000:  # decoding one request needs a few thousand entries
            self._cache = {"": self._start}
        self._cache[text] = s
        return s

    def _step(self, s: State, c: str) -> bool:
        p = s.phase
        if p == P_HEAD or p == P_MID:
            lit = HEAD if p == P_HEAD else MID
            if c != lit[s.i]:
                return False
            s.i += 1
            if s.i == len(lit):
                s.phase, s.key = (P_OPEN, "") if p == P_HEAD else (P_NAME, "")
            return True
        if p == P_VALUE:
            return self._value_step(s, c)
        if p == P_OPEN or p == P_AFTER:
            if c == "}":
                return self._close_args(s)
            if c == ("," if p == P_AFTER else '"'):
                s.phase = P_KEY_START if p == P_AFTER else P_KEY
                s.key = "" if p == P_AFTER else '"'
                return bool(self._next_keys(s))
            return False
        if p == P_KEY_START:
            s.phase, s.key = P_KEY, '"'
            return c == '"'
        if p == P_KEY:
            s.key += c
            nxt = self._next_keys(s)
            if s.key in nxt:  # the key is written (its encoding ends with the closing quote)
                k, s.tools = nxt[s.key]
                s.keys, s.phase = s.keys + (k,), P_COLON
                return True
            return any(enc.startswith(s.key) for enc in nxt)
        if p == P_COLON:
            s.phase, s.raw, s.kind = P_VALUE, "", ""
            return c == ":"
        if p == P_NAME:
            s.key += c
            if s.key in (self._tail[n] for n in s.tools):
                s.phase = P_DONE
                return True
            return any(self._tail[n].startswith(s.key) for n in s.tools)
        return False  # P_DONE: nothing may follow

    def _next_keys(self, s: State) -> dict[str, tuple[str, frozenset]]:
        """Encoded key -> (key, tools that may write it next): sorted, no required key skipped."""
        last = s.keys[-1] if s.keys else ""
        hit = self._next.get((s.tools, last))
        if hit is None:
            hit = {}
            for t in s.tools:
                for k in self._props.get(t, ()):
                    if k > last:
                        key, ts = hit.get(self._enc[k], (k, frozenset()))
                        hit[self._enc[k]] = (key, ts | {t})
                        if k in self._required[t]:
                            break  # a later key would leave this required one out for good
            self._next[(s.tools, last)] = hit
        return hit

    def _close_args(self, s: State) -> bool:
        written = set(s.keys)
        names = {t for t in s.tools if t in self._props and self._required[t] <= written}
        s.tools = frozenset(names | ({NONE} if not s.keys else set()))
        s.phase, s.i = P_MID, 1
        return bool(s.tools)

    def _value_step(self, s: State, c: str) -> bool:
        """One character of a value; then keep the tools whose schema still accepts it."""
        kind, done = s.kind, False
        if kind == "n" and c in ",}":  # a number ends where the next token begins
            if not self._filter(s, True):
                return False
            s.phase = P_AFTER
            return self._step(s, c)
        s.raw += c
        if not kind:
            s.kind = kind = {'"': "s", "[": "a", "t": "l", "f": "l", "n": "l"}.get(c, "n" if c in "-0123456789" else "")
            if kind == "s":
                s.sval, s.esc, s.hi = "", "", 0
                return self._filter(s, False)
            if kind == "a":
                s.items, s.ast = (), 0
                return self._filter(s, False)
            if not kind:
                return False
        elif kind == "s":
            r = string_char(s, c)
            if r < 0:
                return False
            done = r == 1
        elif kind == "l":
            if not any(w.startswith(s.raw) for w in ("true", "false", "null")):
                return False
            done = s.raw in ("true", "false", "null")
        elif kind == "a":
            if s.ast == 1:  # inside an item
                r = string_char(s, c)
                if r < 0:
                    return False
                if r == 1:
                    s.items, s.ast = s.items + (s.sval,), 2
            elif c == '"' and s.ast != 2:
                s.ast, s.at, s.sval, s.esc, s.hi = 1, len(s.raw) - 1, "", "", 0
            elif c == "]" and s.ast != 3:
                done = True
            elif c == "," and s.ast == 2:
                s.ast = 3
            else:
                return False
        if not self._filter(s, done):
            return False
        if done:
            s.phase = P_AFTER
        return True

    def _filter(self, s: State, closed: bool) -> bool:
        keep: frozenset = frozenset()
        for spec, ts in self._groups[s.keys[-1]]:
            live = ts & s.tools
            if live and self._ok(spec, s, closed):
                keep |= live
        s.tools = keep
        return bool(keep)

    # schema checks on a partial value ----------------------------------------------------------
    def _ok(self, spec: Spec, s: State, closed: bool) -> bool:
        if spec.enum is not None and not (s.raw in spec.enum if closed else
                                          any(e.startswith(s.raw) for e in spec.enum)):
            return False
        if s.kind == "s":
            return self._ok_string(spec, s.sval, closed, s.esc, s.hi)
        if s.kind == "n":
            ints = "number" not in spec.kinds  # an integer is written as an int: "5", never "5.0"
            return (not ints or "integer" in spec.kinds) and ok_number(s.raw, closed, ints, spec.lo, spec.hi)
        if s.kind == "l":
            return ("null" if s.raw[0] == "n" else "boolean") in spec.kinds
        if "array" not in spec.kinds:
            return False
        n = len(s.items) + (s.ast in (1, 3))  # items begun
        if spec.max_items is not None and n > spec.max_items or closed and n < spec.min_items:
            return False
        if s.ast == 1:
            return self._ok_string(spec.items, s.sval, False, s.esc, s.hi, s.raw[s.at:])
        if s.ast == 2:  # an item just closed
            return self._ok_string(spec.items, s.items[-1], True, raw=json.dumps(s.items[-1]))
        return True

    def _ok_string(self, spec: Spec, sval: str, closed: bool, esc: str = "", hi: int = 0,
                   raw: str | None = None) -> bool:
        if "string" not in spec.kinds:
            return False
        if raw is not None and spec.enum is not None and not (raw in spec.enum if closed else
                                                              any(e.startswith(raw) for e in spec.enum)):
            return False
        if esc or hi:  # an escape is half written: some character it can still give must fit
            return any(self._ok_string(spec, sval + ch, False) for ch in escape_chars(esc, hi))
        if spec.max_len is not None and len(sval) > spec.max_len or closed and len(sval) < spec.min_len:
            return False
        if spec.free and self.ground and sval not in self.request:
            return False
        return spec.pattern is None or spec.pattern.search(sval, partial=not closed) is not None


def _common(texts: list[str]) -> str:
    """The longest prefix all of ``texts`` share ('' for none)."""
    return os.path.commonprefix(texts) if texts else ""
