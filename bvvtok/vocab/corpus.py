"""Streaming text from a user's corpus: `.txt`, `.jsonl` (field `text`), and `.gz` of either.

Files are read line by line, so a multi-GB corpus never sits in memory: a `.txt`
line or a `.jsonl` record is one text.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from bvvtok.errors import BvvtokError
from bvvtok.inputs import check_input_file, read_text_file

SUFFIXES = (".txt", ".jsonl", ".txt.gz", ".jsonl.gz")
PROGRESS_LINES = 256  # how often (in lines) `on_bytes` hears of the progress: asking the file is not free


def corpus_files(path: Path) -> list[Path]:
    """The corpus files at `path`: the file itself, or every matching file below a folder, sorted."""
    if path.is_file():
        if not path.name.endswith(SUFFIXES):
            raise BvvtokError(f"{path}: unsupported corpus file; use {', '.join(SUFFIXES)}")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise BvvtokError(f"{path} holds no {', '.join(SUFFIXES)} files; give a corpus file or a folder of them")
        return files
    raise BvvtokError(f"corpus path {path} not found; check the path")


def iter_texts(path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Yield the texts of one corpus file; `on_bytes` is told how many bytes of the file each step consumed."""
    is_jsonl = ".jsonl" in path.name
    try:
        with open(path, "rb") as raw_file:
            raw = gzip.GzipFile(fileobj=raw_file) if path.name.endswith(".gz") else raw_file
            text_file = io.TextIOWrapper(raw, encoding="utf-8")
            position = 0

            def consumed() -> None:
                nonlocal position
                now = raw_file.tell()
                on_bytes(now - position)
                position = now

            for number, line in enumerate(text_file, 1):
                if on_bytes is not None and number % PROGRESS_LINES == 0:
                    consumed()
                if not is_jsonl:
                    yield line
                elif line.strip():
                    yield jsonl_text(line, path, number)
            if on_bytes is not None:
                consumed()
    except UnicodeDecodeError as e:
        raise BvvtokError(f"{path} is not valid UTF-8 ({e.reason} at byte {e.start}); convert it to UTF-8") from None
    except (OSError, EOFError) as e:
        raise BvvtokError(f"cannot read {path}: {e}") from None


def jsonl_text(line: str, path: Path, number: int) -> str:
    """The `text` of line `number` of a .jsonl file; anything else there is a one-line error naming the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise BvvtokError(f"{path}:{number}: not valid JSON ({e.msg}); each line of a .jsonl file must be one JSON object") from None
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise BvvtokError(f"{path}:{number}: no string field 'text'; each .jsonl record needs one")
    return text


def read_documents(path: Path) -> list[str]:
    """Documents of a .txt file (separated by blank lines) or a .jsonl file (one `text` per line)."""
    path = check_input_file(path)
    if path.suffix not in (".txt", ".jsonl"):
        raise BvvtokError(f"{path} is neither .txt nor .jsonl; give documents as a .txt or .jsonl file")
    lines = read_text_file(path).split("\n")  # not splitlines(): U+2028 or \f is text
    docs: list[str] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (ValueError, KeyError, TypeError):
                text = None
            if not isinstance(text, str):
                raise BvvtokError(f"{path}:{number} is not a JSON object with a string `text`; fix or remove the line")
            docs.append(text)
    else:
        paragraphs = itertools.groupby(lines, lambda line: not line.strip())
        docs = ["\n".join(group) for blank, group in paragraphs if not blank]
    if not docs:
        raise BvvtokError(f"{path} holds no documents; give a file with text in it")
    return docs
