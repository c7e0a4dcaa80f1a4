"""`bvvtok ngrams` as a library call: count a corpus per language into `NgramStats`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from bvvtok.errors import BvvtokError, option
from bvvtok.vocab.corpus import TEXT_COLUMN, corpus_files, iter_texts
from bvvtok.vocab.counting import NgramCounter, get_rule
from bvvtok.vocab.languages import LANGUAGE_NAMES
from bvvtok.vocab.stats import LanguageStats, NgramStats

DEFAULT_ORDERS = (2, 3, 4, 5)
DEFAULT_TOP = 1000  # what the published statistics kept per order


def corpus_size(inputs: Mapping[str, Path]) -> int | None:
    """Total bytes on disk of every corpus file (for a progress bar); None when a hf: dataset's size is not known."""
    sizes = [f.size for path in inputs.values() for f in corpus_files(path)]
    return None if None in sizes else sum(sizes)


def count_corpus(
    inputs: Mapping[str, Path],
    orders: tuple[int, ...] = DEFAULT_ORDERS,
    rule: str = "default",
    top: int = DEFAULT_TOP,
    max_entries: int = 2_000_000,
    on_bytes: Callable[[int], None] | None = None,
    text_column: str = TEXT_COLUMN,
) -> NgramStats:
    """Count the n-grams of each language's corpus with the given rule; keep the `top` per order."""
    if not inputs:
        raise BvvtokError(f"no corpus given; {option('inputs', cli='--input')} names a corpus per language (e.g. en=wiki-en.txt)")
    if not orders or min(orders) < 1:
        raise BvvtokError(f"{option('orders')} must be positive integers, such as 2,3,4,5 (got {orders})")
    if top < 1:
        raise BvvtokError(f"{option('top')} must be at least 1 (got {top})")
    if max_entries < 2 * top:
        raise BvvtokError(f"{option('max_entries', max_entries)} is too small to keep the top {top}; give at least {2 * top}")
    units_of = get_rule(rule)
    entries = []
    approximate = []
    for lang, path in inputs.items():
        counter = NgramCounter(orders, max_entries)
        chars = 0
        for file in corpus_files(path, text_column):
            for text in iter_texts(file, on_bytes):
                units = units_of(text)
                chars += sum(map(len, units))
                counter.add(units)
        if chars == 0:
            raise BvvtokError(f"the corpus for {lang} ({path}) holds no countable text under rule {rule!r}")
        grams = counter.top(top)
        if not any(grams.values()):
            raise BvvtokError(f"the corpus for {lang} ({path}) holds too little text: no n-gram of orders "
                              f"{', '.join(map(str, orders))}; give a corpus with more text")  # fmt: skip
        entries.append(LanguageStats(lang, LANGUAGE_NAMES.get(lang, lang), grams, chars))
        if counter.pruned:
            approximate.append(lang)
    meta = {"source": "corpus", "rule": rule, "max_entries": max_entries, "approximate_languages": approximate}
    return NgramStats(entries, meta)
