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

import re
from collections import Counter
from collections.abc import Callable, Iterable

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
    exact; grams forgotten early may be undercounted, which only matters near
    the cut. `pruned` records whether this happened.
    """

    def __init__(self, orders: Iterable[int], max_entries: int = 2_000_000) -> None:
        self.counts: dict[int, Counter[str]] = {n: Counter() for n in sorted(set(orders))}
        self.max_entries = max_entries
        self.pruned = False

    def add(self, units: Iterable[str], weight: int = 1) -> None:
        units = list(units)
        for n, counter in self.counts.items():
            windows = (u[i : i + n] for u in units for i in range(len(u) - n + 1))
            if weight == 1:
                counter.update(windows)  # C-accelerated counting
            else:
                counter.update({gram: count * weight for gram, count in Counter(windows).items()})
            if len(counter) > self.max_entries:
                self.counts[n] = Counter(dict(counter.most_common(self.max_entries // 2)))
                self.pruned = True

    def top(self, k: int) -> dict[int, list[tuple[str, int]]]:
        """The `k` most frequent grams per order, ties broken by code-point order."""
        return {n: sorted(c.items(), key=lambda gc: (-gc[1], gc[0]))[:k] for n, c in self.counts.items()}


def top_weighted_ngrams(units: list[str], weights: list[int], orders: Iterable[int], k: int) -> dict[int, list[tuple[str, int]]]:
    """`NgramCounter(orders)` fed `add([unit], weight)` for each pair, then `.top(k)`; vectorised.

    Counting weighted word lists in Python costs about a microsecond per window;
    here the windows become integer keys (characters numbered within the
    alphabet of `units`, written in base len(alphabet)) that NumPy sorts and sums.
    An order whose keys would not fit in 63 bits falls back to the Python counter.
    """
    lengths = np.fromiter(map(len, units), dtype=np.int64, count=len(units))
    # One array of code points, each unit followed by a NUL separator (units hold no NUL).
    points = np.frombuffer(("\0".join(units) + "\0").encode("utf-32-le"), dtype=np.uint32)
    point_weights = np.repeat(np.asarray(weights, dtype=np.int64), lengths + 1)
    alphabet, digits = np.unique(points, return_inverse=True)
    separators = np.concatenate(([0], np.cumsum(points == 0)))
    result = {}
    for n in sorted(set(orders)):
        base = len(alphabet)
        if base**n >= 2**63:
            counter = NgramCounter([n])
            for unit, weight in zip(units, weights):
                counter.add([unit], weight)
            result[n] = counter.top(k)[n]
            continue
        starts = len(points) - n + 1
        if starts <= 0:
            result[n] = []
            continue
        inside = separators[n : n + starts] == separators[:starts]  # no separator in the window
        keys = np.zeros(starts, dtype=np.int64)
        for j in range(n):
            keys = keys * base + digits[j : j + starts]
        keys, window_weights = keys[inside], point_weights[:starts][inside]
        if keys.size == 0 or k < 1:
            result[n] = []
            continue
        order = np.argsort(keys)
        keys, window_weights = keys[order], window_weights[order]
        first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        grams, sums = keys[first], np.add.reduceat(window_weights, first)
        if len(sums) > k:  # keep every gram tied with the k-th count, then break ties by text
            threshold = np.partition(sums, len(sums) - k)[len(sums) - k]
            grams, sums = grams[sums >= threshold], sums[sums >= threshold]
        ranked = sorted(zip(_decode(grams, n, alphabet), sums.tolist()), key=lambda gc: (-gc[1], gc[0]))
        result[n] = ranked[:k]
    return result


def _decode(keys: np.ndarray, n: int, alphabet: np.ndarray) -> list[str]:
    """Turn window keys back into strings (no window holds a NUL, so none is cut short)."""
    points = np.empty((len(keys), n), dtype=np.uint32)
    for j in range(n - 1, -1, -1):
        keys, digit = np.divmod(keys, len(alphabet))
        points[:, j] = alphabet[digit]
    return points.view(f"<U{n}").ravel().tolist()
