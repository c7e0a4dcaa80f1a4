"""Which windows of the token stream each optimizer step and each evaluation read.

The windows a step reads are a function of (seed, step) alone: a resumed run, or the same global batch
spread over several processes, reads exactly the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import TrainConfig
from bvvtok.lm.data import Split, TokenData
from bvvtok.lm.sources import SourceData, shares


class WindowOrder:
    """The training windows in a fresh seeded permutation per epoch; step s reads positions [s*G, (s+1)*G).

    `salt` tells apart the sources of a mixture, which share the run's seed."""

    def __init__(self, n_windows: int, seed: int, salt: tuple[int, ...] = ()) -> None:
        self.n, self.seed, self.salt = n_windows, seed, salt
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch, *self.salt]).permutation(self.n)
        return self._perm

    def positions(self, start: int, count: int) -> np.ndarray:
        """The windows at positions [start, start + count) of the endless sequence of epochs."""
        epochs, within = np.divmod(start + np.arange(count), self.n)
        return np.array([self._permutation(int(e))[int(i)] for e, i in zip(epochs, within)], dtype=np.int64)

    def global_batch(self, step: int, size: int) -> np.ndarray:
        return self.positions(step * size, size)


MIX_SALT = 0x6D6978  # the seed stream that splits each step's batch among a mixture's sources


class MixtureOrder:
    """The windows of each step's global batch drawn from several sources by their shares of the tokens.

    Step s gives source i as many of its G windows as systematic sampling with one uniform u_s (seeded) puts in
    its share: floor or ceil of G * share_i, exact on average. Each source reads its own windows in its own seeded
    order, and the windows of all sources are numbered one after another (`bases`), as one Split holds them. One
    source is plain WindowOrder: a corpus without names trains on exactly the windows it always did.
    """

    def __init__(self, sizes: Sequence[int], bases: Sequence[int], shares: Sequence[float], seed: int, size: int,
                 steps: int) -> None:  # fmt: skip
        single = len(sizes) == 1
        self.orders = [WindowOrder(n, seed, () if single else (i,)) for i, n in enumerate(sizes)]
        self.bases, self.size = list(bases), size
        self.shares = [share / sum(shares) for share in shares]
        edges = np.concatenate(([0.0], np.cumsum(self.shares))) * size
        edges[-1] = size  # the last edge exactly: every window goes to some source
        u = np.zeros(steps) if single else np.random.default_rng([seed, MIX_SALT]).random(steps)
        taken = np.clip(np.ceil(edges[None, :] - u[:, None]), 0, size).astype(np.int64)
        self.counts = np.diff(taken, axis=1)  # [step, source]: windows of each source in each step
        self.starts = np.concatenate([np.zeros((1, len(sizes)), np.int64), np.cumsum(self.counts, axis=0)])

    def global_batch(self, step: int) -> np.ndarray:
        return np.concatenate([base + order.positions(int(start), int(count)) for order, base, start, count
                               in zip(self.orders, self.bases, self.starts[step], self.counts[step])])  # fmt: skip

    def windows_read(self, steps: int) -> list[int]:
        """How many windows each source gives the first `steps` steps."""
        return [int(n) for n in self.starts[steps]]


def batch(split: Split, windows: np.ndarray, context: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.from_numpy(np.stack([split.window(int(i), context) for i in windows]))
    rows = rows.to(device, non_blocking=True)
    return rows[:, :-1], rows[:, 1:]


@dataclass
class Validation:
    split: Split
    windows: np.ndarray  # the same windows at every evaluation
    source: str  # where they come from, for the record


def plan_windows(data: TokenData, context: int, vocab_size: int, t: TrainConfig,
                 name: str = "") -> tuple[Split, int, Validation]:  # fmt: skip
    """The split training reads, its first how-many windows, and the windows validation reads.

    Normally the two splits of the content hash. When that left either side without a
    whole window (a small corpus, or a few large documents), all the text is on one
    side: the last `val_fraction` of its windows are held out and never trained on.
    """
    if data.vocab_size != vocab_size:
        raise BvvtokError(f"the token shards are for a {data.vocab_size:,}-token vocabulary, the substrate has {vocab_size:,}")
    n_train, n_val = data.train.n_windows(context), data.val.n_windows(context)
    if n_train >= 1 and n_val >= 1:
        train_split, val_split, first, n, source = data.train, data.val, 0, n_val, "the held-out split"
    else:
        train_split = val_split = data.train if n_train >= n_val else data.val
        n_all = max(n_train, n_val)
        n = max(1, round(n_all * t.val_fraction))
        n_train = first = n_all - n
        source = f"the last {n:,} windows of the text"
    if n_train < 1:
        text = f"the training text of source {name}" if name else "the training text"
        raise BvvtokError(
            f"context {context} is longer than {text} allows ({data.train.n_tokens + data.val.n_tokens:,} tokens "
            f"for training and validation); lower {option('context')} or add text"
        )
    chosen = first + np.unique(np.linspace(0, n - 1, min(n, t.eval_windows)).astype(np.int64))
    return train_split, n_train, Validation(val_split, chosen, source)


@dataclass
class Plan:
    """What a run reads: every source's training windows as one Split (source after source), the order of its
    steps, and each source's validation windows."""

    split: Split
    order: MixtureOrder
    names: list[str]  # the sources' names ("" for one unnamed corpus)
    sizes: list[int]  # each source's training windows
    validations: list[Validation]

    def epochs(self, steps: int) -> list[float]:
        """How many times the first `steps` steps read each source's training windows."""
        return [read / size for read, size in zip(self.order.windows_read(steps), self.sizes)]


def plan_sources(sources: Sequence[SourceData], context: int, vocab_size: int, t: TrainConfig, size: int) -> Plan:
    """Each source planned as plan_windows plans one corpus, then mixed by share into `size` windows per step."""
    shards: list[np.ndarray] = []
    bases, sizes, validations = [], [], []
    for s in sources:
        split, n_train, validation = plan_windows(s.data, context, vocab_size, t, s.source.name)
        bases.append(sum(max(0, (len(shard) - 1) // context) for shard in shards))
        shards += split.shards
        sizes.append(n_train)
        validations.append(validation)
    order = MixtureOrder(sizes, bases, shares([s.source.weight for s in sources], sizes), t.seed, size, t.steps)
    plan = Plan(Split(shards), order, [s.source.name for s in sources], sizes, validations)
    short = [(name, e) for name, e in zip(plan.names, plan.epochs(t.steps)) if e > 1]
    if short and not t.repeat_data:
        what = ", ".join(f"{name or 'the corpus'} {e:.2f} times" for name, e in short)
        off, on = option("repeat_data", False, cli="--no-repeat-data"), option("repeat_data", True, cli="--repeat-data")
        raise BvvtokError(f"{t.steps:,} steps would read {what}, and repeating text is off ({off}); add text, lower "
                          f"the weight or the steps, or allow repeats with {on}")  # fmt: skip
    return plan
