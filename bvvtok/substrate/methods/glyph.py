"""`--method glyph`: pictures of the token texts, augmented, as 0/1 codes, rotated by PCA (the published substrates)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import features

from bvvtok.difference import first_difference, plural
from bvvtok.errors import BvvtokError, option
from bvvtok.manifest import read_manifest
from bvvtok.substrate.fonts import Font, resolve_chain
from bvvtok.substrate.methods import PCA_NOTE, Built, Method, Pca, Progress, codes_by_pca, flag, register, repeated_rows
from bvvtok.substrate.plain_glyphs import renderer_versions
from bvvtok.substrate.recipe import GLYPH_SIZES, PRESET_RECIPES, get_recipe
from bvvtok.substrate.token_text import TokenTexts
from bvvtok.substrate.view import View


def default_recipe(vocab_dir: Path, vocab_size: int) -> str:
    """The recipe of the vocabulary's preset; for other tokenizers, by size (up to 65,536: bvv241-2-3)."""
    preset = read_manifest(vocab_dir).get("vocab", {}).get("preset")
    if preset in PRESET_RECIPES:
        return PRESET_RECIPES[preset]
    return PRESET_RECIPES["65k"] if vocab_size <= 65_536 else PRESET_RECIPES["131k"]


def shared_pictures(view: View) -> str:
    """Identical pictures (homoglyphs, blank glyphs) give identical rows: counted, not failed."""
    repeated = repeated_rows(view.need_weight())
    return f"{len(repeated):,} rows share their picture with another (expected for glyphs: homoglyphs, blank glyphs)"


def _fonts(stored: list[dict[str, Any]], rebuilt: list[dict[str, Any]]) -> str:
    if len(stored) != len(rebuilt):
        return f"the manifest records {plural(len(stored), 'font')}, the rebuild found {len(rebuilt)}"
    i = next(i for i, (a, b) in enumerate(zip(stored, rebuilt)) if a != b)
    name = f" ({stored[i]['name']})" if "name" in stored[i] else ""
    return f"font {i + 1} of the chain{name}: {first_difference(stored[i], rebuilt[i], source='the rebuild found')}"


def _font_names(section: dict[str, Any]) -> str:
    return ", ".join(f"{f['file']} {f.get('version', '')}".strip() for f in section["fonts"])


@register
@dataclass
class Glyph(Method):
    name: ClassVar[str] = "glyph"
    about: ClassVar[str] = "pictures of the token text -> PCA -> L2-normalised rows (the published substrates)"
    has_codes: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("recipe", "fonts")
    settings_fields: ClassVar[tuple[str, ...]] = ("recipe", "glyph_size", "dim")  # and the sha256 of each font
    checks: ClassVar = {**Method.checks, "distinct rows": shared_pictures, "codes": codes_by_pca}
    described: ClassVar = {"fonts": _fonts}

    recipe: str | None = flag(None, "bvv241-2-3 or bvv241-max. Default: the vocabulary's preset (65k / 131k).")
    glyph_size: int = flag(32, "32 (1,024 bits) or 64 (4,096 bits, the 'abs' variant).")
    dim: int | None = flag(None, "PCA output size. Default: the number of bits (a rotation, as published).")
    font: Sequence[Path] = flag((), "a font file; repeat for a fallback chain. Default: $BVVTOK_FONT, the checkout's fonts/, the system's Unifont.")
    workers: int | None = flag(None, "processes that render glyphs. Default: one per CPU.")
    chain: list[Font] = field(init=False, repr=False)  # the fonts, resolved: a bad one fails before any work

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.glyph_size not in GLYPH_SIZES:
            raise BvvtokError(f"{option('glyph_size')} must be 32 or 64 (got {self.glyph_size})")
        if self.workers is not None and self.workers < 1:
            raise BvvtokError(f"{option('workers')} must be at least 1 (got {self.workers}); leave it out for one per CPU")
        bits = self.glyph_size * self.glyph_size
        self.dim = bits if self.dim is None else self.dim
        if not 1 <= self.dim <= bits:
            raise BvvtokError(f"{option('dim', self.dim)} must be between 1 and the number of bits ({bits})")
        self.chain = resolve_chain(self.font)

    def inputs(self) -> Sequence[Path]:
        return [f.path for f in self.chain]

    def settings(self, vocab_dir: Path, vocab_size: int) -> dict[str, Any]:
        recipe = get_recipe(self.recipe or default_recipe(vocab_dir, vocab_size)).name
        fonts = [f.sha256 for f in self.chain]
        return {"method": self.name, "recipe": recipe, "glyph_size": self.glyph_size, "dim": self.dim, "fonts": fonts}

    def build(self, texts: TokenTexts, settings: dict[str, Any], progress: Progress | None) -> Built:
        from bvvtok.substrate.glyph_codes import glyph_codes  # the renderer and torch: only to build

        recipe = get_recipe(settings["recipe"])
        codes = glyph_codes(texts.texts, self.chain, recipe, self.glyph_size, self.workers or os.cpu_count() or 1, progress)
        details = {
            "method": self.name,
            "recipe": recipe.name,
            "glyph_size": self.glyph_size,
            "bits": self.glyph_size * self.glyph_size,
            "dim": self.dim,
            "n_embed": self.dim,
            "fonts": [f.describe() for f in self.chain],
            "renderer": {**renderer_versions(), "layout_engine": "raqm" if features.check("raqm") else "basic"},
            "pca": PCA_NOTE,
            "blank_glyphs": len(codes.blank_tokens),
            "missing_chars": {"count": len(codes.missing_chars), "first": codes.missing_chars[:20]},
            "unrenderable_chars": {"count": len(codes.unrenderable_chars), "first": codes.unrenderable_chars[:20]},
        }
        return Built(details, Pca(self.dim, codes.factors), codes.bits)

    @classmethod
    def recorded_settings(cls, section: dict[str, Any]) -> dict[str, Any]:
        return {**super().recorded_settings(section), "fonts": [font.get("sha256") for font in section["fonts"]]}

    @classmethod
    def comparable(cls, section: dict[str, Any]) -> dict[str, Any]:
        """Less `renderer` (library versions here: the codes compared byte for byte prove the pixels) and each
        font's `file` (its name on this machine: the sha256 identifies the font)."""
        comparable = {k: v for k, v in super().comparable(section).items() if k != "renderer"}
        comparable["fonts"] = [{k: v for k, v in font.items() if k != "file"} for font in section["fonts"]]
        return comparable

    @classmethod
    def summary(cls, section: dict[str, Any]) -> str:
        return f"glyph, recipe {section['recipe']}, {section['glyph_size']} px, fonts {_font_names(section)}"

    @classmethod
    def report(cls, section: dict[str, Any]) -> list[tuple[str, str]]:
        byte_level = f" (byte-level; {section['escaped_tokens']:,} drawn as escaped bytes)" if section["byte_level"] else ""
        size = f"{section['glyph_size']}px = {section['bits']:,} bits"
        rows = [
            ("substrate", f"glyph, recipe {section['recipe']}, {size}, PCA to {section['dim']:,}"),
            ("tokens", f"{section['tokens']:,}{byte_level}"),
            ("fonts", _font_names(section)),
            ("blank glyphs", f"{plural(section['blank_glyphs'], 'token')} with no ink"),
        ]
        for key, label in (("missing_chars", "no glyph"), ("unrenderable_chars", "not renderable")):
            if section[key]["count"]:
                first = " ".join(f"U+{ord(c):04X}" for c in section[key]["first"][:8])
                rows.append((label, f"{plural(section[key]['count'], 'character')}, left blank: {first}"))
        return rows
