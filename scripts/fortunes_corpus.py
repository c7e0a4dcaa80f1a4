"""The demo corpus: Debian's fortune packages (`fortunes` English, `fortunes-zh` Chinese, ...) as clean text.

The packages are installed by `make setup` and need no network. Their files hold
fortunes separated by lines of `%`; the Chinese ones carry ANSI colour codes. Both
are stripped; each fortune becomes one document (a `.jsonl` record). All the
packages' files are UTF-8 (Debian converted the old latin-1 / koi8-r ones).

    .venv/bin/python scripts/fortunes_corpus.py artifacts/corpus   # writes fortunes-en.jsonl, fortunes-zh.jsonl
    .venv/bin/python scripts/fortunes_corpus.py artifacts/corpus --all-languages  # and fortunes-de.jsonl, ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
CHINESE_FILES = ("chinese", "tang300", "song100")  # the fortunes-zh package
# Other languages: where their files lie under FORTUNES, and their Debian package.
LANGUAGES = {
    "bg": ("bg", "fortunes-bg"),
    "cs": ("cs", "fortunes-cs"),  # Czech and Slovak: cs/klasik-sk is the Slovak file, left out
    "de": ("de", "fortunes-de"),
    "es": ("es", "fortunes-es"),  # es/off (fortunes-es-off) is a subfolder, left out
    "it": ("it", "fortunes-it"),  # also linked from the top level, hence no symlinks in english_fortunes
    "pl": ("pl", "fortunes-pl"),
    "pt": ("brasil", "fortunes-br"),  # one top-level file (Brazilian Portuguese)
    "ru": ("ru", "fortunes-ru"),
}
NOT_PROSE = ("ascii-art", "de/asciiart", "it/banner", "cs/klasik-sk")
NOT_ENGLISH = CHINESE_FILES + ("brasil",)
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
        if p.is_file() and not p.is_symlink() and "." not in p.name and p.name not in NOT_ENGLISH + NOT_PROSE
    )  # fmt: skip
    return fortunes(names)


def chinese_fortunes() -> list[str]:
    return fortunes(list(CHINESE_FILES))


def language_fortunes(lang: str) -> list[str]:
    """The fortunes of one of LANGUAGES; empty when its package is not installed."""
    where = FORTUNES / LANGUAGES[lang][0]
    if where.is_file():
        return fortunes([where.name])
    if not where.is_dir():
        return []
    names = sorted(
        f"{where.name}/{p.name}" for p in where.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
    )  # fmt: skip
    return fortunes([name for name in names if name not in NOT_PROSE])


def fortunes_by_language() -> dict[str, list[str]]:
    """English, Chinese and every other installed language: {language code: fortunes}."""
    found = {"en": english_fortunes(), "zh": chinese_fortunes()}
    found |= {lang: language_fortunes(lang) for lang in LANGUAGES}
    return {lang: texts for lang, texts in found.items() if texts}


def write_jsonl(texts: list[str], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for fortunes-en.jsonl and fortunes-zh.jsonl")
    parser.add_argument("--all-languages", action="store_true", help="also fortunes-LANG.jsonl per other language")
    args = parser.parse_args()
    if not FORTUNES.is_dir():
        sys.exit(f"error: {FORTUNES} not found; install the Debian packages fortunes and fortunes-zh (make setup does)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.all_languages:
        corpus = fortunes_by_language()
    else:
        corpus = {"en": english_fortunes(), "zh": chinese_fortunes()}
    for lang, texts in corpus.items():
        path = args.out / f"fortunes-{lang}.jsonl"
        write_jsonl(texts, path)
        print(f"{path}: {len(texts):,} fortunes, {sum(map(len, texts)):,} characters")


if __name__ == "__main__":
    main()
