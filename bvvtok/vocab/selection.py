"""Choosing the n-gram set S that `lay_out` places.

- `select_top_k` is the recipe's rule (the published recipe): for each language
  and order, the first `top_k` grams. It is what rebuilds the published
  tokenizers, and the only rule for statistics without character totals.
- `select_balanced` is bvvtok's rule for statistics that record how many
  characters they were counted over. A gram of order n saves about
  `count / chars * (n - 1)` tokens per character of its language's text (its
  "gain"). A `fair_share` of the slots goes to the language with the smallest
  total gain so far, one gram at a time, so that scripts with thousands of
  characters (whose grams each cover little text) are not crowded out; the rest
  goes to the grams with the largest gain summed over all languages, which
  favours grams that several languages share. A gram is only taken when BPE can
  reach it, i.e. some split of it is two tokens.
"""

from __future__ import annotations

import heapq

from bvvtok.vocab.layout import MONOGRAM_RANGES
from bvvtok.vocab.stats import LanguageStats

FAIR_SHARE = 0.3


def select_top_k(entries: list[LanguageStats], top_k: int) -> set[str]:
    return {gram for e in entries for ranked in e.top_ngrams.values() for gram, _ in ranked[:top_k]}


def _is_monogram(s: str) -> bool:
    return len(s) == 1 and any(ord(s) in r for r in MONOGRAM_RANGES)


def _reachable(gram: str, chosen: set[str]) -> bool:
    def token(s: str) -> bool:
        return s in chosen or _is_monogram(s)

    return any(token(gram[:i]) and token(gram[i:]) for i in range(1, len(gram)))


def language_gains(entry: LanguageStats) -> dict[str, float]:
    """Tokens saved per character of text, for each gram of the language."""
    if not entry.chars:
        raise ValueError(f"statistics for {entry.lang} have no character total")
    return {g: c / entry.chars * (n - 1) for n, ranked in entry.top_ngrams.items() for g, c in ranked if len(g) > 1}


def _by_gain(gains: dict[str, float]) -> list[str]:
    return sorted(gains, key=lambda g: (-gains[g], g))


def select_balanced(entries: list[LanguageStats], slots: int, fair_share: float = FAIR_SHARE) -> set[str]:
    gains: dict[str, dict[str, float]] = {}
    for e in entries:  # a language may come in several entries (several files)
        per_lang = gains.setdefault(e.lang, {})
        for g, v in language_gains(e).items():
            per_lang[g] = per_lang.get(g, 0.0) + v
    chosen: set[str] = set()
    _fair_phase(gains, chosen, round(slots * fair_share))
    summed: dict[str, float] = {}
    for per_lang in gains.values():
        for g, v in per_lang.items():
            summed[g] = summed.get(g, 0.0) + v
    _fill(_by_gain(summed), chosen, slots)
    return chosen


def _fair_phase(gains: dict[str, dict[str, float]], chosen: set[str], budget: int) -> None:
    """Give grams, one at a time, to the language with the smallest total gain."""
    ranked = {lang: _by_gain(g) for lang, g in gains.items()}
    position = dict.fromkeys(gains, 0)
    total = dict.fromkeys(gains, 0.0)
    heap = [(0.0, lang) for lang in gains]
    while heap and len(chosen) < budget:
        stale, lang = heapq.heappop(heap)
        if stale != total[lang]:  # shared grams chosen for others raised this language's total
            heapq.heappush(heap, (total[lang], lang))
            continue
        grams = ranked[lang]
        while position[lang] < len(grams):
            gram = grams[position[lang]]
            position[lang] += 1
            if gram not in chosen and _reachable(gram, chosen):
                chosen.add(gram)
                for other, per_lang in gains.items():
                    total[other] += per_lang.get(gram, 0.0)
                break
        else:
            continue  # this language has nothing left to give
        heapq.heappush(heap, (total[lang], lang))


def _fill(ranked: list[str], chosen: set[str], slots: int) -> None:
    """Take grams in rank order until the slots are full; repeat while a pass makes more reachable."""
    while len(chosen) < slots:
        before = len(chosen)
        for gram in ranked:
            if len(chosen) >= slots:
                return
            if gram not in chosen and _reachable(gram, chosen):
                chosen.add(gram)
        if len(chosen) == before:
            return
