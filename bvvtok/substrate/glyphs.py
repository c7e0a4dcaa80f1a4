"""Rendering each distinct character once, exactly as `ImageDraw.text` would place it.

A character's picture depends only on the character (it is centred in its own
cell), so a vocabulary of 65k tokens needs each of its ~57k distinct characters
rendered once, not once per token, spread over worker processes: by FreeType
directly where `plain_glyphs` has proof that this gives Pillow's picture
(~20 us a glyph), else by Pillow (~55-80 us).

Each character becomes its cell: a size x size picture, black ink on white.
A glyph whose ink reaches outside its cell (so it would touch a neighbour in
a multi-character token) is also kept whole as a `Glyph`, for exact compositing.

Rendered cells are cached on disk (`cache_dir()`), keyed by the fonts' sha256,
the size and the versions of the libraries that draw, so a second build with
the same fonts renders only characters it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import multiprocessing
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file, cache_dir
from bvvtok.substrate.fonts import Font, font_for
from bvvtok.substrate.plain_glyphs import draw_plain, in_ranges, plain_ranges, renderer_versions

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


def _pillow_cells(items: Sequence[tuple[str, int]], fonts: Sequence[ImageFont.FreeTypeFont], size: int) -> Rendered:
    """Draw each character into its own slot of one strip image, as `draw_token` draws it.

    A slot is three cells wide with the character's cell in the middle, so ink
    reaching outside the cell is caught; the strip is one cell high, which clips
    vertically exactly as a token canvas does. What `ImageDraw.text` does per
    character is done here directly: `getmask2`, then `draw_bitmap` at the
    centred position (`draw.text` would lay the text out a second time for its
    bounding box, which `getmask2` already gives).
    """
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


_shared_cells: np.ndarray | None = None  # in a forked render worker: the parent's output, shared with it


def _share_cells(cells: np.ndarray) -> None:
    """Pool initializer: a forked worker writes its cells straight into the parent's (shared) array."""
    global _shared_cells
    _shared_cells = cells


def _render_chunk(args: tuple[list[tuple[str, int, bool]], list[str], int, int]) -> Rendered:
    """A render task: `_draw_chunk` of the items that start at row `start` of the output. In a
    worker that shares the output, the cells go there and the result carries none."""
    items, paths, size, start = args
    rendered = _draw_chunk(items, paths, size)
    if _shared_cells is None:
        return rendered
    _shared_cells[start : start + len(items)] = rendered.cells
    rendered.cells = rendered.cells[:0]
    return rendered


def _draw_chunk(items: list[tuple[str, int, bool]], paths: list[str], size: int) -> Rendered:
    """(character, font index, direct) items into cells: FreeType straight for the direct ones
    (`plain_glyphs`, proven identical), Pillow for the rest and for what the direct path leaves."""
    cells = np.empty((len(items), size, size), dtype=np.uint8)
    black_and_white = True
    by_pillow = [k for k, (_, _, direct) in enumerate(items) if not direct]
    for font_index, path in enumerate(paths):
        direct = [k for k, (_, i, d) in enumerate(items) if d and i == font_index]
        if direct:
            drawn, left_over = draw_plain([items[k][0] for k in direct], Path(path), size)
            cells[direct] = drawn
            black_and_white &= is_black_and_white(drawn)
            by_pillow += [direct[j] for j in left_over]
    if not by_pillow:
        return Rendered(cells, black_and_white=black_and_white)
    by_pillow.sort()
    pillow = _pillow_cells([items[k][:2] for k in by_pillow], open_pillow_fonts([Path(p) for p in paths], size), size)
    cells[by_pillow] = pillow.cells
    overflow = {by_pillow[j]: g for j, g in pillow.overflow.items()}
    return Rendered(cells, overflow, [by_pillow[j] for j in pillow.failed], black_and_white and pillow.black_and_white)


