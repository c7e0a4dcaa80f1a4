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
import hashlib
import json
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
from tokenizers import Tokenizer

from bvvtok.difference import size_text
from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file
from bvvtok.lm import distributed, tracking
from bvvtok.lm.config import RunConfig, TrainConfig, differences, with_substrate, with_token_budget
from bvvtok.lm.distributed import SHARDS, World, autocast
from bvvtok.lm.memory import MemoryPlan, check_fits, plan
from bvvtok.lm.metrics import METRICS, Row, read_metrics, write_metrics
from bvvtok.lm.model import GPT, Block
from bvvtok.lm.plots import plot_losses
from bvvtok.lm.run_folder import (
    LOSS_PNG,
    WEIGHTS,
    Checkpoint,
    is_run,
    is_started_run,
    load_checkpoint,
    load_model,
    read_raw_config,
    save_checkpoint,
    start_run,
    substrate_of,
    train_config,
)
from bvvtok.lm.sources import SourceData, parse_sources, source_paths, source_tokens
from bvvtok.lm.validation import pooled, validation_loss, validation_windows
from bvvtok.vocab.corpus import TEXT_COLUMN
from bvvtok.lm.windows import Plan, batch, plan_sources
from bvvtok.manifest import folder_kind
from bvvtok.output import check_replace, claim, real
from bvvtok.lm.proof import ModelView, prove
from bvvtok.substrate.load import LoadedSubstrate, load_substrate

Event = Callable[[str, dict[str, Any]], None]  # ("start", info) | ("step", {"row": Row}) | ("checkpoint", {...})


@dataclass
class TrainResult:
    out: Path
    rows: list[Row]
    parameters: dict[str, int]
    unigram_entropy: float  # nats per token of the training split: what a model without context can reach
    tokens_seen: dict[str, int] = dataclasses.field(default_factory=dict)  # training tokens read, per source


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """Linear warmup over `warmup` steps, then cosine decay to `min_lr_ratio` at the last step."""

    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise BvvtokError(f"{option('dtype')} {name!r}: choose auto, fp32 or bf16")
    return dtypes[name]


@dataclass(frozen=True)
class TrainOptions:
    """How a run is carried out: where and how fast it runs, not what it computes (that is RunConfig)."""

    device: str = "auto"  # auto, cpu or cuda
    dtype: str = "auto"  # autocast: auto (bf16 on CUDA), fp32 or bf16
    compile: bool = False  # torch.compile the model
    strategy: str = "ddp"  # how several processes share the work (bvvtok.lm.distributed.STRATEGIES)
    activation_checkpointing: bool = False  # recompute each block's activations in backward: memory for time
    resume: bool = False  # continue `out` from its last checkpoint
    force: bool = False  # replace `out` (bvvtok's own folder only)
    init_from: Path | None = None  # start from a run, grown run or mixture: its architecture and weights
    train_only: tuple[str, ...] = ()  # with init_from: the parameters that move (fnmatch patterns)
    track: tuple[str, ...] = ()  # also send the curves to these trackers (bvvtok.lm.tracking.TRACKERS)
    text_column: str = TEXT_COLUMN  # where the corpus's records (.jsonl, Parquet, ...) hold their text


@dataclass(frozen=True)
class Evaluation:
    loss: float  # over every source's validation windows
    bits_per_byte: float | None
    sources: dict[str, tuple[float, float | None]]  # named sources' own (loss, bits per byte)


def data_key(sources: Sequence[SourceData]) -> str:
    """What a resumed run must read again: one corpus's token key, or the sources' keys with their names and weights."""
    if len(sources) == 1 and not sources[0].source.name:
        return sources[0].data.key
    blob = [[s.source.name, s.data.key, s.source.weight] for s in sources]
    return hashlib.sha256(json.dumps(blob).encode()).hexdigest()


