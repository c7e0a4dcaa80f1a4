"""Finding the font chain that draws the glyphs, and what it covers.

Resolution order: `--font` paths (repeatable: a fallback chain, first font
that has a glyph wins), `$BVVTOK_FONT` (paths separated by `:`), font files
placed in the checkout's `fonts/` folder (run from a source checkout only: an
installed wheel has none), then the system's font folders. The default chain is
GNU Unifont (BMP) followed by Unifont Upper (planes 1+).

The fonts bvvtok knows (name, version, sha256) are package data,
`data/known_fonts.json` next to this module, so a wheel carries them too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import freetype
import numpy as np
from freetype.raw import FT_Get_Char_Index

from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file

_ROOT = Path(__file__).resolve().parents[2]
# The checkout's fonts/ folder; None when bvvtok is installed (a wheel's parent folder is site-packages, not a project)
FONTS_DIR: Path | None = _ROOT / "fonts" if (_ROOT / "pyproject.toml").is_file() else None
DATA_DIR = Path(__file__).resolve().parent / "data"  # package data: in a checkout, an editable install and a wheel
KNOWN_FONTS = DATA_DIR / "known_fonts.json"
DEFAULT_CHAIN = ("unifont.otf", "unifont_upper.otf")
SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")


def install_hint() -> str:
    """The fix for a missing font: a function, for it names the option as this caller gives it."""
    return ("install GNU Unifont (Debian/Ubuntu: sudo apt-get install fonts-unifont) or name a font file "
            f"({option('font')}, or $BVVTOK_FONT)")


def known_fonts() -> dict[str, dict]:
    """sha256 -> entry of the fonts bvvtok knows (`data/known_fonts.json`: name, version, where to get it)."""
    return {f["sha256"]: f for f in json.loads(KNOWN_FONTS.read_text(encoding="utf-8"))["fonts"]}


@dataclass(frozen=True)
class Font:
    path: Path

    @cached_property
    def face(self) -> freetype.Face:
        return freetype.Face(str(self.path))

    @cached_property
    def sha256(self) -> str:
        return sha256_file(self.path)

    def has_glyph(self, code_point: int) -> bool:
        """Whether the font's character map gives the code point a glyph. Asked of FreeType straight
        (~0.5 us): listing the whole map costs more than asking for a 131k vocabulary's characters."""
        return FT_Get_Char_Index(self.face._FT_Face, code_point) != 0

    def has_glyphs(self, code_points: Iterable[int]) -> np.ndarray:
        """`has_glyph` of each code point (bool array)."""
        return np.array([self.has_glyph(c) for c in code_points], dtype=bool)

    def describe(self) -> dict:
        known = known_fonts().get(self.sha256)
        entry = {"file": self.path.name, "sha256": self.sha256}
        if known:
            entry.update(name=known["name"], version=known["version"])
        return entry


def open_font(path: Path) -> Font:
    if path.is_dir():
        raise BvvtokError(f"font path {path} is a folder; pass a font file (.otf/.ttf)")
    if not path.is_file():
        raise BvvtokError(f"font file {path} not found; {install_hint()}")
    font = Font(path)
    try:
        font.face
    except freetype.FT_Exception:
        raise BvvtokError(f"{path} is not a font FreeType can read; pass a .otf/.ttf file") from None
    return font


def _find(name: str) -> Path | None:
    for folder in (FONTS_DIR, *SYSTEM_FONT_DIRS):
        if folder is None:
            continue
        if (folder / name).is_file():
            return folder / name
        if folder.is_dir() and folder != FONTS_DIR:
            for hit in sorted(folder.rglob(name)):
                return hit
    return None


def resolve_chain(paths: Sequence[Path] = ()) -> list[Font]:
    """The fonts to draw with, first match wins; a missing default font is a one-line error."""
    if paths:
        return [open_font(Path(p)) for p in paths]
    env = os.environ.get("BVVTOK_FONT")
    if env:
        return [open_font(Path(p)) for p in env.split(os.pathsep) if p]
    found = [_find(name) for name in DEFAULT_CHAIN]
    if found[0] is None:
        searched = "the system's font folders" if FONTS_DIR is None else "fonts/ or the system's font folders"
        raise BvvtokError(f"GNU Unifont (unifont.otf) not found in {searched}; {install_hint()}")
    return [open_font(p) for p in found if p is not None]


def fonts_for(code_points: np.ndarray, chain: Sequence[Font]) -> np.ndarray:
    """Index in `chain` of the first font with a glyph for each code point, -1 where none has one."""
    owner = np.full(len(code_points), -1, dtype=np.int64)
    for i, font in enumerate(chain):
        pending = np.flatnonzero(owner < 0)
        owner[pending[font.has_glyphs(code_points[pending].tolist())]] = i
    return owner


def font_for(char: str, chain: Sequence[Font]) -> int | None:
    """Index in `chain` of the first font with a glyph for `char`, or None (per character, no arrays:
    the per-token reference recipe asks it for every character it draws)."""
    return next((i for i, font in enumerate(chain) if font.has_glyph(ord(char))), None)


def coverage(chars: Iterable[str], chain: Sequence[Font]) -> tuple[dict[int, int], list[str]]:
    """(characters drawn by each font of the chain, characters no font has)."""
    distinct = sorted(set(chars))
    owner = fonts_for(np.array([ord(ch) for ch in distinct], dtype=np.int64), chain)
    fonts, counts = np.unique(owner[owner >= 0], return_counts=True)
    return dict(zip(fonts.tolist(), counts.tolist())), [ch for ch, i in zip(distinct, owner.tolist()) if i < 0]
