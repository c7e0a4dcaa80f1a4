"""One process or many: PyTorch's own distributed stack, as `torchrun` sets it up.

`torchrun --nproc_per_node=N -m bvvtok train ...` starts N processes with RANK,
LOCAL_RANK and WORLD_SIZE in their environment; each joins the process group
(NCCL on GPUs, gloo on CPUs) and takes its own device. A plain `bvvtok train` is
a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bvvtok.errors import BvvtokError


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the only process that tokenizes, prints and writes."""
        return self.rank == 0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BvvtokError("--device cuda, but torch sees no CUDA device; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise BvvtokError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def join(device: str) -> World:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    chosen = pick_device(device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, chosen)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return World(rank, size, chosen)


def leave(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def sum_all(world: World, values: list[float]) -> list[float]:
    """The sum over all processes of each value (float64, so logged figures agree across world sizes)."""
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()



class DDP:
    """Every process holds the whole model and optimizer; gradients are averaged across processes after backward."""

    name = "ddp"

    def wrap(self, model: nn.Module, world: World) -> nn.Module:
        if world.size == 1:
            return model  # a world of one: nothing to average
        # the frozen embedding is identical everywhere: no need to broadcast buffers each step
        ids = [world.device.index] if world.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager:
        """While accumulating gradients: no averaging until the last micro-batch."""
        return net.no_sync() if isinstance(net, DistributedDataParallel) else contextlib.nullcontext()


STRATEGIES = {strategy.name: strategy for strategy in (DDP(),)}


def strategy(name: str) -> DDP:
    if name not in STRATEGIES:
        raise BvvtokError(f"--strategy {name!r}: choose {' or '.join(STRATEGIES)}")
    return STRATEGIES[name]


def wrap(model: nn.Module, world: World, name: str = "ddp") -> nn.Module:
    """The module to run forward and backward through: `model` as the strategy spreads it over the processes.
    The optimizer is built on the wrapped model's parameters, after this."""
    return strategy(name).wrap(model, world)
