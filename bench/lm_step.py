"""What bench/train_step.py and bench/gpu.py share: a model on a substrate, bvvtok's training step, its FLOPs.

The step is the one bvvtok.lm.train runs for a micro-batch that ends an optimizer step: forward with targets
under autocast, backward, gradient clipping, fused AdamW and the learning-rate schedule, zero_grad, built from
the library's own pieces (autocast, lr_factor, the model's AdamW groups). train.py's loop is inline, so those
few lines are restated here; a `step` function in bvvtok.lm.train would let the benches call it instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bvvtok.lm.config import RunConfig
from bvvtok.lm.distributed import autocast
from bvvtok.lm.model import GPT
from bvvtok.lm.train import lr_factor

Wrap = Callable[[nn.Module], nn.Module]  # DDP or FSDP around the (compiled) model


def unit_rows(vocab: int, n_embed: int, seed: int = 0) -> Tensor:
    """Random rows of unit length: a glyph substrate's shape (the speed of a model depends on nothing else)."""
    return nn.functional.normalize(torch.randn(vocab, n_embed, generator=torch.Generator().manual_seed(seed)), dim=1)


def bit_rows(vocab: int, n_embed: int, seed: int = 0) -> Tensor:
    """Random 0/1 rows: a bits substrate's shape and values."""
    return (torch.rand(vocab, n_embed, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def build_model(config: RunConfig, substrate: Tensor, device: torch.device) -> GPT:
    """The model, created on the device (seconds less than initialising 300M weights on the CPU)."""
    torch.manual_seed(0)
    with device:
        return GPT(config.model, substrate).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Trainer:
    """A model and its optimizer as bvvtok.lm.train sets them up; `net` runs forward (the model compiled or wrapped)."""

    model: GPT
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float
    dtype: torch.dtype

    def step(self, x: Tensor, y: Tensor) -> float:
        """One optimizer step on one micro-batch; the loss, read as train.py reads it (a sync with the GPU)."""
        with autocast(x.device, self.dtype):
            _, loss = self.net(x, y)
        loss.backward()
        value = loss.item()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value


def trainer(config: RunConfig, substrate: Tensor, device: torch.device, dtype: torch.dtype, compile: bool = False,
            wrap: Wrap | None = None) -> Trainer:  # fmt: skip
    """`config` (its substrate size filled in) trained as `bvvtok train` would: compiled, then wrapped, then
    the optimizer over the model's own parameter groups."""
    model = build_model(config, substrate, device)
    net: nn.Module = torch.compile(model) if compile else model
    if wrap is not None:
        net = wrap(net)
    t = config.train
    optimizer = torch.optim.AdamW(model.optimizer_groups(t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2), fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(t))
    return Trainer(model, net, optimizer, scheduler, t.grad_clip, dtype)


def timed_steps(trainer: Trainer, ids: Tensor, n: int) -> list[float]:
    """Seconds of each of `n` optimizer steps on the same windows `ids` [batch, context + 1], the device's queue
    drained before and after each."""
    x, y = ids[:, :-1], ids[:, 1:]
    times = []
    for _ in range(n):
        synchronize(ids.device)
        began = time.perf_counter()
        trainer.step(x, y)
        synchronize(ids.device)
        times.append(time.perf_counter() - began)
    return times


def matmul_weights(model: nn.Module) -> int:
    """The weights that multiply activations: every nn.Linear's, the blocks' and the head's. Not the biases and
    norms (no matmul), nor the embedding: a lookup, frozen or not."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def flops_per_token(model: GPT) -> int:
    """Training FLOPs per token: 6 per matmul weight (forward 2, backward 4), plus attention's scores and weighted
    sums, 12 x n_layer x d_model x context (PaLM's estimate, not halved for causality). An embedding costs no
    FLOPs either way: its forward is a lookup and, when it trains, its gradient a scatter-add."""
    c = model.config
    return 6 * matmul_weights(model) + 12 * c.n_layer * c.d_model * c.context
