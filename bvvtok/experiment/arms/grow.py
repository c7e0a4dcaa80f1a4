"""Growth ("Growing Transformers"): a cell's model starts from another arm's model of the same seed.

    [arms.grown]
    from = "base"             # the arm whose model it starts from
    grow = 2                  # new identity blocks stacked on top (`bvvtok grow`), the only ones trained
    [arms.grown.train]        # the extra training: steps, lr, ...
    steps = 100

With `grow = 0` (the default) the model keeps its shape and trains whole: the control that spends
the same extra compute without new blocks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bvvtok.experiment.arms import Arm, CellContext, Made, register, string
from bvvtok.experiment.problems import Problems
from bvvtok.lm.config import RunConfig, check

if TYPE_CHECKING:
    from bvvtok.experiment.spec import Spec

GROWN = "grown"  # the grown model's folder inside the cell, before its training


@register
@dataclass(frozen=True)
class Grow(Arm):
    kind: ClassVar[str] = "grow"
    selector: ClassVar[str | None] = "from"
    keys: ClassVar[frozenset[str]] = frozenset({"from", "grow", "train"})

    source: str = ""
    grow: int = 0
    train: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, name: str, table: dict[str, Any], problems: Problems) -> Arm | None:
        from bvvtok.experiment.spec import overrides

        source = string(table, "from", problems)
        grow = table.get("grow", 0)
        if type(grow) is not int or grow < 0:
            problems.add("grow", "give the number of new blocks, a whole number >= 0")
            grow = 0
        _, train = overrides({}, table.get("train", {}), problems)
        return cls(name, source or "", grow, train)

    def needs(self) -> tuple[str, ...]:
        return (self.source,)

    def substrate(self, spec: Spec) -> str:
        return spec.arms[self.source].substrate(spec)

    def corpus(self, spec: Spec) -> tuple[str, ...]:
        return spec.arms[self.source].corpus(spec)  # trained on as its model was

    def config(self, spec: Spec, seed: int) -> RunConfig | None:
        before = spec.arms[self.source].config(spec, seed)
        if before is None:
            return None
        model = dataclasses.replace(before.model, n_layer=before.model.n_layer + self.grow)
        config = RunConfig(model, dataclasses.replace(spec.arm_config({}, self.train, seed).train))
        check(config)
        return config

    def check(self, spec: Spec, problems: Problems) -> None:
        if not spec.arms[self.source].trains:
            problems.add("from", f"{self.source!r} trains no model of its own; start from an arm that does")

    def describe(self, spec: Spec) -> str:
        return f"+{self.grow} block{'s' if self.grow != 1 else ''} on {self.source}" if self.grow else f"{self.source}, trained on"

    def make(self, cell: CellContext) -> Made:
        from bvvtok.lm.grow import grow
        from bvvtok.manifest import read_manifest

        assert cell.config is not None
        start = cell.sources[self.source]
        if self.grow:
            grown = cell.folder / GROWN
            if not read_manifest(grown).get("grown"):  # grown once: a resumed cell trains on from its checkpoint
                grow(start, self.grow, grown, seed=cell.seed, force=grown.exists())
            start = grown
        return cell.train(cell.config, init_from=start)
