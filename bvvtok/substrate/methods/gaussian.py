"""`--method gaussian`: seeded normal rows, L2-normalised: the frozen random embedding that the
frozen-embedding literature trains on as its control (no structure from the token's text or id).

Row i is the i-th row of NumPy's PCG64 stream for the seed, drawn as float64 standard normals in
id order, divided by its L2 norm and stored as float32: the same seed gives the same bytes on any
machine (with the same NumPy), so `verify --rebuild` redraws it byte for byte. There are no codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bvvtok.substrate.methods import DEFAULT_D_MODEL, Built, Method, Progress, flag, model_row, register, scale_for
from bvvtok.substrate.token_text import TokenTexts

GENERATOR = "numpy.random.Generator(PCG64(seed)).standard_normal, float64, in id order; rows L2-normalised, then float32"
CHUNK_ROWS = 8192  # rows drawn at a time: the stream is the same, the float64 buffer small


def gaussian_rows(vocab_size: int, dim: int, seed: int, out: np.ndarray, progress: Progress | None = None) -> None:
    """Fill `out` [vocab_size, dim] with the seeded unit rows."""
    rng = np.random.Generator(np.random.PCG64(seed))
    for start in range(0, vocab_size, CHUNK_ROWS):
        rows = rng.standard_normal((min(CHUNK_ROWS, vocab_size - start), dim))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start : start + len(rows)] = rows
        if progress:
            progress("rows", start + len(rows), vocab_size)


@register
@dataclass
class Gaussian(Method):
    name: ClassVar[str] = "gaussian"
    about: ClassVar[str] = "seeded normal rows, L2-normalised (the frozen-random control)"
    required: ClassVar[tuple[str, ...]] = ("seed", "generator")
    settings_fields: ClassVar[tuple[str, ...]] = ("dim", "seed")

    dim: int = flag(1024, "the width of the rows. Default: 1024.", minimum=1)
    seed: int = flag(0, "the seed of the rows.", minimum=0)
    d_model: int = flag(DEFAULT_D_MODEL, "the model width the manifest's repeat_interleave scale is for.", minimum=1)

    def build(self, texts: TokenTexts, settings: dict[str, Any], progress: Progress | None) -> Built:
        details = {
            "method": self.name,
            "seed": self.seed,
            "generator": GENERATOR,
            "dim": self.dim,
            "n_embed": self.dim,
            "d_model": self.d_model,
            "scale": scale_for(self.d_model, self.dim),
        }
        return Built(details, lambda embeddings: gaussian_rows(len(texts.texts), self.dim, self.seed, embeddings, progress))

    @classmethod
    def summary(cls, section: dict[str, Any]) -> str:
        return f"gaussian, {section['dim']}-dim, seed {section['seed']}"

    @classmethod
    def report(cls, section: dict[str, Any]) -> list[tuple[str, str]]:
        return [*super().report(section), model_row(section)]
