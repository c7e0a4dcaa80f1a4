"""`bvvtok embed --method glyph` as a library call: a tokenizer folder in, a substrate folder out.

    result = embed_glyph(Path("artifacts/vocab-65k"))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import features

from bvvtok import __version__
from bvvtok.errors import BvvtokError
from bvvtok.files import check_output_file
from bvvtok.manifest import read_manifest
from bvvtok.substrate.folder import check_replace, write_substrate
from bvvtok.substrate.fonts import resolve_chain
from bvvtok.substrate.glyph_codes import GlyphCodes, glyph_codes
from bvvtok.substrate.projection import frozen_embeddings
from bvvtok.substrate.recipe import GLYPH_SIZES, PRESET_RECIPES, get_recipe
from bvvtok.substrate.token_text import token_texts
from bvvtok.vocab.tokenizer_files import load_tokenizer

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class GlyphSubstrate:
    out: Path
    manifest: dict[str, Any]
    codes: GlyphCodes
    embeddings: np.ndarray


def default_recipe(vocab_dir: Path, vocab_size: int) -> str:
    """The recipe of the vocabulary's preset; for other tokenizers, by size (up to 65,536: bvv241-2-3)."""
    preset = read_manifest(vocab_dir).get("vocab", {}).get("preset")
    if preset in PRESET_RECIPES:
        return PRESET_RECIPES[preset]
    return PRESET_RECIPES["65k"] if vocab_size <= 65_536 else PRESET_RECIPES["131k"]


def embed_glyph(
    vocab_dir: Path,
    out: Path | None = None,
    recipe: str | None = None,
    glyph_size: int = 32,
    dim: int | None = None,
    fonts: Sequence[Path] = (),
    workers: int | None = None,
    force: bool = False,
    dump_text: Path | None = None,
    progress: Progress | None = None,
) -> GlyphSubstrate:
    vocab_dir = Path(vocab_dir)
    out = vocab_dir if out is None else Path(out)
    if glyph_size not in GLYPH_SIZES:
        raise BvvtokError(f"--glyph-size must be 32 or 64 (got {glyph_size})")
    bits_per_code = glyph_size * glyph_size
    dim = bits_per_code if dim is None else dim
    if not 1 <= dim <= bits_per_code:
        raise BvvtokError(f"--dim {dim} must be between 1 and the number of bits ({bits_per_code})")
    tokenizer = load_tokenizer(vocab_dir)
    texts = token_texts(tokenizer, vocab_dir / "tokenizer.json")
    recipe_obj = get_recipe(recipe or default_recipe(vocab_dir, len(texts.texts)))
    chain = resolve_chain(fonts)
    settings = {
        "method": "glyph",
        "recipe": recipe_obj.name,
        "glyph_size": glyph_size,
        "dim": dim,
        "fonts": [f.sha256 for f in chain],
    }
    check_replace(out, vocab_dir, settings, force)
    if dump_text is not None:
        check_output_file(Path(dump_text), force)

    def report(stage: str, total: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress(stage, done[0], total)

        return step

    tokens = texts.texts
    n_chars = len({ch for t in tokens for ch in t})
    codes = glyph_codes(
        tokens,
        chain,
        recipe_obj,
        glyph_size,
        workers or os.cpu_count() or 1,
        on_render=report("render", n_chars),
        on_code=report("codes", len(tokens)),
    )
    if progress:
        progress("pca", 0, 1)
    embeddings = frozen_embeddings(codes.bits, dim)
    if progress:
        progress("pca", 1, 1)
    substrate = {
        "bvvtok_version": __version__,
        "settings": settings,
        "method": "glyph",
        "recipe": recipe_obj.name,
        "glyph_size": glyph_size,
        "bits": bits_per_code,
        "dim": dim,
        "tokens": len(tokens),
        "fonts": [f.describe() for f in chain],
        "renderer": {
            "pillow": version("pillow"),
            "layout_engine": "raqm" if features.check("raqm") else "basic",
        },
        "pca": "scikit-learn PCA semantics via the covariance (eigh, float64), svd_flip sign convention; rows L2-normalised",
        "blank_glyphs": len(codes.blank_tokens),
        "missing_chars": {"count": len(codes.missing_chars), "first": codes.missing_chars[:20]},
        "unrenderable_chars": {"count": len(codes.unrenderable_chars), "first": codes.unrenderable_chars[:20]},
        "byte_level": texts.byte_level,
        "escaped_tokens": len(texts.escaped),
        "empty_ids": len(texts.empty_ids),
    }
    dump = (Path(dump_text), tokens) if dump_text is not None else None
    manifest = write_substrate(vocab_dir, out, embeddings, codes.bits, substrate, dump, force)
    return GlyphSubstrate(out, manifest, codes, embeddings)
