"""Substrate methods: one module each in this package, registered when the package is imported.

A method is a dataclass whose fields are its settings, the `bvvtok embed` flags it takes (the
field `glyph_size` is `--glyph-size`; see `flag`). The class says how it builds (the codes, if
it has any, and how the embedding is filled), what the manifest records, the rule of each verify
check that depends on the method (`checks`), and its summary for `info` and for the table `embed`
prints. `embed`, `verify` and `info` find a method by its name in METHODS: a new method is a new
module here, and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bvvtok.difference import Describe
from bvvtok.errors import BvvtokError, option
from bvvtok.substrate.folder import CODES, Fill
from bvvtok.substrate.token_text import TokenTexts
from bvvtok.substrate.view import View, ids

if TYPE_CHECKING:
    from bvvtok.substrate.projection import Factor

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Checker = Callable[[View], str]  # a verify check: what it found; raises what is wrong

DEFAULT_D_MODEL = 1024  # the published models'
PCA_NOTE = "scikit-learn PCA semantics via the covariance (eigh, float64), svd_flip sign convention; rows L2-normalised"
COSINE_FLOOR = 0.9999
NORM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Pca:
    """The fill of a method made from codes: their PCA to `dim` components, rows L2-normalised (embed runs it:
    the axes are found before any file is touched, the projection writes into the mapped embedding)."""

    dim: int
    factors: Sequence[Factor] = ()  # rows that repeat a smaller picture (bvvtok.substrate.glyph_codes)


@dataclass
class Built:
    """What a method built for a vocabulary, before anything is written."""

    details: dict[str, Any]  # its fields of the manifest's substrate section: method first, dim and n_embed among them
    fill: Fill | Pca  # how the embedding [V, dim] is written
    codes: np.ndarray | None = None  # 0/1 [V, bits], saved as codes.npy; None for a method without codes


def flag(default: Any, help: str, minimum: int | None = None) -> Any:
    """A method's setting, which `bvvtok embed` takes as --NAME (the field's name, `_` as `-`): its default,
    its help (what `embed --help` shows for this method) and the least value it accepts, if any."""
    return field(default=default, metadata={"help": help, "minimum": minimum})


def scale_for(d_model: int, n_embed: int) -> int | None:
    """The repeat_interleave factor that expands an n_embed code to d_model (None when it does not divide)."""
    return d_model // n_embed if d_model % n_embed == 0 else None


def model_row(section: dict[str, Any]) -> tuple[str, str]:
    """The row of `embed`'s table for a method that records the model width it was built for."""
    return "model", f"n_embed {section['n_embed']}, d_model {section['d_model']}, repeat_interleave scale {section['scale']}"


def repeated_rows(weight: np.ndarray) -> np.ndarray:
    """Ids of the rows equal to another row."""
    rows = np.ascontiguousarray(weight).view(np.dtype((np.void, weight.shape[1] * 4))).ravel()
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    return np.flatnonzero(counts[inverse] > 1)


def distinct_rows(view: View) -> str:
    weight = view.need_weight()
    repeated = repeated_rows(weight)
    if len(repeated):
        raise ValueError(f"{len(repeated):,} rows collide, ids {ids(repeated)}")
    return f"all {len(weight):,} rows distinct"


def unit_rows(view: View) -> str:
    weight = view.need_weight().astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", weight, weight))
    off = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if len(off):
        raise ValueError(f"{len(off):,} rows are not unit length, ids {ids(off)}")
    return f"every row has unit L2 norm (within {NORM_TOLERANCE:g})"


def no_codes(view: View) -> str:
    method = view.substrate["method"]
    if (view.path / CODES).exists():
        raise ValueError(f"{CODES} is here, but a {method} substrate is not made from codes; rebuild it with bvvtok embed")
    return f"none: a {method} substrate is not made from codes"


def codes_by_pca(view: View) -> str:
    """The codes check of a method whose embedding is the PCA of its codes."""
    from bvvtok.substrate.projection import frozen_embeddings  # torch: only when a check runs (see Method)

    weight = view.need_weight()
    projected = frozen_embeddings(view.need_codes(), weight.shape[1])
    cosine = np.einsum("ij,ij->i", projected, weight)
    low = np.flatnonzero(cosine < COSINE_FLOOR)
    if len(low):
        raise ValueError(f"PCA of the codes disagrees with the embedding in rows {ids(low)} (cosine < {COSINE_FLOOR})")
    return f"PCA of the codes gives the embedding (min cosine {cosine.min():.6f})"


