"""Streaming text from a user's corpus, whatever its format: one reader for every command that reads a corpus.

A corpus is a file, a folder of files (formats may be mixed; read in sorted order) or `hf:NAME[:CONFIG][:SPLIT]`,
a Hugging Face dataset streamed with the optional `datasets` package. FORMATS is the table of what is read:
- `.txt` (a line is one text; a file is running text) and `.jsonl` (a record is one document), each plain,
  `.gz` or `.zst`, read line by line;
- `.parquet`, read row group by row group, and the `.arrow` files of a folder written by `datasets`'
  `save_to_disk`, read record batch by record batch: each row is one document.
Record formats take the text from a field or column, `text` unless told otherwise (`--text-column`). Nothing is
read whole, so a multi-GB corpus never sits in memory.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import zstandard

from bvvtok.errors import BvvtokError, option

TEXT_COLUMN = "text"  # the field or column records hold their text in, unless told otherwise
HF_PREFIX = "hf:"  # hf:NAME[:CONFIG][:SPLIT], a dataset `datasets.load_dataset` streams
HF_INSTALL = "pip install 'bvvtok[datasets]'"
LINES_CHUNK = 1 << 16  # characters of whole lines read at a time; `on_bytes` hears of each chunk
READ_CHUNK = 1 << 20  # compressed bytes a .zst file is read in
HF_BATCH = 1000  # records a streamed dataset hands over at a time
MIN_TEXT = 2  # characters other than whitespace a corpus needs: with fewer, no character follows another
ZST_RATIO = 10  # the text per byte of a .zst file without a content size: zstd packs natural text 3-5 times

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus, as read: picklable, so a worker process can be handed it."""

    path: Path  # the file; for a hf: dataset, the source as given
    name: str  # as a manifest names it: relative to the folder given, never absolute
    format: str  # its key in FORMATS
    text_column: str = TEXT_COLUMN  # where a record format holds the text

    @property
    def records(self) -> bool:
        """Whether a text is one record (a document), or one line of running text."""
        return FORMATS[self.format].records

    @property
    def size(self) -> int | None:
        """Bytes on disk, what `iter_texts` reports as it reads; None for a remote dataset."""
        return None if self.format == HF_PREFIX else self.path.stat().st_size

    def text_bytes(self) -> int:
        """An upper bound of the UTF-8 text the file holds, read from its headers (a disk-space estimate)."""
        return FORMATS[self.format].text_bytes(self)


@dataclass(frozen=True)
class Format:
    """How one kind of corpus file is read."""

    texts: Callable[[CorpusFile, Progress], Iterator[str]]  # its texts; told the bytes each step consumed
    records: bool  # a text is one record (a document); else a line of running text
    text_bytes: Callable[[CorpusFile], int]  # an upper bound of its text, without reading it
    beside: str | None = None  # a file that must sit beside it (a save_to_disk folder's state.json)
    label: str | None = None  # how messages name it, if not by its key


def corpus_files(path: Path | str, text_column: str = TEXT_COLUMN) -> list[CorpusFile]:
    """The corpus at `path`: the file itself, every corpus file below a folder (sorted), or a hf: dataset."""
    if str(path).startswith(HF_PREFIX):
        return [CorpusFile(Path(str(path)), str(path), HF_PREFIX, text_column)]
    path = Path(path)
    if path.is_file():
        kind = _format_of(path)
        if kind is None:
            raise BvvtokError(f"{path}: unsupported corpus file; use {_named_formats()}")
        return [CorpusFile(path, path.name, kind, text_column)]
    if path.is_dir():
        files = [CorpusFile(p, p.relative_to(path).as_posix(), kind, text_column)
                 for p in sorted(path.rglob("*")) if p.is_file() and (kind := _format_of(p)) is not None]  # fmt: skip
        if not files:
            raise BvvtokError(f"{path} holds no corpus files ({_named_formats()}); give a corpus file or a folder of them")
        return files
    raise BvvtokError(f"corpus path {path} not found; check the path")


def iter_texts(file: CorpusFile | Path, on_bytes: Progress | None = None) -> Iterator[str]:
    """Yield the texts of one corpus file (a path: every file `corpus_files` finds there); `on_bytes` is told how
    many bytes of the file each step consumed, so they add up to its size."""
    for item in [file] if isinstance(file, CorpusFile) else corpus_files(file):
        try:
            yield from FORMATS[item.format].texts(item, on_bytes or _ignore)
        except UnicodeDecodeError as e:
            raise BvvtokError(f"{item.path} is not valid UTF-8 ({e.reason} at byte {e.start}); convert it to UTF-8") from None


