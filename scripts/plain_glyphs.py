"""Write bvvtok/substrate/data/plain_glyphs.json: per font and glyph size, the characters FreeType may draw without Pillow.

    python scripts/plain_glyphs.py [--size 32|64]... [--workers 2] [FONT...]   # defaults: both sizes, Unifont's chain

Every character the font maps is drawn both ways (Pillow with raqm, and
`plain_glyphs.draw_plain`) and kept only where the cells are identical; the
libraries' versions are recorded, since the proof holds only for them. Run it
again after upgrading Pillow or freetype-py: until then builds take the Pillow
path (exact, slower). Entries of other fonts and sizes are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file
from bvvtok.substrate.fonts import open_font, resolve_chain
from bvvtok.substrate.glyphs import prove_plain
from bvvtok.substrate.plain_glyphs import TABLE, range_text, renderer_versions
from bvvtok.substrate.recipe import GLYPH_SIZES

ABOUT = (
    "Code points whose cell, drawn by FreeType directly (bvvtok/substrate/plain_glyphs.py), was compared with "
    "Pillow's (raqm layout) and found identical, per font file and pixel size, with the library versions that "
    "drew them. Made by scripts/plain_glyphs.py; checked by tests/test_plain_glyphs.py."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fonts", nargs="*", type=Path)
    parser.add_argument("--size", type=int, choices=GLYPH_SIZES, action="append", help="repeatable; default: every glyph size")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        fonts = [open_font(p) for p in args.fonts] if args.fonts else resolve_chain()
    except BvvtokError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    tables = json.loads(TABLE.read_text(encoding="utf-8"))["tables"] if TABLE.is_file() else []
    for font in fonts:
        mapped = len({c for c, _ in font.face.get_chars()})
        for size in args.size or GLYPH_SIZES:
            start = time.perf_counter()
            plain = prove_plain(font, size, args.workers)
            print(f"{font.path.name} at {size}px: {len(plain):,} of {mapped:,} characters plain ({time.perf_counter() - start:.1f} s)")
            tables = [t for t in tables if (t["sha256"], t["size"]) != (font.sha256, size)]
            tables.append({"file": font.path.name, "sha256": font.sha256, "size": size, "renderer": renderer_versions(),
                           "plain": range_text(plain)})
    tables.sort(key=lambda t: (t["file"], t["size"]))
    with atomic_file(TABLE, force=True) as tmp:
        tmp.write_text(json.dumps({"about": ABOUT, "tables": tables}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
