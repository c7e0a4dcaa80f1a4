"""Characters per token of bvvtok's vocabularies per language, in the shape of the published table.

The vocabularies are built into a temporary folder: the offline 65k and 131k and, when
`../shared/reference/ngrams` is present, the published bvv241-2-3 and bvv241-max rebuilt
from their statistics (as bench/compression.py does). The text is Debian's fortunes in
every installed language (scripts/fortunes_corpus.py; `make setup` installs the packages),
a seeded sample of `--limit` documents each. `bench_tokenizers` (`bvvtok bench-tokenizer`)
measures them: a row per language, a column per tokenizer, as in the published
`tokenizer-chars-per-token.csv`. When that file is present (`../shared/reference`), its
bvv241 figures are printed next to ours for the languages both have: the texts differ,
so only the shape (the order of languages, the gain of max over 2-3) is comparable.

    .venv/bin/python bench/tokenizer_table.py [--limit 2000] [--csv F.csv] [--heatmap F.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bvvtok.vocab.build import build_vocab, save_vocab
from bvvtok.vocab.tokenizer_bench import Cell, bench_tokenizers, plot_heatmap, write_csv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fortunes_corpus import fortunes_by_language  # noqa: E402

SHARED = ROOT.parent / "shared" / "reference"
NGRAMS = SHARED / "ngrams"
PUBLISHED = SHARED / "tokenizer-chars-per-token.csv"
ARTIFACTS = ROOT / "artifacts"
NAMES = {  # the published table's LanguageName
    "en": "English", "zh": "Chinese", "bg": "Bulgarian", "cs": "Czech", "de": "German",
    "es": "Spanish", "it": "Italian", "pl": "Polish", "pt": "Portuguese", "ru": "Russian",
}  # fmt: skip
# A published column, and our tokenizer to set beside it: the rebuilt one, else the offline one of its preset.
PUBLISHED_COLUMNS = {"bvv241-2-3": ("bvv241-2-3", "offline-65k"), "bvv241-max": ("bvv241-max", "offline-131k")}


def builds() -> dict[str, dict]:
    """Folder name (the table's column) -> build_vocab arguments."""
    found = {"offline-65k": {"preset": "65k"}, "offline-131k": {"preset": "131k"}}
    if NGRAMS.is_dir():
        found["bvv241-2-3"] = {"preset": "65k", "ngram_files": [NGRAMS / "ngrams-2-3.txt"]}
        found["bvv241-max"] = {
            "preset": "131k",
            "ngram_files": [NGRAMS / "ngrams-2-3-4-5.txt"],
            "extra_tokens": NGRAMS / "intersection.txt",
        }
    return found


def write_texts(folder: Path, limit: int) -> dict[str, Path]:
    """A seeded sample of `limit` fortunes per language as .jsonl: {LanguageName: file}."""
    texts = {}
    for lang, docs in fortunes_by_language().items():
        docs = random.Random(0).sample(docs, min(limit, len(docs)))
        path = folder / f"fortunes-{lang}.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs), encoding="utf-8")
        texts[NAMES.get(lang, lang)] = path
    return texts


def spearman(xs: list[float], ys: list[float]) -> float:
    """Rank correlation (no ties expected among such figures)."""

    def ranks(v: list[float]) -> list[int]:
        return [sorted(v).index(x) for x in v]

    return statistics.correlation(ranks(xs), ranks(ys))


def print_published(console: Console, cells: list[Cell]) -> None:
    if not PUBLISHED.is_file():
        console.print(f"published table: {PUBLISHED} not found, comparison skipped")
        return
    with open(PUBLISHED, encoding="utf-8", newline="") as f:
        published = {row["LanguageName"]: row for row in csv.DictReader(f)}
    ours = {(c.lang, c.tokenizer): c.chars_per_token_mean for c in cells}
    tokenizers = {c.tokenizer for c in cells}
    langs = [lang for lang in dict.fromkeys(c.lang for c in cells) if lang in published]
    pairs = [(column, next(t for t in options if t in tokenizers)) for column, options in PUBLISHED_COLUMNS.items()]
    (col_a, ours_a), (col_b, ours_b) = pairs
    table = Table(
        "language", "pub 2-3", "ours 2-3", "pub max", "ours max", "pub ratio", "ours ratio",
        title="published (its own texts) vs ours (fortunes):\ncompare the shape, not the values",
        caption=f"ours: {ours_a}, {ours_b}; ratio: max / 2-3",
        show_edge=False,
    )  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    for lang in langs:
        pub_a, pub_b = float(published[lang][col_a]), float(published[lang][col_b])
        our_a, our_b = ours[lang, ours_a], ours[lang, ours_b]
        figures = (pub_a, our_a, pub_b, our_b, pub_b / pub_a, our_b / our_a)
        table.add_row(lang, *(f"{x:.3f}" for x in figures))
    console.print(table)
    if len(langs) > 2:
        for column, mine in pairs:
            rho = spearman([float(published[lang][column]) for lang in langs], [ours[lang, mine] for lang in langs])
            console.print(f"rank correlation of languages, published {column} vs ours {mine}: {rho:+.2f}")
    missing = [c.lang for c in cells if c.lang not in published]
    if missing:
        console.print(f"not in the published table: {', '.join(dict.fromkeys(missing))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000, help="documents per language (default 2000)")
    parser.add_argument("--csv", type=Path, default=ARTIFACTS / "tokenizer-bench.csv", help="table out (replaced)")
    parser.add_argument("--heatmap", type=Path, default=ARTIFACTS / "tokenizer-bench.png", help="PNG out (replaced)")
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bvvtok-bench-") as tmp:
        texts = write_texts(Path(tmp), args.limit)
        if not texts:
            sys.exit("error: no fortunes found; install the Debian fortune packages (make setup does)")
        folders, seconds = [], {}
        for name, kwargs in builds().items():
            t = time.perf_counter()
            save_vocab(build_vocab(**kwargs), Path(tmp) / name)
            folders.append(Path(tmp) / name)
            seconds[name] = time.perf_counter() - t
        t = time.perf_counter()
        cells = bench_tokenizers(folders, texts, args.limit)
        seconds["measure"] = time.perf_counter() - t

    grid = {(c.lang, c.tokenizer): c for c in cells}
    tokenizers = list(dict.fromkeys(c.tokenizer for c in cells))
    sample = f"Debian fortunes, a seeded sample of at most {args.limit:,} per language"
    table = Table("language", title="characters per token (mean over documents)", caption=sample)
    for column in ("docs", *tokenizers):
        table.add_column(column, justify="right")
    for lang in dict.fromkeys(c.lang for c in cells):
        row = [grid[lang, t] for t in tokenizers]
        table.add_row(lang, f"{row[0].documents:,}", *(f"{c.chars_per_token_mean:.3f}" for c in row))
    console.print(table)
    console.print(
        f"unknown-token rate at most {100 * max(c.unknown_rate for c in cells):.3f} %, "
        f"lossless round trips at least {100 * min(c.lossless for c in cells):.1f} %"
    )
    print_published(console, cells)

    for path, write in ((args.csv, write_csv), (args.heatmap, plot_heatmap)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write(cells, path, force=True)
        console.print(f"wrote {path}")
    seconds["total"] = time.perf_counter() - started
    console.print("seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
