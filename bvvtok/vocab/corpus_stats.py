"""`bvvtok ngrams` as a library call: count a corpus per language into `NgramStats`, on every CPU by default."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from bvvtok.errors import BvvtokError, option
from bvvtok.vocab.corpus import TEXT_COLUMN, corpus_files, iter_texts
from bvvtok.vocab.count_workers import Batches, Counted, count_batches, count_in_workers
from bvvtok.vocab.counting import get_rule
from bvvtok.vocab.languages import LANGUAGE_NAMES
from bvvtok.vocab.stats import LanguageStats, NgramStats

DEFAULT_ORDERS = (2, 3, 4, 5)
DEFAULT_TOP = 1000  # what the published statistics kept per order
BATCH_CHARS = 1 << 20  # characters of text a worker takes at a time


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    workers: int | None = None,
    text_column: str = TEXT_COLUMN,
) -> NgramStats:
    """Count the n-grams of each language's corpus with the given rule; keep the `top` per order.

    `workers` processes count (default: every CPU this process may use; 1 counts
    in this process); without pruning, the counts are the same for any number.
    `on_bytes` hears, in this process, how many corpus bytes were read. Record formats hold the text in
    `text_column`.
    """
    if not inputs:
        raise BvvtokError(f"no corpus given; {option('inputs', cli='--input')} names a corpus per language (e.g. en=wiki-en.txt)")
    if not orders or min(orders) < 1:
        raise BvvtokError(f"{option('orders')} must be positive integers, such as 2,3,4,5 (got {orders})")
    if top < 1:
        raise BvvtokError(f"{option('top')} must be at least 1 (got {top})")
    if max_entries < 2 * top:
        raise BvvtokError(f"{option('max_entries', max_entries)} is too small to keep the top {top}; give at least {2 * top}")
    workers = available_cpus() if workers is None else workers
    if workers < 1:
        raise BvvtokError(
            f"{option('workers')} must be at least 1 (got {workers}); give 1 to count in this process, or leave it out to use every CPU"
        )
    get_rule(rule)
    batches = _batches(inputs, on_bytes, text_column)
    if workers == 1:
        counters = count_batches(batches, orders, rule, max_entries)
        counted = {lang: Counted.of(counter, top) for lang, counter in counters.items()}
    else:
        counted = count_in_workers(batches, workers, orders, rule, max_entries, top)
    entries, undercount = [], {}
    for lang, path in inputs.items():
        if lang not in counted or counted[lang].chars == 0:
            raise BvvtokError(f"the corpus for {lang} ({path}) holds no countable text under rule {rule!r}")
        if not any(counted[lang].top.values()):
            raise BvvtokError(f"the corpus for {lang} ({path}) holds too little text: no n-gram of orders "
                              f"{', '.join(map(str, orders))}; give a corpus with more text")  # fmt: skip
        entries.append(LanguageStats(lang, LANGUAGE_NAMES.get(lang, lang), counted[lang].top, counted[lang].chars))
        if counted[lang].undercount:  # no count is low by more than this
            undercount[lang] = counted[lang].undercount
    meta = {"source": "corpus", "rule": rule, "max_entries": max_entries, "approximate_languages": list(undercount),
            "max_undercount": undercount}  # fmt: skip
    return NgramStats(entries, meta)


def _batches(inputs: Mapping[str, Path], on_bytes: Callable[[int], None] | None, text_column: str) -> Batches:
    """Each language's texts, in lists of about BATCH_CHARS characters."""
    for lang, path in inputs.items():
        batch: list[str] = []
        chars = 0
        for file in corpus_files(path, text_column):
            for text in iter_texts(file, on_bytes):
                batch.append(text)
                chars += len(text)
                if chars >= BATCH_CHARS:
                    yield lang, batch
                    batch, chars = [], 0
        if batch:
            yield lang, batch