class Trainer:
    """One run set up: the model on its device, wrapped for the processes, its optimizer and schedule, and the
    windows it reads. `step` trains one optimizer step, `evaluate` validates, `save` checkpoints; the loop
    (`train`) decides when."""

    def __init__(self, world: World, model: torch.nn.Module, config: RunConfig, sources: list[SourceData],
                 options: TrainOptions, tokenizer: Tokenizer, dtype: torch.dtype) -> None:  # fmt: skip
        self.world, self.config = world, config
        self.model = model.to(world.device)
        self.context = self.model.context
        self.data_key = data_key(sources)
        t = config.train
        self.plan = plan_sources(sources, self.context, self.model.vocab_size, t, self.global_batch)
        self.split = self.plan.split
        self.val_windows = [validation_windows(v, self.context, tokenizer, self.model.vocab_size, world.device)
                            for v in self.plan.validations]  # fmt: skip
        self.dtype = dtype
        self.strategy = distributed.STRATEGIES[options.strategy]  # its name was checked before any work
        if options.activation_checkpointing:
            from torch.distributed._composable import checkpoint

            for block in [m for m in self.model.modules() if isinstance(m, Block)]:
                checkpoint(block)
        self.net = self.strategy.wrap(self.model, world, self.dtype, options.compile)
        self.optimizer = torch.optim.AdamW(
            self.model.optimizer_groups(t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2),
            fused=True,  # one kernel for all parameters, on CPU too (10x the foreach path there)
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(t))

    @property
    def global_batch(self) -> int:
        t = self.config.train
        return t.batch_size * t.grad_accum * self.world.size

    def step(self, index: int) -> tuple[float, float]:
        """Optimizer step `index` (from 0) on its global batch: (the mean training loss over every process, the lr)."""
        t, world = self.config.train, self.world
        windows = self.plan.order.global_batch(index)
        loss_sum = 0.0
        for micro in range(t.grad_accum):
            first = (micro * world.size + world.rank) * t.batch_size
            x, y = batch(self.split, windows[first : first + t.batch_size], self.context, world.device)
            last = micro == t.grad_accum - 1
            with (contextlib.nullcontext() if last else self.strategy.no_sync(self.net)), autocast(world.device, self.dtype):
                _, loss = self.net(x, y)
            (loss / t.grad_accum).backward()
            loss_sum += loss.item()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return distributed.sum_all(world, [loss_sum / t.grad_accum])[0] / world.size, lr

    def evaluate(self) -> Evaluation:
        """Mean loss over the validation windows, and their bits per byte, shared among the processes: over every
        source's windows, and (named sources) per source."""
        figures = [validation_loss(self.net, w, self.config.train.batch_size, self.dtype, self.world)
                   for w in self.val_windows]  # fmt: skip
        total = pooled(figures)
        named = {name: (f.loss, f.bits_per_byte) for name, f in zip(self.plan.names, figures) if name}
        return Evaluation(total.loss, total.bits_per_byte, named)

    def tokens_seen(self, steps: int) -> dict[str, int]:
        """The training tokens each source gave the first `steps` steps (one unnamed corpus: "corpus")."""
        read = self.plan.order.windows_read(steps)
        return {name or "corpus": n * self.context for name, n in zip(self.plan.names, read)}

    def resume(self, checkpoint: Checkpoint) -> int:
        """Continue from `checkpoint`: its weights, optimizer, schedule and RNG; returns the step it was at."""
        self.strategy.load_full_state(self.model, checkpoint.model)
        self.strategy.load_optimizer(self.model, self.optimizer, checkpoint.optimizer, checkpoint.folder)
        self.scheduler.load_state_dict(checkpoint.optimizer["scheduler"])
        torch.set_rng_state(checkpoint.optimizer["rng"])
        return checkpoint.state["step"]

    def save(self, out: Path, done: int, rows: list[Row], run_info: dict[str, Any], substrate_sha256: str,
             title: str) -> None:  # fmt: skip
        """Checkpoint after step `done`: weights, optimizer, schedule and RNG, with the logs so far. Every process
        calls it (a sharded model is gathered, each process writes its shards); rank 0 writes the rest."""
        world = self.world
        weights = self.strategy.full_state(self.model)
        state = {"step": done, "data_key": self.data_key, "substrate_sha256": substrate_sha256,
                 "strategy": self.strategy.name, "world_size": world.size}  # fmt: skip
        saved = {**self.strategy.optimizer_state(self.model, self.optimizer), "scheduler": self.scheduler.state_dict(),
                 "rng": torch.get_rng_state()}  # fmt: skip

        def shards(folder: Path | None) -> None:
            self.strategy.save_shards(self.model, self.optimizer, distributed.share(world, folder), world)

        def logs(place: Callable[[str], Path]) -> None:
            write_metrics(place(METRICS), rows)
            plot_losses(rows, place(LOSS_PNG), title)

        if world.main:
            info = {**run_info, "step": done, "tokens_seen": self.tokens_seen(done)}
            save_checkpoint(out, Checkpoint(weights, saved, state), info, logs, shards)
        else:
            shards(None)
        distributed.barrier(world)


