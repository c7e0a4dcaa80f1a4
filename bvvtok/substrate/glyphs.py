"""Rendering each distinct character once, exactly as `ImageDraw.text` would place it.

A character's picture depends only on the character (it is centred in its own
cell), so a vocabulary of 65k tokens needs each of its ~64k distinct characters
rendered once, not once per token. Rendering is FreeType work inside Pillow
(~40 us per Unifont glyph), spread over worker processes.

Each character becomes its cell: a size x size picture, black ink on white.
A glyph whose ink reaches outside its cell (so it would touch a neighbour in
a multi-character token) is also kept whole as a `Glyph`, for exact compositing.

Rendered cells are cached on disk (`cache_dir()`), keyed by the fonts' sha256,
the size and the versions of Pillow, FreeType and raqm, so a second build with
the same fonts renders only characters it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file, cache_dir
from bvvtok.substrate.fonts import Font, font_for

CHUNK = 4096


@dataclass
class Glyph:
    """Where a character's ink goes relative to its cell: mask (uint8, 255 = ink) with its top-left corner."""

    x: int
    y: int
    mask: np.ndarray


@dataclass
class Rendered:
    """Cells [n, size, size] in the order asked; glyphs that overflow their cell; indices Pillow could not lay out.

    black_and_white: every pixel of the cells and overflowing glyphs is 0 or 255 (a bitmap font such
    as Unifont), known where they are drawn, so no one scans the whole [n, size, size] again. It picks
    a blur that is exact only for such pictures, so it is False unless the drawing says so.
    """

    cells: np.ndarray
    overflow: dict[int, Glyph] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    black_and_white: bool = False


def is_black_and_white(pixels: np.ndarray) -> bool:
    """True when every pixel is 0 or 255 (a bitmap font such as Unifont); np.isin is ~50x slower here."""
    return bool(((pixels == 0) | (pixels == 255)).all())


def open_pillow_fonts(paths: Sequence[Path], size: int) -> list[ImageFont.FreeTypeFont]:
    return [ImageFont.truetype(str(p), size) for p in paths]


def fonts_per_char(
    token: str, chain: Sequence[Font], pillow_fonts: Sequence[ImageFont.FreeTypeFont]
) -> list[ImageFont.FreeTypeFont | None]:
    """The Pillow font that draws each character of `token`: the chain's first with a glyph, None if none has."""
    return [None if (k := font_for(ch, chain)) is None else pillow_fonts[k] for ch in token]