@dataclass
class Method(ABC):
    """A substrate method and its settings: the fields, each declared with `flag`.

    This package is imported to list the methods (`embed --help`, `info`): what needs torch or the
    glyph renderer is imported where it is used, so that those start in a fraction of a second.
    """

    name: ClassVar[str]
    about: ClassVar[str]  # one line: what it builds (`embed --help`)
    has_codes: ClassVar[bool] = False  # its embedding is made from 0/1 codes, kept in codes.npy
    required: ClassVar[tuple[str, ...]] = ()  # fields of the section that rebuild it (the manifest check asks for them)
    settings_fields: ClassVar[tuple[str, ...]] = ()  # fields of the section that `settings` repeats
    # verify's checks whose rule is the method's: these by default, a method's own by the same name, or new ones
    checks: ClassVar[Mapping[str, Checker]] = {"distinct rows": distinct_rows, "values": unit_rows, "codes": no_codes}
    described: ClassVar[Mapping[str, Describe]] = {}  # how a rebuild tells a difference in a field of the section

    def __post_init__(self) -> None:
        for setting in self.flags().values():
            value, minimum = getattr(self, setting.name), setting.metadata["minimum"]
            if minimum is not None and value is not None and value < minimum:
                raise BvvtokError(f"{option(setting.name)} must be at least {minimum} (got {value})")

    @classmethod
    def flags(cls) -> dict[str, Field]:
        """Its settings by name (what `embed` passes it)."""
        return {f.name: f for f in fields(cls) if f.init}

    def inputs(self) -> Sequence[Path]:
        """Files the build reads besides the vocabulary (the output may not be one of them)."""
        return ()

    def settings(self, vocab_dir: Path, vocab_size: int) -> dict[str, Any]:
        """What `embed` compares before replacing a substrate: the same settings give the same files."""
        return {"method": self.name, **{k: getattr(self, k) for k in self.settings_fields}}

    @abstractmethod
    def build(self, texts: TokenTexts, settings: dict[str, Any], progress: Progress | None) -> Built:
        """The codes and the fill for the tokens' texts (`settings`: what `settings` gave for this vocabulary)."""

    @classmethod
    def recorded_settings(cls, section: dict[str, Any]) -> dict[str, Any]:
        """What `settings` must be by the section's own fields (verify's settings check)."""
        return {k: section.get(k) for k in ("method", *cls.settings_fields)}

    @classmethod
    def rebuild_options(cls, section: dict[str, Any]) -> dict[str, Any]:
        """The settings that build the substrate a section describes again (verify --rebuild)."""
        return {k: section[k] for k in cls.flags() if k in section}

    @classmethod
    def comparable(cls, section: dict[str, Any]) -> dict[str, Any]:
        """The section less what a rebuild may change without changing the substrate (`settings` repeats the
        section's fields: the settings check compares them)."""
        return {k: v for k, v in section.items() if k != "settings"}

    @classmethod
    def fitted(cls, settings: dict[str, Any], d_model: int) -> dict[str, Any]:
        """`settings` completed for a model `d_model` wide (`bvvtok experiment` builds each substrate so): the width,
        `dim`, defaults to d_model and must divide it; `d_model` is recorded where the method takes it. A ValueError
        says what would fit instead."""
        fitted = {**settings, **({"d_model": d_model} if "d_model" in cls.flags() else {})}
        if "dim" not in cls.flags():
            return fitted
        fitted["dim"] = fitted.get("dim") or d_model
        if d_model % fitted["dim"]:
            raise ValueError(f"dim {fitted['dim']} does not divide d_model {d_model}: the model repeats each value "
                             f"d_model / dim times; choose a dim that divides {d_model}, or leave dim out")  # fmt: skip
        return fitted

    @classmethod
    @abstractmethod
    def summary(cls, section: dict[str, Any]) -> str:
        """One line for `info`."""

    @classmethod
    def report(cls, section: dict[str, Any]) -> list[tuple[str, str]]:
        """The rows of the table `embed` prints."""
        return [("substrate", cls.summary(section)), ("tokens", f"{section['tokens']:,}")]


METHODS: dict[str, type[Method]] = {}


def register(method: type[Method]) -> type[Method]:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise BvvtokError(f"unknown substrate method {name!r}; choose {', '.join(METHODS)}")
    return METHODS[name]


def configure(name: str, options: Mapping[str, Any]) -> Method:
    """The method `name` with the settings given (a None is a setting left out); another method's are refused."""
    method = get_method(name)
    given = {k: v for k, v in options.items() if v is not None}
    foreign = [k for k in given if k not in method.flags()]
    if foreign:
        owners = [option("method", n) for n, m in METHODS.items() if any(k in m.flags() for k in foreign)]
        takes = ", ".join(map(option, method.flags())) or "no options"
        flags, verb = " and ".join(map(option, foreign)), "go" if len(foreign) > 1 else "goes"
        raise BvvtokError(f"{flags} {verb} with {' or '.join(owners) or 'no method'}; {option('method', name)} takes {takes}")
    return method(**given)


def flag_help(setting: str) -> str:
    """`embed --help` for a setting: what it means to each method that takes it."""
    return " ".join(f"{n}: {m.flags()[setting].metadata['help']}" for n, m in METHODS.items() if setting in m.flags())


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