def train(
    substrate_dir: Path,
    corpus: Sequence[str | Path],
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
    strategy: str = "ddp",
    activation_checkpointing: bool = False,
    track: Sequence[str] = (),
    text_column: str = TEXT_COLUMN,
) -> TrainResult:
    """Train `config` on the substrate; with `init_from`, continue a run, grown run or mixture instead
    (its architecture and weights; only the parameters matching `train_only`, or its own `trainable`, move).
    `track` names trackers that get the curves too: "tensorboard", "wandb" (bvvtok.lm.tracking). Record formats of
    the corpus (.jsonl, Parquet, ...) hold the text in `text_column`."""
    options = TrainOptions(device, dtype, compile, strategy, activation_checkpointing, resume, force,
                           Path(init_from) if init_from else None, tuple(train_only), tracking.check(track), text_column)  # fmt: skip
    distributed.strategy(strategy)  # a bad name is refused before any work
    given = source_paths(corpus) if corpus else []  # a malformed --corpus is refused before any work (none: later)
    world = distributed.join(device)
    inputs = [Path(substrate_dir), *given, *([options.init_from] if options.init_from else [])]
    try:
        with claim(Path(out), inputs) if world.main else contextlib.nullcontext(real(Path(out))) as target:
            with tracking.Tracking(options.track, target, on_event) as events:  # only rank 0 gets events: it alone logs
                return _run(world, Path(substrate_dir), corpus, target, config, options, events, data_progress)
    finally:
        distributed.leave(world)


def _run(world: World, substrate_dir: Path, corpus: Sequence[str | Path], out: Path, config: RunConfig, options: TrainOptions,
         on_event: Event | None, data_progress: Callable[[int, int], None] | None) -> TrainResult:  # fmt: skip
    """Set up, then the loop: a step, now and then an evaluation and a checkpoint (rank 0 writes)."""
    emit = on_event if (on_event and world.main) else (lambda kind, info: None)
    if options.train_only and options.init_from is None:
        raise BvvtokError(f"{option('train_only')} goes with {option('init_from')} (a fresh model trains whole)")
    resume = _resumes(out, options.resume, options.force)
    dtype = pick_dtype(options.dtype, world.device)  # a bad name is refused before the substrate is loaded
    substrate = load_substrate(substrate_dir)
    model, raw, config, needed = _model(substrate, config, options, world, dtype)
    t = config.train
    config = with_token_budget(config, t.batch_size * t.grad_accum * world.size * model.context)
    raw = {**raw, "train": dataclasses.asdict(config.train)}
    sources = _data(corpus, substrate, config, options.text_column, world, data_progress)
    trainer = Trainer(world, model, config, sources, options, substrate.tokenizer, dtype)
    counts = trainer.split.unigram_counts(model.vocab_size)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    frozen = not any(p.requires_grad for name, p in model.named_parameters() if name.endswith("token_embeddings.weight"))
    run_info = {
        "substrate": {"manifest_sha256": substrate.manifest_sha256, "method": substrate.manifest["substrate"]["method"],
                      "n_embed": substrate.weight.shape[1]},
        "data": _data_info(sources, trainer.plan, config.train.steps, trainer.data_key),
        "parameters": model.parameter_counts(),
        "world_size": world.size,
    }  # fmt: skip
    rows: list[Row] = []
    start = 0
    if resume:
        checkpoint, rows = _resume_state(out, raw, substrate, trainer.data_key, options.strategy, world.size)
        start = trainer.resume(checkpoint)
    elif world.main:
        _check_disk(out, model)
        start_run(out, raw, substrate, run_info)
    distributed.barrier(world)
    emit("start", {**run_info, "config": config, "raw": raw, "frozen": frozen, "device": str(world.device),
                   "dtype": str(trainer.dtype).removeprefix("torch."), "start_step": start, "unigram_entropy": entropy,
                   "memory": needed, "strategy": options.strategy, "context": trainer.context})  # fmt: skip

    t = config.train
    checkpoint_every = t.checkpoint_every or t.eval_every
    title = f"{out.name}: {'frozen' if frozen else 'unfrozen'} substrate"
    if start == 0:  # where the model starts (a grown or --init-from run: the loss it brings), before any step
        e = trainer.evaluate()
        rows.append(Row(0, None, e.loss, None, None, e.bits_per_byte, e.sources))
        emit("step", {"row": rows[-1]})
    for index in range(start, t.steps):
        began = time.perf_counter()
        train_loss, lr = trainer.step(index)
        speed = trainer.global_batch * trainer.context / (time.perf_counter() - began)
        done = index + 1
        e = trainer.evaluate() if done % t.eval_every == 0 or done == t.steps else None
        row = Row(done, train_loss, e and e.loss, lr, speed, e and e.bits_per_byte, e.sources if e else {})
        rows.append(row)
        emit("step", {"row": row})
        if done % checkpoint_every == 0 or done == t.steps:
            trainer.save(out, done, rows, run_info, substrate.manifest_sha256, title)
            emit("checkpoint", {"step": done})
    distributed.barrier(world)
    return TrainResult(out, rows, model.parameter_counts(), entropy, trainer.tokens_seen(t.steps))


