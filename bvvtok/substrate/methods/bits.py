"""`--method bits`: a unique binary codebook (the BIT ablation), or with `--float` its PCA with unit rows (FLOAT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bvvtok.errors import BvvtokError, option
from bvvtok.substrate.codebook import GENERATOR, build_codebook
from bvvtok.substrate.methods import (
    DEFAULT_D_MODEL,
    PCA_NOTE,
    Built,
    Method,
    Pca,
    Progress,
    codes_by_pca,
    flag,
    model_row,
    register,
    scale_for,
    unit_rows,
)
from bvvtok.substrate.token_text import TokenTexts
from bvvtok.substrate.view import View, ids


def _plain(section: dict[str, Any]) -> bool:
    """A codebook used as is: the embedding holds its 0/1 values."""
    return not section.get("float")


def binary_values(view: View) -> str:
    if not _plain(view.substrate):
        return unit_rows(view)
    weight = view.need_weight()
    wrong = int(((weight != 0) & (weight != 1)).sum())
    if wrong:
        raise ValueError(f"{wrong:,} entries are not 0 or 1")
    return "strictly 0/1"


def codes_of_the_embedding(view: View) -> str:
    if not _plain(view.substrate):
        return codes_by_pca(view)
    weight = view.need_weight()
    differ = np.flatnonzero((view.need_codes() != weight).any(axis=1))
    if len(differ):
        raise ValueError(f"codes and embedding differ in rows {ids(differ)}")
    return "the embedding is the codes"


@register
@dataclass
class Bits(Method):
    name: ClassVar[str] = "bits"
    about: ClassVar[str] = "a binary codebook: 16 bits = the token id, else random unique codes; --float: PCA, unit rows"
    has_codes: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("seed", "generator")
    settings_fields: ClassVar[tuple[str, ...]] = ("bits", "seed", "float", "dim")
    checks: ClassVar = {**Method.checks, "values": binary_values, "codes": codes_of_the_embedding}

    bits: int | None = flag(None, "code length; 16 = the token id itself, else random unique codes.")
    seed: int = flag(0, "the seed of the random codebook.")
    float: bool = flag(False, "the FLOAT ablation (PCA to --dim, L2-normalised rows).")
    dim: int | None = flag(None, "with --float, the PCA output size. Default: the number of bits.")
    d_model: int = flag(DEFAULT_D_MODEL, "the model width the manifest's repeat_interleave scale is for.", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bits is None:
            raise BvvtokError(f"{option('method', 'bits')} needs {option('bits')} (e.g. 16, 64, 256, 1024)")
        if self.dim is not None and not self.float:
            raise BvvtokError(f"{option('dim')} goes with {option('float', True)} (a binary codebook is used as is)")
        self.dim = self.bits if self.dim is None else self.dim
        if self.float and not 1 <= self.dim <= self.bits:
            raise BvvtokError(f"{option('dim', self.dim)} must be between 1 and the number of bits ({self.bits})")

    def build(self, texts: TokenTexts, settings: dict[str, Any], progress: Progress | None) -> Built:
        if progress:
            progress("codebook", 0, 1)
        codebook = build_codebook(len(texts.texts), self.bits, self.seed)
        if progress:
            progress("codebook", 1, 1)
        details = {
            "method": self.name,
            "bits": self.bits,
            "codebook": "token id, most significant bit first" if self.bits == 16 else "random, unique",
            "seed": self.seed,
            "generator": GENERATOR,
            "redraws": codebook.redraws,
            "min_hamming": {"value": codebook.min_hamming, "exact": codebook.min_hamming_exact},
            "float": self.float,
            "dim": self.dim,
            "n_embed": self.dim,
            "d_model": self.d_model,
            "scale": scale_for(self.d_model, self.dim),
            **({"pca": PCA_NOTE} if self.float else {}),
        }
        fill = Pca(self.dim) if self.float else (lambda embeddings: np.copyto(embeddings, codebook.bits))
        return Built(details, fill, codebook.bits)

    @classmethod
    def rebuild_options(cls, section: dict[str, Any]) -> dict[str, Any]:
        """A plain codebook records its dim (the number of bits) but takes none."""
        options = super().rebuild_options(section)
        return options if options.get("float") else {k: v for k, v in options.items() if k != "dim"}

    @classmethod
    def fitted(cls, settings: dict[str, Any], d_model: int) -> dict[str, Any]:
        """A codebook is used as is, each bit repeated d_model / bits times: the bits must divide d_model."""
        bits = settings.get("bits")
        if settings.get("float"):
            return super().fitted(settings, d_model)
        if not isinstance(bits, int) or bits < 1 or d_model % bits == 0:
            return {**settings, "d_model": d_model}
        fits = [b for b in (16, 32, 64, 128, 256, 512, 1024) if d_model % b == 0 and b <= d_model]
        raise ValueError(f"{bits}-bit codes do not fit d_model {d_model} (a codebook is used as is, each bit repeated "
                         f"d_model / bits times): choose bits that divide {d_model}"
                         f"{' (' + ', '.join(map(str, fits)) + ')' if fits else ''}, set float = true (PCA to "
                         f"{min(d_model, bits)} dims), or a d_model that {bits} divides")  # fmt: skip

    @classmethod
    def summary(cls, section: dict[str, Any]) -> str:
        return f"bits, {section['bits']} per token, seed {section['seed']}" + ("" if _plain(section) else ", FLOAT")

    @classmethod
    def report(cls, section: dict[str, Any]) -> list[tuple[str, str]]:
        kind = "0/1 values" if _plain(section) else f"FLOAT: PCA to {section['dim']:,}, L2-normalised"
        hamming = section["min_hamming"]
        return [
            ("substrate", f"bits, {section['bits']} per token ({section['codebook']}), {kind}"),
            ("tokens", f"{section['tokens']:,}, all codes distinct ({section['redraws']:,} redrawn)"),
            ("min Hamming", f"{hamming['value']} ({'exact' if hamming['exact'] else 'estimated on 2,000,000 random pairs'})"),
            model_row(section),
        ]
