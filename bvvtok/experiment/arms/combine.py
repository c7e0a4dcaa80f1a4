"""A mixture (arXiv 2507.07129): other arms' models of the same seed, their logits averaged (`bvvtok combine`).

    [arms.mix]
    combine = ["en", "zh"]    # arms on one substrate
    weights = [0.5, 0.5]      # optional; default equal
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bvvtok.experiment.arms import Arm, CellContext, Made, register
from bvvtok.experiment.problems import Problems
from bvvtok.lm.config import RunConfig

if TYPE_CHECKING:
    from bvvtok.experiment.spec import Spec


@register
@dataclass(frozen=True)
class Combine(Arm):
    kind: ClassVar[str] = "combine"
    selector: ClassVar[str | None] = "combine"
    keys: ClassVar[frozenset[str]] = frozenset({"combine", "weights"})
    trains: ClassVar[bool] = False

    members: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None

    @classmethod
    def read(cls, name: str, table: dict[str, Any], problems: Problems) -> Arm | None:
        members = table["combine"]
        if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) for m in members):
            problems.add("combine", "give two or more arm names, e.g. combine = [\"en\", \"zh\"]")
            return None
        weights = table.get("weights")
        if weights is not None and (not isinstance(weights, list) or len(weights) != len(members)
                                    or not all(isinstance(w, (int, float)) and w > 0 for w in weights)):  # fmt: skip
            problems.add("weights", f"give {len(members)} positive numbers, one per arm in combine")
            weights = None
        return cls(name, tuple(members), tuple(map(float, weights)) if weights else None)

    def needs(self) -> tuple[str, ...]:
        return self.members

    def substrate(self, spec: Spec) -> str:
        return spec.arms[self.members[0]].substrate(spec)

    def config(self, spec: Spec, seed: int) -> RunConfig | None:
        return None

    def check(self, spec: Spec, problems: Problems) -> None:
        if len({spec.arms[m].substrate(spec) for m in self.members}) > 1:
            problems.add("combine", "the arms use different substrates; a mixture needs one frozen substrate")

    def describe(self, spec: Spec) -> str:
        return "mixture of " + " + ".join(self.members)

    def make(self, cell: CellContext) -> Made:
        from bvvtok.lm.combine import combine

        runs = [cell.sources[m] for m in self.members]
        combine(runs, cell.run, list(self.weights) if self.weights else None, force=cell.run.exists())
        return Made()
