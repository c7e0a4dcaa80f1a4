"""The default kind: a model trained from scratch on a substrate, its embedding frozen (the papers' arms) or not.

    [arms.unfrozen]
    substrate = "glyph"
    frozen = false            # default true
    corpus = ["en.jsonl"]     # optional: another corpus than [data]'s
    [arms.unfrozen.model]     # optional overrides, as [model] and [train]
    [arms.unfrozen.train]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from bvvtok.experiment.arms import Arm, CellContext, Made, register, string
from bvvtok.experiment.problems import Problems
from bvvtok.lm.config import RunConfig

if TYPE_CHECKING:
    from bvvtok.experiment.spec import Spec


@register
@dataclass(frozen=True)
class Train(Arm):
    kind: ClassVar[str] = "train"
    keys: ClassVar[frozenset[str]] = frozenset({"substrate", "frozen", "corpus", "model", "train"})

    uses: str = ""  # the substrate's name
    frozen: bool = True
    text: tuple[str, ...] = ()  # its own corpus (`train --corpus` values); empty: [data]'s
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, name: str, table: dict[str, Any], problems: Problems) -> Arm | None:
        from bvvtok.experiment.spec import corpus_values, overrides

        substrate = string(table, "substrate", problems)
        frozen = table.get("frozen", True)
        if not isinstance(frozen, bool):
            problems.add("frozen", "give true or false")
        model, train = overrides(table.get("model", {}), table.get("train", {}), problems)
        corpus = corpus_values(table["corpus"], "corpus", problems) if "corpus" in table else ()
        return cls(name, substrate or "", frozen is not False, tuple(corpus), model, train)

    def substrate(self, spec: Spec) -> str:
        return self.uses

    def corpus(self, spec: Spec) -> tuple[str, ...]:
        return self.text or spec.corpus

    def config(self, spec: Spec, seed: int) -> RunConfig:
        return spec.arm_config({**self.model, "frozen": self.frozen}, self.train, seed)

    def check(self, spec: Spec, problems: Problems) -> None:
        if self.uses not in spec.substrates:
            choose = ", ".join(spec.substrates) or "none defined"
            problems.add("substrate", f"{self.uses!r} is not in [substrates]; choose one of {choose}")

    def describe(self, spec: Spec) -> str:
        return "frozen" if self.frozen else "trainable"

    def make(self, cell: CellContext) -> Made:
        assert cell.config is not None
        return cell.train(cell.config)
