"""Glyph picture codes for a whole vocabulary at once, bit-identical to `recipe.reference_code`.

The recipe re-seeds its random generators before every token, so the
augmentation is the same for every token of the same class (easy / complex)
and canvas width: one rotation angle, one shift, one noise mask. Tokens are
therefore processed in batches of equal (class, width):

- canvases are composited from glyphs rendered once per character;
- rotation, shift and the multi-character resize are fixed pixel maps, taken
  from Pillow itself by transforming an image of pixel indices (mode "I",
  nearest); without blur, all steps fold into one gather;
- the Gaussian blur is Pillow's, run on whole batches: its horizontal passes on
  the canvases stacked vertically, its vertical passes on them side by side, so
  no canvas sees another's pixels, exactly as when blurred alone;
- batches run in threads (Pillow and NumPy release the GIL).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from bvvtok.substrate.fonts import Font, font_for
from bvvtok.substrate.glyphs import Glyph, place, render_glyphs_cached
from bvvtok.substrate.recipe import BLUR_RADIUS, SEED, THRESHOLD, Augmentation, GlyphRecipe, is_easy, snake_order

BATCH = 2048  # tokens per batch: bounds memory for long tokens


@dataclass
class GlyphCodes:
    bits: np.ndarray  # uint8 [V, size*size] of 0/1, polar-snake order
    size: int
    blank_tokens: list[int] = field(default_factory=list)  # ids whose picture has no ink at all
    missing_chars: list[str] = field(default_factory=list)  # characters no font of the chain has
    unrenderable_chars: list[str] = field(default_factory=list)  # characters Pillow could not lay out


@lru_cache(maxsize=None)
def _draws(aug: Augmentation, size: int, width: int) -> tuple[float, int, int, np.ndarray]:
    """The augmentation's random draws, as the recipe makes them after seeding with 42."""
    rng = random.Random(SEED)
    angle = rng.uniform(-aug.rotate, aug.rotate)
    dx, dy = rng.randint(-aug.shift, aug.shift), rng.randint(-aug.shift, aug.shift)
    noise = np.random.RandomState(SEED).rand(size, width) < aug.noise
    return angle, dx, dy, noise


@lru_cache(maxsize=None)
def _rotation_map(angle: float, size: int, width: int) -> np.ndarray:
    """For each output pixel, 1 + the source pixel index under Pillow's rotate, or 0 for the fill."""
    index = Image.fromarray((np.arange(size * width, dtype=np.int32) + 1).reshape(size, width), "I")
    return np.asarray(index.rotate(angle, fillcolor=0), dtype=np.int64).reshape(-1)


@lru_cache(maxsize=None)
def _resize_map(size: int, width: int) -> np.ndarray:
    """Source pixel of each output pixel when Pillow resizes a 1-bit width x size image to size x size."""
    index = Image.fromarray(np.arange(size * width, dtype=np.int32).reshape(size, width), "I")
    return np.asarray(index.resize((size, size), Image.NEAREST), dtype=np.int64).reshape(-1)


