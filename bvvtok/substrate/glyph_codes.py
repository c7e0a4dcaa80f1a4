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
  the canvases' rows stacked, its vertical passes on their columns stacked as
  rows, so no canvas sees another's pixels, exactly as when blurred alone, and
  only at the columns the resize keeps;
- on black-and-white canvases (bitmap fonts such as Unifont) the horizontal
  passes become a table lookup, taken from Pillow;
- batches run in threads (Pillow and NumPy release the GIL).

Single characters drawn without blur whose cell is 2x2 blocks (a bitmap font
at twice its pixel size) also come back as `GlyphCodes.factors`: their bits
repeat the pixels of a picture of half the side, which the PCA uses instead.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from bvvtok.substrate.fonts import Font, fonts_for
from bvvtok.substrate.glyphs import Glyph, place, render_glyphs_cached
from bvvtok.substrate.projection import Factor
from bvvtok.substrate.recipe import (
    BLUR_RADIUS,
    SEED,
    THRESHOLD,
    Augmentation,
    GlyphRecipe,
    easy_code_points,
    snake_order,
)

BATCH = 2048  # tokens per batch: bounds memory for long tokens
MIN_FACTOR_ROWS = 1024  # fewer tokens of one block alignment do not pay for their own lookup tables


Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _counter(progress: Progress | None, stage: str, total: int) -> Callable[[int], None] | None:
    """A callback that adds up the items done and reports the running count for one stage."""
    if progress is None:
        return None
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(stage, done, total)

    return step


@dataclass
class GlyphCodes:
    bits: np.ndarray  # uint8 [V, size*size] of 0/1, polar-snake order
    size: int
    blank_tokens: list[int] = field(default_factory=list)  # ids whose picture has no ink at all
    missing_chars: list[str] = field(default_factory=list)  # characters no font of the chain has
    unrenderable_chars: list[str] = field(default_factory=list)  # characters Pillow could not lay out
    factors: list[Factor] = field(default_factory=list)  # rows of `bits` that are 2x2 blocks: PCA does them narrow


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


def _composite(rows: np.ndarray, cells: np.ndarray, overflow: dict[int, Glyph]) -> np.ndarray:
    """The unaugmented canvases [N, size, size * L] of tokens of L characters, given as cell rows [N, L]
    (-1: a character no font has, left blank).

    Cells sit side by side; a token holding a glyph that reaches outside its
    cell (`overflow`, by cell row) is drawn glyph by glyph instead, in order,
    as `draw_token` does.
    """
    size = cells.shape[1]
    n, length = rows.shape
    glyphs = cells[np.maximum(rows, 0)]
    glyphs[rows < 0] = 255
    canvas = glyphs.transpose(0, 2, 1, 3).reshape(n, size, size * length)
    if length > 1 and overflow:
        for k in np.flatnonzero(np.isin(rows, list(overflow)).any(axis=1)):
            canvas[k] = 255
            for i, r in enumerate(rows[k].tolist()):
                if r >= 0:  # a cell drawn on white gives back its glyph's mask exactly: 255 - cell
                    place(canvas[k], overflow.get(r) or Glyph(0, 0, 255 - cells[r]), size * i)
    return canvas


def _blur_lines(lines: np.ndarray) -> np.ndarray:
    """The horizontal passes of Pillow's Gaussian blur on each line of [..., W] on its own (lines stacked)."""
    image = Image.fromarray(np.ascontiguousarray(lines).reshape(-1, lines.shape[-1]))
    return np.asarray(image.filter(ImageFilter.GaussianBlur((BLUR_RADIUS, 0)))).reshape(lines.shape)


def _blur_columns(canvas: np.ndarray) -> np.ndarray:
    """The vertical passes on each column of [N, H, K] on its own, returned as columns [N, K, H].

    Pillow blurs vertically by transposing, blurring rows and transposing
    back; handing it the columns as rows does the same work once.
    """
    return _blur_lines(canvas.transpose(0, 2, 1))


# A Gaussian of radius r < sqrt(2) (the recipe's is 0.5) is, in Pillow, three box passes of radius < 1:
# each pass mixes a pixel with its two neighbours only, so the three horizontal passes see the 7 pixels
# around it (a test checks the radius).
WINDOW = 7
GATHER_BITS = 0x0102040810204080  # (8 bytes of 0/1 as a little-endian uint64 * this) >> 56 = those bits, byte k -> bit k


