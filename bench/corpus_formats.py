"""bvvtok's corpus reader against pyarrow and zstandard reading the same files alone.

    .venv/bin/python bench/corpus_formats.py [--mb 200] [--rounds 3]

Writes about --mb MB of text (generated documents of mixed scripts, about 1 KB each) as a Parquet file
(row groups of 50,000 rows, pyarrow's default compression) and as .jsonl.zst (zstd level 3, streamed: no
content size) in a temporary folder. Then, after one untimed read each, round after round, alternating which goes first, times
bvvtok's `iter_texts` over each file against the least a script does to get the same Python strings:
for Parquet, `ParquetFile.iter_batches` over the text column, `to_pylist`; for .jsonl.zst, zstandard's
`stream_reader`, lines, `json.loads`. Both sides sum the texts' lengths (and must agree). MB/s are of
the text's UTF-8 bytes; the ratio is bvvtok's rate over the plain one (the medians).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bvvtok.vocab.corpus import corpus_files, iter_texts  # noqa: E402

WORDS = ("the of and to in is that for it with as was on be by at this from language model frozen embedding "
         "tokenizer substrate glyph unicode vocabulary training corpus shard 你好 世界 语言 模型 训练 数据 "
         "мир язык модель данные Ελληνικά γλώσσα مرحبا اللغة こんにちは 言語 한국어 언어").split()  # fmt: skip
ROW_GROUP = 50_000
BATCH = 10_000  # documents written at a time


def documents(megabytes: int, seed: int = 0) -> Iterator[list[str]]:
    """Batches of generated documents, about `megabytes` MB of UTF-8 in all."""
    rng = random.Random(seed)
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(20, 300))) for _ in range(2000)]
    written, target, number = 0, megabytes * 1_000_000, 0
    while written < target:
        batch = [f"{number + i}: {pool[rng.randrange(len(pool))]}" for i in range(BATCH)]
        number += BATCH
        written += sum(len(text.encode()) for text in batch)
        yield batch


def write_corpus(folder: Path, megabytes: int) -> tuple[Path, Path, int]:
    parquet, zst = folder / "corpus.parquet", folder / "corpus.jsonl.zst"
    schema = pa.schema([("text", pa.string())])
    text_bytes = 0
    with pq.ParquetWriter(parquet, schema) as writer, open(zst, "wb") as raw:
        with zstandard.ZstdCompressor(level=3).stream_writer(raw) as compressed:
            pending: list[str] = []
            for batch in documents(megabytes):
                text_bytes += sum(len(text.encode()) for text in batch)
                compressed.write("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in batch).encode())
                pending += batch
                if len(pending) >= ROW_GROUP:
                    writer.write_table(pa.table({"text": pending[:ROW_GROUP]}, schema=schema))
                    pending = pending[ROW_GROUP:]
            if pending:
                writer.write_table(pa.table({"text": pending}, schema=schema))
    return parquet, zst, text_bytes


def bvvtok_reader(path: Path) -> int:
    (file,) = corpus_files(path)
    return sum(len(text) for text in iter_texts(file, lambda n: None))


def pyarrow_reader(path: Path) -> int:
    total = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
        total += sum(len(text) for text in batch.column(0).to_pylist())
    return total


def zstandard_reader(path: Path) -> int:
    total = 0
    with open(path, "rb") as raw:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8"):
            total += len(json.loads(line)["text"])
    return total


def timed(read: Callable[[Path], int], path: Path) -> tuple[float, int]:
    began = time.perf_counter()
    chars = read(path)
    return time.perf_counter() - began, chars


def compare(name: str, path: Path, plain: Callable[[Path], int], rounds: int, text_bytes: int) -> None:
    times: dict[str, list[float]] = {"bvvtok": [], "plain": []}
    readers = {"bvvtok": bvvtok_reader, "plain": plain}
    for read in readers.values():  # not timed: the imports, and the file into the page cache
        read(path)
    for round_ in range(rounds):
        order = ["bvvtok", "plain"] if round_ % 2 == 0 else ["plain", "bvvtok"]
        chars = set()
        for side in order:
            seconds, n = timed(readers[side], path)
            times[side].append(seconds)
            chars.add(n)
        assert len(chars) == 1, f"the readers disagree on {path.name}: {chars}"
    rate = {side: text_bytes / 1e6 / statistics.median(t) for side, t in times.items()}
    print(f"{name:<12} {path.stat().st_size / 1e6:8.1f} MB on disk   bvvtok {rate['bvvtok']:7.1f} MB/s   "
          f"plain {rate['plain']:7.1f} MB/s   ratio {rate['bvvtok'] / rate['plain']:.3f}x   "
          f"(median of {rounds}; bvvtok {', '.join(f'{t:.2f}' for t in times['bvvtok'])} s, "
          f"plain {', '.join(f'{t:.2f}' for t in times['plain'])} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of text to write (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bvvtok-corpus-formats-") as tmp:
        parquet, zst, text_bytes = write_corpus(Path(tmp), args.mb)
        print(f"{text_bytes / 1e6:.1f} MB of text; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        compare("parquet", parquet, pyarrow_reader, args.rounds, text_bytes)
        compare("jsonl.zst", zst, zstandard_reader, args.rounds, text_bytes)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
