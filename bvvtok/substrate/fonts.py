"""Finding the font chain that draws the glyphs, and what it covers.

Resolution order: `--font` paths (repeatable: a fallback chain, first font
that has a glyph wins), `$BVVTOK_FONT` (paths separated by `:`), font files
placed in the project's `fonts/` folder, then the system's font folders. The
default chain is GNU Unifont (BMP) followed by Unifont Upper (planes 1+).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import freetype

from bvvtok.errors import BvvtokError
from bvvtok.files import sha256_file

FONTS_DIR = Path(__file__).resolve().parents[2] / "fonts"  # the checkout's fonts/ folder
DEFAULT_CHAIN = ("unifont.otf", "unifont_upper.otf")
SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")
INSTALL_HINT = "install GNU Unifont (Debian/Ubuntu: sudo apt-get install fonts-unifont) or pass --font PATH"


def known_fonts() -> dict[str, dict]:
    """sha256 -> entry of fonts/manifest.json (empty when the checkout's fonts/ is not there)."""
    path = FONTS_DIR / "manifest.json"
    if not path.is_file():
        return {}
    return {f["sha256"]: f for f in json.loads(path.read_text(encoding="utf-8"))["fonts"]}


@dataclass(frozen=True)
class Font:
    path: Path

    @cached_property
    def face(self) -> freetype.Face:
        return freetype.Face(str(self.path))

    @cached_property
    def sha256(self) -> str:
        return sha256_file(self.path)

    def has_glyph(self, char: str) -> bool:
        """Whether the font's character map gives `char` a glyph (asked per character: listing the
        whole map costs more than asking for the characters of a 131k vocabulary)."""
        return self.face.get_char_index(ord(char)) != 0

    def describe(self) -> dict:
        known = known_fonts().get(self.sha256)
        entry = {"file": self.path.name, "sha256": self.sha256}
        if known:
            entry.update(name=known["name"], version=known["version"])
        return entry


def open_font(path: Path) -> Font:
    if not path.is_file():
        raise BvvtokError(f"font file {path} not found; {INSTALL_HINT}")
    font = Font(path)
    try:
        font.face
    except freetype.FT_Exception:
        raise BvvtokError(f"{path} is not a font FreeType can read; pass a .otf/.ttf file") from None
    return font


def _find(name: str) -> Path | None:
    for folder in (FONTS_DIR, *SYSTEM_FONT_DIRS):
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
        raise BvvtokError(f"GNU Unifont (unifont.otf) not found in fonts/ or the system's font folders; {INSTALL_HINT}")
    return [open_font(p) for p in found if p is not None]


def font_for(char: str, chain: Sequence[Font]) -> int | None:
    """Index in `chain` of the first font with a glyph for `char`, or None."""
    for i, font in enumerate(chain):
        if font.has_glyph(char):
            return i
    return None


def coverage(chars: Iterable[str], chain: Sequence[Font]) -> tuple[dict[int, int], list[str]]:
    """(characters drawn by each font of the chain, characters no font has)."""
    per_font: dict[int, int] = {}
    missing = []
    for ch in sorted(set(chars)):
        i = font_for(ch, chain)
        if i is None:
            missing.append(ch)
        else:
            per_font[i] = per_font.get(i, 0) + 1
    return per_font, missing
