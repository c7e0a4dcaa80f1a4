"""The corpora a run trains on: one corpus, or several named sources mixed by weight.

    --corpus artifacts/corpus                       one corpus (every path given is part of it)
    --corpus en=fineweb-en/@0.7 --corpus zh=wudao/@0.3
                                                    two sources: 70% and 30% of the training tokens

A source is tokenized on its own (its own cache entry or `bvvtok prepare` folder) and keeps its own held-out
split, so validation is reported per source as well as overall. Named sources without weights are mixed in
proportion to their training tokens, as if their text were one corpus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.data import TokenData, corpus_tokens
from bvvtok.vocab.corpus import HF_PREFIX, TEXT_COLUMN

_NAMED = re.compile(r"(?P<name>[^=/\\]+)=(?P<path>.+?)(?:@(?P<weight>[^@/\\]*))?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a source name is part of a metrics.csv column name


@dataclass(frozen=True)
class Source:
    name: str  # "" for the one unnamed corpus
    paths: tuple[Path, ...]
    weight: float | None  # its share of the training tokens (normalised); None: in proportion to its tokens


def parse_sources(corpus: Sequence[str | Path]) -> list[Source]:
    """`--corpus` values as sources: several unnamed paths are one corpus; NAME=PATH[@WEIGHT] values are named sources.

    A value that is an existing path is a path, whatever characters it holds."""
    if not corpus:
        raise BvvtokError(f"no corpus given; pass {option('corpus')} PATH, or NAME=PATH@WEIGHT per source")
    unnamed: list[Path] = []
    named: dict[str, Source] = {}
    for value in map(str, corpus):
        match = None if Path(value).exists() else _NAMED.fullmatch(value)
        if match is None:
            if "@" in value and not Path(value).exists() and "=" not in value:
                raise BvvtokError(f"{option('corpus')} {value!r}: a weight goes with a named source; write NAME=PATH@WEIGHT, "
                                  "e.g. en=corpus/en@0.7")  # fmt: skip
            unnamed.append(Path(value))
            continue
        name, weight = match["name"], _weight(value, match["weight"])
        if not _NAME.fullmatch(name):
            raise BvvtokError(f"{option('corpus')} {value!r}: source name {name!r} must be letters, digits, _ or - "
                              "(it names columns of metrics.csv)")  # fmt: skip
        if name in named:
            raise BvvtokError(f"{option('corpus')} names the source {name} twice; give one path (a folder) per source")
        named[name] = Source(name, (Path(match["path"]),), weight)
    if unnamed and named:
        raise BvvtokError(f"{option('corpus')} mixes named sources ({', '.join(named)}) with unnamed paths "
                          f"({unnamed[0]}); name every corpus (NAME=PATH) or none")  # fmt: skip
    if not named:
        return [Source("", tuple(unnamed), None)]
    weighted = [s.name for s in named.values() if s.weight is not None]
    if weighted and len(weighted) < len(named):
        missing = [name for name in named if name not in weighted]
        raise BvvtokError(f"{option('corpus')}: {', '.join(missing)} has no weight while {', '.join(weighted)} has one; "
                          "give every source a weight (NAME=PATH@WEIGHT) or none")  # fmt: skip
    return list(named.values())


def _weight(value: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise BvvtokError(f"{option('corpus')} {value!r}: the weight {text!r} must be a positive number, e.g. @0.7")
    return weight


def describe(sources: Sequence[Source]) -> list[str]:
    """The sources as `--corpus` values again (what a cell's command line and a record show)."""
    if len(sources) == 1 and not sources[0].name:
        return [str(p) for p in sources[0].paths]
    return [f"{s.name}={s.paths[0]}" + (f"@{s.weight:g}" if s.weight is not None else "") for s in sources]


def absolute(corpus: Sequence[str | Path]) -> tuple[str, ...]:
    """The `--corpus` values with every local path made absolute (what a job run elsewhere can read)."""
    sources = [Source(s.name, tuple(p if is_remote(p) else p.absolute() for p in s.paths), s.weight)
               for s in parse_sources(corpus)]  # fmt: skip
    return tuple(describe(sources))


def is_remote(path: Path) -> bool:
    """An `hf:NAME` dataset, not a local path."""
    return str(path).startswith(HF_PREFIX)


def source_paths(corpus: Sequence[str | Path]) -> list[Path]:
    """Every local path the sources read (inputs a command's output may not replace)."""
    return [path for source in parse_sources(corpus) for path in source.paths if not is_remote(path)]


@dataclass
class SourceData:
    source: Source
    data: TokenData


def source_tokens(tokenizer_dir: Path, sources: Sequence[Source], val_fraction: float,
                  progress: Callable[[int, int], None] | None = None, text_column: str = TEXT_COLUMN) -> list[SourceData]:  # fmt: skip
    """Each source's tokens: from its `bvvtok prepare` folder, the token cache, or tokenized now."""
    return [SourceData(s, corpus_tokens(tokenizer_dir, list(s.paths), val_fraction, progress, text_column))
            for s in sources]  # fmt: skip


def shares(weights: Sequence[float | None], sizes: Sequence[int]) -> list[float]:
    """The sources' shares of the training windows: their weights, normalised, or (no weights) their sizes'."""
    given = [w if w is not None else float(n) for w, n in zip(weights, sizes)]
    total = sum(given)
    return [w / total for w in given]
