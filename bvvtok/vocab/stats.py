"""N-gram statistics: ranked `(gram, count)` lists per language and order.

Two file formats are read: the published Python-literal files (a list of
`{'lang', 'language_name', 'top_ngrams': {n: [(gram, count), ...]}}`, read with
`ast.literal_eval`, never `eval`) and bvvtok's own JSON (docs/ngrams-format.md),
which is the only one written.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file

FORMAT_NAME = "bvvtok-ngrams"
FORMAT_VERSION = 1


@dataclass
class LanguageStats:
    """The ranked n-gram lists of one language, most frequent first.

    `chars` is the number of characters the counts were taken over (weighted the
    same way); published statistics lack it, bvvtok's record it, and it is what
    lets `select_balanced` compare languages.
    """

    lang: str
    language_name: str
    top_ngrams: dict[int, list[tuple[str, int]]]
    chars: int | None = None


@dataclass
class NgramStats:
    """Statistics for several languages, plus how they were counted."""

    languages: list[LanguageStats]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(entry.lang for entry in self.languages))

    def entries(self, langs: Iterable[str], orders: Iterable[int] | None = None) -> list[LanguageStats]:
        """The entries of the kept languages, restricted to the given orders (all when None)."""
        keep = set(langs)
        wanted = None if orders is None else set(orders)
        return [
            LanguageStats(e.lang, e.language_name, {n: r for n, r in e.top_ngrams.items() if wanted is None or n in wanted}, e.chars)
            for e in self.languages
            if e.lang in keep
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **self.meta,
            "languages": [
                {
                    "lang": e.lang,
                    "language_name": e.language_name,
                    **({"chars": e.chars} if e.chars is not None else {}),
                    "top_ngrams": {str(n): [[g, c] for g, c in ranked] for n, ranked in sorted(e.top_ngrams.items())},
                }
                for e in self.languages
            ],
        }


def merge_stats(parts: Iterable[NgramStats]) -> NgramStats:
    """Concatenate statistics from several files; S is the union over all entries."""
    parts = list(parts)
    return NgramStats([e for p in parts for e in p.languages], {"sources": [p.meta for p in parts]})


def save_stats(stats: NgramStats, out: Path, force: bool = False) -> None:
    with atomic_file(out, force) as tmp:
        tmp.write_text(json.dumps(stats.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


def load_stats(path: Path) -> NgramStats:
    """Read a statistics file in bvvtok's JSON format or the published Python-literal format."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BvvtokError(f"n-gram statistics file {path} not found; check the {option('ngram_files', cli='--ngrams')} path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BvvtokError(f"cannot read n-gram statistics {path}: {e}; pass a readable UTF-8 file") from None
    data = _parse(text, path)
    if isinstance(data, Mapping) and data.get("format") == FORMAT_NAME:
        if data.get("version") != FORMAT_VERSION:
            raise BvvtokError(f"{path}: {FORMAT_NAME} version {data.get('version')!r} is not supported (expected {FORMAT_VERSION}); upgrade bvvtok")
        entries, meta = data.get("languages"), {k: v for k, v in data.items() if k != "languages"}
    else:
        entries, meta = data, {"format": "bvv241-python-literal"}
    meta["file"] = path.name
    if not isinstance(entries, list):
        raise BvvtokError(f"{path}: expected a list of language entries; see docs/ngrams-format.md")
    return NgramStats([_entry(e, path, i) for i, e in enumerate(entries)], meta)


def _parse(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
        raise BvvtokError(f"{path} is neither bvvtok JSON nor a Python literal ({type(e).__name__}); see docs/ngrams-format.md") from None


def _entry(raw: Any, path: Path, index: int) -> LanguageStats:
    where = f"{path}: language entry {index}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("lang"), str):
        raise BvvtokError(f"{where} has no 'lang' string; see docs/ngrams-format.md")
    ngrams = raw.get("top_ngrams")
    if not isinstance(ngrams, Mapping):
        raise BvvtokError(f"{where} ({raw['lang']}) has no 'top_ngrams' mapping; see docs/ngrams-format.md")
    top: dict[int, list[tuple[str, int]]] = {}
    for n, ranked in ngrams.items():
        try:
            order = int(n)
        except (TypeError, ValueError):
            raise BvvtokError(f"{where} ({raw['lang']}): n-gram order {n!r} is not an integer") from None
        if not isinstance(ranked, list) or not all(_is_pair(p) for p in ranked):
            raise BvvtokError(f"{where} ({raw['lang']}), n={order}: expected a list of (gram, count) pairs")
        top[order] = [(g, c) for g, c in ranked]
    chars = raw.get("chars")
    if chars is not None and (not isinstance(chars, int) or isinstance(chars, bool) or chars <= 0):
        raise BvvtokError(f"{where} ({raw['lang']}): 'chars' must be a positive integer")
    return LanguageStats(raw["lang"], str(raw.get("language_name", raw["lang"])), top, chars)


def _is_pair(p: Any) -> bool:
    return (
        isinstance(p, (list, tuple))
        and len(p) == 2
        and isinstance(p[0], str)
        and isinstance(p[1], (int, float))
        and not isinstance(p[1], bool)
    )