def read_documents(path: Path | str, text_column: str = TEXT_COLUMN, limit: int | None = None,
                   purpose: str = "nothing to read") -> list[str]:  # fmt: skip
    """The documents of a corpus (the first `limit`, read no further): each record of a record format; in running
    text, the blocks between blank lines. Fewer than MIN_TEXT characters other than whitespace in all of them are
    refused, saying what that leaves the caller (`purpose`: "nothing to score")."""
    docs = list(itertools.islice(_documents(path, text_column), limit))
    if not docs:
        raise BvvtokError(f"{path} holds no documents; give a corpus with text in it")
    seen = 0
    for doc in docs:
        seen += text_chars(doc, MIN_TEXT - seen)
        if seen >= MIN_TEXT:
            break
    else:
        raise too_little_text(str(path), seen, purpose)
    return docs


def text_chars(text: str, enough: int = MIN_TEXT) -> int:
    """The characters of `text` other than whitespace, counted up to `enough` (a long text is not read whole)."""
    seen = 0
    for char in text:
        if not char.isspace():
            seen += 1
            if seen >= enough:
                break
    return seen


def too_little_text(what: str, seen: int, purpose: str) -> BvvtokError:
    """The error for a corpus of fewer than MIN_TEXT characters other than whitespace (`seen` of them)."""
    chars = "1 character" if seen == 1 else f"{seen} characters"
    return BvvtokError(f"{what} holds too little text ({chars} other than whitespace): {purpose}; give a corpus with more text")


def _documents(path: Path | str, text_column: str) -> Iterator[str]:
    for file in corpus_files(path, text_column):
        if file.records:
            yield from iter_texts(file)
            continue
        lines = (line.removesuffix("\n") for line in iter_texts(file))  # lines end at \n only: U+2028 or \f is text
        paragraphs = itertools.groupby(lines, lambda line: not line.strip())
        yield from ("\n".join(group) for blank, group in paragraphs if not blank)


def _ignore(n: int) -> None:
    pass


def _reason(error: Exception) -> str:
    """A library's message on one line (pyarrow's span several)."""
    return " ".join(str(error).split())


def _format_of(path: Path) -> str | None:
    for suffix, kind in FORMATS.items():
        if path.name.endswith(suffix) and (kind.beside is None or (path.parent / kind.beside).is_file()):
            return suffix
    return None


def _named_formats() -> str:
    return ", ".join(kind.label or suffix for suffix, kind in FORMATS.items())


# line formats: .txt and .jsonl, plain or compressed


def _read_lines(file: CorpusFile, on_bytes: Progress, opener: Callable[[IO[bytes]], IO[bytes]],
                parse: Callable[[str, CorpusFile, int], str] | None) -> Iterator[str]:  # fmt: skip
    """Each line of a .txt file; the `text` of each non-blank line of a .jsonl file (`parse`)."""
    with open(file.path, "rb") as raw_file:
        position = 0

        def consumed() -> None:
            nonlocal position
            now = raw_file.tell()
            on_bytes(now - position)
            position = now

        text_file = io.TextIOWrapper(opener(raw_file), encoding="utf-8")  # held: it closes raw_file when dropped
        text_file._CHUNK_SIZE = READ_CHUNK  # decoded in large pieces: fewer calls into a Python-level reader (.zst)
        number = 0  # lines before the chunk
        try:
            # in chunks of lines: the per-line work is the least there is (bench/corpus_formats.py)
            for lines in iter(partial(text_file.readlines, LINES_CHUNK), []):
                if parse is None:
                    yield from lines
                else:
                    for at, line in enumerate(lines, number + 1):
                        if not line.isspace():  # not strip(): no copy of every line
                            yield parse(line, file, at)
                number += len(lines)
                consumed()
        except (OSError, EOFError, zstandard.ZstdError) as e:
            raise BvvtokError(f"cannot read {file.path} (stopped at byte {raw_file.tell():,} of {file.size:,}): {_reason(e)}; "
                              "the file is damaged or cut short: copy or compress it again") from None  # fmt: skip


def jsonl_text(line: str, file: CorpusFile, number: int) -> str:
    """The text of line `number` of a .jsonl file; anything else there is a one-line error naming the line."""
    try:
        text = json.loads(line)[file.text_column]
    except json.JSONDecodeError as e:
        raise BvvtokError(f"{file.path}:{number}: not valid JSON ({e.msg}); each line of a .jsonl file must be one JSON object") from None
    except (KeyError, TypeError, IndexError):  # no such field, or not an object
        text = None
    if not isinstance(text, str):
        raise BvvtokError(f"{file.path}:{number}: no string field {file.text_column!r}; each .jsonl record needs one "
                          f"(or name the field with {option('text_column')})")  # fmt: skip
    return text


