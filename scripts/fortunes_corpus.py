"""The demo corpus: Debian's `fortunes` (English) and `fortunes-zh` (Chinese) as clean text.

Both packages are installed by `make setup` and need no network. Their files hold
fortunes separated by lines of `%`; the Chinese ones carry ANSI colour codes. Both
are stripped; each fortune becomes one document (a `.jsonl` record).

    .venv/bin/python scripts/fortunes_corpus.py artifacts/corpus   # writes fortunes-en.jsonl, fortunes-zh.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
CHINESE_FILES = ("chinese", "tang300", "song100")  # the fortunes-zh package
NOT_PROSE = ("ascii-art",)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fortunes(names: list[str]) -> list[str]:
    texts = []
    for name in names:
        raw = ANSI.sub("", (FORTUNES / name).read_text(encoding="utf-8", errors="replace"))
        texts += [t.strip() for t in re.split(r"\n%\n", raw) if t.strip()]
    return texts


def english_fortunes() -> list[str]:
    names = sorted(
        p.name for p in FORTUNES.iterdir()
        if p.is_file() and "." not in p.name and p.name not in CHINESE_FILES + NOT_PROSE
    )  # fmt: skip
    return fortunes(names)


def chinese_fortunes() -> list[str]:
    return fortunes(list(CHINESE_FILES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for fortunes-en.jsonl and fortunes-zh.jsonl")
    args = parser.parse_args()
    if not FORTUNES.is_dir():
        sys.exit(f"error: {FORTUNES} not found; install the Debian packages fortunes and fortunes-zh (make setup does)")
    args.out.mkdir(parents=True, exist_ok=True)
    for lang, texts in (("en", english_fortunes()), ("zh", chinese_fortunes())):
        path = args.out / f"fortunes-{lang}.jsonl"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        tmp.replace(path)
        print(f"{path}: {len(texts):,} fortunes, {sum(map(len, texts)):,} characters")


if __name__ == "__main__":
    main()