def render_glyphs(
    items: Sequence[tuple[str, int]],
    fonts: Sequence[Font],
    size: int,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
    direct: bool = True,
) -> Rendered:
    """Render (character, font index) pairs into cells, in the same order.

    With `direct`, characters that `plain_glyphs.TABLE` proves identical
    for their font, size and this machine's libraries skip Pillow.
    """
    owner = np.array([i for _, i in items], dtype=np.int64)
    code_points = np.array([ord(ch) for ch, _ in items], dtype=np.int64)
    plain = np.zeros(len(items), dtype=bool)
    for font_index, font in enumerate(fonts):
        ranges = plain_ranges(font.sha256, size) if direct else None
        if ranges is not None:
            mine = owner == font_index
            plain[mine] = in_ranges(code_points[mine], ranges)
    flagged = [(ch, i, d) for (ch, i), d in zip(items, plain.tolist())]
    paths = [str(f.path) for f in fonts]
    chunks = [(flagged[i : i + CHUNK], paths, size, i) for i in range(0, len(items), CHUNK)]
    parallel = workers > 1 and len(chunks) > 1
    # fork: no re-import of the caller's __main__ (spawn would need a main guard in every user script)
    forked = parallel and "fork" in multiprocessing.get_all_start_methods()
    if forked:  # a shared map the forked workers write into: no cells through the pipe, no copy here
        shared = mmap.mmap(-1, max(1, len(items) * size * size))
        cells = np.frombuffer(shared, dtype=np.uint8, count=len(items) * size * size).reshape(len(items), size, size)
    else:
        cells = np.empty((len(items), size, size), dtype=np.uint8)
    rendered = Rendered(cells, black_and_white=True)

    def take(chunk: tuple, part: Rendered) -> None:
        start, count = chunk[3], len(chunk[0])
        if len(part.cells):
            rendered.cells[start : start + count] = part.cells
        rendered.overflow.update({start + j: g for j, g in part.overflow.items()})
        rendered.failed.extend(start + j for j in part.failed)
        rendered.black_and_white &= part.black_and_white
        if on_done:
            on_done(count)

    if not parallel:
        for chunk in chunks:
            take(chunk, _render_chunk(chunk))
        return rendered
    context = multiprocessing.get_context("fork" if forked else "spawn")
    share = {"initializer": _share_cells, "initargs": (cells,)} if forked else {}  # forked: passed, not pickled
    with ProcessPoolExecutor(workers, mp_context=context, **share) as pool:
        for chunk, part in zip(chunks, pool.map(_render_chunk, chunks)):
            take(chunk, part)
    return rendered


def prove_plain(font: Font, size: int, workers: int = 1) -> list[int]:
    """The font's code points whose direct cell (`plain_glyphs.draw_plain`) equals Pillow's, compared
    for every character the font maps: the proof `render_glyphs` relies on (ascending)."""
    chars = [chr(c) for c in sorted({c for c, _ in font.face.get_chars()})]
    pillow = render_glyphs([(ch, 0) for ch in chars], [font], size, workers, direct=False)
    direct, left_over = draw_plain(chars, font.path, size)
    same = (direct == pillow.cells).all(axis=(1, 2))
    same[[*left_over, *pillow.failed, *pillow.overflow]] = False
    return [ord(chars[k]) for k in np.flatnonzero(same)]


def _cache_file(font_hashes: Sequence[str], size: int) -> Path:
    """One cache file per font chain, size and renderer: anything that could change a pixel is in the key."""
    key = {
        "format": 4,  # 3: cells stored as bits promise black-and-white overflowing glyphs too; 4: white bits
        "fonts": list(font_hashes),
        "size": size,
        **renderer_versions(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "glyphs" / f"{digest}.npz"


def _load_cache(path: Path) -> tuple[dict[tuple[str, int], int], Rendered] | None:
    try:
        with np.load(path) as data:
            keys = list(zip(map(chr, data["codepoints"].tolist()), data["fonts"].tolist()))
            size = int(data["size"])
            overflow = {int(k): Glyph(-size, 0, slot) for k, slot in zip(data["overflow"], data["slots"])}
            black_and_white = "white" in data  # stored as bits
            if black_and_white:
                count = len(data["codepoints"])
                cells = np.unpackbits(data["white"], count=count * size * size).reshape(count, size, size)
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
        with atomic_file(path, force=True, part=True) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                codepoints=np.array([ord(ch) for ch, _ in keys], dtype=np.int32),
                fonts=np.array([i for _, i in keys], dtype=np.int16),
                # bitmap fonts such as Unifont give only 0/255: bits are 8x smaller (packed as is: no bool copy)
                **({"white": np.packbits(rendered.cells)} if rendered.black_and_white else {"cells": rendered.cells}),
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
        fresh = render_glyphs(missing, fonts, size, workers, on_done)
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