class _ZstdFrames(io.BufferedIOBase):
    """A .zst file's content, frame after frame, with zstandard. Its stream_reader ends quietly where a cut-short
    file ends: here a frame left unfinished at the end of the file is an error."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.decompressor = zstandard.ZstdDecompressor()
        self.frame: Any = None  # the decompressobj of the frame under way
        self.out, self.at = b"", 0  # what was decompressed, and how much of it was read

    def readable(self) -> bool:
        return True

    def read1(self, size: int | None = -1) -> bytes:
        """At most `size` bytes, b"" at the end: the decompressed chunk's own bytes, not a buffer's copy."""
        while self.at == len(self.out):
            chunk = self.raw.read(READ_CHUNK)
            if not chunk:
                if self.frame is not None:
                    raise zstandard.ZstdError("the file ends inside a zstd frame")
                return b""
            self.out, self.at = self._decompress(chunk), 0
        end = len(self.out) if size is None or size < 0 else self.at + size
        piece = self.out[self.at : end]
        self.at += len(piece)
        return piece

    def read(self, size: int | None = -1) -> bytes:
        pieces, wanted = [], -1 if size is None else size
        while wanted != 0 and (piece := self.read1(wanted)):
            pieces.append(piece)
            wanted = wanted - len(piece) if wanted > 0 else wanted
        return b"".join(pieces)

    def _decompress(self, data: bytes) -> bytes:
        parts = []
        while data:
            if self.frame is None:
                self.frame = self.decompressor.decompressobj()
            parts.append(self.frame.decompress(data))
            if not self.frame.eof:
                break
            data, self.frame = self.frame.unused_data, None
        return b"".join(parts)


def _file_size(file: CorpusFile) -> int:
    return file.path.stat().st_size


def _gzip_size(file: CorpusFile) -> int:
    """A gzip trailer's ISIZE (the size mod 2**32) says the size without reading the file."""
    size = file.path.stat().st_size
    if size < 18:
        return size
    with open(file.path, "rb") as f:
        f.seek(-4, 2)
        return int.from_bytes(f.read(4), "little")


def _zstd_size(file: CorpusFile) -> int:
    """The first frame's content size, when the writer put it in the header (zstd's command line does)."""
    with open(file.path, "rb") as f:
        size = zstandard.frame_content_size(f.read(18))  # a frame header is at most 18 bytes
    return size if size >= 0 else file.path.stat().st_size * ZST_RATIO


# record formats read with pyarrow: Parquet files and save_to_disk folders


def _read_parquet(file: CorpusFile, on_bytes: Progress) -> Iterator[str]:
    """The text column of each row, one row group in memory at a time."""
    import pyarrow as pa

    parquet = _parquet(file)
    _text_field(file, parquet.schema_arrow)
    groups = parquet.metadata.num_row_groups
    reported = 0
    for index in range(groups):
        try:
            table = parquet.read_row_group(index, columns=[file.text_column])
        except (pa.ArrowException, OSError) as e:
            raise BvvtokError(f"{file.path}: row group {index} of {groups} cannot be read ({_reason(e)}); the file is damaged "
                              "or cut short: write it again") from None  # fmt: skip
        yield from _strings(table.column(0))
        row_group = parquet.metadata.row_group(index)
        size = sum(row_group.column(i).total_compressed_size for i in range(row_group.num_columns))
        on_bytes(size)
        reported += size
    on_bytes(max(0, file.size - reported))  # the header and footer


def _parquet_size(file: CorpusFile) -> int:
    """The text column's uncompressed size, from the row groups' metadata (the whole row group's if it is absent)."""
    metadata = _parquet(file).metadata
    total = 0
    for index in range(metadata.num_row_groups):
        row_group = metadata.row_group(index)
        chunks = [row_group.column(i) for i in range(row_group.num_columns)]
        text = [chunk.total_uncompressed_size for chunk in chunks if chunk.path_in_schema == file.text_column]
        total += text[0] if text else row_group.total_byte_size
    return total


