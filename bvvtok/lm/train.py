"""`bvvtok train` as a library call: a substrate folder and a corpus in, a run folder out.

    result = train(Path("artifacts/vocab-65k-256"), [Path("corpus.jsonl")], Path("artifacts/run"),
                   resolve_config("tiny", None, {}, {}))

The loop is nanoGPT's: AdamW, linear warmup then cosine decay, gradient clipping
and accumulation, bf16 autocast on CUDA, optional torch.compile, DDP under
torchrun. What makes it reproducible: the windows each optimizer step reads are a
function of (seed, step) alone, so a resumed run, or the same global batch spread
over several processes, reads exactly the same data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from bvvtok.errors import BvvtokError
from bvvtok.files import sha256_file
from bvvtok.lm import distributed
from bvvtok.lm.config import RunConfig, TrainConfig, differences, with_substrate
from bvvtok.lm.data import Split, TokenData, is_token_folder, load_tokens, prepare_tokens
from bvvtok.lm.distributed import World
from bvvtok.lm.metrics import METRICS, Row, read_metrics, write_metrics
from bvvtok.lm.model import GPT
from bvvtok.lm.plots import plot_losses
from bvvtok.lm.run_folder import (
    LOSS_PNG,
    WEIGHTS,
    Checkpoint,
    has_checkpoint,
    is_run,
    load_checkpoint,
    load_model,
    read_raw_config,
    save_checkpoint,
    start_run,
    substrate_of,
)
from bvvtok.output import check_replace, claim, real
from bvvtok.substrate.load import LoadedSubstrate, load_substrate

Event = Callable[[str, dict[str, Any]], None]  # ("start", info) | ("step", {"row": Row}) | ("checkpoint", {...})


@dataclass
class TrainResult:
    out: Path
    rows: list[Row]
    parameters: dict[str, int]
    unigram_entropy: float  # nats per token of the training split: what a model without context can reach


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """Linear warmup over `warmup` steps, then cosine decay to `min_lr_ratio` at the last step."""

    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


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


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise BvvtokError(f"--dtype {name!r}: choose auto, fp32 or bf16")
    return dtypes[name]


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
            "for training and validation); lower --context or add text"
        )
    chosen = first + np.unique(np.linspace(0, n - 1, min(n, t.eval_windows)).astype(np.int64))
    return train_split, n_train, Validation(val_split, chosen, source)


@torch.no_grad()
def evaluate(model: torch.nn.Module, validation: Validation, context: int, batch_size: int, world: World, dtype: torch.dtype) -> float:
    """Mean loss over the validation windows, shared among the processes."""
    mine = validation.windows[world.rank :: world.size]
    total, tokens = 0.0, 0.0
    model.eval()
    for start in range(0, len(mine), batch_size):
        x, y = batch(validation.split, mine[start : start + batch_size], context, world.device)
        with autocast(world.device, dtype):
            _, loss = model(x, y)
        total += loss.item() * y.numel()
        tokens += y.numel()
    model.train()
    total, tokens = distributed.sum_all(world, [total, tokens])
    return total / tokens


def _data(corpus: list[Path], substrate: LoadedSubstrate, config: RunConfig, world: World, progress) -> TokenData:
    """Tokenize on rank 0 (or reuse the cache), then every rank opens the same shards."""
    if len(corpus) == 1 and is_token_folder(corpus[0]):
        return load_tokens(corpus[0])
    data = None
    if world.main:
        data = prepare_tokens(substrate.folder, corpus, val_fraction=config.train.val_fraction, progress=progress)
    distributed.barrier(world)
    return data or prepare_tokens(substrate.folder, corpus, val_fraction=config.train.val_fraction)


def _check_disk(out: Path, model: GPT) -> None:
    """A checkpoint (weights + two AdamW moments) is written beside the previous one: both must fit."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = 2 * sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    need = 2 * (weights + moments)
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < need:
        raise BvvtokError(f"not enough disk space for {out}: checkpoints need about {need / 1e6:,.0f} MB, {free / 1e6:,.0f} MB free; free space or choose another --out")


