"""The glyph recipe (the published recipe): its parameters, and the straightforward per-token version.

`reference_code` does what the published builder notebooks did, one token at a
time with Pillow, random and NumPy's global generator. It is slow (tens of
milliseconds per multi-character token) and exists as the specification that
the fast batch path in `glyph_codes` is tested and benchmarked against.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bvvtok.errors import BvvtokError

SEED = 42
BLUR_RADIUS = 0.5
THRESHOLD = 128  # below is black


@dataclass(frozen=True)
class Augmentation:
    """Rotation range (degrees), shift range (pixels), noise probability, and whether to blur."""

    rotate: float
    shift: int
    noise: float
    blur: bool


@dataclass(frozen=True)
class GlyphRecipe:
    name: str
    easy: Augmentation
    complex: Augmentation


RECIPES: dict[str, GlyphRecipe] = {
    "bvv241-2-3": GlyphRecipe("bvv241-2-3", Augmentation(4, 2, 0.01, True), Augmentation(0, 0, 0.001, False)),
    "bvv241-max": GlyphRecipe("bvv241-max", Augmentation(7, 3, 0.03, True), Augmentation(0, 0, 0.001, False)),
}
PRESET_RECIPES = {"65k": "bvv241-2-3", "131k": "bvv241-max"}
GLYPH_SIZES = (32, 64)

# Latin (with Latin-1 and Extended A/B), Greek/Coptic, Cyrillic + Supplement, Armenian: inclusive ranges.
EASY_RANGES = ((0x0000, 0x024F), (0x0370, 0x03FF), (0x0400, 0x058F))


def get_recipe(name: str) -> GlyphRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise BvvtokError(f"unknown glyph recipe {name!r}; choose one of {', '.join(RECIPES)}") from None


def easy_code_points(code_points: Sequence[int] | np.ndarray) -> np.ndarray:
    """Whether each code point is of an easy script (bool per code point)."""
    cps = np.asarray(code_points, dtype=np.int64)
    return np.logical_or.reduce([(cps >= first) & (cps <= last) for first, last in EASY_RANGES])


def is_easy(token: str) -> bool:
    """Whether every character is of an easy script (so is the empty token)."""
    return bool(easy_code_points([ord(ch) for ch in token]).all())


def augmentation_for(recipe: GlyphRecipe, token: str) -> Augmentation:
    return recipe.easy if is_easy(token) else recipe.complex


@lru_cache(maxsize=None)
def snake_order(size: int) -> np.ndarray:
    """Flat indices (y * size + x) of the pixels in polar-snake order: by (r, theta, x, y) around the centre."""
    c = size // 2
    coords = sorted(
        ((x, y) for x in range(size) for y in range(size)),
        key=lambda p: (math.hypot(p[0] - c, p[1] - c), math.atan2(p[1] - c, p[0] - c), p[0], p[1]),
    )
    return np.array([y * size + x for x, y in coords], dtype=np.int64)


def draw_token(token: str, fonts: Sequence[ImageFont.FreeTypeFont | None], size: int = 32) -> Image.Image:
    """The unaugmented canvas: each character centred in its own size x size cell.

    `fonts[i]` is the font for character i, None where no font can draw it
    (left blank). A character Pillow fails to lay out is left blank too.
    """
    canvas = Image.new("L", (size * len(token), size), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (ch, font) in enumerate(zip(token, fonts)):
        if font is None:
            continue
        try:
            left, top, right, bottom = font.getbbox(ch)
            draw.text((size * i + (size - (right - left)) // 2, (size - (bottom - top)) // 2 - top), ch, font=font, fill=0)
        except (OSError, RuntimeError, ValueError):  # e.g. raqm cannot lay out a paragraph separator
            continue
    return canvas


def augmented_picture(token: str, fonts: Sequence[ImageFont.FreeTypeFont | None], recipe: GlyphRecipe, size: int = 32) -> Image.Image:
    """The token's final 1-bit size x size picture, exactly as the notebooks made it."""
    aug = augmentation_for(recipe, token)
    img = draw_token(token, fonts, size)
    width = img.width
    random.seed(SEED)
    np.random.seed(SEED)
    angle = random.uniform(-aug.rotate, aug.rotate)
    img = img.rotate(angle, fillcolor=255)
    dx, dy = random.randint(-aug.shift, aug.shift), random.randint(-aug.shift, aug.shift)
    shifted = Image.new("L", (width, size), 255)
    shifted.paste(img, (dx, dy))
    pixels = np.array(shifted)
    pixels[np.random.rand(size, width) < aug.noise] = 0
    img = Image.fromarray(pixels)
    if aug.blur:
        img = img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    img = img.point(lambda p: 0 if p < THRESHOLD else 255, "1")
    if width > size:
        img = img.resize((size, size), Image.BILINEAR)  # Pillow resizes mode "1" nearest-neighbour anyway
    return img


def reference_code(token: str, fonts: Sequence[ImageFont.FreeTypeFont | None], recipe: GlyphRecipe, size: int = 32) -> np.ndarray:
    """The token's bits (uint8 0/1, length size*size, polar-snake order; black = 1)."""
    black = ~np.array(augmented_picture(token, fonts, recipe, size), dtype=bool)
    return black.reshape(-1)[snake_order(size)].astype(np.uint8)
