"""`bvvtok show`: a picture of what a substrate holds for some tokens.

One row per token: its text and id, the glyph as drawn, the augmented 1-bit
picture, its code as a grid (bit k at row k // size, column k % size, in
polar-snake order, so the grid fills from the centre outwards), and its nearest
neighbours by cosine in the substrate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError, option
from bvvtok.files import MANIFEST_NAME, atomic_file, check_output_file, check_png_path
from bvvtok.inputs import check_input_folder
from bvvtok.manifest import read_manifest
from bvvtok.substrate.folder import CODES, EMBEDDINGS
from bvvtok.substrate.fonts import resolve_chain
from bvvtok.substrate.glyphs import fonts_per_char, open_pillow_fonts
from bvvtok.substrate.recipe import GLYPH_SIZES, augmented_picture, draw_token, get_recipe
from bvvtok.substrate.token_text import token_texts
from bvvtok.vocab.tokenizer_files import load_tokenizer

SCALE = 3  # screen pixels per glyph pixel
NEIGHBOURS = 5
T = TypeVar("T")


@dataclass
class Row:
    token_id: int
    text: str
    glyph: Image.Image
    picture: Image.Image
    grid: Image.Image
    neighbours: list[tuple[int, str, float]]


def find_token(query: str, texts: list[str], vocab: dict[str, int]) -> int:
    """A token by its text (or raw vocabulary string), or `#ID`."""
    if query in texts:
        return texts.index(query)
    if query in vocab:
        return vocab[query]
    if re.fullmatch(r"#\d+", query) and int(query[1:]) < len(texts):
        return int(query[1:])
    raise BvvtokError(f"token {query!r} is not in the vocabulary; give its exact text or #ID")


def _raise_damaged(path: Path, detail: str) -> NoReturn:
    raise BvvtokError(
        f"cannot use {path} ({detail}); the substrate is damaged: run `bvvtok verify {path.parent}` and rebuild it"
    ) from None


def _read(path: Path, reader: Callable[[Path], T]) -> T:
    """`reader(path)`, with a missing or unreadable file turned into one line that says the substrate is damaged."""
    if not path.is_file():
        _raise_damaged(path, "no such file")
    try:
        return reader(path)
    except Exception as e:  # safetensors and numpy raise their own error types, by what the damage is
        _raise_damaged(path, str(e))


def read_embeddings(folder: Path, tokens: int) -> np.ndarray:
    """The substrate's float32 [tokens, n_embed] rows."""
    path = folder / EMBEDDINGS
    weight = _read(path, lambda p: load_file(str(p)).get("weight"))
    if weight is None or weight.dtype != np.float32 or weight.ndim != 2 or len(weight) != tokens:
        _raise_damaged(path, f"expected a float32 tensor 'weight' of {tokens:,} rows")
    return weight