@lru_cache(maxsize=None)
def _row_blur_table() -> np.ndarray:
    """Pillow's horizontal blur passes on black-and-white rows, as a flat table [7 * 128] of uint8.

    Entry q * 128 + p is the value at position q of a 7-pixel window whose
    black pixels are the bits of p (bit k: position k). Taken from Pillow
    itself, on rows of exactly 7 pixels, so a window clamped at a row's end
    (q != 3) meets that end as Pillow does.
    """
    black = (np.arange(128)[:, None] >> np.arange(WINDOW)) & 1
    rows = Image.fromarray(np.where(black, 0, 255).astype(np.uint8))
    return np.asarray(rows.filter(ImageFilter.GaussianBlur((BLUR_RADIUS, 0)))).T.reshape(-1).copy()


@lru_cache(maxsize=None)
def _window_maps(aug: Augmentation, size: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 7-pixel window of each (row, kept column), for the table lookup, padded to 8 pixels.

    source: [size * K * 8] canvas pixel of each window pixel (after rotate + shift), -1 for the white
    fill and for the padding; black: indices into source that the noise turns black;
    offset: [size * K] the table row (q * 128) of each value.
    """
    before, noise, after = _maps(aug, size, width)
    kept = np.unique(after % width)
    start = np.clip(kept - WINDOW // 2, 0, width - WINDOW)
    pixels = np.arange(size)[:, None, None] * width + start[None, :, None] + np.arange(8)
    padding = np.arange(8) == WINDOW
    pixels = np.minimum(pixels, size * width - 1)  # the padding's own index may run past the canvas
    source = np.where(padding, -1, before[pixels]).reshape(-1)
    black = np.flatnonzero(np.where(padding, False, noise[pixels]))
    offset = np.broadcast_to((kept - start) * 128, (size, len(kept))).reshape(-1)
    return source, black, offset


def _black_at(flat: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Whether each canvas pixel `source` is black: bool [N, len(source)]; source -1 reads white (the fill)."""
    padded = np.empty((flat.shape[0], flat.shape[1] + 1), dtype=bool)
    np.less(flat, THRESHOLD, out=padded[:, :-1])
    padded[:, -1] = False
    return np.take(padded, source, axis=1)  # several times faster than fancy indexing


def _augment(canvas: np.ndarray, aug: Augmentation, size: int, black_and_white: bool = False) -> np.ndarray:
    """Rotate, shift, noise, (blur), threshold, resize, snake: [N, size, W] canvases -> [N, size*size] bits.

    Without blur every step is a fixed pixel map or a fixed mask, so they fold
    into one gather; the blur is the only step that mixes pixels. Its vertical
    passes mix nothing across columns, so they run only on the columns the
    resize keeps; so do its horizontal passes when the canvases are black and
    white (then a table lookup).
    """
    n, _, width = canvas.shape
    before, noise, after = _maps(aug, size, width)
    flat = canvas.reshape(n, -1)
    if not aug.blur:
        bits = _black_at(flat, before[after])
        bits[:, noise[after]] = True
        return bits.view(np.uint8)
    kept, column = np.unique(after % width, return_inverse=True)
    if black_and_white:
        source, black, offset = _window_maps(aug, size, width)
        window = _black_at(flat, source)
        window[:, black] = True
        pattern = (window.view(np.uint64) * np.uint64(GATHER_BITS)) >> np.uint64(56)
        rows = np.take(_row_blur_table(), offset + pattern.astype(np.intp)).reshape(n, size, len(kept))
    else:
        moved = np.take(flat, np.maximum(before, 0), axis=1)
        moved[:, before < 0] = 255
        moved[:, noise] = 0
        rows = _blur_lines(moved.reshape(n, size, width))[:, :, kept]
    columns = _blur_columns(rows)
    picked = column * size + after // width
    return (np.take(columns.reshape(n, -1), picked, axis=1) < THRESHOLD).view(np.uint8)


def _block_alignment(cells: np.ndarray) -> np.ndarray:
    """For black-and-white cells [n, S, S], the offset (py * 2 + px) at which each is made of
    constant 2x2 blocks, -1 where none is: pixel (y, x) belongs to block ((y + py) // 2,
    (x + px) // 2). A bitmap font drawn at twice its pixel size (Unifont at 32 px) gives such cells."""
    size = cells.shape[1]
    rows = np.packbits(cells, axis=2).view(f">u{size // 8}")[:, :, 0]  # [n, S]: pixel x is bit S - 1 - x
    rows_fit = [(rows[:, p : size - 1 : 2] == rows[:, p + 1 : size : 2]).all(axis=1) for p in (0, 1)]
    # bit S - 2 - x of row ^ (row >> 1): pixels x and x + 1 differ in that row
    differ = np.bitwise_or.reduce(rows ^ (rows >> 1), axis=1)
    pairs = [sum(1 << (size - 2 - x) for x in range(p, size - 1, 2)) for p in (0, 1)]
    columns_fit = [(differ & np.array(mask, dtype=rows.dtype)) == 0 for mask in pairs]
    alignment = np.full(len(cells), -1, dtype=np.int64)
    for py, px in ((1, 1), (1, 0), (0, 1), (0, 0)):  # where several fit (a blank cell), the last wins
        alignment[rows_fit[py] & columns_fit[px]] = py * 2 + px
    return alignment


def _block_factors(
    batches: list[tuple[bool, np.ndarray]], starts: np.ndarray, rows: np.ndarray, cells: np.ndarray, recipe: GlyphRecipe
) -> list[Factor]:
    """Single-character tokens drawn without blur whose black-and-white cell is 2x2 blocks: each
    code bit is then one pixel of a (S/2 + 1)^2 picture (or the white fill, or noise), so their
    codes are a `Factor`, one per augmentation and block alignment."""
    size = cells.shape[1]
    side = size // 2 + 1
    zero, one = side * side, side * side + 1  # two more columns: always 0 (the fill), always 1 (noise)
    alignment = _block_alignment(cells)
    pixels = cells.reshape(len(cells), size * size)
    y, x = np.divmod(np.arange(size * size), size)
    factors = []
    for aug in dict.fromkeys((recipe.easy, recipe.complex)):
        if aug.blur:
            continue
        single = [
            ids
            for easy, ids in batches
            if (recipe.easy if easy else recipe.complex) == aug and starts[ids[0] + 1] - starts[ids[0]] == 1
        ]
        ids = np.sort(np.concatenate(single)) if single else np.zeros(0, dtype=np.int64)
        cell = rows[starts[ids]]
        before, noise, after = _maps(aug, size, size)
        source = before[after]
        for align in range(4):
            mine = np.flatnonzero((cell >= 0) & (alignment[np.maximum(cell, 0)] == align))
            if len(mine) < MIN_FACTOR_ROWS:
                continue
            block = (y + align // 2) // 2 * side + (x + align % 2) // 2  # each pixel's block
            columns = np.where(source >= 0, block[np.maximum(source, 0)], zero)
            columns[noise[after]] = one
            first = np.full(side * side, -1)  # a pixel of each block (its pixels agree); -1: none falls in it
            first[block[::-1]] = np.arange(size * size)[::-1]
            used = np.flatnonzero(first >= 0)
            small = np.zeros((len(mine), side * side + 2), dtype=np.uint8)
            small[:, one] = 1
            for start in range(0, len(mine), BATCH):  # a batch at a time: no [n, S*S] copy of the cells
                picked = np.take(pixels[cell[mine[start : start + BATCH]]], first[used], axis=1)
                small[start : start + len(picked), used] = picked < THRESHOLD
            factors.append(Factor(ids[mine], small, columns))
    return factors


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused. A build makes ~100k small tuples (none of them
    garbage), which would set off full collections over every object the process holds, torch's
    among them: about 0.1 s of a 65k build."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _characters(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All tokens' characters as code points, one after the other, and where each token starts
    (V + 1 offsets): the vocabulary as arrays, so no per-character Python runs over it."""
    starts = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)), out=starts[1:])
    # "surrogatepass": a Python string may hold lone surrogates; they pass through as code points
    flat = np.frombuffer("".join(tokens).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return flat.astype(np.int64), starts


def _batches(code_points: np.ndarray, starts: np.ndarray) -> list[tuple[bool, np.ndarray]]:
    """(easy, ids) of at most BATCH non-empty tokens of the same class and length, every such token once;
    longest tokens first: the slowest batches start early, not last beside an idle thread."""
    hard = np.zeros(len(code_points) + 1, dtype=np.int64)
    np.cumsum(~easy_code_points(code_points), out=hard[1:])
    easy = hard[starts[1:]] == hard[starts[:-1]]  # no character outside the easy scripts
    key = np.diff(starts) * 2 + easy
    order = np.argsort(key, kind="stable")  # ids ascending within each (length, class)
    keys, first = np.unique(key[order], return_index=True)
    ends = [*first[1:].tolist(), len(order)]
    return [
        (bool(k % 2), order[start : min(start + BATCH, end)])
        for k, begin, end in reversed(list(zip(keys.tolist(), first.tolist(), ends)))
        if k >= 2  # an empty token has nothing to draw: all zeros
        for start in range(begin, end, BATCH)
    ]


def glyph_codes(
    tokens: Sequence[str],
    chain: Sequence[Font],
    recipe: GlyphRecipe,
    size: int = 32,
    workers: int = 1,
    progress: Progress | None = None,
) -> GlyphCodes:
    """The codes of every token, in order; `progress` counts stage "render" in characters, "codes" in tokens."""
    with _collection_paused():
        return _glyph_codes(tokens, chain, recipe, size, workers, progress)


def _glyph_codes(
    tokens: Sequence[str],
    chain: Sequence[Font],
    recipe: GlyphRecipe,
    size: int,
    workers: int,
    progress: Progress | None,
) -> GlyphCodes:
    flat, starts = _characters(tokens)
    code_points, char_of = np.unique(flat, return_inverse=True)  # sorted distinct characters
    chars = [chr(c) for c in code_points.tolist()]
    owner = fonts_for(code_points, chain)
    drawable = np.flatnonzero(owner >= 0)
    on_render = _counter(progress, "render", len(chars))
    on_code = _counter(progress, "codes", len(tokens))
    if on_render and len(drawable) < len(chars):
        on_render(len(chars) - len(drawable))  # characters no font has: nothing to render
    items = [(chars[k], i) for k, i in zip(drawable.tolist(), owner[drawable].tolist())]
    rendered = render_glyphs_cached(items, chain, size, workers, on_render)
    # a blank cell when nothing was drawn, so that the gather in _composite has a row to read
    cells = rendered.cells if len(rendered.cells) else np.full((1, size, size), 255, dtype=np.uint8)
    row_of = np.full(len(chars), -1, dtype=np.intp)  # -1: no font has the character
    row_of[drawable] = np.arange(len(drawable))
    rows = row_of[char_of]  # the cell row of every character of every token

    bits = np.zeros((len(tokens), size * size), dtype=np.uint8)
    batches = _batches(flat, starts)

    def code(batch: tuple[bool, np.ndarray]) -> int:
        easy, ids = batch
        length = int(starts[ids[0] + 1] - starts[ids[0]])
        canvas = _composite(rows[starts[ids, None] + np.arange(length)], cells, rendered.overflow)
        bits[ids] = _augment(canvas, recipe.easy if easy else recipe.complex, size, rendered.black_and_white)
        return len(ids)

    empty = len(tokens) - sum(len(ids) for _, ids in batches)
    if on_code and empty:
        on_code(empty)  # ids without a token: all-zero codes, nothing to compute
    # Pillow's blur and NumPy's gathers release the GIL: batches run side by side in threads
    with ThreadPoolExecutor(max(1, workers)) as pool:
        # beside the batches: the factors need the cells, not the bits
        factors = None
        if rendered.black_and_white:
            factors = pool.submit(_block_factors, batches, starts, rows, cells, recipe)
        for count in pool.map(code, batches):
            if on_code:
                on_code(count)
    return GlyphCodes(
        bits,
        size,
        blank_tokens=np.flatnonzero(~bits.any(axis=1)).tolist(),
        missing_chars=[chars[k] for k in np.flatnonzero(owner < 0).tolist()],
        unrenderable_chars=sorted(items[k][0] for k in rendered.failed),
        factors=factors.result() if factors else [],
    )
