"""What one training process needs in memory, worked out before the model is built, so that a run that cannot fit
is refused in a second with the figures, not after minutes with an out-of-memory error.

Counted per process: the weights (fp32), their gradients and AdamW's two moments (the trainable part only; a
frozen substrate is a buffer with neither), each divided among the processes under `fsdp` (plus one block
gathered whole at a time); and the activations of one micro-batch. Activations follow Korthikanti et al. (2022,
"Reducing Activation Recomputation in Large Transformer Models"): about 34 bytes per token and d_model in 16-bit
per block, the attention scores not kept (SDPA's fused kernels recompute them), twice that in fp32; with
activation checkpointing only each block's input is kept, plus one block's whole. The head's logits are kept
in the training dtype and in fp32 for the loss, and its gradient in fp32. An estimate, within tens of percent:
what it is for is the order of magnitude.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import TrainConfig

GIB = 2**30
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class MemoryPlan:
    parameters: int  # every weight, the frozen substrate included
    trainable: int
    weights: int  # bytes per process, as are the following
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value / GIB:,.1f}" for name, value in (
            ("weights", self.weights), ("gradients", self.gradients), ("AdamW", self.optimizer),
            ("activations", self.activations)))  # fmt: skip
        return f"{self.total / GIB:,.1f} GiB per process ({parts})"


def plan(model: nn.Module, train: TrainConfig, processes: int, sharded: bool, dtype: torch.dtype,
         recomputed: bool) -> MemoryPlan:  # fmt: skip
    """The memory of `model` (built on the meta device: shapes, no storage) trained with `train`'s micro-batch."""
    from bvvtok.lm.model import Block

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad) + sum(b.numel() for b in model.buffers())
    share = processes if sharded else 1
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    gathered = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0) * 4 if sharded and share > 1 else 0
    weights = (trainable * 4) // share + frozen * 4 + gathered
    configs = [m.config for m in getattr(model, "members", [model])]  # a mixture's members, or the model
    tokens = train.batch_size * min(c.context for c in configs)
    width = 2 if dtype in (torch.bfloat16, torch.float16) else 4
    activations = 0
    for c in configs:
        per_block = tokens * c.d_model * 17 * width
        kept = c.n_layer * tokens * c.d_model * width + per_block if recomputed else c.n_layer * per_block
        logits = tokens * c.vocab_size * (width + 4 + 4)
        activations += kept + logits + tokens * c.d_model * 4
    return MemoryPlan(trainable + frozen, trainable, weights, trainable * 4 // share, trainable * 8 // share, activations)


def capacity(device: torch.device) -> tuple[int | None, str]:
    """The memory one process may use on `device`, and what it is (None: unknown, not checked)."""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return properties.total_memory, properties.name
    return available_memory(), "memory available"


def available_memory() -> int | None:
    """Bytes the system can give without swapping: MemAvailable on Linux, else the physical memory (None: unknown)."""
    try:
        for line in MEMINFO.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None


def check_fits(memory: MemoryPlan, device: torch.device, processes_per_device: int = 1) -> None:
    """Refuse, with the figures and what would help, a run that needs more than the device has."""
    limit, what = capacity(device)
    if limit is None or memory.total * processes_per_device <= limit:
        return
    raise BvvtokError(f"this run needs about {memory.describe()}, {what} has {limit / GIB:,.1f} GiB; lower "
                      f"{option('batch_size')} (with {option('grad_accum')} to keep the global batch), add "
                      f"{option('activation_checkpointing', True)}, or shard it with {option('strategy', 'fsdp')} over "
                      "more processes")  # fmt: skip
