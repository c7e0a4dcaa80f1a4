"""Glyphs that text shaping leaves alone, drawn with FreeType directly: about 3x faster than Pillow.

Pillow draws one character by laying it out with raqm (HarfBuzz), then loading
the glyph four times (layout, bounding box, origin, render): ~55-80 us a
character, most of a cold build. For most characters shaping picks the glyph
the character map gives and moves nothing, so one FreeType load and render,
placed with Pillow's own arithmetic, gives the same picture (~20 us).

"Most" is not "all": shaping swaps or moves marks, default-ignorables and some
Arabic letters, and Pillow cannot lay out a few characters at all. So nothing
here is assumed: `data/plain_glyphs.json` (package data next to this module, in
the wheel too) lists, per font file (sha256) and pixel size, the code points for
which the two were compared and gave identical cells, with the versions of the
libraries that drew them. Only those take the direct path, and only with the same
versions; every other character, font or version goes through Pillow.
`scripts/plain_glyphs.py` makes the table by comparing every glyph of the font
(`glyphs.prove_plain`), and a test checks it again.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import freetype
import numpy as np
from freetype import FT_GLYPH_FORMAT_OUTLINE, FT_LOAD_DEFAULT, FT_PIXEL_MODE_GRAY, FT_RENDER_MODE_NORMAL
from freetype.ft_structs import FT_BBox
from freetype.raw import FT_Get_Char_Index, FT_Load_Glyph, FT_Outline_Get_CBox, FT_Render_Glyph
from PIL import features

from bvvtok.substrate.fonts import DATA_DIR

TABLE = DATA_DIR / "plain_glyphs.json"


def renderer_versions() -> dict[str, str | None]:
    """Everything that decides a glyph's pixels on either path: Pillow with its bundled libraries, and freetype-py's FreeType."""
    return {
        "pillow": version("pillow"),
        "freetype": features.version("freetype2"),
        "raqm": features.version("raqm"),
        "harfbuzz": features.version("harfbuzz"),
        "fribidi": features.version("fribidi"),
        "freetype_py": version("freetype-py"),
        "freetype_py_freetype": ".".join(map(str, freetype.version())),
    }


@lru_cache(maxsize=None)
def _tables(path: Path) -> dict[tuple[str, int], dict]:
    """(sha256, size) -> entry; empty when the table is absent or unreadable (no proof: Pillow draws all)."""
    try:
        return {(t["sha256"], t["size"]): t for t in json.loads(path.read_text(encoding="utf-8"))["tables"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def plain_ranges(font_sha256: str, size: int, table: Path = TABLE) -> np.ndarray | None:
    """The [start, end] code point ranges proven to draw the same both ways for this font and size
    with this machine's libraries; None when there is no such proof."""
    entry = _tables(table).get((font_sha256, size))
    if entry is None or entry["renderer"] != renderer_versions():
        return None
    return np.array([[int(c, 16) for c in r.split("-")] for r in entry["plain"]], dtype=np.int64).reshape(-1, 2)


def range_text(code_points: Sequence[int]) -> list[str]:
    """Ascending code points as the table writes them: runs "XXXX-YYYY" (hex), one per line of the file."""
    runs: list[list[int]] = []
    for c in code_points:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return [f"{a:04X}-{b:04X}" for a, b in runs]


def in_ranges(code_points: Sequence[int], ranges: np.ndarray) -> np.ndarray:
    """bool per code point: inside one of the sorted, disjoint [start, end] ranges."""
    cps = np.asarray(code_points, dtype=np.int64)
    k = np.searchsorted(ranges[:, 0], cps, side="right") - 1
    return (k >= 0) & (cps <= ranges[np.maximum(k, 0), 1])


def draw_plain(chars: Sequence[str], path: Path, size: int) -> tuple[np.ndarray, list[int]]:
    """Cells [n, size, size] (black ink on white) as Pillow's getmask2 + draw_bitmap would make them
    for glyphs that shaping leaves alone, and the indices left for Pillow: glyphs whose box reaches
    outside their cell (Pillow keeps them whole) or that are not outlines rendered to 8-bit grey.

    The loop only gathers each bitmap's bytes and where they go; bitmaps of the same shape and
    place are then copied into their cells together (a NumPy call per glyph would double the time).
    """
    face = freetype.Face(str(path))
    face.set_pixel_sizes(0, size)  # as ImageFont.truetype(path, size)
    f = face._FT_Face
    slot_ptr = f.contents.glyph
    slot = slot_ptr.contents
    metrics, bitmap = slot.metrics, slot.bitmap
    cbox = FT_BBox()
    cbox_ref, outline_ref = ctypes.byref(cbox), ctypes.byref(slot.outline)
    left_over = []
    placed: dict[tuple[int, ...], tuple[list[int], list[bytes]]] = {}
    for k, ch in enumerate(chars):
        if FT_Load_Glyph(f, FT_Get_Char_Index(f, ord(ch)), FT_LOAD_DEFAULT) or slot.format != FT_GLYPH_FORMAT_OUTLINE:
            left_over.append(k)
            continue
        advance = (metrics.horiAdvance + 32) >> 6
        FT_Outline_Get_CBox(outline_ref, cbox_ref)
        if FT_Render_Glyph(slot_ptr, FT_RENDER_MODE_NORMAL):  # as Pillow's FT_LOAD_RENDER
            left_over.append(k)
            continue
        rows, width, pitch = bitmap.rows, bitmap.width, bitmap.pitch
        if rows == 0 or width == 0:
            continue  # no ink: a white cell
        if bitmap.pixel_mode != FT_PIXEL_MODE_GRAY or pitch <= 0:
            left_over.append(k)
            continue
        # Pillow's mask: the pixel box of the outline and of the pen line 0..advance (bounding_box_and_anchors)
        x_min, x_max = min(0, cbox.xMin >> 6), max(0, advance, (cbox.xMax + 63) >> 6)
        y_min, y_max = min(0, cbox.yMin >> 6), max(0, (cbox.yMax + 63) >> 6)
        w, h = x_max - x_min, y_max - y_min
        # the bitmap's corner in the mask (font_render), then the mask's in the cell (glyphs._pillow_cells)
        left, top = slot.bitmap_left, slot.bitmap_top
        mx, my = left - min(0, left), max(0, top) - top
        cx, cy = (size - w) // 2 + x_min + mx, (size - h) // 2 + my
        c0, c1 = max(0, -mx), min(width, w - mx)  # columns inside the mask
        r0, r1 = max(0, -my, -cy), min(rows, h - my, size - cy)  # rows inside the mask and the cell
        if c0 >= c1 or r0 >= r1:
            continue
        if cx + c0 < 0 or cx + c1 > size:
            left_over.append(k)  # ink may reach a neighbouring cell
            continue
        ks, buffers = placed.setdefault((rows, pitch, r0, r1, c0, c1, cy, cx), ([], []))
        ks.append(k)
        buffers.append(ctypes.string_at(bitmap.buffer, rows * pitch))
    cells = np.full((len(chars), size, size), 255, dtype=np.uint8)
    for (rows, pitch, r0, r1, c0, c1, cy, cx), (ks, buffers) in placed.items():
        pixels = np.frombuffer(b"".join(buffers), dtype=np.uint8).reshape(len(ks), rows, pitch)
        cells[ks, cy + r0 : cy + r1, cx + c0 : cx + c1] = 255 - pixels[:, r0:r1, c0:c1]
    return cells, left_over