def _parquet(file: CorpusFile) -> Any:
    """The file opened (its footer read): a file that is not Parquet, or cut short, is a one-line error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file.path)
    except (pa.ArrowException, OSError) as e:
        raise BvvtokError(f"{file.path} is not a readable Parquet file ({_reason(e)}); write it again") from None


def _read_arrow(file: CorpusFile, on_bytes: Progress) -> Iterator[str]:
    """The text column of each row of an Arrow stream (how `datasets` writes), one record batch at a time."""
    import pyarrow as pa

    with pa.memory_map(str(file.path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowException, OSError) as e:
            raise BvvtokError(f"{file.path} is not an Arrow stream as `datasets` save_to_disk writes ({_reason(e)}); save the "
                              "dataset again") from None  # fmt: skip
        column = _text_field(file, reader.schema)
        position = 0
        for index in itertools.count():
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as e:
                raise BvvtokError(f"{file.path}: record batch {index} cannot be read ({_reason(e)}); the file is damaged or cut "
                                  "short: save the dataset again") from None  # fmt: skip
            yield from _strings(batch.column(column))
            on_bytes(source.tell() - position)
            position = source.tell()
    on_bytes(file.size - position)


def _text_field(file: CorpusFile, schema: Any) -> int:
    """The index of the text column in `schema`; a missing or non-string column is a one-line error."""
    import pyarrow as pa

    index = schema.get_field_index(file.text_column)
    if index < 0:
        raise BvvtokError(f"{file.path} has no column {file.text_column!r} (it has {', '.join(schema.names)}); name "
                          f"the text's column with {option('text_column')}")  # fmt: skip
    kind = schema.field(index).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise BvvtokError(f"{file.path}: column {file.text_column!r} holds {kind}, not strings; name a text column "
                          f"with {option('text_column')}")  # fmt: skip
    return index


def _strings(column: Any) -> list[str]:
    """An Arrow string column as Python strings; a null is an empty text (no document)."""
    import pyarrow.compute as pc

    return (pc.fill_null(column, "") if column.null_count else column).to_pylist()


# hf:NAME[:CONFIG][:SPLIT], streamed by the optional `datasets` package


def _read_hf(file: CorpusFile, on_bytes: Progress) -> Iterator[str]:
    """The text of each record of a dataset `datasets.load_dataset` streams (a Hub name, or a local folder)."""
    try:
        import datasets
    except ImportError:
        raise BvvtokError(f"{file.name}: reading a Hugging Face dataset needs the datasets package; install it with "
                          f"{HF_INSTALL}, or give local files") from None  # fmt: skip
    name, config, split = hf_source(file.name)
    try:
        dataset = datasets.load_dataset(name, config, split=split, streaming=True)
        for batch in dataset.iter(batch_size=HF_BATCH):
            yield from _hf_texts(file, batch)
    except BvvtokError:
        raise
    except Exception as e:  # the Hub, the network and datasets' builders each raise their own
        raise BvvtokError(f"{file.name}: the dataset could not be reached or read ({type(e).__name__}: {_reason(e)}); check "
                          "the name, config and split and the network; local files work offline") from None  # fmt: skip


def hf_source(spec: str) -> tuple[str, str | None, str]:
    """(name, config, split) of `hf:NAME[:CONFIG][:SPLIT]`: the split `train` unless given."""
    name, config, split = (spec[len(HF_PREFIX) :].split(":", 2) + ["", ""])[:3]
    if not name:
        raise BvvtokError(f"{spec!r} names no dataset; write {HF_PREFIX}NAME[:CONFIG][:SPLIT], e.g. hf:wikitext:wikitext-2-raw-v1:train")
    return name, config or None, split or "train"


def _hf_texts(file: CorpusFile, batch: dict[str, list[Any]]) -> list[str]:
    if file.text_column not in batch:
        raise BvvtokError(f"{file.name} has no column {file.text_column!r} (it has {', '.join(batch)}); name the text's "
                          f"column with {option('text_column')}")  # fmt: skip
    texts = ["" if text is None else text for text in batch[file.text_column]]  # a null is an empty text
    wrong = next((text for text in texts if not isinstance(text, str)), None)
    if wrong is not None:
        raise BvvtokError(f"{file.name}: column {file.text_column!r} holds {type(wrong).__name__}, not strings; name a "
                          f"text column with {option('text_column')}")  # fmt: skip
    return texts


def _hf_size(file: CorpusFile) -> int:
    return 0  # a remote dataset's size is not known before it is read


COMPRESSIONS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "": lambda raw: raw,
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw),
    ".zst": _ZstdFrames,
}
SIZES = {"": _file_size, ".gz": _gzip_size, ".zst": _zstd_size}

# every format read, by the end of its name (or, for a dataset, its prefix): a new format is one entry
FORMATS: dict[str, Format] = {
    **{f".txt{c}": Format(partial(_read_lines, opener=opener, parse=None), False, SIZES[c]) for c, opener in COMPRESSIONS.items()},
    **{f".jsonl{c}": Format(partial(_read_lines, opener=opener, parse=jsonl_text), True, SIZES[c]) for c, opener in COMPRESSIONS.items()},
    ".parquet": Format(_read_parquet, True, _parquet_size),
    ".arrow": Format(_read_arrow, True, _file_size, beside="state.json", label="a `datasets` save_to_disk folder"),
    HF_PREFIX: Format(_read_hf, True, _hf_size, label=f"{HF_PREFIX}NAME[:CONFIG][:SPLIT]"),
}  # fmt: skip
