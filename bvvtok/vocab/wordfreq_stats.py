"""The offline default statistics: character n-grams of `wordfreq`'s word lists.

`wordfreq` ships word frequencies for 40+ languages inside the package, so a
vocabulary can be built with no corpus and no network. Each word's n-grams are
counted with the word's frequency as weight (frequencies per billion words, so
counts are integers like the published ones), using bvvtok's default counting
rule; for Chinese and Japanese the "words" are the package's segments, so their
n-grams are windows of characters inside those segments.

wordfreq stores words in buckets of equal frequency (one per centibel); each
bucket is split into units in one regex pass, and all windows are counted by
the vectorised `top_weighted_ngrams`.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version

import numpy as np
import wordfreq

from bvvtok.errors import BvvtokError, option
from bvvtok.vocab.counting import default_units, top_weighted_ngrams
from bvvtok.vocab.languages import LANGUAGE_NAMES
from bvvtok.vocab.stats import LanguageStats, NgramStats

WORDLIST = "small"
SCALE = 1e9  # frequencies become counts per billion words
# bvvtok's language codes that wordfreq spells differently.
WORDFREQ_CODES = {"no": "nb"}
# The rarest words barely move the top n-grams but dominate the counting time.
MAX_WORDS = 50_000
# Candidates per language and order: enough for the balanced selection to fill 131k slots.
TOP = 3000
# wordfreq lowercases its words, but running text capitalises some of them
# (sentence starts, names): that share of each word's weight goes to its
# capitalised form, so grams such as "Th" are counted too.
CAPITAL_SHARE = 0.2

def wordfreq_languages() -> set[str]:
    """Language codes wordfreq has a word list for (bvvtok spelling included)."""
    available = set(wordfreq.available_languages(wordlist=WORDLIST))
    return available | {ours for ours, theirs in WORDFREQ_CODES.items() if theirs in available}


def wordfreq_stats(
    langs: Iterable[str], orders: Iterable[int], top: int = TOP, max_words: int = MAX_WORDS
) -> NgramStats:
    """Count n-grams in the `max_words` most frequent words of each language."""
    langs = list(langs)
    missing = sorted(set(langs) - wordfreq_languages())
    if missing:
        raise BvvtokError(f"wordfreq has no word list for {', '.join(missing)}; drop them from {option('langs')} or pass {option('ngram_files', cli='--ngrams')}")
    orders = sorted(set(orders))
    entries = []
    for lang in langs:
        units: list[str] = []
        weights: list[int] = []
        remaining = max_words
        for centibels, bucket in enumerate(wordfreq.get_frequency_list(WORDFREQ_CODES.get(lang, lang), WORDLIST)):
            if remaining <= 0:
                break
            if bucket:
                words = bucket[:remaining]
                remaining -= len(words)
                weight = wordfreq.cB_to_freq(-centibels) * SCALE
                lower = default_units("\n".join(words))
                units += lower + [u[0].upper() + u[1:] for u in lower]  # same unit twice where a script has no case
                weights += [max(1, round(weight * (1 - CAPITAL_SHARE)))] * len(lower)
                weights += [max(1, round(weight * CAPITAL_SHARE))] * len(lower)
        top_ngrams = top_weighted_ngrams(units, weights, orders, top)
        chars = int(np.dot(np.fromiter(map(len, units), dtype=np.int64, count=len(units)), np.asarray(weights, dtype=np.int64)))
        entries.append(LanguageStats(lang, LANGUAGE_NAMES.get(lang, lang), top_ngrams, chars))
    meta = {
        "source": "wordfreq",
        "wordfreq_version": version("wordfreq"),
        "wordlist": WORDLIST,
        "max_words": max_words,
        "orders": orders,
        "capital_share": CAPITAL_SHARE,
        "rule": "default",
    }
    return NgramStats(entries, meta)
