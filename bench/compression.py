"""Build times and compression (characters per token) of the offline default vocabularies.

Prose comes from Debian's `fortunes` (English) and `fortunes-zh` (Chinese), which
`make setup` installs; `--en`/`--zh` take other UTF-8 files. When
`../shared/reference` is present, the published bvv241 tokenizers are rebuilt
and measured on the same text as the baseline.

    .venv/bin/python bench/compression.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from bvvtok.vocab.build import build_vocab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from fortunes_corpus import chinese_fortunes, english_fortunes  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ngrams"
FLOORS = {"en": 1.73, "zh": 1.09}  # bvv241-2-3's own figures on such text (the issue's floor)


def chars_per_token(tokenizer: Tokenizer, texts: list[str]) -> float:
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return sum(map(len, texts)) / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--en", type=Path, help="English prose (UTF-8); default: Debian fortunes")
    parser.add_argument("--zh", type=Path, help="Chinese prose (UTF-8); default: Debian fortunes-zh")
    args = parser.parse_args()
    prose = {
        "en": [args.en.read_text(encoding="utf-8")] if args.en else english_fortunes(),
        "zh": [args.zh.read_text(encoding="utf-8")] if args.zh else chinese_fortunes(),
    }
    console = Console()
    console.print("text: " + ", ".join(f"{lang} {sum(map(len, t)):,} characters" for lang, t in prose.items()))

    builds = [("offline 65k", dict(preset="65k")), ("offline 131k", dict(preset="131k"))]
    if REFERENCE.is_dir():
        builds += [
            ("bvv241-2-3 (rebuilt)", dict(preset="65k", ngram_files=[REFERENCE / "ngrams-2-3.txt"])),
            (
                "bvv241-max (rebuilt)",
                dict(preset="131k", ngram_files=[REFERENCE / "ngrams-2-3-4-5.txt"], extra_tokens=REFERENCE / "intersection.txt"),
            ),
        ]
    table = Table("tokenizer", "build s", "en chars/token", "zh chars/token", title="compression on the same text")
    for name, kwargs in builds:
        started = time.perf_counter()
        build = build_vocab(**kwargs)
        seconds = time.perf_counter() - started
        figures = {lang: chars_per_token(build.tokenizer, texts) for lang, texts in prose.items()}
        table.add_row(name, f"{seconds:.1f}", *(f"{figures[lang]:.4f}" for lang in ("en", "zh")))
    table.add_row("floor (issue 2)", "", *(f"{FLOORS[lang]:.2f}" for lang in ("en", "zh")))
    console.print(table)


if __name__ == "__main__":
    main()
