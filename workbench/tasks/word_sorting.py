"""word_sorting: sort a list of English words (BIG-Bench Hard format, Suzgun et al., 2022).

    Sort the following words alphabetically: List: pear apple apricot
    -> apple apricot pear

Words come from wordfreq's English list (``wordfreq.top_n_list``), so the data is new but the
vocabulary is real. Targets use Python's ``sorted()``: code-point order, so ``'`` and ``&`` sort
before letters and a word sorts before its own extensions (``pea`` < ``peach``).

The rationale is a two-pass bucket sort a small model can follow one line at a time:
one line per first character (alphabetical order), listing that bucket's words in input order,
and, when a bucket holds several words, ``->`` and the bucket sorted. The answer is the buckets
read top to bottom.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

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

VOCAB_SIZE = 30_000  # wordfreq words read before filtering (the most frequent first)
PROMPT = "Sort the following words alphabetically: List: "
_WORD = re.compile(r"[a-z'&]+")


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """wordfreq's frequent English words: lowercase, ``[a-z'&]+``, at least 2 letters; sorted."""
    try:
        import wordfreq
    except ImportError:
        raise ImportError("word_sorting needs wordfreq: pip install wordfreq") from None
    words = {
        w for w in wordfreq.top_n_list("en", VOCAB_SIZE)
        if _WORD.fullmatch(w) and sum(c.isalpha() for c in w) >= 2
    }
    return tuple(sorted(words))  # sorted, so a seed draws the same words whatever the set order


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
        vocab = vocabulary()
        n = rng.randint(*lv.n_words)
        chosen: list[str] = []
        if lv.clusters:
            groups = _prefix_groups(lv.prefix_len, lv.cluster_size[1])
            for group in rng.sample(groups, lv.clusters):
                k = rng.randint(*lv.cluster_size)
                chosen += [w for w in rng.sample(group, k) if w not in chosen]
        while len(chosen) < n:
            w = rng.choice(vocab)
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
