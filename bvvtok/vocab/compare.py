"""Does a tokenizer folder behave as bvvtok's? Its five files against a reference folder's, and a probe text.

An id table alone does not fix how text encodes: a normalizer, a missing merge or
a flag of an added token changes the tokens while every id stays in place. The
reference is what bvvtok writes for the same n-grams (`tokenizer_for_ids`); each
file is compared as its reader sees it (tokenizer.json as the tokenizers library
serializes it, so a library's formatting does not count), merges.txt exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from bvvtok.difference import Describe, first_difference, listing, plural, show
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES

# One sentence or phrase per script, with the specials <s> and </s> inside the text.
PROBE: tuple[tuple[str, str], ...] = (
    ("Latin", "<s>The quick brown fox jumps over the lazy dog; façade, naïve, Straße."),
    ("Cyrillic", "Съешь же ещё этих мягких французских булок.</s>"),
    ("Greek", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία."),
    ("Arabic", "نص حكيم له سر قاطع وذو شأن عظيم."),
    ("Hebrew", "דג סקרן שט בים מאוכזב ולפתע מצא חברה."),
    ("Devanagari", "ऋषियों को सताने वाले राक्षसों का नाश।"),
    ("CJK", "我能吞下玻璃而不伤身体。日本語の文章です。"),
    ("Hangul", "다람쥐 헌 쳇바퀴에 타고파."),
    ("Thai", "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า"),
    ("emoji", "🙂 👍🏽 👩‍💻 🇺🇦"),
    ("digits and punctuation", "0123456789 3.14159, 1e-9; (x+y)*z = {a: [b]} «quoted» — done?!"),
)
PROBE_TEXT = " ".join(text for _, text in PROBE)


def probe_difference(found: Tokenizer, expected: Tokenizer) -> tuple[int, str | None]:
    """(the probe text's length in `expected`'s tokens, where `found` first encodes it differently or None)."""
    a, b = found.encode(PROBE_TEXT), expected.encode(PROBE_TEXT)
    if a.ids == b.ids:
        return len(b.ids), None
    i = next((i for i, (x, y) in enumerate(zip(a.ids, b.ids)) if x != y), min(len(a.ids), len(b.ids)))
    here, there = (f"{show(e.tokens[i])} = {e.ids[i]}" if i < len(e.ids) else "the end" for e in (a, b))
    return len(b.ids), f"the probe text encodes differently from token {i + 1} on ({here} here, {there} in bvvtok's)"


def tokenizer_file_differences(folder: Path, reference: Path, names: tuple[str, ...] = TOKENIZER_FILES) -> list[str]:
    """The first difference of each tokenizer file `names` in `folder` from the one in `reference`: one line per file."""
    return [d for name in names if (d := _file_difference(name, folder / name, reference / name))]


def _file_difference(name: str, found: Path, expected: Path) -> str | None:
    if not found.is_file():
        return f"{name}: missing, bvvtok writes it"
    try:
        if found.read_bytes() == expected.read_bytes():  # the common case, and cheap: no 2 MB JSON to parse
            return None
        return COMPARE[name](found, expected)
    except Exception as e:  # a damaged file is a difference, whatever its reader raised
        return f"{name}: cannot be read ({e})"


def _serialized(path: Path) -> dict[str, Any]:
    return json.loads(Tokenizer.from_file(str(path)).to_str())


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _vocab_difference(reference: str) -> Describe:
    def describe(found: dict[str, int], expected: dict[str, int]) -> str:
        moved = sorted(i for t, i in expected.items() if t in found and found[t] != i)
        missing = [show(t) for t in expected if t not in found]
        extra = [show(t) for t in found if t not in expected]
        differ = "differs" if len(moved) == 1 else "differ"
        parts = [f"{plural(len(moved), 'id')} {differ} from {reference} (ids {listing(moved)})"] * bool(moved)
        parts += [f"{plural(len(missing), 'token')} missing ({listing(missing)})"] * bool(missing)
        parts += [f"{plural(len(extra), 'token')} bvvtok does not have ({listing(extra)})"] * bool(extra)
        return ", ".join(parts)

    return describe


def _pairs(merges: list[Any]) -> list[tuple[str, ...]]:
    """Merges as pairs, whether written "a b" (merges.txt, older tokenizer.json) or ["a", "b"]."""
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def _merge(pair: tuple[str, ...]) -> str:
    """"t + h"; a half with spaces or invisible characters as a Python literal."""
    return " + ".join(half if half.isprintable() and " " not in half else repr(half) for half in pair)


def _merges_difference(found: list[Any], expected: list[Any]) -> str:
    a, b = _pairs(found), _pairs(expected)
    have, want = set(a), set(b)
    missing = [_merge(m) for m in b if m not in have]
    extra = [_merge(m) for m in a if m not in want]
    parts = [f"{plural(len(missing), 'merge')} missing ({listing(missing)})"] * bool(missing)
    parts += [f"{plural(len(extra), 'merge')} bvvtok does not make ({listing(extra)})"] * bool(extra)
    if parts:
        return ", ".join(parts)
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"the merges are in another order from merge {i + 1} on ({len(a):,} merges, bvvtok makes {len(b):,})"


def _added_tokens_difference(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    a = {t.get("content"): t for t in found}
    b = {t["content"]: t for t in expected}
    missing, extra = [show(c) for c in b if c not in a], [show(c) for c in a if c not in b]
    if missing or extra:
        parts = [f"{plural(len(missing), 'added token')} missing ({listing(missing)})"] * bool(missing)
        parts += [f"{plural(len(extra), 'added token')} bvvtok does not add ({listing(extra)})"] * bool(extra)
        return ", ".join(parts)
    for content, token in b.items():
        if a[content] != token:
            return f"added token {show(content)}: {first_difference(a[content], token)}"
    return "the added tokens are listed in another order"


def _merges_txt_difference(found: Path, expected: Path) -> str:
    """Only called when the bytes differ; decoded as they are, so a line ending counts too."""
    a, b = (path.read_bytes().decode("utf-8").split("\n") for path in (found, expected))
    merges = [[line for line in lines if line and not line.startswith("#version")] for lines in (a, b)]
    if merges[0] != merges[1]:
        return f"merges.txt: {_merges_difference(*merges)}"
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    here, there = (show(lines[i]) if i < len(lines) else "the end" for lines in (a, b))
    return f"merges.txt: line {i + 1} is {here}, bvvtok writes {there}"


TOKENIZER_PARTS: dict[str, Describe] = {
    "model.vocab": _vocab_difference("bvvtok's layout"),
    "model.merges": _merges_difference,
    "added_tokens": _added_tokens_difference,
}


def _tokenizer_json_difference(found: Path, expected: Path) -> str | None:
    return first_difference(_serialized(found), _serialized(expected), "tokenizer.json", parts=TOKENIZER_PARTS)


def _json_difference(name: str, parts: Mapping[str, Describe] | None = None) -> Callable[[Path, Path], str | None]:
    return lambda found, expected: first_difference(_json(found), _json(expected), name, parts=parts)


COMPARE: dict[str, Callable[[Path, Path], str | None]] = {
    "tokenizer.json": _tokenizer_json_difference,
    "vocab.json": _json_difference("vocab.json", {"": _vocab_difference("tokenizer.json")}),
    "merges.txt": _merges_txt_difference,
    "tokenizer_config.json": _json_difference("tokenizer_config.json"),
    "special_tokens_map.json": _json_difference("special_tokens_map.json"),
}
