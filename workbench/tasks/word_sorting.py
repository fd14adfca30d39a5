"""word_sorting: sort a list of English words (BIG-Bench Hard format, Suzgun et al., 2022).

    Sort the following words alphabetically: List: pear apple apricot
    -> apple apricot pear

Words are real English words as rare as BBH's: a band of wordfreq rank is drawn with BBH's share of words
in it (``BBH_RANK_BANDS``, measured on BBH's 250 questions: half its words lie outside the 30,000 most
frequent), then a word of that band (``word_bands.json``, written by ``scripts/word_bands.py`` from wordfreq
and english-words). Targets use Python's ``sorted()``: code-point order, so ``'`` and ``&`` sort
before letters and a word sorts before its own extensions (``pea`` < ``peach``).

The rationale is a two-pass bucket sort a small model can follow one line at a time:
one line per first character (alphabetical order), listing that bucket's words in input order,
and, when a bucket holds several words, ``->`` and the bucket sorted. The answer is the buckets
read top to bottom.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .base import Example, Task, rationale_text


@dataclass(frozen=True)
class Level:
    n_words: tuple[int, int]  # number of words, drawn uniformly from this closed range
    clusters: int  # groups of words drawn to share a prefix (0: words drawn independently)
    cluster_size: tuple[int, int]  # words per shared-prefix group
    prefix_len: int  # length of the prefix a group shares


# level -> parameters; level 3 is the BBH format (2 to 20 independent words)
LEVELS = {
    1: Level((2, 4), 0, (0, 0), 0),  # a handful of words
    2: Level((5, 9), 0, (0, 0), 0),  # a short list
    3: Level((2, 20), 0, (0, 0), 0),  # BBH: 2 to 20 words drawn independently
    4: Level((21, 30), 2, (2, 4), 2),  # longer lists, two groups sharing a 2-letter prefix
    5: Level((31, 40), 4, (3, 6), 3),  # long lists, four groups sharing a 3-letter prefix
}

PROMPT = "Sort the following words alphabetically: List: "
WORD = re.compile(r"[a-z'&]+")
BANDS_FILE = Path(__file__).with_name("word_bands.json")
# (first, last + 1) wordfreq rank (None: no end; words wordfreq does not rank are in the last band) -> the share
# of BBH's 2,881 word_sorting words in that band (suzgunmirac/BIG-Bench-Hard, bbh/word_sorting.jsonl)
BBH_RANK_BANDS = {(0, 5000): .117, (5000, 10000): .093, (10000, 20000): .168, (20000, 30000): .123,
                  (30000, 45000): .134, (45000, 60000): .094, (60000, 80000): .070, (80000, 100000): .051,
                  (100000, 150000): .055, (150000, 200000): .028, (200000, None): .066}
_CUM_SHARES = tuple(itertools.accumulate(BBH_RANK_BANDS.values()))  # what random.choices builds from weights


def band_key(lo: int, hi: int | None) -> str:
    """A band's name in ``word_bands.json``: ``"5000-10000"``, ``"200000-"``."""
    return f"{lo}-{hi or ''}"


@functools.cache
def bands() -> tuple[tuple[str, ...], ...]:
    """The words of each ``BBH_RANK_BANDS`` band, in its order (each sorted)."""
    data = json.loads(BANDS_FILE.read_text())["bands"]
    return tuple(tuple(data[band_key(lo, hi)]) for lo, hi in BBH_RANK_BANDS)


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Every word of every band: lowercase, ``[a-z'&]+``, at least 2 letters; sorted."""
    return tuple(sorted({w for band in bands() for w in band}))


def draw_word(rng: random.Random) -> str:
    """A word as rare as BBH's: a band drawn with BBH's share, then a word of it."""
    band = rng.choices(bands(), cum_weights=_CUM_SHARES)[0]
    return rng.choice(band)


@functools.cache
def _prefix_groups(prefix_len: int, min_size: int) -> tuple[tuple[str, ...], ...]:
    """Groups of at least ``min_size`` vocabulary words sharing their first ``prefix_len`` letters."""
    groups: dict[str, list[str]] = {}
    for w in vocabulary():
        if len(w) > prefix_len:
            groups.setdefault(w[:prefix_len], []).append(w)
    return tuple(tuple(g) for _, g in sorted(groups.items()) if len(g) >= min_size)


def bucket_steps(words: list[str]) -> list[str]:
    """One line per first character: ``p: pear peach -> peach pear`` (sorted part only if needed)."""
    buckets: dict[str, list[str]] = {}
    for w in words:
        buckets.setdefault(w[0], []).append(w)
    steps = []
    for first in sorted(buckets):
        bucket = buckets[first]
        line = f"{first}: {' '.join(bucket)}"
        if len(bucket) > 1:
            line += f" -> {' '.join(sorted(bucket))}"
        steps.append(line)
    return steps


class WordSorting(Task):
    """Sort 2 to 40 words; level 3 is BBH's word_sorting, levels 4-5 add shared prefixes."""

    name = "word_sorting"
    levels = tuple(LEVELS)
    bbh_level = 3

    def _draw_words(self, rng: random.Random, lv: Level) -> list[str]:
        n = rng.randint(*lv.n_words)
        chosen: list[str] = []
        if lv.clusters:
            groups = _prefix_groups(lv.prefix_len, lv.cluster_size[1])
            for group in rng.sample(groups, lv.clusters):
                k = rng.randint(*lv.cluster_size)
                chosen += [w for w in rng.sample(group, k) if w not in chosen]
        while len(chosen) < n:
            w = draw_word(rng)
            if w not in chosen:
                chosen.append(w)
        rng.shuffle(chosen)
        return chosen

    def _generate(self, rng: random.Random, level: int) -> Example:
        words = self._draw_words(rng, LEVELS[level])
        target = " ".join(sorted(words))
        return Example(
            task=self.name,
            level=level,
            input=PROMPT + " ".join(words),
            rationale=rationale_text(bucket_steps(words), target),
            target=target,
        )