def _model(substrate: LoadedSubstrate, config: RunConfig, options: TrainOptions, world: World,
           dtype: torch.dtype) -> tuple[torch.nn.Module, dict[str, Any], RunConfig, dict[str, MemoryPlan]]:  # fmt: skip
    """The model to train (fresh, or `init_from`'s), its config.json, the config with the substrate's size, and the
    memory a process needs to train it: refused before a fresh model is built when it cannot fit the device."""
    vocab_size, n_embed = substrate.weight.shape
    if substrate.tokenizer.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise BvvtokError(f"{substrate.folder}: the tokenizer has {substrate.tokenizer.get_vocab_size():,} tokens, "
                          f"the embedding {vocab_size:,} rows; rebuild the substrate")  # fmt: skip
    torch.manual_seed(config.train.seed)

    def memory(model: torch.nn.Module) -> dict[str, MemoryPlan]:
        """Per strategy, at this many processes; the chosen one must fit."""
        needed = {name: plan(model, config.train, world.size, name == "fsdp" and world.size > 1, dtype,
                             options.activation_checkpointing) for name in distributed.STRATEGIES}  # fmt: skip
        check_fits(needed[options.strategy], world.device, world.local_size if world.device.type == "cpu" else 1)
        return needed

    if options.init_from is not None:
        model, shape = _initial_model(options.init_from, substrate, options.train_only)
        needed = memory(model)
    else:
        config = with_substrate(config, vocab_size, n_embed)
        with torch.device("meta"):  # the shapes alone: nothing allocated until it is known to fit
            needed = memory(GPT(config.model, substrate.weight.to("meta")))
        model, shape = GPT(config.model, substrate.weight), {"model": config.as_dict()["model"]}
    return model, {**shape, "train": dataclasses.asdict(config.train)}, config, needed


def _data(corpus: Sequence[str | Path], substrate: LoadedSubstrate, config: RunConfig, text_column: str, world: World,
          progress) -> list[SourceData]:  # fmt: skip
    """Tokenize on rank 0 (or reuse the cache), then every rank opens the same shards."""
    sources, data = parse_sources(corpus), None
    if world.main:
        data = source_tokens(substrate.folder, sources, config.train.val_fraction, progress, text_column)
    distributed.barrier(world)
    return data or source_tokens(substrate.folder, sources, config.train.val_fraction, text_column=text_column)


def _data_info(sources: list[SourceData], plan: Plan, steps: int, key: str) -> dict[str, Any]:
    """The run manifest's record of its data: the whole, and each source with its weight, share and planned epochs."""
    listed = [{"name": s.source.name or "corpus", "corpus": [str(p) for p in s.source.paths], "key": s.data.key,
               "weight": s.source.weight, "share": round(float(share), 6), "train_tokens": s.data.train.n_tokens,
               "val_tokens": s.data.val.n_tokens, "validation": v.source, "epochs": round(epochs, 4)}
              for s, share, v, epochs in zip(sources, plan.order.shares, plan.validations, plan.epochs(steps))]  # fmt: skip
    return {"key": key, "train_tokens": sum(s["train_tokens"] for s in listed),
            "val_tokens": sum(s["val_tokens"] for s in listed), "validation": listed[0]["validation"] if len(listed) == 1
            else "each source's own", "sources": listed}  # fmt: skip


