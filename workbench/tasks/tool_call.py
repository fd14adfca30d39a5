"""tool_call: route an English request to one tool call in canonical JSON (the workbench's own task).

    Remind me to call Ana at 5pm
    -> {"arguments":{"text":"call Ana","time":"17:00"},"name":"set_reminder"}

``TOOLS`` is the registry (``tool_registry``): each tool's parameters as a JSON Schema (draft 2020-12). A request no
tool serves maps to ``{"arguments":{},"name":"none"}``. Every argument value can be read off the
request by a fixed rule ("5pm" -> "17:00", "March 4, 2026" -> "2026-03-04", "euros" -> "EUR"),
so no target is ambiguous. The rationale names the tool, then one line per argument in the
order the JSON writes them, showing the rule when the text and the value differ.

Rationale formats (``Task.reformat``): ``full`` (the above), ``tool`` (the tool line alone: the decision
JSON writes last, made first) and ``rules`` (the tool line and only the arguments whose value differs from
the request's words, ``time: 5pm -> 17:00``; values written as said are copied once, into the JSON).

The scorer says which rule a wrong prediction broke: invalid JSON, unknown tool, a schema
violation (message from ``jsonschema``), or a valid call that is not the target.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace

from .base import Example, Task, rationale_text
from .tool_grammar import COMPOSED
from .tool_registry import (
    CABINS,
    CURRENCIES,
    DIMENSIONS,
    NONE,
    TOOLS,
    UNITS,
    canonical,
    is_canonical_call,  # noqa: F401  (the task's check, importable with it)
    parse_call,
    validate_call,
)
from .tool_vocab import DISTILLED, HELDOUT, HELDOUT_TIER, MONTHS, NUMBER_WORDS, PHRASINGS, TRAIN, Vocab


# --- levels -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    styles: tuple[int, ...]  # phrasing tiers drawn from: 0 plain, 1 varied, 2 paraphrase, 3 hard
    p_optional: float  # chance that each optional argument of the tool is filled
    max_optional: int  # most optional arguments in one call
    distractors: int  # distractor sentences around the request (at most)
    p_distractor: float  # chance that each distractor is present
    heldout: bool = False  # values and phrasings from the held-out vocabulary (tool_vocab.HELDOUT)


# level -> parameters; level 2 is the reference level
LEVELS = {
    1: Level((0,), 0.0, 0, 0, 0.0),  # required arguments only, plain phrasing, no distractor
    2: Level((0, 1), 0.3, 1, 1, 0.25),  # sometimes an optional argument, occasional distractor
    3: Level((0, 1, 2), 0.5, 2, 1, 1.0),  # paraphrases, one distractor
    4: Level((2, 3), 0.6, 3, 2, 1.0),  # hard paraphrases, two distractors, several optional arguments
    # level 2's mix, but every value, phrasing and distractor from the held-out vocabulary: no training
    # example (levels 1-4) contains them, so this level measures copying against recall
    5: Level((0, 1), 0.3, 1, 1, 0.25, heldout=True),
}
HELDOUT_LEVEL = 5
P_NONE = 0.08  # share of requests that no tool serves
# paraphrase-tier requests (tiers 2-3): a composed phrasing (tool_grammar.COMPOSED) with chance P_COMPOSED, else a
# distilled one (tool_vocab.DISTILLED, phrased by a pretrained model) with chance P_DISTILLED, else a hand-written one
P_COMPOSED = 0.4
P_DISTILLED = 0.3

# --- training-side augmentation (TrainConfig.augment; never the stored splits) ------------------
# Most misses of the shipped specialist were spans cut short or run on ("General Santos" -> "General", "what is
# a silly soup" -> "what is a silly") and unseen frames routed by one word ("Check airfares from ..." ->
# get_weather). Augmented training draws take one frame word not next to a value and swap it for a filler word
# (so that the values' shapes, not one word, say which tool), draw multi-word cities three times as often (15% ->
# 36% of cities), and make topics, titles and chores of 1-5 filler words now and then (so that the frame, not a
# value's usual form, says where it ends). Fillers are training nouns and adjectives that no phrasing, training or
# held out, uses and no held-out value form or chatter contains.
P_FRAME_NOISE = 0.25
P_FREE_FORM = 0.3
MULTIWORD_COPIES = 2
# Augment version 2: that specialist's held-out misses were mostly one calculator frame whose expression is followed
# by words ("What does 443 + 968 come to?" -> "443+968com..."), and requests no tool serves sent to get_weather with
# a capitalised word as the city ("Mute the TV"). So a calculator expression is followed by 1-2 filler words now
# and then (a word that is no operator ends it), and a request no tool serves has one lowercase word swapped for a
# capitalised filler word now and then (a capitalised word alone does not make a city).
P_EXPR_TAIL = 0.3
P_NONE_CAPITAL = 0.3


def _wording(phrasings) -> set[str]:
    return {w for p in phrasings for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", p.lower()))}


def _fillers() -> tuple[str, ...]:
    h = HELDOUT
    used = _wording(p for tiers in PHRASINGS.values() for tier in tiers for p in tier)
    used |= _wording(p for ps in (*COMPOSED.values(), *DISTILLED.values()) for p in ps)
    used |= _wording((*h.chore_verbs, *h.contact_verbs, *h.event_kinds, *h.titles, *h.topics, *h.places,
                      *h.chatter, *h.asides, *(p for tier in h.no_tool for p in tier)))
    return tuple(w for w in TRAIN.nouns + TRAIN.adjectives if w not in used)


# (the repeated multi-word cities can make a flight's origin its destination, about once in 6,000 flight draws)
TRAIN_AUGMENTED = replace(TRAIN, cities=TRAIN.cities + tuple(c for c in TRAIN.cities if " " in c) * MULTIWORD_COPIES,
                          frame_noise=P_FRAME_NOISE, free_form=P_FREE_FORM, fill=_fillers(),
                          expr_tail=P_EXPR_TAIL, none_capital=P_NONE_CAPITAL)


def _noisy(rng: random.Random, phrasing: str, fill: tuple[str, ...]) -> str:
    """``phrasing`` with one word that does not touch a slot swapped for a filler word."""
    spans = [m.span() for m in re.finditer(r"\{\w+\}|[A-Za-z]+", phrasing) if not m.group().startswith("{")
             and not phrasing[:m.start()].rstrip(' "').endswith("}")
             and not phrasing[m.end():].lstrip(' "').startswith("{")]
    if not spans:
        return phrasing
    a, b = rng.choice(spans)
    word = rng.choice(fill)
    return phrasing[:a] + (word.capitalize() if phrasing[a].isupper() else word) + phrasing[b:]


def _capitalised(rng: random.Random, request: str, fill: tuple[str, ...]) -> str:
    """``request`` with one lowercase word swapped for a capitalised filler word."""
    spans = [m.span() for m in re.finditer(r"\b[a-z]+\b", request)]
    if not spans:
        return request
    a, b = rng.choice(spans)
    return request[:a] + rng.choice(fill).capitalize() + request[b:]


# --- how values are said ----------------------------------------------------------------------
def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _say_time(rng: random.Random, tier: int, h: int, m: int) -> str:
    h12, half = (h % 12 or 12), ("am" if h < 12 else "pm")
    ampm = f"{h12}{half}" if m == 0 else f"{h12}:{m:02d}{half}"
    forms = [f"{h:02d}:{m:02d}", ampm]
    if tier >= 1:
        forms.append(ampm[:-2] + " " + half)  # "5 pm"
    if tier >= 2 and m in (0, 15, 30):
        part = "morning" if h < 12 else "afternoon" if h < 18 else "evening"
        lead = {0: "", 15: "quarter past ", 30: "half past "}[m]
        tail = " o'clock" if m == 0 else ""
        forms.append(f"{lead}{h12}{tail} in the {part}")
        if (h, m) == (12, 0):
            forms.append("noon")
    return rng.choice(forms)


def _draw_time(rng: random.Random) -> tuple[int, int]:
    return rng.randint(6, 21), rng.choice((0, 0, 0, 15, 30, 45, 10, 20, 40, 50))


def _draw_date(rng: random.Random, day_max: int = 28) -> tuple[int, int, int]:
    return rng.randint(2025, 2027), rng.randint(1, 12), rng.randint(1, day_max)


def _say_date(rng: random.Random, tier: int, y: int, mo: int, d: int) -> str:
    month = MONTHS[mo - 1]
    forms = [f"{y}-{mo:02d}-{d:02d}", f"{month} {d}, {y}"]
    if tier >= 1:
        forms += [f"{d} {month} {y}", f"{month} {_ordinal(d)}, {y}"]
    if tier >= 2:
        forms.append(f"the {_ordinal(d)} of {month} {y}")
    return rng.choice(forms)


def _iso(y: int, mo: int, d: int) -> str:
    return f"{y}-{mo:02d}-{d:02d}"


def _say_count(rng: random.Random, tier: int, n: int) -> str:
    return NUMBER_WORDS[n] if tier >= 2 and n < 10 and rng.random() < 0.5 else str(n)


def _draw_amount(rng: random.Random, tier: int) -> tuple[float | int, str]:
    """A quantity and how it is written: ``12``, ``12.5``, or (tier 2+) ``1,200``."""
    if rng.random() < 0.3:
        value = rng.randint(1, 999) / rng.choice((2, 4, 10))
        value = int(value) if value == int(value) else value
    else:
        value = rng.choice((rng.randint(1, 100), rng.randint(100, 5000)))
    said = f"{value:,}" if tier >= 2 and isinstance(value, int) else str(value)
    return value, said


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pick(rng: random.Random, tier: int, tool: str, voc: Vocab) -> str:
    """A phrasing of ``tool`` of tier ``tier`` (0 plain, 1 varied, 2 paraphrase, 3 hard), or a held-out one; the
    paraphrase tiers take a composed phrasing (``tool_grammar.COMPOSED``) with chance ``P_COMPOSED`` and a
    distilled one (``tool_vocab.DISTILLED``) with chance ``P_DISTILLED``."""
    if voc.heldout:
        return rng.choice(PHRASINGS[tool][HELDOUT_TIER])
    phrasing = None
    if tier >= 2:
        r = rng.random()
        if r < P_COMPOSED:
            phrasing = rng.choice(COMPOSED[tool])
        elif r < P_COMPOSED + P_DISTILLED and DISTILLED.get(tool):
            phrasing = rng.choice(DISTILLED[tool])
    phrasing = phrasing or rng.choice(PHRASINGS[tool][tier])
    if voc.frame_noise and rng.random() < voc.frame_noise:
        phrasing = _noisy(rng, phrasing, voc.fill)
    return phrasing


def _say_code(rng: random.Random, tier: int, code: str, names: dict[str, str]) -> str:
    """A unit or currency as its code (tier 0) or, from tier 1, sometimes by name."""
    return code if tier == 0 else rng.choice((code, names[code]))


# --- one generator per tool: (rng, tier, optional args to fill) -> (request, arguments, said) -----
# ``said`` maps each argument to the words the request used for it, for the rationale.
def _get_weather(rng, tier, extra, voc):
    city = voc.draw_city(rng)
    args, said, tail = {"city": city}, {"city": city}, ""
    if "units" in extra:
        args["units"] = rng.choice(("celsius", "fahrenheit"))
        said["units"] = rng.choice((args["units"], args["units"].capitalize()))
        tail += f" in {said['units']}"
    if "date" in extra:
        date = _draw_date(rng)
        args["date"], said["date"] = _iso(*date), _say_date(rng, tier, *date)
        tail += f" on {said['date']}"
    text = _pick(rng, tier, "get_weather", voc).format(city=city, tail=tail)
    return text, args, said


def _convert_units(rng, tier, extra, voc):
    dim = rng.choice(DIMENSIONS)
    src, dst = rng.sample(dim, 2)
    value, said_value = _draw_amount(rng, tier)
    if src in ("celsius", "fahrenheit") and rng.random() < 0.3:
        value, said_value = -value, f"-{said_value}"
    args = {"value": value, "from_unit": src, "to_unit": dst}
    said = {"value": said_value, "from_unit": _say_code(rng, tier, src, UNITS),
            "to_unit": _say_code(rng, tier, dst, UNITS)}
    tail = ""
    if "decimals" in extra:
        args["decimals"] = rng.randint(0, 4)
        said["decimals"] = _say_count(rng, tier, args["decimals"])
        tail = f", rounded to {said['decimals']} decimal places"
    text = _pick(rng, tier, "convert_units", voc).format(v=said_value, a=said["from_unit"],
                                                         b=said["to_unit"], tail=tail)
    return text, args, said


_OPS = {"+": ("+", "plus", "plus"), "-": ("-", "minus", "minus"), "*": ("*", "times", "multiplied by"),
        "/": ("/", "divided by", "divided by")}


def _calculator(rng, tier, extra, voc):
    nums = [rng.randint(2, 999) for _ in range(rng.choice((2, 2, 3)))]
    ops = [rng.choice(tuple(_OPS)) for _ in nums[1:]]
    style = min(tier, 2)
    words = [str(nums[0])]
    for op, n in zip(ops, nums[1:]):
        words += [_OPS[op][rng.randint(1, style) if style else 0], str(n)]
    expr = str(nums[0]) + "".join(op + str(n) for op, n in zip(ops, nums[1:]))
    said = " ".join(words)
    if tier >= 3 and len(nums) == 2 and ops[0] in "+*" and rng.random() < 0.5:
        said = f"the {'sum' if ops[0] == '+' else 'product'} of {nums[0]} and {nums[1]}"
    tail = " " + voc._words(rng, 1, 2) if voc.expr_tail and rng.random() < voc.expr_tail else ""
    text = _pick(rng, tier, "calculator", voc).format(e=said + tail)
    return text, {"expression": expr}, {"expression": said}


def _create_calendar_event(rng, tier, extra, voc):
    title, date = voc.draw_title(rng), _draw_date(rng)
    args = {"title": title, "date": _iso(*date)}
    said = {"title": title, "date": _say_date(rng, tier, *date)}
    parts = []
    if "time" in extra:
        h, m = _draw_time(rng)
        args["time"], said["time"] = f"{h:02d}:{m:02d}", _say_time(rng, tier, h, m)
        parts.append(f" at {said['time']}")
    if "duration_minutes" in extra:
        minutes = rng.choice((15, 30, 45, 60, 90, 120))
        forms = [f"{minutes} minutes"]
        if tier >= 1:
            forms += {60: ["an hour", "1 hour"], 120: ["2 hours", "two hours"]}.get(minutes, [])
        if tier >= 2:
            forms += {30: ["half an hour"], 90: ["an hour and a half"]}.get(minutes, [])
        args["duration_minutes"], said["duration_minutes"] = minutes, rng.choice(forms)
        parts.append(f" for {said['duration_minutes']}")
    if "attendees" in extra:
        args["attendees"] = rng.sample(voc.names, rng.randint(1, 3))
        said["attendees"] = _join_names(args["attendees"])
        parts.append(f" with {said['attendees']}")
    if "location" in extra:
        args["location"] = said["location"] = voc.draw_place(rng)
        parts.append(f" {rng.choice(('in', 'at'))} {args['location']}")
    rng.shuffle(parts)
    text = _pick(rng, tier, "create_calendar_event", voc).format(t=title, d=said["date"], x="".join(parts))
    return text, args, said


def _set_reminder(rng, tier, extra, voc):
    chore = voc.draw_chore(rng)
    h, m = _draw_time(rng)
    args = {"text": chore, "time": f"{h:02d}:{m:02d}"}
    said = {"text": chore, "time": _say_time(rng, tier, h, m)}
    when = f"at {said['time']}"
    if "date" in extra:
        date = _draw_date(rng)
        args["date"], said["date"] = _iso(*date), _say_date(rng, tier, *date)
        when += f" on {said['date']}"
    text = _pick(rng, tier, "set_reminder", voc).format(c=chore, w=when)
    return text, args, said


def _search_flights(rng, tier, extra, voc):
    src, dst = rng.sample(voc.cities, 2)
    y, mo, d = _draw_date(rng, day_max=20)
    args = {"origin": src, "destination": dst, "date": _iso(y, mo, d)}
    said = {"origin": src, "destination": dst, "date": _say_date(rng, tier, y, mo, d)}
    tail = ""
    if "return_date" in extra:
        back = (y, mo, d + rng.randint(1, 8))
        args["return_date"], said["return_date"] = _iso(*back), _say_date(rng, tier, *back)
        tail += f", returning on {said['return_date']}"
    if "passengers" in extra:
        n = rng.randint(1, 6)
        args["passengers"], said["passengers"] = n, _say_count(rng, tier, n)
        tail += f" for {said['passengers']} {'passenger' if n == 1 else rng.choice(('passengers', 'people'))}"
    if "cabin" in extra:
        args["cabin"] = rng.choice(tuple(CABINS))
        said["cabin"] = CABINS[args["cabin"]]
        tail += f" in {said['cabin']}"
    text = _pick(rng, tier, "search_flights", voc).format(o=src, d=dst, t=said["date"], x=tail)
    return text, args, said


def _convert_currency(rng, tier, extra, voc):
    src, dst = rng.sample(tuple(CURRENCIES), 2)
    amount, said_amount = _draw_amount(rng, tier)
    args = {"amount": amount, "from_currency": src, "to_currency": dst}
    said = {"amount": said_amount, "from_currency": _say_code(rng, tier, src, CURRENCIES),
            "to_currency": _say_code(rng, tier, dst, CURRENCIES)}
    text = _pick(rng, tier, "convert_currency", voc).format(v=said_amount, a=said["from_currency"],
                                                            b=said["to_currency"])
    return text, args, said


def _web_search(rng, tier, extra, voc):
    query = voc.draw_topic(rng)
    args, said, tail = {"query": query}, {"query": query}, ""
    if "num_results" in extra:
        n = rng.randint(3, 10)
        args["num_results"], said["num_results"] = n, _say_count(rng, tier, n)
        tail = f" and show me the top {said['num_results']} results"
    text = _pick(rng, tier, "web_search", voc).format(q=query, x=tail)
    return text, args, said


GENERATORS = {
    "get_weather": _get_weather, "convert_units": _convert_units, "calculator": _calculator,
    "create_calendar_event": _create_calendar_event, "set_reminder": _set_reminder,
    "search_flights": _search_flights, "convert_currency": _convert_currency, "web_search": _web_search,
}


def _step(key: str, said: str, value) -> str:
    """``time: 5pm -> 17:00``, or ``text: call Ana`` when the request already wrote the value."""
    written = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"{key}: {said}" if said == written else f"{key}: {said} -> {written}"


class ToolCall(Task):
    """Route a request to one of ``TOOLS`` (or ``none``) as canonical JSON.

    There is no BBH version of this task: ``bbh_level = 2`` marks the reference level that
    ``generate(level=None)`` and benchmarks use (varied phrasing, sometimes an optional argument).
    """

    name = "tool_call"
    levels = tuple(LEVELS)
    bbh_level = 2
    heldout_level = HELDOUT_LEVEL
    formats = ("full", "tool", "rules")
    augments = True  # training draws can be augmented (TRAIN_AUGMENTED)

    def _steps(self, ex: Example, fmt: str) -> list[str]:
        lines = ex.rationale.split("\n")[:-1]  # "tool: x", then "key: said" or "key: said -> value"
        return lines[:1] if fmt == "tool" else [lines[0], *(ln for ln in lines[1:] if " -> " in ln)]

    def _generate(self, rng: random.Random, level: int, augment: bool = False) -> Example:
        lv = LEVELS[level]
        voc = HELDOUT if lv.heldout else TRAIN_AUGMENTED if augment else TRAIN
        tier = rng.choice(lv.styles)
        if rng.random() < P_NONE:
            tool = NONE
            request = rng.choice(voc.no_tool[0 if voc.heldout else tier]).format(name=voc.draw_name(rng))
            if voc.none_capital and rng.random() < voc.none_capital:
                request = _capitalised(rng, request, voc.fill)
            args, said = {}, {}
        else:
            tool = rng.choice(tuple(GENERATORS))
            schema = TOOLS[tool]
            optional = [k for k in schema["properties"] if k not in schema["required"]]
            rng.shuffle(optional)
            extra = [k for k in optional if rng.random() < lv.p_optional][: lv.max_optional]
            request, args, said = GENERATORS[tool](rng, tier, extra, voc)
        target = canonical({"name": tool, "arguments": args})
        steps = [f"tool: {tool}"] + [_step(k, said[k], args[k]) for k in sorted(args)]
        return Example(
            task=self.name,
            level=level,
            input=self._with_distractors(rng, lv, voc, request),
            rationale=rationale_text(steps, target),
            target=target,
        )

    @staticmethod
    def _with_distractors(rng: random.Random, lv: Level, voc: Vocab, request: str) -> str:
        """Put up to ``lv.distractors`` sentences before or after the request."""
        before, after = [], []
        for i in range(lv.distractors):
            if rng.random() >= lv.p_distractor:
                continue
            if i == 1:  # the second distractor names a city or person the request does not use
                city, name = voc.draw_other(rng, voc.cities, request), voc.draw_other(rng, voc.names, request)
                sentence = rng.choice(voc.asides).format(city=city, name=name)
            else:
                sentence = rng.choice(voc.chatter)
            (before if rng.random() < 0.5 else after).append(sentence)
        if after and request[-1] not in ".?!":
            request += "."
        return " ".join([*before, request, *after])

    def diagnose(self, prediction: str, target: str) -> str | None:
        """None when right, else "invalid JSON", "unknown tool 'x'", a schema break, or "wrong call"."""
        try:
            call = parse_call(prediction)
        except ValueError:
            return "invalid JSON"
        reason = validate_call(call)
        if reason is not None:
            return reason
        return None if call == json.loads(target) else "wrong call"
