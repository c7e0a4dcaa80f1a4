"""`bvvtok embed` as library calls: a tokenizer folder in, a substrate folder out.

    result = embed_glyph(Path("artifacts/vocab-65k"))
    result = embed_bits(Path("artifacts/vocab-65k"), n_bits=64, seed=0, out=Path("artifacts/bits-64"))
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import features

from bvvtok import __version__
from bvvtok.errors import BvvtokError
from bvvtok.files import check_output_file
from bvvtok.manifest import read_manifest
from bvvtok.output import claim, real
from bvvtok.substrate.codebook import GENERATOR, Codebook, build_codebook
from bvvtok.substrate.folder import Fill, check_replace, write_substrate
from bvvtok.substrate.fonts import Font, resolve_chain
from bvvtok.substrate.glyph_codes import GlyphCodes, Progress, glyph_codes
from bvvtok.substrate.plain_glyphs import renderer_versions
from bvvtok.substrate.projection import Factor, principal_axes, project
from bvvtok.substrate.recipe import GLYPH_SIZES, PRESET_RECIPES, get_recipe
from bvvtok.substrate.token_text import TokenTexts, token_texts
from bvvtok.vocab.tokenizer_files import load_tokenizer

DEFAULT_D_MODEL = 1024  # the published models'
PCA_NOTE = "scikit-learn PCA semantics via the covariance (eigh, float64), svd_flip sign convention; rows L2-normalised"


@dataclass
class Substrate:
    out: Path
    manifest: dict[str, Any]
    bits: np.ndarray  # the 0/1 codes [V, N]
    embeddings: np.ndarray  # float32 [V, n_embed], read-only: a map of the written embeddings.safetensors


@contextlib.contextmanager
def _destination(
    vocab_dir: Path, out: Path | None, settings_of: Callable[[int], dict[str, Any]], force: bool,
    dump_text: Path | None, fonts: Sequence[Path] = (),
) -> Iterator[tuple[Path, TokenTexts, dict[str, Any]]]:  # fmt: skip
    """Hold the destination for the build and check it before any heavy work: (out, token texts, settings)."""
    vocab_dir = Path(vocab_dir)
    out = vocab_dir if out is None else Path(out)
    in_place = real(out) == real(vocab_dir)
    with claim(out, fonts if in_place else [vocab_dir, *fonts]) as target:
        texts = token_texts(load_tokenizer(vocab_dir))
        settings = settings_of(len(texts.texts))
        check_replace(target, vocab_dir, settings, force)
        if dump_text is not None:
            check_output_file(Path(dump_text), force, [vocab_dir, target])
        yield target, texts, settings


def _finish(
    vocab_dir: Path, out: Path, texts: TokenTexts, settings: dict[str, Any], details: dict[str, Any],
    bits: np.ndarray, fill: Fill, dump_text: Path | None, force: bool,
) -> Substrate:  # fmt: skip
    substrate = {
        "bvvtok_version": __version__,
        "settings": settings,
        **details,
        "tokens": len(texts.texts),
        "byte_level": texts.byte_level,
        "escaped_tokens": len(texts.escaped),
        "empty_ids": len(texts.empty_ids),
    }
    dump = (Path(dump_text), texts.texts) if dump_text is not None else None
    manifest, embeddings = write_substrate(Path(vocab_dir), out, bits, details["dim"], fill, substrate, dump, force)
    return Substrate(out, manifest, bits, embeddings)


def _pca_fill(
    bits: np.ndarray, dim: int, done: Callable[[], None] | None = None, factors: Sequence[Factor] = ()
) -> Fill:
    """The principal axes now (so a bad input fails before any file is touched), the projection
    when the embedding file is ready to receive it."""
    axes = principal_axes(bits, dim, factors)

    def fill(embeddings: np.ndarray) -> None:
        project(bits, *axes, embeddings, factors)
        if done:
            done()

    return fill


def scale_for(d_model: int, n_embed: int) -> int | None:
    """The repeat_interleave factor that expands an n_embed code to d_model (None when it does not divide)."""
    return d_model // n_embed if d_model % n_embed == 0 else None


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
) -> Substrate:
    if glyph_size not in GLYPH_SIZES:
        raise BvvtokError(f"--glyph-size must be 32 or 64 (got {glyph_size})")
    if workers is not None and workers < 1:
        raise BvvtokError(f"--workers must be at least 1 (got {workers}); leave it out for one per CPU")
    bits_per_code = glyph_size * glyph_size
    dim = bits_per_code if dim is None else dim
    if not 1 <= dim <= bits_per_code:
        raise BvvtokError(f"--dim {dim} must be between 1 and the number of bits ({bits_per_code})")
    chain = resolve_chain(fonts)
    recipe_name = recipe

    def settings_of(vocab_size: int) -> dict[str, Any]:
        name = get_recipe(recipe_name or default_recipe(Path(vocab_dir), vocab_size)).name
        return {"method": "glyph", "recipe": name, "glyph_size": glyph_size, "dim": dim, "fonts": [f.sha256 for f in chain]}

    with _destination(vocab_dir, out, settings_of, force, dump_text, [f.path for f in chain]) as (out, texts, settings):
        recipe_obj = get_recipe(settings["recipe"])
        codes = glyph_codes(texts.texts, chain, recipe_obj, glyph_size, workers or os.cpu_count() or 1, progress)
        if progress:
            progress("pca", 0, 1)
        fill = _pca_fill(codes.bits, dim, (lambda: progress("pca", 1, 1)) if progress else None, codes.factors)
        details = _glyph_details(recipe_obj.name, glyph_size, dim, chain, codes)
        return _finish(vocab_dir, out, texts, settings, details, codes.bits, fill, dump_text, force)


def _glyph_details(recipe: str, glyph_size: int, dim: int, chain: Sequence[Font], codes: GlyphCodes) -> dict[str, Any]:
    return {
        "method": "glyph",
        "recipe": recipe,
        "glyph_size": glyph_size,
        "bits": glyph_size * glyph_size,
        "dim": dim,
        "n_embed": dim,
        "fonts": [f.describe() for f in chain],
        "renderer": {**renderer_versions(), "layout_engine": "raqm" if features.check("raqm") else "basic"},
        "pca": PCA_NOTE,
        "blank_glyphs": len(codes.blank_tokens),
        "missing_chars": {"count": len(codes.missing_chars), "first": codes.missing_chars[:20]},
        "unrenderable_chars": {"count": len(codes.unrenderable_chars), "first": codes.unrenderable_chars[:20]},
    }


def embed_bits(
    vocab_dir: Path,
    n_bits: int,
    seed: int = 0,
    as_float: bool = False,
    dim: int | None = None,
    d_model: int = DEFAULT_D_MODEL,
    out: Path | None = None,
    force: bool = False,
    dump_text: Path | None = None,
) -> Substrate:
    """A unique binary codebook (16-bit: the ids; else random, seeded); with `as_float`, PCA + L2 rows."""
    if dim is not None and not as_float:
        raise BvvtokError("--dim goes with --float (a binary codebook is used as is)")
    dim = n_bits if dim is None else dim
    if as_float and not 1 <= dim <= n_bits:
        raise BvvtokError(f"--dim {dim} must be between 1 and the number of bits ({n_bits})")
    if d_model < 1:
        raise BvvtokError(f"--d-model must be positive (got {d_model})")

    def settings_of(vocab_size: int) -> dict[str, Any]:
        return {"method": "bits", "bits": n_bits, "seed": seed, "float": as_float, "dim": dim}

    with _destination(vocab_dir, out, settings_of, force, dump_text) as (out, texts, settings):
        codebook = build_codebook(len(texts.texts), n_bits, seed)
        fill = _pca_fill(codebook.bits, dim) if as_float else lambda embeddings: np.copyto(embeddings, codebook.bits)
        details = _bits_details(n_bits, seed, as_float, dim, d_model, codebook)
        return _finish(vocab_dir, out, texts, settings, details, codebook.bits, fill, dump_text, force)


def _bits_details(n_bits: int, seed: int, as_float: bool, dim: int, d_model: int, codebook: Codebook) -> dict[str, Any]:
    return {
        "method": "bits",
        "bits": n_bits,
        "codebook": "token id, most significant bit first" if n_bits == 16 else "random, unique",
        "seed": seed,
        "generator": GENERATOR,
        "redraws": codebook.redraws,
        "min_hamming": {"value": codebook.min_hamming, "exact": codebook.min_hamming_exact},
        "float": as_float,
        "dim": dim,
        "n_embed": dim,
        "d_model": d_model,
        "scale": scale_for(d_model, dim),
        **({"pca": PCA_NOTE} if as_float else {}),
    }
