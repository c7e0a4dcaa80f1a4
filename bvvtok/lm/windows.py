"""Which windows of the token stream each optimizer step and each evaluation read.

The windows a step reads are a function of (seed, step) alone: a resumed run, or the same global batch
spread over several processes, reads exactly the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import TrainConfig
from bvvtok.lm.data import Split, TokenData


class WindowOrder:
    """The training windows in a fresh seeded permutation per epoch; step s reads positions [s*G, (s+1)*G)."""

    def __init__(self, n_windows: int, seed: int) -> None:
        self.n, self.seed = n_windows, seed
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perm

    def global_batch(self, step: int, size: int) -> np.ndarray:
        epochs, within = np.divmod(step * size + np.arange(size), self.n)
        return np.array([self._permutation(int(e))[int(i)] for e, i in zip(epochs, within)], dtype=np.int64)


def batch(split: Split, windows: np.ndarray, context: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.from_numpy(np.stack([split.window(int(i), context) for i in windows]))
    rows = rows.to(device, non_blocking=True)
    return rows[:, :-1], rows[:, 1:]


@dataclass
class Validation:
    split: Split
    windows: np.ndarray  # the same windows at every evaluation
    source: str  # where they come from, for the record


def plan_windows(data: TokenData, context: int, vocab_size: int, t: TrainConfig) -> tuple[Split, int, Validation]:
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
        raise BvvtokError(
            f"context {context} is longer than the training text allows ({data.train.n_tokens + data.val.n_tokens:,} tokens "
            f"for training and validation); lower {option('context')} or add text"
        )
    chosen = first + np.unique(np.linspace(0, n - 1, min(n, t.eval_windows)).astype(np.int64))
    return train_split, n_train, Validation(val_split, chosen, source)