def _resume_state(out: Path, raw: dict[str, Any], substrate: LoadedSubstrate, data: TokenData) -> tuple[Checkpoint, list[Row]]:
    if not is_run(out):
        raise BvvtokError(f"--resume: {out} is not a run folder written by bvvtok train; drop --resume to start one")
    changed = differences(read_raw_config(out), raw)
    if changed:
        raise BvvtokError(f"--resume with a different configuration ({'; '.join(changed)}); use the run's settings or start a new --out")
    checkpoint = load_checkpoint(out)
    if checkpoint.state.get("substrate_sha256") != substrate.manifest_sha256:
        raise BvvtokError(f"--resume: {substrate.folder} is not the substrate this run was trained on; pass the same --substrate")
    if checkpoint.state.get("data_key") != data.key:
        raise BvvtokError("--resume: the corpus differs from the one this run started with; pass the same --corpus files")
    rows = [r for r in read_metrics(out / METRICS) if r.step <= checkpoint.state["step"]]
    return checkpoint, rows


def _initial_model(init_from: Path, substrate: LoadedSubstrate, train_only: Sequence[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A run, grown run or mixture to continue from, with only the parameters that match `train_only` trainable."""
    if substrate_of(init_from) != substrate.manifest_sha256:
        raise BvvtokError(f"--init-from {init_from} was trained on another substrate than {substrate.folder}; pass the substrate it was trained on")
    model, _ = load_model(init_from)
    raw = read_raw_config(init_from)
    patterns = list(train_only) or raw.get("trainable") or ["*"]
    names = [name for name, _ in model.named_parameters()]
    unmatched = [pat for pat in patterns if not any(fnmatch(n, pat) for n in names)]
    if unmatched:
        raise BvvtokError(f"--train-only {', '.join(unmatched)} matches no parameter; names look like {names[0]}, {names[-1]}")
    for name, p in model.named_parameters():
        p.requires_grad_(any(fnmatch(name, pat) for pat in patterns))
    shape = {k: raw[k] for k in ("model", "members", "mixture_weights") if k in raw}
    origin = {"folder": init_from.name, "weights_sha256": sha256_file(init_from / WEIGHTS)}
    return model.train(), {**shape, "trainable": patterns, "init_from": origin}


def train(
    substrate_dir: Path,
    corpus: list[Path],
    out: Path,
    config: RunConfig,
    device: str = "auto",
    dtype: str = "auto",
    compile: bool = False,
    resume: bool = False,
    force: bool = False,
    on_event: Event | None = None,
    data_progress: Callable[[int, int], None] | None = None,
    init_from: Path | None = None,
    train_only: Sequence[str] = (),
) -> TrainResult:
    """Train `config` on the substrate; with `init_from`, continue a run, grown run or mixture instead
    (its architecture and weights; only the parameters matching `train_only`, or its own `trainable`, move)."""
    world = distributed.join(device)
    corpus = [Path(c) for c in corpus]
    init_from = Path(init_from) if init_from else None
    inputs = [Path(substrate_dir), *corpus, *([init_from] if init_from else [])]
    try:
        with claim(Path(out), inputs) if world.main else contextlib.nullcontext(real(Path(out))) as target:
            return _train(world, Path(substrate_dir), corpus, target, config, dtype, compile, resume,
                          force, on_event, data_progress, init_from, train_only)  # fmt: skip
    finally:
        distributed.leave(world)


def _resumes(out: Path, resume: bool, force: bool) -> bool:
    """Whether the run continues `out` (True) or starts afresh there, which is checked to be allowed.

    A run folder that never reached its first checkpoint holds nothing to continue
    or to lose: it is started again, with or without --resume or --force.
    """
    if resume and force:
        raise BvvtokError("--resume and --force contradict each other; pass one")
    started = is_run(out) and not has_checkpoint(out)
    if resume:
        if not is_run(out):
            raise BvvtokError(f"--resume: {out} is not a run folder written by bvvtok train; drop --resume to start one")
        return not started
    if is_run(out) and not started and not force:
        raise BvvtokError(f"--out {out} is a run folder; pass --resume to continue it, --force to replace it, or choose another path")
    check_replace(out, force or started)
    return False


def _train(world: World, substrate_dir: Path, corpus: list[Path], out: Path, config: RunConfig, dtype_name: str,
           compile: bool, resume: bool, force: bool, on_event: Event | None, data_progress,
           init_from: Path | None, train_only: Sequence[str]) -> TrainResult:  # fmt: skip
    emit = on_event if (on_event and world.main) else (lambda kind, info: None)
    if train_only and init_from is None:
        raise BvvtokError("--train-only goes with --init-from (a fresh model trains whole)")
    resume = _resumes(out, resume, force)
    dtype = pick_dtype(dtype_name, world.device)
    substrate = load_substrate(substrate_dir)
    vocab_size, n_embed = substrate.weight.shape
    if substrate.tokenizer.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise BvvtokError(f"{substrate_dir}: the tokenizer has {substrate.tokenizer.get_vocab_size():,} tokens, the embedding {vocab_size:,} rows; rebuild the substrate")
    torch.manual_seed(config.train.seed)
    if init_from is not None:
        model, shape = _initial_model(init_from, substrate, train_only)
    else:
        config = with_substrate(config, vocab_size, n_embed)
        model, shape = GPT(config.model, substrate.weight), {"model": config.as_dict()["model"]}
    raw = {**shape, "train": dataclasses.asdict(config.train)}
    model = model.to(world.device)
    context = model.context
    data = _data(corpus, substrate, config, world, data_progress)
    train_split, n_train, validation = plan_windows(data, context, vocab_size, config.train)

    optimizer = torch.optim.AdamW(
        model.optimizer_groups(config.train.weight_decay), lr=config.train.lr, betas=(config.train.beta1, config.train.beta2),
        fused=True,  # one kernel for all parameters, on CPU too (10x the foreach path there)
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.train))
    counts = train_split.unigram_counts(vocab_size)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    frozen = not any(p.requires_grad for name, p in model.named_parameters() if name.endswith("token_embeddings.weight"))
    run_info = {
        "substrate": {"manifest_sha256": substrate.manifest_sha256, "method": substrate.manifest["substrate"]["method"],
                      "n_embed": n_embed},
        "data": {"key": data.key, "train_tokens": data.train.n_tokens, "val_tokens": data.val.n_tokens,
                 "validation": validation.source},
        "parameters": model.parameter_counts(),
        "world_size": world.size,
    }  # fmt: skip
    rows: list[Row] = []
    start = 0
    if resume:
        checkpoint, rows = _resume_state(out, raw, substrate, data)
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer["optimizer"])
        scheduler.load_state_dict(checkpoint.optimizer["scheduler"])
        torch.set_rng_state(checkpoint.optimizer["rng"])
        start = checkpoint.state["step"]
    elif world.main:
        _check_disk(out, model)
        start_run(out, raw, substrate, run_info)
    distributed.barrier(world)
    emit("start", {**run_info, "config": config, "raw": raw, "frozen": frozen, "device": str(world.device),
                   "dtype": str(dtype).removeprefix("torch."), "start_step": start, "unigram_entropy": entropy})  # fmt: skip

    net: torch.nn.Module = torch.compile(model) if compile else model
    if world.size > 1:  # the frozen embedding is identical everywhere: no need to broadcast buffers each step
        net = DistributedDataParallel(net, device_ids=[world.device.index] if world.device.type == "cuda" else None,
                                      broadcast_buffers=False)  # fmt: skip

    t = config.train
    order = WindowOrder(n_train, t.seed)
    global_batch = t.batch_size * t.grad_accum * world.size
    checkpoint_every = t.checkpoint_every or t.eval_every
    for step in range(start, t.steps):
        began = time.perf_counter()
        windows = order.global_batch(step, global_batch)
        loss_sum = 0.0
        for micro in range(t.grad_accum):
            first = (micro * world.size + world.rank) * t.batch_size
            x, y = batch(train_split, windows[first : first + t.batch_size], context, world.device)
            sync = micro == t.grad_accum - 1 or world.size == 1
            with (contextlib.nullcontext() if sync else net.no_sync()), autocast(world.device, dtype):
                _, loss = net(x, y)
            (loss / t.grad_accum).backward()
            loss_sum += loss.item()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        train_loss = distributed.sum_all(world, [loss_sum / t.grad_accum])[0] / world.size
        speed = global_batch * context / (time.perf_counter() - began)
        done = step + 1
        val = evaluate(model, validation, context, t.batch_size, world, dtype) if done % t.eval_every == 0 or done == t.steps else None
        row = Row(done, train_loss, val, lr, speed)
        rows.append(row)
        emit("step", {"row": row})
        if world.main and (done % checkpoint_every == 0 or done == t.steps):
            state = {"step": done, "data_key": data.key, "substrate_sha256": substrate.manifest_sha256}
            extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
            title = f"{out.name}: {'frozen' if frozen else 'unfrozen'} substrate"

            def logs(place: Callable[[str], Path]) -> None:
                write_metrics(place(METRICS), rows)
                plot_losses(rows, place(LOSS_PNG), title)

            save_checkpoint(out, Checkpoint(model.state_dict(), extra, state), {**run_info, "step": done}, logs)
            emit("checkpoint", {"step": done})
    distributed.barrier(world)
    return TrainResult(out, rows, model.parameter_counts(), entropy)

