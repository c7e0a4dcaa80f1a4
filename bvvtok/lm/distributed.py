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
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bvvtok.errors import BvvtokError, option


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device
    local_size: int = 1  # the processes on this machine (they share its memory)

    @property
    def main(self) -> bool:
        """Rank 0: the only process that tokenizes, prints and writes."""
        return self.rank == 0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BvvtokError(f"{option('device', 'cuda')}, but torch sees no CUDA device; use {option('device', 'cpu')} or auto")
    if name not in ("cpu", "cuda"):
        raise BvvtokError(f"{option('device')} {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision on `device` at `dtype` (bf16 on CUDA); nothing to do in fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def join(device: str) -> World:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    chosen = pick_device(device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, chosen)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return World(rank, size, chosen, local_size)


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



def share(world: World, value: Any) -> Any:
    """Rank 0's `value` on every process (a path rank 0 chose, say)."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class DDP:
    """Every process holds the whole model and optimizer; gradients are averaged across processes after backward.
    A checkpoint is whole: the weights and optimizer state as one process holds them, written by rank 0."""

    name = "ddp"

    def wrap(self, model: nn.Module, world: World, dtype: torch.dtype, compile: bool = False) -> nn.Module:
        model = torch.compile(model) if compile else model
        if world.size == 1:
            return model  # a world of one: nothing to average
        # the frozen embedding is identical everywhere: no need to broadcast buffers each step
        ids = [world.device.index] if world.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager:
        """While accumulating gradients: no averaging until the last micro-batch."""
        return net.no_sync() if isinstance(net, DistributedDataParallel) else contextlib.nullcontext()

    def full_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's weights, on rank 0 (every process must call it)."""
        return model.state_dict()

    def load_full_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """What rank 0 writes into the checkpoint's optimizer.pt for the optimizer."""
        return {"optimizer": optimizer.state_dict()}

    def save_shards(self, model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path, world: World) -> None:
        """Files every process writes into the checkpoint folder: none for a whole checkpoint."""

    def load_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any], folder: Path) -> None:
        optimizer.load_state_dict(saved["optimizer"])


class FSDP(DDP):
    """Parameters, gradients and optimizer state sharded across the processes (PyTorch's `fully_shard`, FSDP2):
    each block, then the rest. The frozen substrate is a buffer, not a parameter: no shard of it, no optimizer
    state. With bf16 training, parameters are gathered in bf16 and gradients reduced in fp32. A checkpoint holds
    the whole weights (model.safetensors, gathered on rank 0, so one process reads the run as any other) and
    the optimizer state as each process holds it (`optimizer/`, a torch.distributed.checkpoint folder), which a
    resume reads with the same number of processes. A world of one shards nothing: it runs and saves as DDP."""

    name = "fsdp"

    def wrap(self, model: nn.Module, world: World, dtype: torch.dtype, compile: bool = False) -> nn.Module:
        if world.size == 1:
            return super().wrap(model, world, dtype, compile)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        from bvvtok.lm.model import Block

        mesh = init_device_mesh(world.device.type, (world.size,))
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        for block in [m for m in model.modules() if isinstance(m, Block)]:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return torch.compile(model) if compile else model  # compiled after sharding, as FSDP2 wants it

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager:
        if not hasattr(net, "set_requires_gradient_sync"):
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def unsynced():
            net.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                net.set_requires_gradient_sync(True)

        return unsynced()

    def full_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if not _sharded(model):
            return super().full_state(model)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        if not _sharded(model):
            return super().load_full_state(model, state)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return {} if _sharded(model) else super().optimizer_state(model, optimizer)

    def save_shards(self, model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path, world: World) -> None:
        if not _sharded(model):
            return
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=folder / SHARDS)

    def load_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any], folder: Path) -> None:
        if not _sharded(model):
            return super().load_optimizer(model, optimizer, saved, folder)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

        state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
        dcp.load(state, checkpoint_id=folder / SHARDS)
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


SHARDS = "optimizer"  # FSDP: the sharded optimizer state, a folder inside checkpoint/


def _sharded(model: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


STRATEGIES: dict[str, DDP] = {strategy.name: strategy for strategy in (DDP(), FSDP())}


def strategy(name: str) -> DDP:
    if name not in STRATEGIES:
        raise BvvtokError(f"{option('strategy')} {name!r}: choose {' or '.join(STRATEGIES)}")
    return STRATEGIES[name]


def wrap(model: nn.Module, world: World, name: str = "ddp", dtype: torch.dtype = torch.float32,
         compile: bool = False) -> nn.Module:  # fmt: skip
    """The module to run forward and backward through: `model` as the strategy spreads it over the processes
    (compiled too, when asked, in the order the strategy needs). The optimizer is built on the model's parameters
    after this: a sharding strategy replaces them with their shards."""
    return strategy(name).wrap(model, world, dtype, compile)