def _check_disk(out: Path, model: GPT) -> None:
    """A checkpoint (weights + two AdamW moments) is written beside the previous one: both must fit."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = 2 * sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    need = 2 * (weights + moments)
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < need:
        raise BvvtokError(f"not enough disk space for {out}: checkpoints need about {size_text(need)}, {size_text(free)} free; free space or choose another {option('out')}")


def _resume_state(out: Path, raw: dict[str, Any], substrate: LoadedSubstrate, key: str, strategy: str,
                  world_size: int) -> tuple[Checkpoint, list[Row]]:  # fmt: skip
    """The checkpoint and logged rows of a run `_resumes` found to continue, once they prove to be this run's."""
    old = read_raw_config(out)
    changed = differences({**old, "train": dataclasses.asdict(train_config(old))}, raw)  # fields it predates: defaults
    if changed:
        raise BvvtokError(f"{option('resume', True)} with a different configuration ({'; '.join(changed)}); use the run's "
                          f"settings or start a new {option('out')}")  # fmt: skip
    checkpoint = load_checkpoint(out)
    prove(ModelView(out, "run", state=checkpoint.model, raw=old))  # the run's own files, as every reader proves them
    if checkpoint.state.get("substrate_sha256") != substrate.manifest_sha256:
        raise BvvtokError(f"{option('resume', True)}: {substrate.folder} is not the substrate this run was trained on; "
                          f"pass the same {option('substrate_dir', cli='--substrate')}")  # fmt: skip
    if checkpoint.state.get("data_key") != key:
        raise BvvtokError(f"{option('resume', True)}: the corpus differs from the one this run started with; pass the same "
                          f"{option('corpus')} files")  # fmt: skip
    saved = checkpoint.state.get("strategy", "ddp"), checkpoint.state.get("world_size", 1)
    sharded = (checkpoint.folder / SHARDS).is_dir() or (strategy == "fsdp" and world_size > 1)
    if sharded and saved != (strategy, world_size):
        raise BvvtokError(f"{option('resume', True)}: the checkpoint was written by {option('strategy', saved[0])} on {saved[1]} "
                          f"process(es); a sharded optimizer state resumes only as it was saved: run "
                          f"{option('strategy', saved[0])} on {saved[1]}")  # fmt: skip
    rows = [r for r in read_metrics(out / METRICS) if r.step <= checkpoint.state["step"]]
    return checkpoint, rows


def _initial_model(init_from: Path, substrate: LoadedSubstrate, train_only: Sequence[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A run, grown run or mixture to continue from, with only the parameters that match `train_only` trainable."""
    if substrate_of(init_from) != substrate.manifest_sha256:
        raise BvvtokError(f"{option('init_from', init_from)} was trained on another substrate than {substrate.folder}; pass the substrate it was trained on")
    model, _ = load_model(init_from)
    raw = read_raw_config(init_from)
    patterns = list(train_only) or raw.get("trainable") or ["*"]
    names = [name for name, _ in model.named_parameters()]
    unmatched = [pat for pat in patterns if not any(fnmatch(n, pat) for n in names)]
    if unmatched:
        raise BvvtokError(f"{option('train_only')}: {', '.join(unmatched)} matches no parameter; names look like {names[0]}, {names[-1]}")
    for name, p in model.named_parameters():
        p.requires_grad_(any(fnmatch(name, pat) for pat in patterns))
    shape = {k: raw[k] for k in ("model", "members", "mixture_weights") if k in raw}
    origin = {"folder": init_from.name, "weights_sha256": sha256_file(init_from / WEIGHTS)}
    return model.train(), {**shape, "trainable": patterns, "init_from": origin}


def _resumes(out: Path, resume: bool, force: bool) -> bool:
    """Whether the run continues `out` (True) or starts afresh there, which is checked to be allowed.

    A run folder that never reached its first checkpoint holds nothing to continue
    or to lose: it is started again, with or without --resume or --force.
    """
    if resume and force:
        raise BvvtokError(f"{option('resume', True)} and {option('force', True)} contradict each other; pass one")
    started = is_started_run(out)
    if resume:
        if not is_run(out) or folder_kind(out) not in (None, "run"):
            raise BvvtokError(f"{option('resume', True)}: {out} is not a run folder written by bvvtok train; drop {option('resume', True)} to start one")
        return not started
    if is_run(out) and folder_kind(out) == "run" and not started and not force:
        raise BvvtokError(f"{option('out', out)} is a run folder; pass {option('resume', True)} to continue it, "
                          f"{option('force', True)} to replace it, or choose another path")  # fmt: skip
    check_replace(out, force or started, "run")
    return False


