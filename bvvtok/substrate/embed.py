"""`bvvtok embed` as library calls: a tokenizer folder in, a substrate folder out, by any method of
bvvtok.substrate.methods.

    result = embed(Path("artifacts/vocab-65k"), "glyph", dim=256, out=Path("artifacts/vocab-65k-256"))
    result = embed_glyph(Path("artifacts/vocab-65k"))
    result = embed_bits(Path("artifacts/vocab-65k"), n_bits=64, seed=0, out=Path("artifacts/bits-64"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bvvtok import __version__
from bvvtok.errors import BvvtokError, option
from bvvtok.files import check_output_file, sha256_file
from bvvtok.output import claim, real
from bvvtok.substrate.folder import Fill, check_replace, write_substrate
from bvvtok.substrate.methods import (
    DEFAULT_D_MODEL,
    Method,
    Pca,
    Progress,
    configure,
    scale_for,  # noqa: F401  (the library's name for it since embed_bits)
)
from bvvtok.substrate.methods.glyph import default_recipe  # noqa: F401  (the library's name for it since embed_glyph)
from bvvtok.substrate.projection import principal_axes, project
from bvvtok.substrate.token_text import TokenTexts, token_texts
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES, load_tokenizer


@dataclass
class Substrate:
    out: Path
    manifest: dict[str, Any]
    bits: np.ndarray | None  # the 0/1 codes [V, N]; None for a method without codes
    embeddings: np.ndarray  # float32 [V, n_embed], read-only: a map of the written embeddings.safetensors


def embed(
    vocab_dir: Path,
    method: str = "glyph",
    out: Path | None = None,
    force: bool = False,
    dump_text: Path | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> Substrate:
    """Build a substrate by `method` with its settings (`options`: its `bvvtok embed` flags by name, None for
    one left out), into `out` (default: the vocabulary folder itself)."""
    chosen = configure(method, options)
    if dump_text is not None and not chosen.has_codes:
        raise BvvtokError(f"{option('dump_text')} writes the codes, and a {method} substrate has none")
    with _destination(vocab_dir, out, chosen, force, dump_text) as (target, texts, settings):
        built = chosen.build(texts, settings, progress)
        fill = _pca_fill(built.codes, built.fill, progress) if isinstance(built.fill, Pca) else built.fill
        return _finish(vocab_dir, target, texts, settings, built.details, built.codes, fill, dump_text, force)


@contextlib.contextmanager
def _destination(
    vocab_dir: Path, out: Path | None, method: Method, force: bool, dump_text: Path | None
) -> Iterator[tuple[Path, TokenTexts, dict[str, Any]]]:
    """Hold the destination for the build and check it before any heavy work: (out, token texts, settings)."""
    vocab_dir = Path(vocab_dir)
    out = vocab_dir if out is None else Path(out)
    inputs = method.inputs()
    with claim(out, inputs if real(out) == real(vocab_dir) else [vocab_dir, *inputs]) as target:
        texts = token_texts(load_tokenizer(vocab_dir))
        settings = method.settings(vocab_dir, len(texts.texts))
        check_replace(target, vocab_dir, settings, force)
        if dump_text is not None:
            check_output_file(Path(dump_text), force, [vocab_dir, target])
        yield target, texts, settings


def _finish(
    vocab_dir: Path, out: Path, texts: TokenTexts, settings: dict[str, Any], details: dict[str, Any],
    bits: np.ndarray | None, fill: Fill, dump_text: Path | None, force: bool,
) -> Substrate:  # fmt: skip
    substrate = {
        "bvvtok_version": __version__,
        "settings": settings,
        **details,
        "tokens": len(texts.texts),
        "byte_level": texts.byte_level,
        "escaped_tokens": len(texts.escaped),
        "empty_ids": len(texts.empty_ids),
        # the tokenizer it was embedded on: what proves a tokenizer whose behaviour cannot be derived from its ids
        "tokenizer_files": {name: sha256_file(Path(vocab_dir) / name) for name in TOKENIZER_FILES if (Path(vocab_dir) / name).is_file()},
    }
    dump = (Path(dump_text), texts.texts) if dump_text is not None else None
    manifest, embeddings = write_substrate(Path(vocab_dir), out, bits, details["dim"], fill, substrate, dump, force)
    return Substrate(out, manifest, bits, embeddings)


def _pca_fill(bits: np.ndarray, pca: Pca, progress: Progress | None) -> Fill:
    """The principal axes now (so a bad input fails before any file is touched), the projection
    when the embedding file is ready to receive it."""
    if progress:
        progress("pca", 0, 1)
    axes = principal_axes(bits, pca.dim, pca.factors)

    def fill(embeddings: np.ndarray) -> None:
        project(bits, *axes, embeddings, pca.factors)
        if progress:
            progress("pca", 1, 1)

    return fill


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
    """Pictures of the token texts, PCA to `dim`, unit rows (bvvtok.substrate.methods.glyph)."""
    return embed(vocab_dir, "glyph", out, force, dump_text, progress,
                 recipe=recipe, glyph_size=glyph_size, dim=dim, font=fonts, workers=workers)  # fmt: skip


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
    """A unique binary codebook (16-bit: the ids; else random, seeded); with `as_float`, PCA + L2 rows
    (bvvtok.substrate.methods.bits)."""
    return embed(vocab_dir, "bits", out, force, dump_text, bits=n_bits, seed=seed, float=as_float, dim=dim, d_model=d_model)
