"""Arm kinds: what a cell (an arm at one seed) makes, one module each in this package, registered when imported.

An arm's table in the spec picks its kind by a key that only that kind takes (`from` for grow,
`combine` for combine; a table with neither trains a model on a substrate). The kind parses its
table, names the arms it starts from (their cells of the same seed run first), says which substrate
its cells use and the configuration they train, and makes the cell's model folder. Everything
after that (evaluation, the record, the report) is the same for every kind: a new kind is a
new module here, and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bvvtok.experiment.problems import Problems
from bvvtok.lm.config import RunConfig

if TYPE_CHECKING:
    from bvvtok.experiment.spec import Spec


@dataclass(frozen=True)
class Made:
    """What a cell's kind reports of the model it made: the run's own figures where it trained one."""

    steps: int = 0  # optimizer steps trained
    tokens_per_step: int = 0
    unigram_entropy: float | None = None  # nats/token of the split it trained on
    parameters: dict[str, int] | None = None


@dataclass(frozen=True)
class CellContext:
    """Where a cell works and what it starts from; `train` trains a configuration into `run` (the cell's runner
    decides how: in this process, or under torchrun)."""

    folder: Path  # DIR/cells/ARM-sSEED
    run: Path  # the model folder the cell makes
    seed: int
    substrate: Path
    corpus: tuple[str, ...]  # `train --corpus` values
    sources: dict[str, Path]  # arm -> the model folder of its cell at this seed
    config: RunConfig | None
    train: Callable[..., Made]  # train(config, init_from=None) -> Made


@dataclass(frozen=True)
class Arm(ABC):
    kind: ClassVar[str]
    selector: ClassVar[str | None] = None  # the key whose presence picks this kind; None: the default kind
    keys: ClassVar[frozenset[str]] = frozenset()  # the keys its table may hold
    trains: ClassVar[bool] = True  # its cells train a model (config() is not None)

    name: str

    @classmethod
    def parse(cls, name: str, table: dict[str, Any], problems: Problems) -> Arm | None:
        """The arm a table describes (None when it cannot be read); each problem added under the arm's key."""
        for key in sorted(set(table) - cls.keys):
            problems.add(key, f"not a key of a {cls.kind} arm; it takes {', '.join(sorted(cls.keys))}")
        return cls.read(name, {k: v for k, v in table.items() if k in cls.keys}, problems)

    @classmethod
    @abstractmethod
    def read(cls, name: str, table: dict[str, Any], problems: Problems) -> Arm | None:
        """The arm from its table, the keys known."""

    def needs(self) -> tuple[str, ...]:
        """The arms whose cells of the same seed this one starts from."""
        return ()

    @abstractmethod
    def substrate(self, spec: Spec) -> str:
        """The name of the substrate its cells use."""

    def corpus(self, spec: Spec) -> tuple[str, ...]:
        """What its cells train on: [data]'s corpus unless the arm says otherwise."""
        return spec.corpus

    @abstractmethod
    def config(self, spec: Spec, seed: int) -> RunConfig | None:
        """What its cells train (None: nothing; a combination of other arms' models)."""

    def check(self, spec: Spec, problems: Problems) -> None:
        """Problems of its references to other parts of the spec (the arms it starts from exist, without a loop)."""

    @abstractmethod
    def describe(self, spec: Spec) -> str:
        """How its model is trained, for legends: "frozen", "trainable", "+2 blocks on glyph"."""

    @abstractmethod
    def make(self, cell: CellContext) -> Made:
        """Make the cell's model folder (`cell.run`); finish an interrupted one where it can."""


ARM_KINDS: dict[str, type[Arm]] = {}


def register(kind: type[Arm]) -> type[Arm]:
    ARM_KINDS[kind.kind] = kind
    return kind


def kind_of(table: dict[str, Any]) -> type[Arm]:
    """The kind a table picks: the one whose selector key it holds, else the default kind."""
    for kind in ARM_KINDS.values():
        if kind.selector is not None and kind.selector in table:
            return kind
    return next(kind for kind in ARM_KINDS.values() if kind.selector is None)


def string(table: dict[str, Any], key: str, problems: Problems, default: str | None = None) -> str | None:
    value = table.get(key, default)
    if not isinstance(value, str):
        problems.add(key, "give a name (a string)" if key in table else "missing; give a name")
        return None
    return value


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