@lru_cache(maxsize=None)
def _maps(aug: Augmentation, size: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed pixel maps of one (augmentation, width).

    before: for each pixel after rotate + shift, its source pixel in the canvas, -1 where white fill;
    noise: the pixels (after the shift) the noise turns black;
    after: for each output bit, its pixel in the thresholded picture (resize, then polar snake).
    """
    angle, dx, dy, noise = _draws(aug, size, width)
    rotated = (_rotation_map(angle, size, width) - 1).reshape(size, width)  # rotate(0) is Pillow's plain copy
    before = np.full((size, width), -1, dtype=np.int64)
    before[max(dy, 0) : size + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = rotated[
        max(-dy, 0) : size - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    after = _resize_map(size, width)[snake_order(size)] if width > size else snake_order(size)
    return before.reshape(-1), noise.reshape(-1), after


def _composite(tokens: Sequence[str], row: dict[str, int], cells: np.ndarray, overflow: dict[str, Glyph]) -> np.ndarray:
    """The unaugmented canvases [N, size, size * len] of equal-length tokens.

    Cells sit side by side; a token holding a glyph that reaches outside its
    cell is drawn glyph by glyph instead, in order, as `draw_token` does.
    """
    size = cells.shape[1]
    length = len(tokens[0])
    index = np.array([[row[ch] for ch in t] for t in tokens], dtype=np.int64)
    canvas = cells[index].transpose(0, 2, 1, 3).reshape(len(tokens), size, size * length)
    if length > 1 and overflow:
        for n, token in enumerate(tokens):
            if any(ch in overflow for ch in token):
                canvas[n] = 255
                for i, ch in enumerate(token):
                    # a cell drawn on white gives back its glyph's mask exactly: 255 - cell
                    glyph = overflow.get(ch) or Glyph(0, 0, 255 - cells[row[ch]])
                    place(canvas[n], glyph, size * i)
    return canvas


def _blur_rows(canvas: np.ndarray) -> np.ndarray:
    """The horizontal passes of Pillow's Gaussian blur, each canvas's rows on their own (stacked vertically)."""
    n, height, width = canvas.shape
    rows = Image.fromarray(canvas.reshape(n * height, width)).filter(ImageFilter.GaussianBlur((BLUR_RADIUS, 0)))
    return np.asarray(rows).reshape(n, height, width)


def _blur_columns(canvas: np.ndarray) -> np.ndarray:
    """The vertical passes, each canvas's columns on their own (side by side)."""
    n, height, width = canvas.shape
    side_by_side = np.ascontiguousarray(canvas.transpose(1, 0, 2)).reshape(height, n * width)
    cols = Image.fromarray(side_by_side).filter(ImageFilter.GaussianBlur((0, BLUR_RADIUS)))
    return np.asarray(cols).reshape(height, n, width).transpose(1, 0, 2)


def _augment(canvas: np.ndarray, aug: Augmentation, size: int) -> np.ndarray:
    """Rotate, shift, noise, (blur), threshold, resize, snake: [N, size, W] canvases -> [N, size*size] bits.

    Without blur every step is a fixed pixel map or a fixed mask, so they fold
    into one gather; the blur is the only step that mixes pixels.
    """
    n, _, width = canvas.shape
    before, noise, after = _maps(aug, size, width)
    flat = canvas.reshape(n, -1)
    if not aug.blur:
        source = before[after]
        bits = flat[:, np.maximum(source, 0)] < THRESHOLD
        bits[:, source < 0] = False  # the white fill
        bits[:, noise[after]] = True
        return bits.astype(np.uint8)
    moved = flat[:, np.maximum(before, 0)]
    moved[:, before < 0] = 255
    moved[:, noise] = 0
    rows = _blur_rows(moved.reshape(n, size, width))
    # The vertical passes mix nothing across columns: run them only on the columns the resize keeps.
    kept, column = np.unique(after % width, return_inverse=True)
    blurred = _blur_columns(rows[:, :, kept])
    picked = (after // width) * len(kept) + column
    return (blurred.reshape(n, -1)[:, picked] < THRESHOLD).astype(np.uint8)


def glyph_codes(
    tokens: Sequence[str],
    chain: Sequence[Font],
    recipe: GlyphRecipe,
    size: int = 32,
    workers: int = 1,
    on_render: Callable[[int], None] | None = None,
    on_code: Callable[[int], None] | None = None,
) -> GlyphCodes:
    """The codes of every token, in order; `on_render`/`on_code` report progress in characters/tokens."""
    chars = sorted({ch for t in tokens for ch in t})
    owner = {ch: font_for(ch, chain) for ch in chars}
    drawable = [(ch, i) for ch, i in owner.items() if i is not None]
    if on_render and len(drawable) < len(chars):
        on_render(len(chars) - len(drawable))  # characters no font has: nothing to render
    rendered = render_glyphs_cached(drawable, chain, size, workers, on_render)
    # row 0 is a blank cell, for characters no font has
    cells = np.concatenate([np.full((1, size, size), 255, dtype=np.uint8), rendered.cells])
    row = dict.fromkeys(chars, 0)
    row.update({ch: k + 1 for k, (ch, _) in enumerate(drawable)})
    overflow = {drawable[k][0]: g for k, g in rendered.overflow.items()}

    bits = np.zeros((len(tokens), size * size), dtype=np.uint8)
    groups: dict[tuple[Augmentation, int], list[int]] = {}
    for token_id, token in enumerate(tokens):
        groups.setdefault((recipe.easy if is_easy(token) else recipe.complex, len(token)), []).append(token_id)
    batches = [
        (aug, ids[start : start + BATCH])
        for (aug, length), ids in groups.items()
        if length > 0  # an empty token has nothing to draw: all zeros
        for start in range(0, len(ids), BATCH)
    ]

    def code(batch: tuple[Augmentation, list[int]]) -> list[int]:
        aug, ids = batch
        bits[ids] = _augment(_composite([tokens[i] for i in ids], row, cells, overflow), aug, size)
        return ids

    empty = sum(len(ids) for (_, length), ids in groups.items() if length == 0)
    if on_code and empty:
        on_code(empty)  # ids without a token: all-zero codes, nothing to compute
    # Pillow's blur and NumPy's gathers release the GIL: batches run side by side in threads
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for ids in pool.map(code, batches):
            if on_code:
                on_code(len(ids))
    return GlyphCodes(
        bits,
        size,
        blank_tokens=np.flatnonzero(~bits.any(axis=1)).tolist(),
        missing_chars=[ch for ch, i in owner.items() if i is None],
        unrenderable_chars=sorted(drawable[k][0] for k in rendered.failed),
    )
