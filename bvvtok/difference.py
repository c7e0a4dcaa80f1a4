"""The first difference between two JSON values, in plain words.

`verify` compares what a folder holds with what bvvtok would write (a tokenizer
file, a manifest section); a user needs to read which field differs and how, not
two JSON dumps:

    >>> first_difference({"normalizer": {"type": "Lowercase"}}, {"normalizer": None}, "tokenizer.json")
    'tokenizer.json: normalizer is Lowercase, bvvtok writes none'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

SHOWN_CHARS = 80  # a value longer than this is cut in a message (a sha256 is not)
SHOWN = 5  # items listed in a message

# (found, expected) -> what differs: for a part that needs its own words (a vocabulary, merges)
Describe = Callable[[Any, Any], str]


def listing(items: Iterable[Any], shown: int = SHOWN) -> str:
    """"a, b, c (+2 more)": the first few items of a list in a message."""
    items = [str(item) for item in items]
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def size_text(n_bytes: float) -> str:
    """A size in the unit that shows it: 800 bytes, 12.3 kB, 1.2 MB, 456 GB (decimal units, as disks are sold)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return plural(round(n_bytes), "byte")


def show(value: Any) -> str:
    """A value as a message shows it: none, a component's type, a Python literal, or JSON cut short."""
    if value is None:
        return "none"
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value["type"]
    text = repr(value) if isinstance(value, (str, bool, int, float)) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def first_difference(
    found: Any,
    expected: Any,
    label: str = "",
    source: str = "bvvtok writes",
    parts: Mapping[str, Describe] | None = None,
) -> str | None:
    """None when equal; else where they first differ, e.g. "eos_token is '<x>', bvvtok writes '</s>'".

    `label` prefixes the message (a file name); `source` says where the expected
    value comes from; `parts` maps the path of a part (e.g. "model.vocab") to its own describer.
    """
    if found == expected:
        return None
    described = _walk(found, expected, "", source, parts or {})
    return f"{label}: {described}" if label else described


def _walk(found: Any, expected: Any, path: str, source: str, parts: Mapping[str, Describe]) -> str:
    if path in parts:
        return parts[path](found, expected)
    if isinstance(found, dict) and isinstance(expected, dict):
        for key in [*expected, *(k for k in found if k not in expected)]:
            inner = f"{path}.{key}" if path else str(key)
            if key not in found:
                return f"{inner} is missing, {source} {show(expected[key])}"
            if key not in expected:
                return f"{inner} is {show(found[key])}, {source} nothing"
            if found[key] != expected[key]:
                return _walk(found[key], expected[key], inner, source, parts)
    if isinstance(found, list) and isinstance(expected, list):
        if len(found) != len(expected):
            return f"{path or 'the list'} has {len(found)} entries, {source} {len(expected)}"
        i = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
        return _walk(found[i], expected[i], f"{path}[{i}]", source, parts)
    return f"{path or 'the value'} is {show(found)}, {source} {show(expected)}"
