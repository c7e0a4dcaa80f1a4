"""Counting character n-grams: the original bvv241 rule and bvvtok's default rule.

A rule turns a text into "units", the stretches inside which n-gram windows are
counted; a window never crosses a unit boundary.

- `bvv241` (the published recipe): quotes become `'`, digits are deleted, and
  either the whole text is one unit (when it holds any CJK character, with all
  white space dropped) or the units are the words of the original Latin/Cyrillic
  regex. Greek, Arabic, Hebrew, Indic, Thai and other scripts are ignored.
- `default`: quotes become `'`; the units are runs of letters and combining
  marks of any script (with inner apostrophes), so every script counts, and
  scripts written without spaces (Chinese, Japanese, Thai) give whole clauses.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import regex

from bvvtok.errors import BvvtokError

_DIGITS = re.compile("[0-9]")
_CONTROL_SPACE = re.compile("[\t\r\f\v]")
_BVV241_WORD = re.compile(r"\b[a-zA-Z\u00C0-\u017F\u0400-\u04FF']+\b")
_CJK = re.compile("[\u4e00-\u9fff\u3040-\u309f\u30a0-\u30ff\uac00-\ud7af]")
_WHITESPACE = re.compile(r"\s+")
_LETTER_RUN = regex.compile(r"[\p{L}\p{M}]+(?:'[\p{L}\p{M}]+)*")


def _straighten_quotes(text: str) -> str:
    return text.replace("’", "'").replace("‘", "'").replace("`", "'")  # faster than str.translate


def bvv241_units(text: str) -> list[str]:
    text = _CONTROL_SPACE.sub(" ", _DIGITS.sub("", _straighten_quotes(text)))
    if _CJK.search(text):
        return [_WHITESPACE.sub("", text)]
    return _BVV241_WORD.findall(text)


def default_units(text: str) -> list[str]:
    return _LETTER_RUN.findall(_straighten_quotes(text))


RULES: dict[str, Callable[[str], list[str]]] = {"default": default_units, "bvv241": bvv241_units}


def get_rule(name: str) -> Callable[[str], list[str]]:
    try:
        return RULES[name]
    except KeyError:
        raise BvvtokError(f"unknown counting rule {name!r}; choose one of {', '.join(RULES)}") from None


class NgramCounter:
    """Counts n-grams of several orders with bounded memory.

    When one order holds more than `max_entries` distinct grams, the rarest are
    forgotten down to half that size. Counts of grams that stay frequent remain
    exact; a gram forgotten and seen again is undercounted by what it had. As in
    lossy counting, no count is low by more than the sum, over that order's
    prunes, of the largest count forgotten: `undercount[n]`, 0 while nothing was.
    """

    def __init__(self, orders: Iterable[int], max_entries: int = 2_000_000) -> None:
        self.counts: dict[int, Counter[str]] = {n: Counter() for n in sorted(set(orders))}
        self.max_entries = max_entries
        self.undercount = dict.fromkeys(self.counts, 0)

    @property
    def pruned(self) -> bool:
        return any(self.undercount.values())

    def add(self, units: Iterable[str], weight: int = 1) -> None:
        """Count the windows inside each unit, `weight` times."""
        self.add_counts({unit: count * weight for unit, count in Counter(units).items()})

    def add_counts(self, unit_counts: Mapping[str, int]) -> None:
        """Count the windows inside each distinct unit, each window weighted by its unit's count."""
        # NumPy strings end at a NUL: the rare unit holding one (bvv241 keeps them in CJK text) counts window by window.
        held = [unit for unit in unit_counts if "\0" in unit] if "\0" in "".join(unit_counts) else []
        plain = {unit: count for unit, count in unit_counts.items() if "\0" not in unit} if held else unit_counts
        units, weights = list(plain), list(plain.values())
        for n, counter in self.counts.items():
            grams, sums = _gram_sums(units, weights, n)
            counter.update(dict(zip(grams.tolist(), sums.tolist())))
            for unit in held:
                windows = Counter(unit[i : i + n] for i in range(len(unit) - n + 1))
                counter.update({gram: count * unit_counts[unit] for gram, count in windows.items()})
            self._limit(n)

    def merge(self, other: NgramCounter) -> None:
        """Add another counter's counts (of the same orders) and its undercount."""
        for n, counter in self.counts.items():
            counter.update(other.counts[n])
            self.undercount[n] += other.undercount[n]
            self._limit(n)

    def _limit(self, n: int) -> None:
        if len(self.counts[n]) > self.max_entries:
            ranked = self.counts[n].most_common(self.max_entries // 2 + 1)
            self.counts[n] = Counter(dict(ranked[:-1]))
            self.undercount[n] += ranked[-1][1]  # the largest count forgotten

    def top(self, k: int) -> dict[int, list[tuple[str, int]]]:
        """The `k` most frequent grams per order, ties broken by code-point order."""
        return {n: top_of(counter.items(), k) for n, counter in self.counts.items()}


UNIT_TALLY_CHARS = 1 << 20  # characters of distinct units tallied before their windows are counted (bounds memory)


class TextCounter:
    """Counts the n-grams of texts under a rule, and the characters they were counted over.

    Natural text repeats its words, so the units are tallied first as whole
    strings (a Counter of strings runs at C speed) and each distinct unit's
    windows are counted once, weighted by its tally, when the tally holds
    UNIT_TALLY_CHARS characters and when `finish` is called. The counts are the
    same as counting every window of every text.
    """

    def __init__(self, orders: Iterable[int], rule: str = "default", max_entries: int = 2_000_000) -> None:
        self.units_of = get_rule(rule)
        self.ngrams = NgramCounter(orders, max_entries)
        self.chars = 0
        self.tally: Counter[str] = Counter()

    def add_texts(self, texts: Iterable[str]) -> None:
        self.tally.update(itertools.chain.from_iterable(map(self.units_of, texts)))
        if sum(map(len, self.tally)) > UNIT_TALLY_CHARS:
            self._count_tally()

    def finish(self) -> TextCounter:
        """Count what is still tallied; returns self, ready to read or to send to another process."""
        self._count_tally()
        return self

    def merge(self, other: TextCounter) -> None:
        """Add the counts of another (finished) counter of the same texts' language."""
        self.chars += other.chars
        self.ngrams.merge(other.ngrams)

    def _count_tally(self) -> None:
        self.chars += sum(len(unit) * count for unit, count in self.tally.items())
        self.ngrams.add_counts(self.tally)
        self.tally = Counter()


def top_weighted_ngrams(units: list[str], weights: list[int], orders: Iterable[int], k: int) -> dict[int, list[tuple[str, int]]]:
    """`NgramCounter(orders)` fed `add([unit], weight)` for each pair, then `.top(k)`; no unit may hold a NUL."""
    result = {}
    for n in sorted(set(orders)):
        grams, sums = _gram_sums(units, weights, n)
        if len(sums) > k > 0:  # keep every gram tied with the k-th count, then break ties by text
            threshold = np.partition(sums, len(sums) - k)[len(sums) - k]
            grams, sums = grams[sums >= threshold], sums[sums >= threshold]
        result[n] = top_of(zip(grams.tolist(), sums.tolist()), k)
    return result


def _gram_sums(units: Sequence[str], weights: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct n-grams inside `units` (sorted) and their windows' summed weights (each its unit's weight).

    Counting windows in Python costs about a microsecond each; here each window is
    a row of n code points read as one NumPy string, and a sort groups them.
    NumPy strings end at a NUL, so no unit may hold one.
    """
    lengths = np.fromiter(map(len, units), dtype=np.int64, count=len(units))
    points = np.frombuffer("".join(units).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    offsets = np.arange(len(points)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = np.flatnonzero(offsets <= np.repeat(lengths - n, lengths))  # windows that end inside their unit
    if starts.size == 0:
        return np.array([], dtype=f"<U{n}"), np.array([], dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(points, n)[starts]
    grams = windows.view(f"<U{n}").ravel()
    keys = grams
    if n * 21 < 64:  # code points (21 bits) side by side in one integer: the same order, and sorted several times faster
        keys = np.zeros(len(windows), dtype=np.int64)
        for column in windows.T:
            keys = (keys << 21) | column
    window_weights = np.repeat(np.asarray(weights, dtype=np.int64), lengths)[starts]
    order = np.argsort(keys)
    keys, grams, window_weights = keys[order], grams[order], window_weights[order]
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return grams[first], np.add.reduceat(window_weights, first)


def top_of(pairs: Iterable[tuple[str, int]], k: int) -> list[tuple[str, int]]:
    """The `k` most frequent (gram, count) pairs, ties broken by code-point order; only those tied with the k-th or
    above are sorted."""
    pairs = list(pairs)
    if len(pairs) > k > 0:
        cut = heapq.nlargest(k, (count for _, count in pairs))[-1]
        pairs = [pair for pair in pairs if pair[1] >= cut]
    return sorted(pairs, key=lambda gc: (-gc[1], gc[0]))[:k] if k > 0 else []