def ink(canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pillow's draw_bitmap of black ink through `mask` onto `canvas` (BLEND with its DIV255 rounding).

    On white it gives 255 - mask exactly, so a cell drawn on white gives back its mask.
    """
    t = canvas.astype(np.int32) * (255 - mask.astype(np.int32)) + 128
    return (((t >> 8) + t) >> 8).astype(np.uint8)


def place(canvas: np.ndarray, glyph: Glyph, x0: int) -> None:
    """Ink `glyph` onto a [height, width] canvas with its cell starting at column x0, clipped to the canvas."""
    height, width = canvas.shape
    x, y = x0 + glyph.x, glyph.y
    h, w = glyph.mask.shape
    top, left = max(0, -y), max(0, -x)
    bottom, right = min(h, height - y), min(w, width - x)
    if top < bottom and left < right:
        region = canvas[y + top : y + bottom, x + left : x + right]
        canvas[y + top : y + bottom, x + left : x + right] = ink(region, glyph.mask[top:bottom, left:right])


def _render_chunk(args: tuple[list[tuple[str, int]], list[str], int]) -> Rendered:
    """Draw each character into its own slot of one strip image, as `draw_token` draws it.

    A slot is three cells wide with the character's cell in the middle, so ink
    reaching outside the cell is caught; the strip is one cell high, which clips
    vertically exactly as a token canvas does. What `ImageDraw.text` does per
    character is done here directly: `getmask2`, then `draw_bitmap` at the
    centred position (`draw.text` would lay the text out a second time for its
    bounding box, which `getmask2` already gives).
    """
    items, paths, size = args
    fonts = open_pillow_fonts([Path(p) for p in paths], size)
    slot = 3 * size
    strip = Image.new("L", (slot * len(items), size), 255)
    draw = ImageDraw.Draw(strip)
    failed = []
    for k, (ch, font_index) in enumerate(items):
        try:
            mask, (left, _) = fonts[font_index].getmask2(ch, mode="L")
        except (OSError, RuntimeError, ValueError):  # e.g. raqm cannot lay out a paragraph separator
            failed.append(k)
            continue
        w, h = mask.size
        draw.draw.draw_bitmap((k * slot + size + (size - w) // 2 + left, (size - h) // 2), mask, 0)
    slots = np.asarray(strip).reshape(size, len(items), slot).transpose(1, 0, 2)
    cells = np.ascontiguousarray(slots[:, :, size : 2 * size])
    outside = (slots[:, :, :size] < 255).any(axis=(1, 2)) | (slots[:, :, 2 * size :] < 255).any(axis=(1, 2))
    overflow = {int(k): Glyph(-size, 0, 255 - slots[k]) for k in np.flatnonzero(outside)}
    return Rendered(cells, overflow, failed, is_black_and_white(slots))


def render_glyphs(
    items: Sequence[tuple[str, int]],
    font_paths: Sequence[Path],
    size: int,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> Rendered:
    """Render (character, font index) pairs into cells, in the same order."""
    paths = [str(p) for p in font_paths]
    chunks = [(list(items[i : i + CHUNK]), paths, size) for i in range(0, len(items), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        parts = map(_render_chunk, chunks)
        pool = None
    else:
        # fork: no re-import of the caller's __main__ (spawn would need a main guard in every user script)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        parts = pool.map(_render_chunk, chunks)
    cells, overflow, failed, black_and_white = [], {}, [], True
    try:
        for start, part in zip(range(0, len(items), CHUNK), parts):
            cells.append(part.cells)
            overflow.update({start + k: g for k, g in part.overflow.items()})
            failed += [start + k for k in part.failed]
            black_and_white &= part.black_and_white
            if on_done:
                on_done(len(part.cells))
    finally:
        if pool is not None:
            pool.shutdown()
    empty = np.zeros((0, size, size), dtype=np.uint8)
    return Rendered(np.concatenate(cells) if cells else empty, overflow, failed, black_and_white)


def _cache_file(font_hashes: Sequence[str], size: int) -> Path:
    """One cache file per font chain, size and renderer: anything that could change a pixel is in the key."""
    key = {
        "format": 3,  # 3: cells stored as bits promise black-and-white overflowing glyphs too
        "fonts": list(font_hashes),
        "size": size,
        "pillow": version("pillow"),
        "freetype": features.version("freetype2"),
        "raqm": features.version("raqm"),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "glyphs" / f"{digest}.npz"


def _load_cache(path: Path) -> tuple[dict[tuple[str, int], int], Rendered] | None:
    try:
        with np.load(path) as data:
            keys = list(zip(map(chr, data["codepoints"].tolist()), data["fonts"].tolist()))
            size = int(data["size"])
            overflow = {int(k): Glyph(-size, 0, slot) for k, slot in zip(data["overflow"], data["slots"])}
            black_and_white = "ink" in data  # stored as bits
            if black_and_white:
                count = len(data["codepoints"])
                cells = np.unpackbits(~data["ink"], count=count * size * size).reshape(count, size, size)
                cells *= 255  # in place: 0 where ink, 255 elsewhere
            else:
                cells = data["cells"]
            rendered = Rendered(cells, overflow, data["failed"].tolist(), black_and_white)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # absent or damaged: render again
        return None
    return {key: k for k, key in enumerate(keys)}, rendered


def _save_cache(path: Path, keys: list[tuple[str, int]], rendered: Rendered, size: int) -> None:
    overflow = sorted(rendered.overflow)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, force=True) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                codepoints=np.array([ord(ch) for ch, _ in keys], dtype=np.int32),
                fonts=np.array([i for _, i in keys], dtype=np.int16),
                # bitmap fonts such as Unifont give only 0/255: bits are 8x smaller
                **({"ink": np.packbits(rendered.cells == 0)} if rendered.black_and_white else {"cells": rendered.cells}),
                failed=np.array(rendered.failed, dtype=np.int64),
                overflow=np.array(overflow, dtype=np.int64),
                slots=np.stack([rendered.overflow[k].mask for k in overflow]) if overflow else np.zeros((0, size, 3 * size), np.uint8),
                size=size,
            )
    except (OSError, BvvtokError):  # a cache that cannot be written only costs time next run
        pass


def render_glyphs_cached(
    items: Sequence[tuple[str, int]],
    fonts: Sequence[Font],
    size: int,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> Rendered:
    """`render_glyphs`, reusing the characters an earlier run rendered with the same fonts and renderer."""
    path = _cache_file([f.sha256 for f in fonts], size)
    cached = _load_cache(path)
    known, store = cached if cached is not None else ({}, Rendered(np.zeros((0, size, size), np.uint8)))
    missing = [item for item in items if item not in known]
    if on_done and len(missing) < len(items):
        on_done(len(items) - len(missing))  # cached characters are done already
    if missing:
        fresh = render_glyphs(missing, [f.path for f in fonts], size, workers, on_done)
        offset = len(known)
        known.update({item: offset + k for k, item in enumerate(missing)})
        if offset == 0:
            store = fresh  # nothing was cached: no copy to make
        else:
            store = Rendered(
                np.concatenate([store.cells, fresh.cells]),
                {**store.overflow, **{offset + k: g for k, g in fresh.overflow.items()}},
                store.failed + [offset + k for k in fresh.failed],
                store.black_and_white and fresh.black_and_white,
            )
        _save_cache(path, list(known), store, size)
    rows = np.array([known[item] for item in items], dtype=np.int64)
    if np.array_equal(rows, np.arange(len(store.cells))):
        return store  # exactly what is stored, in its order (a first build, or a rebuild of the same vocabulary)
    position = {int(r): k for k, r in enumerate(rows)}
    return Rendered(
        store.cells[rows],
        {position[r]: g for r, g in store.overflow.items() if r in position},
        [position[r] for r in store.failed if r in position],
        store.black_and_white,
    )