def read_code_bits(folder: Path, tokens: int, size: int) -> np.ndarray:
    """The 0/1 codes [tokens, size * size] of codes.npy (packed bits, uint8)."""
    path = folder / CODES
    packed = _read(path, lambda p: np.load(p, allow_pickle=False))
    expected = (tokens, (size * size + 7) // 8)
    if packed.dtype != np.uint8 or packed.shape != expected:
        _raise_damaged(path, f"{packed.dtype} {list(packed.shape)}, expected uint8 {list(expected)}")
    return np.unpackbits(packed, axis=1)[:, : size * size]


def glyph_manifest(folder: Path) -> dict[str, Any]:
    """The manifest's substrate section, if it describes a glyph substrate `show` can draw."""
    check_input_folder(folder, "pass a substrate folder written by `bvvtok embed`")
    manifest = read_manifest(folder).get("substrate")
    if not isinstance(manifest, dict) or manifest.get("method") != "glyph":
        raise BvvtokError(f"{folder} holds no glyph substrate; build one with `bvvtok embed {folder}`")
    if manifest.get("glyph_size") not in GLYPH_SIZES:
        sizes = " or ".join(map(str, GLYPH_SIZES))
        raise BvvtokError(
            f"{folder / MANIFEST_NAME} gives no glyph_size of {sizes}; rebuild the substrate with `bvvtok embed`"
        )
    return manifest


def substrate_rows(folder: Path, queries: list[str]) -> list[Row]:
    manifest = glyph_manifest(folder)
    tokenizer = load_tokenizer(folder)
    texts = token_texts(tokenizer).texts
    size = manifest["glyph_size"]
    recipe = get_recipe(manifest.get("recipe"))
    embeddings = read_embeddings(folder, len(texts))
    bits = read_code_bits(folder, len(texts), size)
    chain = resolve_chain()
    pillow_fonts = open_pillow_fonts([f.path for f in chain], size)
    rows = []
    for query in queries:
        i = find_token(query, texts, tokenizer.get_vocab())
        text = texts[i]
        fonts = fonts_per_char(text, chain, pillow_fonts)
        grid = bits[i].astype(bool)
        similarity = embeddings @ embeddings[i]
        similarity[i] = -np.inf
        nearest = np.argsort(-similarity)[:NEIGHBOURS]
        rows.append(
            Row(
                i,
                text,
                draw_token(text, fonts, size) if text else Image.new("L", (size, size), 255),
                augmented_picture(text, fonts, recipe, size).convert("L") if text else Image.new("L", (size, size), 255),
                Image.fromarray(np.where(grid.reshape(size, size), 0, 255).astype(np.uint8)),
                [(int(j), texts[j], float(similarity[j])) for j in nearest],
            )
        )
    return rows


def draw_sheet(rows: list[Row], label_font: ImageFont.FreeTypeFont) -> Image.Image:
    size = rows[0].picture.height
    cell = size * SCALE
    gap, line = 16, 18
    widths = [200, max(r.glyph.width for r in rows) * SCALE, max(cell, 130), max(cell, 170), 420]
    columns = [gap + sum(widths[:k]) + k * gap for k in range(len(widths))]
    sheet = Image.new("L", (columns[-1] + widths[-1], 36 + (cell + gap) * len(rows)), 255)
    draw = ImageDraw.Draw(sheet)
    # left-to-right base direction, so a right-to-left token does not reorder its label
    text_options = {"font": label_font, "fill": 0, **({"direction": "ltr"} if features.check("raqm") else {})}
    heads = ["token", "glyph", "1-bit picture", "code (snake order)", f"nearest {NEIGHBOURS} by cosine"]
    for x, head in zip(columns, heads):
        draw.text((x, 8), head, **text_options)
    for n, row in enumerate(rows):
        y = 36 + n * (cell + gap)
        draw.text((columns[0], y), f"#{row.token_id}", **text_options)
        draw.text((columns[0], y + line), repr(row.text)[:22], **text_options)
        for x, image in zip(columns[1:4], (row.glyph, row.picture, row.grid)):
            sheet.paste(image.resize((image.width * SCALE, image.height * SCALE), Image.NEAREST), (x, y))
        for k, (j, text, score) in enumerate(row.neighbours[: cell // line]):
            draw.text((columns[4], y + k * line), f"{score:+.3f}  #{j} {text!r}"[:44], **text_options)
    return sheet


def show(folder: Path, queries: list[str], out: Path, force: bool = False) -> Path:
    check_png_path(Path(out))
    if not queries:
        raise BvvtokError(f"name at least one {option('queries', cli='TOKEN')} to show: a token's text or #ID, e.g. A or #42")
    check_output_file(Path(out), force, [folder])
    rows = substrate_rows(Path(folder), queries)
    label_font = ImageFont.truetype(str(resolve_chain()[0].path), 16)
    with atomic_file(Path(out), force, [folder]) as tmp:
        draw_sheet(rows, label_font).save(tmp, format="PNG")
    return Path(out)
