"""Write workbench/tasks/word_bands.json: the words word_sorting draws, grouped by how rare they are.

    python scripts/word_bands.py            # rewrite the file
    python scripts/word_bands.py --check    # exit 1 if the file differs from what the packages give

BBH's word_sorting lists use rare words: half of its 2,881 words lie outside wordfreq's 30,000 most frequent
English words, and 4% are in no wordfreq list at all (dictionary words such as ``spleenwort``). Measured on
BBH's 250 questions (suzgunmirac/BIG-Bench-Hard), the share of words per band of wordfreq rank is
``word_sorting.BBH_RANK_BANDS``. This file holds, per band, up to ``PER_BAND`` words of that band: ranks from
wordfreq's large English list, and for the last band also the words of ``english-words`` (Webster's 2nd and
GCIDE) that wordfreq does not rank in its top 200,000. Sources are pinned in pyproject.toml so the file is
reproducible; it is committed so the task needs neither package at run time.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import committed  # noqa: E402

from workbench.tasks.word_sorting import BBH_RANK_BANDS, WORD, band_key  # noqa: E402

DEST = Path(__file__).resolve().parents[1] / "workbench" / "tasks" / "word_bands.json"
PER_BAND = 4000  # words kept per band (a seeded sample of the band, sorted)
ODD_SHARE = 0.005  # BBH's share of words with ' or & (it&t): 0.5%; wordfreq's bands hold ~3% (it's, o'brien)
MAX_LETTERS = 17  # BBH's longest word; the dictionaries run to 29 (pneumonoultramicroscopic...)


def build() -> dict:
    import wordfreq
    from english_words import get_english_words_set

    ranked = wordfreq.top_n_list("en", 1_000_000, wordlist="large")
    rank: dict[str, int] = {}
    for i, w in enumerate(ranked):
        rank.setdefault(w, i)
    last = max(lo for lo, _ in BBH_RANK_BANDS)
    dictionary = get_english_words_set(["web2", "gcide"], lower=True, alpha=True)
    candidates = set(rank) | {w for w in dictionary if rank.get(w, last) >= last}
    bands: dict[str, list[str]] = {}
    for lo, hi in BBH_RANK_BANDS:
        words = sorted(w for w in candidates if WORD.fullmatch(w) and 2 <= sum(c.isalpha() for c in w) <= MAX_LETTERS
                       and lo <= rank.get(w, last) < (hi or sys.maxsize))
        odd = [w for w in words if not w.isalpha()]
        plain = [w for w in words if w.isalpha()]
        rng = random.Random(lo)
        n_odd = min(len(odd), round(PER_BAND * ODD_SHARE))
        keep = rng.sample(odd, n_odd) + rng.sample(plain, min(PER_BAND - n_odd, len(plain)))
        bands[band_key(lo, hi)] = sorted(keep)
    from importlib.metadata import version

    return {"sources": {"wordfreq": version("wordfreq"), "english-words": version("english-words")},
            "per_band": PER_BAND, "bands": bands}


def main() -> int:
    return committed.main(__doc__, DEST, build, lambda v: {k: len(x) for k, x in v['bands'].items()})


if __name__ == "__main__":
    sys.exit(main())
