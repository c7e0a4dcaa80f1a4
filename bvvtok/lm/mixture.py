"""A mixture of models trained on one frozen substrate: next-token logits are the weighted mean of theirs.

The combining paper (arXiv 2507.07129) joins two such models by `(logits_a + logits_b) / 2`,
with no router; what makes it meaningful is that every member reads the very same frozen
embedding through the very same tokenizer. Members may differ in shape (a grown model
beside a shallow one). A mixture generates, evaluates, exports and trains like one model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from bvvtok.lm.model import GPT, KVCache, mean_logits, optimizer_groups, parameter_counts


class Mixture(nn.Module):
    def __init__(self, members: Sequence[GPT], weights: Sequence[float]) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("one weight per member")
        self.members = nn.ModuleList(members)
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]

    @property
    def context(self) -> int:
        return min(m.config.context for m in self.members)

    @property
    def vocab_size(self) -> int:
        return self.members[0].vocab_size

    def new_cache(self, padding: Tensor | None = None) -> list[KVCache]:
        return [m.new_cache(padding) for m in self.members]

    def forward(self, ids: Tensor, targets: Tensor | None = None, cache: list[KVCache] | None = None,
                last_only: bool = False) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        caches = cache if cache is not None else [None] * len(self.members)
        logits = [m(ids, cache=c, last_only=last_only)[0] for m, c in zip(self.members, caches)]
        logits = mean_logits(logits, self.weights)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts(self)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        return optimizer_groups(self, weight_decay)
