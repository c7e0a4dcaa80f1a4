"""A corpus tokenized once into memory-mapped token shards, the trainer's whole data pipeline.

The corpus is streamed through the tokenizer in batches (Rust, multi-threaded) and the ids are
written to `train-00000.bin`, `val-00000.bin`, ... as they come, so neither the text nor the ids
ever sit in memory whole. Documents end with `</s>`. Which split a piece of text lands in depends
only on its bytes, so the split is the same whatever the file order. The folder is keyed by the
sha256 of the tokenizer and corpus: a second run with the same inputs reuses it instead of
tokenizing again (a hf: dataset, whose content is not hashed, by its name, config, split and text column).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from bvvtok import __version__
from bvvtok.difference import size_text
from bvvtok.errors import BvvtokError, option
from bvvtok.files import MANIFEST_NAME, cache_dir, remove, sha256_file, stale_temps
from bvvtok.manifest import read_manifest, write_manifest
from bvvtok.output import atomic_folder, check_replace, check_target, claim
from bvvtok.vocab.corpus import (MIN_TEXT, TEXT_COLUMN, CorpusFile, corpus_files, hf_source, iter_texts, text_chars,
                                too_little_text)
from bvvtok.vocab.layout import EOS
from bvvtok.vocab.tokenizer_files import load_tokenizer

SEPARATOR = EOS  # appended after every document
SHARD_TOKENS = 1 << 27  # max tokens per shard file (512 MB of uint32)
FORMAT = 1  # part of the cache key: raise it when the same inputs would give different shards
PIECE_CHARS = 1 << 16  # a .txt file is read in pieces of whole lines of about this many characters
BATCH_PIECES, BATCH_CHARS = 1000, 1 << 22  # one encode_batch call: enough for every core, bounded memory
DTYPES = {"uint16": "<u2", "uint32": "<u4"}  # little-endian on disk, whatever the machine
SPLITS = ("train", "val")


@dataclass
class Split:
    """One split's token stream as read-only memory-mapped shards; a training window never crosses a shard."""

    shards: list[np.ndarray]

    @property
    def n_tokens(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def n_windows(self, context: int) -> int:
        return sum(max(0, (len(shard) - 1) // context) for shard in self.shards)

    def window(self, index: int, context: int) -> np.ndarray:
        """The `index`-th window of context+1 tokens (inputs and shifted targets), numbered shard by shard."""
        if index >= 0:
            for shard in self.shards:
                n = max(0, (len(shard) - 1) // context)
                if index < n:
                    return np.array(shard[index * context : index * context + context + 1], dtype=np.int64)
                index -= n
        raise IndexError(f"window index out of range for context {context}")

    def unigram_counts(self, vocab_size: int) -> np.ndarray:
        counts = np.zeros(vocab_size, dtype=np.int64)
        for shard in self.shards:
            for start in range(0, len(shard), 1 << 24):  # bincount widens to int64: bound the temporary
                counts += np.bincount(shard[start : start + (1 << 24)], minlength=vocab_size)
        return counts


@dataclass
class TokenData:
    """A token folder, opened: `manifest` is its bvvtok.json, `key` the content key it was built for."""

    folder: Path
    manifest: dict
    key: str
    train: Split
    val: Split
    vocab_size: int
    tokenized_s: float | None = None  # seconds this call spent tokenizing (None: the folder was there already)


def prepare_tokens(
    tokenizer_dir: Path,
    corpus: Sequence[Path],
    out: Path | None = None,
    val_fraction: float = 0.01,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    text_column: str = TEXT_COLUMN,
) -> TokenData:
    """Tokenize `corpus` into `out` (default: the cache), or load the folder already there for the same inputs.

    `progress(done, total)` is told the corpus bytes consumed (compressed bytes for compressed files); the total
    is None when a hf: dataset's size is not known. Record formats take the text from `text_column`.
    """
    if not 0 <= val_fraction <= 0.5:
        raise BvvtokError(f"val_fraction must be between 0 and 0.5 (got {val_fraction}); e.g. 0.01")
    tokenizer_dir = Path(tokenizer_dir)
    files = _files(corpus, text_column)
    inputs = [tokenizer_dir, *(file.path for file in files)]
    if out is not None and not is_token_folder(Path(out)):  # refused before the corpus is hashed, not after
        check_target(Path(out), inputs)
        check_replace(Path(out), force, "tokens")
    described, tokenizer_sha = _describe(files), _tokenizer_sha(tokenizer_dir)
    key = _key(tokenizer_sha, described, val_fraction)
    folder = Path(out) if out is not None else cache_dir() / "tokens" / key[:32]
    with claim(folder, inputs, wait=out is None):  # the cache: wait for a process preparing the same tokens
        if out is None:
            remove(stale_temps(folder.parent))  # other keys' temporaries, of processes that died
        if is_token_folder(folder):
            try:
                data = load_tokens(folder)
                if data.key == key:
                    return data
            except BvvtokError:
                pass  # damaged: rebuilt below (an explicit --out only with force)
        began = time.perf_counter()
        _write_tokens(folder, tokenizer_dir, files, key, described, tokenizer_sha, val_fraction, force or out is None, progress)
        return dataclasses.replace(load_tokens(folder), tokenized_s=time.perf_counter() - began)


def corpus_tokens(tokenizer_dir: Path, corpus: Sequence[Path], val_fraction: float = 0.01,
                  progress: Callable[[int, int | None], None] | None = None, text_column: str = TEXT_COLUMN) -> TokenData:  # fmt: skip
    """The tokens of what `train --corpus` takes: a folder prepare_tokens wrote, opened as it is (it must hold ids of
    `tokenizer_dir`'s tokenizer), or text, tokenized with that tokenizer (or found in the cache)."""
    if len(corpus) == 1 and is_token_folder(corpus[0]):
        data = load_tokens(corpus[0])
        if data.manifest["tokens"].get("tokenizer_sha256") != _tokenizer_sha(Path(tokenizer_dir)):
            raise BvvtokError(f"{corpus[0]} holds the ids of another tokenizer than {tokenizer_dir}'s; give the text "
                              "itself, or tokens prepared with that tokenizer")  # fmt: skip
        return data
    return prepare_tokens(tokenizer_dir, corpus, val_fraction=val_fraction, progress=progress, text_column=text_column)


def _write_tokens(folder: Path, tokenizer_dir: Path, files: list[CorpusFile], key: str, described: list[dict[str, Any]],
                  tokenizer_sha: str, val_fraction: float, force: bool, progress: Callable[[int, int | None], None] | None) -> None:  # fmt: skip
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.encode_special_tokens = True  # a literal "</s>" in the text is text, not a document boundary
    separator = tokenizer.token_to_id(SEPARATOR)
    if separator is None:
        raise BvvtokError(f"{tokenizer_dir / 'tokenizer.json'} has no {SEPARATOR} token to end documents with; "
                          f"use a bvvtok vocabulary or add {SEPARATOR} to the tokenizer")
    vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1  # the rows an embedding needs
    dtype = "uint16" if vocab_size <= 1 << 16 else "uint32"
    with atomic_folder(folder, force, kind="tokens") as tmp:
        need = sum(file.text_bytes() for file in files) * np.dtype(dtype).itemsize  # tokens <= chars <= bytes
        free = shutil.disk_usage(tmp).free
        if need > free:
            raise BvvtokError(f"not enough disk space in {folder.parent} for the token shards: need about "
                              f"{size_text(need)}, {size_text(free)} free; free space or choose another {option('out')}")
        stats = _write_shards(tmp, tokenizer, files, separator, val_fraction, np.dtype(DTYPES[dtype]), progress)
        names = [str(file.path) for file in files]
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        if stats["documents"] == 0:
            raise BvvtokError(f"no text in {listed}: the corpus is empty; give a corpus with text in it")
        seen = stats.pop("text_chars")  # counted up to MIN_TEXT, not for the manifest
        if seen < MIN_TEXT:
            raise too_little_text(listed if len(names) == 1 else f"the corpus ({listed})", seen, "nothing to train or validate on")
        digests = stats.pop("digests")  # hashed as written: the shards are not read back
        tokens = {"key": key, "tokenizer_sha256": tokenizer_sha, "corpus": described,
                  "val_fraction": float(val_fraction), "dtype": dtype, "vocab_size": vocab_size,
                  "separator": SEPARATOR, **stats}
        write_manifest(tmp, {"bvvtok_version": __version__, "kind": "tokens", "tokens": tokens}, digests)




def load_tokens(folder: Path) -> TokenData:
    """Open a folder prepare_tokens wrote: its shards memory-mapped read-only, nothing read into memory."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    section = manifest.get("tokens")
    if not isinstance(section, dict):
        raise BvvtokError(f"{folder} is not a token folder ({MANIFEST_NAME} has no 'tokens'); tokenize again")
    try:
        dtype = np.dtype(DTYPES[section["dtype"]])
        train, val = (_open_split(folder, name, section, dtype) for name in SPLITS)
        return TokenData(folder, manifest, section["key"], train, val, int(section["vocab_size"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BvvtokError(f"{folder / MANIFEST_NAME}: malformed 'tokens' section ({e!r}); tokenize again") from None


def is_token_folder(path: Path) -> bool:
    try:
        return isinstance(read_manifest(Path(path)).get("tokens"), dict)
    except BvvtokError:
        return False


def _open_split(folder: Path, name: str, section: dict[str, Any], dtype: np.dtype) -> Split:
    paths = [folder / f"{name}-{i:05d}.bin" for i in range(section["shards"][name])]
    sizes = [path.stat().st_size if path.is_file() else 0 for path in paths]
    if sum(sizes) != section[f"{name}_tokens"] * dtype.itemsize:
        raise BvvtokError(f"the {name} shards in {folder} are missing or damaged; tokenize again ({option('force', True)})")
    return Split([np.memmap(path, dtype=dtype, mode="r") for path in paths])


def _files(corpus: Sequence[Path], text_column: str = TEXT_COLUMN) -> list[CorpusFile]:
    """Every corpus file, named for the manifest relative to the folder given (never absolute)."""
    paths = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    if not paths:
        raise BvvtokError("no corpus given; pass corpus files (.txt, .jsonl, .parquet, ...), folders of them or hf:NAME")
    return [file for given in paths for file in corpus_files(given, text_column)]


def _describe(files: list[CorpusFile]) -> list[dict[str, Any]]:
    """Each file's manifest entry: its name, the sha256 of its bytes (of its description, for a hf: dataset), its size
    and, for a record format, the column its text came from."""
    local = [file for file in files if file.size is not None]
    with ThreadPoolExecutor() as pool:  # hashlib releases the GIL
        digests = dict(zip(local, pool.map(sha256_file, [file.path for file in local])))
    entries = []
    for file in files:
        entry: dict[str, Any] = {"name": file.name, "sha256": digests.get(file), "bytes": file.size}
        if file.size is None:
            name, config, split = hf_source(file.name)
            source = {"dataset": name, "config": config, "split": split, "text_column": file.text_column}
            entry["sha256"] = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()
            entry["keyed_by"] = "a remote dataset is keyed by its name, config, split and text column, not its content"
        if file.records:
            entry["text_column"] = file.text_column
        entries.append(entry)
    return entries


def describe_corpus(corpus: Sequence[Path]) -> list[dict[str, Any]]:
    """Each file of a corpus as a manifest records it: its name (relative to the folder given), sha256 and size."""
    return _describe(_files(corpus))


def _tokenizer_sha(tokenizer_dir: Path) -> str:
    path = tokenizer_dir / "tokenizer.json"
    if not path.is_file():
        raise BvvtokError(f"{tokenizer_dir} has no tokenizer.json; pass a folder written by `bvvtok build-vocab`")
    return sha256_file(path)


def _key(tokenizer_sha: str, described: list[dict[str, Any]], val_fraction: float) -> str:
    # another text column reads other text from the same bytes; the default leaves earlier keys as they were
    corpus = [entry["sha256"] if entry.get("text_column", TEXT_COLUMN) == TEXT_COLUMN else f"{entry['sha256']}:{entry['text_column']}"
              for entry in described]  # fmt: skip
    blob = {"format": FORMAT, "tokenizer": tokenizer_sha, "corpus": corpus, "val_fraction": float(val_fraction)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _pieces(file: CorpusFile, on_bytes: Callable[[int], None]) -> Iterator[tuple[str, bool]]:
    """(piece, ends a document): a record (.jsonl, Parquet, ...) is a one-piece document; a .txt file is one document
    of many pieces."""
    if file.records:
        yield from ((text, True) for text in iter_texts(file, on_bytes) if text)
        return
    block: list[str] = []
    size, pending = 0, None  # a piece is held back until we know whether it is the file's last
    for line in iter_texts(file, on_bytes):
        block.append(line)
        size += len(line)
        if size >= PIECE_CHARS:
            if pending is not None:
                yield pending, False
            pending, block, size = "".join(block), [], 0
    if block:
        if pending is not None:
            yield pending, False
        pending = "".join(block)
    if pending is not None:
        yield pending, True


def _in_val(piece: str, val_fraction: float) -> bool:
    return int.from_bytes(hashlib.sha256(piece.encode()).digest()[:8], "big") / 2**64 < val_fraction


def _batches(files: list[CorpusFile], consumed: Callable[[int], None]) -> Iterator[list[tuple[str, bool]]]:
    """The corpus's pieces in batches for encode_batch: enough for every core, bounded in memory."""
    batch: list[tuple[str, bool]] = []
    chars = 0
    for file in files:
        for piece, ends in _pieces(file, consumed):
            batch.append((piece, ends))
            chars += len(piece)
            if len(batch) >= BATCH_PIECES or chars >= BATCH_CHARS:
                yield batch
                batch, chars = [], 0
    if batch:
        yield batch


def _write_shards(folder: Path, tokenizer: Any, files: list[CorpusFile], separator: int, val_fraction: float,
                  dtype: np.dtype, progress: Callable[[int, int | None], None] | None) -> dict[str, Any]:
    """Stream the corpus through encode_batch into the shard files; returns the counts for the manifest.

    encode_batch runs in a helper thread (it releases the GIL and uses every core) while this one reads
    and parses the next batch and writes the last one's ids: reading, hashing and writing cost no time
    of their own beside the tokenizer (bench/prepare.py measures both against plain encode_batch).
    """
    writers = {name: _ShardWriter(folder, name) for name in SPLITS}
    sizes = [file.size for file in files]
    total = None if None in sizes else sum(sizes)  # a hf: dataset's size is not known before it is read
    done, documents, pieces, text = 0, 0, 0, 0  # text: characters other than whitespace, up to MIN_TEXT

    def consumed(n: int) -> None:
        nonlocal done
        done += n

    def write(batch: list[tuple[str, bool]], encodings: list[Any]) -> None:
        ids: dict[str, list[list[int]]] = {name: [] for name in SPLITS}
        tail = [separator]
        for (piece, ends), encoding in zip(batch, encodings):
            target = ids["val" if val_fraction and _in_val(piece, val_fraction) else "train"]
            target.append(encoding.ids)
            if ends:
                target.append(tail)
        for name, lists in ids.items():
            if lists:
                writers[name].write(np.fromiter(itertools.chain.from_iterable(lists), dtype))
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    switch = sys.getswitchinterval()
    # encode_batch takes the GIL to read its texts and to hand back its encodings: with Python's default 5 ms
    # turns it would wait, at both ends of every batch, for this thread to give the GIL up (bench/prepare.py)
    sys.setswitchinterval(1e-4)
    try:
        with ThreadPoolExecutor(1) as encoder:
            pending = None  # the batch being encoded, and its encodings to come
            for batch in _batches(files, consumed):
                # encode_batch_fast: the same ids as encode_batch, without the character offsets prepare never reads
                encoded = encoder.submit(tokenizer.encode_batch_fast, [piece for piece, _ in batch], add_special_tokens=False)
                if pending is not None:
                    write(pending[0], pending[1].result())
                pending = (batch, encoded)
                pieces, documents = pieces + len(batch), documents + sum(ends for _, ends in batch)
                for piece, _ in batch:
                    if text >= MIN_TEXT:
                        break
                    text += text_chars(piece, MIN_TEXT - text)
            if pending is not None:
                write(pending[0], pending[1].result())
    finally:
        sys.setswitchinterval(switch)
        for writer in writers.values():
            writer.close()
    return {"train_tokens": writers["train"].tokens, "val_tokens": writers["val"].tokens, "documents": documents,
            "pieces": pieces, "text_chars": text, "shards": {name: writer.shards for name, writer in writers.items()},
            "digests": {name: d for writer in writers.values() for name, d in writer.digests.items()}}


class _ShardWriter:
    """Appends ids to `{name}-00000.bin`, `{name}-00001.bin`, ...; a shard file is created only when a token arrives.
    Each file's sha256 is taken as it is written (`digests`), for the manifest."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.shards = self.tokens = self.room = 0
        self.file: IO[bytes] | None = None
        self.hash: Any = None
        self.digests: dict[str, str] = {}

    def write(self, ids: np.ndarray) -> None:
        while len(ids):
            if self.room == 0:
                self.close()
                self.file = open(self.folder / f"{self.name}-{self.shards:05d}.bin", "wb")
                self.hash = hashlib.sha256()
                self.shards, self.room = self.shards + 1, SHARD_TOKENS
            head, ids = ids[: self.room], ids[self.room :]
            data = head.tobytes()
            self.file.write(data)
            self.hash.update(data)
            self.room -= len(head)
            self.tokens += len(head)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.digests[Path(self.file.name).name] = self.hash.hexdigest()
            self.file = None
