"""`bvvtok prepare` against plain tokenizers `encode_batch` on the same text, in the same run.

    .venv/bin/python bench/prepare.py [--mb 80] [--repeat 3] [--vocab DIR] [--format jsonl|parquet]
    .venv/bin/python bench/prepare.py --mb 2048 --repeat 1       # bounded memory on a corpus of 2 GB

The corpus is Debian's English and Chinese fortunes (scripts/fortunes_corpus.py), each record numbered,
repeated to the size asked, as one .jsonl file, or (--format parquet) one Parquet file of the same records
in row groups of 50,000. The baseline is the least a tokenizing script does: read the records (the lines
and their JSON, or pyarrow's batches of the text column), `encode_batch` in batches of the size prepare
uses, count the tokens (nothing written). prepare does that and more (split by content hash, write the shards, hash them for the
manifest). Each measurement runs in a process of its own, alternating the two, so that its peak RSS is
its own and a slow moment of the machine hits both; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import json, sys, time
from tokenizers import Tokenizer
from bvvtok.lm.data import BATCH_CHARS, BATCH_PIECES
tokenizer = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
began, tokens, batch, chars = time.perf_counter(), 0, [], 0
def encode(batch):
    return sum(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
def texts(path):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        for records in pq.ParquetFile(path).iter_batches(columns=["text"]):
            yield from records.column(0).to_pylist()
    else:
        with open(path, encoding="utf-8") as f:
            yield from (json.loads(line)["text"] for line in f)
for text in texts(sys.argv[2]):
    batch.append(text)
    chars += len(text)
    if len(batch) >= BATCH_PIECES or chars >= BATCH_CHARS:
        tokens += encode(batch)
        batch, chars = [], 0
tokens += encode(batch)
import resource
print(tokens, time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

PREPARE = """
import sys, time
from pathlib import Path
from bvvtok.lm.data import prepare_tokens
began = time.perf_counter()
data = prepare_tokens(Path(sys.argv[1]), [Path(sys.argv[2])], out=Path(sys.argv[3]))
import resource
print(data.train.n_tokens + data.val.n_tokens, time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def corpus(folder: Path, megabytes: int, form: str) -> Path:
    """One .jsonl (or .parquet) file of about `megabytes` MB of text: the fortunes, numbered, repeated."""
    fortunes = folder / "fortunes"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fortunes_corpus.py"), str(fortunes)], check=True, capture_output=True)
    texts = [json.loads(line)["text"] for path in sorted(fortunes.glob("*.jsonl")) for line in path.open(encoding="utf-8")]
    path, size, i = folder / "corpus.jsonl", 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while size < megabytes * 1_000_000:
            line = json.dumps({"text": f"{i}: {texts[i % len(texts)]}"}, ensure_ascii=False) + "\n"
            f.write(line)
            size, i = size + len(line.encode()), i + 1
    return path if form == "jsonl" else parquet(path)


def parquet(jsonl: Path) -> Path:
    """The records of `jsonl` as a Parquet file in row groups of 50,000, written a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = jsonl.with_suffix(".parquet")
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer, open(jsonl, encoding="utf-8") as f:
        while rows := [json.loads(line)["text"] for _, line in zip(range(50_000), f)]:
            writer.write_table(pa.table({"text": rows}, schema=schema))
    jsonl.unlink()
    return path


def measure(script: str, *args: str) -> tuple[int, float, float]:
    """(tokens, seconds, peak RSS in MB) of `script` run in a new process (the script reports its own)."""
    done = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    tokens, seconds, kilobytes = done.stdout.split()
    return int(tokens), float(seconds), int(kilobytes) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=80, help="corpus size in MB")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each, alternating")
    parser.add_argument("--vocab", type=Path, default=None, help="tokenizer folder (default: build the offline 65k)")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="the corpus file's format")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        vocab = args.vocab
        if vocab is None:
            vocab = folder / "vocab"
            subprocess.run([sys.executable, "-m", "bvvtok", "build-vocab", "--out", str(vocab)], check=True, capture_output=True, cwd=ROOT)
        text = corpus(folder, args.mb, args.format)
        megabytes = args.mb
        rows = {"encode_batch": [], "prepare": []}
        for i in range(args.repeat):
            rows["encode_batch"].append(measure(BASELINE, str(vocab), str(text)))
            rows["prepare"].append(measure(PREPARE, str(vocab), str(text), str(folder / f"tokens-{i}")))
        print(f"{megabytes:,.0f} MB of text ({text.name}), {args.repeat} alternating runs each, medians:")
        medians = {}
        for name, runs in rows.items():
            seconds = statistics.median(r[1] for r in runs)
            medians[name] = seconds
            tokens = runs[0][0]
            print(f"  {name:<13} {seconds:7.1f} s  {megabytes / seconds:6.2f} MB/s  {tokens / seconds:12,.0f} tokens/s  "
                  f"peak RSS {max(r[2] for r in runs):,.0f} MB  ({', '.join(f'{r[1]:.1f}' for r in runs)} s)")
        print(f"  prepare / encode_batch speed: {medians['encode_batch'] / medians['prepare']:.3f} "
              f"on {os.cpu_count()} cores; per core: {runs[0][0] / medians['prepare'] / os.cpu_count():,.0f} tokens/s")


if __name__ == "__main__":
    main()
