"""Phrasings of tool_call requests composed from a small grammar: a request frame around a tool's core.

The hand-written phrasings give each tool about ten sentences and the distilled ones about twenty more, so a
small model can learn the sentences instead of what they ask for: on the held-out level it sent "Give me the
Ondjiva forecast" to search_flights and "Forecast for Natore?" to web_search. Here a tool's request is a
*core* that carries its slots, either a verb phrase ("check the weather in {city}{tail}") or a noun phrase
("the {city} weather{tail}"), placed in a *frame* shared by every tool ("Could you {vp}, please?", "I'm
looking for {np}."): 135-149 phrasings a tool, with the tool's words and the values in many
positions. Training-side only: no composed phrasing is a held-out one (compared by ``normalise``), and none
uses a held-out verb, event kind or chatter word (``tool_vocab.HELDOUT``); tests check both.
"""

from __future__ import annotations

import re

from .tool_vocab import HELDOUT_TIER, PHRASINGS

# frames: {vp} is a verb phrase ("check the weather in Lyon"), {np} a noun phrase ("the weather in Lyon")
VP_FRAMES = ("{vp}.", "Please {vp}.", "Can you {vp}?", "Could you {vp}, please?", "Would you {vp}?",
             "I'd like you to {vp}.", "I need you to {vp}.", "Go ahead and {vp}.", "Hey, {vp}.", "{vp}, thanks.",
             "Kindly {vp}.", "Help me {vp}.", "When you get a chance, {vp}.", "Can you please {vp}?")
NP_FRAMES = ("I'd like {np}.", "Can I get {np}?", "Show me {np}.", "I'm looking for {np}.", "I need {np}.",
             "Let me see {np}.", "Pull up {np}.", "What about {np}?", "Get me {np}.", "{np}, please.", "{np}?",
             "Could I see {np}?", "I want {np}.")

# tool -> (verb-phrase cores, noun-phrase cores), with the slots of the tool's hand-written phrasings
CORES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "get_weather": (
        ("check the weather in {city}{tail}", "look up the forecast for {city}{tail}",
         "tell me the weather for {city}{tail}", "find out how the weather is in {city}{tail}",
         "get the {city} weather report{tail}"),
        ("the weather in {city}{tail}", "the forecast for {city}{tail}", "the {city} weather{tail}",
         "the weather conditions in {city}{tail}", "a weather report for {city}{tail}",
         "the temperature in {city}{tail}"),
    ),
    "convert_units": (
        ("convert {v} {a} into {b}{tail}", "change {v} {a} to {b}{tail}", "put {v} {a} in {b}{tail}",
         "work out how many {b} {v} {a} is{tail}", "rewrite {v} {a} as {b}{tail}"),
        ("{v} {a} converted to {b}{tail}", "{v} {a} expressed in {b}{tail}", "the number of {b} in {v} {a}{tail}",
         "a conversion of {v} {a} to {b}{tail}", "{v} {a} as {b}{tail}"),
    ),
    "calculator": (
        ("calculate {e}", "compute {e}", "solve {e}", "figure out {e}", "do the sum {e}", "crunch {e}"),
        ("the result of {e}", "the answer to {e}", "the value of {e}", "a calculation of {e}"),
    ),
    "create_calendar_event": (
        ('add an event "{t}" on {d}{x}', 'put "{t}" on my calendar on {d}{x}',
         'schedule an event called "{t}" for {d}{x}', 'create "{t}" in my calendar on {d}{x}',
         'save "{t}" to my calendar for {d}{x}', 'log "{t}" in my calendar on {d}{x}'),
        ('a calendar event "{t}" on {d}{x}', 'a new event named "{t}" on {d}{x}',
         'an event titled "{t}" in my calendar on {d}{x}', '"{t}" in my calendar on {d}{x}'),
    ),
    "set_reminder": (
        ("remind me {w} to {c}", "create a reminder to {c} {w}", "add a reminder {w}: {c}",
         "make me a reminder to {c} {w}", "set me a reminder {w} to {c}", "remember to tell me to {c} {w}"),
        ("a reminder to {c} {w}", "a reminder {w} to {c}", "a note {w} reminding me to {c}",
         "a reminder for {w}: {c}"),
    ),
    "search_flights": (
        ("find me a flight from {o} to {d} on {t}{x}", "look up flights from {o} to {d} on {t}{x}",
         "search flights to {d} from {o} on {t}{x}", "check flights between {o} and {d} on {t}{x}",
         "get me on a plane from {o} to {d} on {t}{x}"),
        ("flights from {o} to {d} on {t}{x}", "a flight {o} to {d} on {t}{x}",
         "a plane ticket from {o} to {d} on {t}{x}", "options to fly from {o} to {d} on {t}{x}",
         "a flight to {d} leaving {o} on {t}{x}"),
    ),
    "convert_currency": (
        ("convert {v} {a} into {b}", "change {v} {a} into {b}", "exchange {v} {a} for {b}",
         "tell me what {v} {a} is in {b}", "work out {v} {a} in {b}"),
        ("{v} {a} in {b}", "the value of {v} {a} in {b}", "{v} {a} exchanged into {b}",
         "the exchange rate for {v} {a} to {b}", "{v} {a} converted to {b}"),
    ),
    "web_search": (
        ("search for {q} online{x}", "look up {q}{x}", "find results for {q}{x}", "do a web search on {q}{x}",
         "run a search for {q}{x}", "dig up something on {q}{x}"),
        ("search results for {q}{x}", "web pages about {q}{x}", "some info on {q}{x}",
         "articles about {q}{x}", "a search on {q}{x}"),
    ),
}


def _sentence(frame: str, core: str) -> str:
    text = frame.format(vp=core, np=core)
    return text[0].upper() + text[1:] if text[0].isalpha() else text


def normalise(phrasing: str) -> str:
    """A phrasing's words, lower case, without punctuation, articles or "please" (to compare phrasings)."""
    words = re.findall(r"\{\w+\}|[a-z']+", phrasing.lower())
    return " ".join(w for w in words if w not in ("the", "a", "an", "please"))


def compose(tool: str) -> tuple[str, ...]:
    """Every frame around every core of ``tool``, in a fixed order (a phrasing template like PHRASINGS'),
    less any that reads as one of the tool's held-out phrasings once normalised."""
    vps, nps = CORES[tool]
    held = {normalise(p) for p in PHRASINGS[tool][HELDOUT_TIER]}
    every = [_sentence(f, c) for c in vps for f in VP_FRAMES] + [_sentence(f, c) for c in nps for f in NP_FRAMES]
    return tuple(p for p in every if normalise(p) not in held)


COMPOSED: dict[str, tuple[str, ...]] = {tool: compose(tool) for tool in CORES}
