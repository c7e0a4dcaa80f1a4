"""The GPU bench in one call: training tokens/s, MFU and peak memory of the paper preset, generation
tokens/s with the KV cache, and the distributed strategies; a Markdown table on stdout and a JSON file.

    bash bench/gpu.sh                            # on the GPU machine, from any folder (under 7 minutes on one H200)
    bash bench/gpu.sh --device cpu --dry-run     # the same code on a tiny model, in seconds

In order, the cheapest and most wanted first, so that the time budget (--budget-s) cuts the least useful:
1. a bf16 8192^3 matmul: the peak this GPU reaches in practice, MFU's second denominator;
2. per substrate, frozen and unfrozen: a batch-size sweep in eager mode, stopped at an out-of-memory error;
3. generation with bvvtok's generate (KV cache, greedy), batch 1 and 8, in fp32 as it runs and under bf16 autocast;
4. bvvtok's strategies (bvvtok.lm.distributed.STRATEGIES: DDP and FSDP) over every GPU present;
5. torch.compile at each configuration's fastest eager batch (about a minute of compiling each).

Substrates: `--substrate NAME=DIR` (folders written by `bvvtok embed`), else synthetic ones of the published
shapes, 65,536 x 1,024 rows of 0/1 ("bits-1024 65k") and 131,072 x 1,024 unit rows ("glyph-shape 131k"): speed
depends only on the shapes. Every configuration times bvvtok's training step (bench/lm_step.py) on fixed random
windows: data loading is not measured. Each runs in a try of its own: a failure (out of memory, a compile error)
is reported in its row and the rest still run; the JSON is rewritten after every row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lm_step import (
    Wrap,
    bit_rows,
    build_model,
    flops_per_token,
    matmul_weights,
    synchronize,
    timed_steps,
    trainer,
    unit_rows,
)
from torch import Tensor

import bvvtok
from bvvtok.errors import BvvtokError
from bvvtok.lm import distributed
from bvvtok.lm.config import RunConfig, resolve_config, with_substrate
from bvvtok.lm.distributed import World, autocast, pick_device
from bvvtok.lm.generate import Sampling, generate
from bvvtok.lm.train import pick_dtype
from bvvtok.substrate.load import load_substrate

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
STARTED = time.perf_counter()
# Seconds a row of a kind is expected to take before one has been timed: a 16-layer compile; a torchrun start
# and two models. Other kinds run first and are short.
FIRST_GUESS_S = {"compile": 90.0, "strategy": 30.0}
EMBEDDINGS = {"frozen": True, "unfrozen": False}


@dataclass(frozen=True)
class Synthetic:
    name: str
    vocab: int
    n_embed: int
    rows: Callable[[int, int], Tensor]  # bit_rows or unit_rows


@dataclass(frozen=True)
class Shape:
    """What a run measures: the model (flags over the paper preset), the sweep, the step counts, generation."""

    model: dict[str, int]
    batches: tuple[int, ...]
    warmup: int  # untimed steps before the timed ones (after the compiling step, when compiled)
    steps: int  # timed steps; tokens/s comes from their median
    matmul: int  # the side of the probe's square bf16 matmul
    matmul_repeats: int
    prompt: int
    new_tokens: int
    generation_batches: tuple[int, ...]
    synthetic: tuple[Synthetic, ...]


PAPER = Shape(
    model={}, batches=(8, 16, 32), warmup=3, steps=10, matmul=8192, matmul_repeats=50, prompt=32, new_tokens=200,
    generation_batches=(1, 8),
    synthetic=(Synthetic("bits-1024 65k", 65_536, 1024, bit_rows),
               Synthetic("glyph-shape 131k", 131_072, 1024, unit_rows)),
)  # fmt: skip
DRY_RUN = Shape(
    model={"d_model": 64, "n_layer": 2, "n_head": 4, "context": 32}, batches=(2, 4), warmup=1, steps=2, matmul=256,
    matmul_repeats=3, prompt=8, new_tokens=8, generation_batches=(1, 2),
    synthetic=(Synthetic("bits tiny", 512, 64, bit_rows), Synthetic("glyph-shape tiny", 1024, 64, unit_rows)),
)  # fmt: skip


@dataclass
class Substrate:
    name: str
    source: str  # the folder, or "synthetic"
    weight: Tensor  # float32 [vocab, n_embed], on the CPU: each model copies it to the device

    def describe(self) -> dict[str, Any]:
        vocab, n_embed = self.weight.shape
        return {"name": self.name, "source": self.source, "synthetic": self.source == "synthetic", "vocab": vocab,
                "n_embed": n_embed}  # fmt: skip


def folder_substrate(name: str, folder: str) -> Substrate:
    return Substrate(name, folder, load_substrate(Path(folder)).weight)


def synthetic_substrate(synthetic: Synthetic) -> Substrate:
    return Substrate(synthetic.name, "synthetic", synthetic.rows(synthetic.vocab, synthetic.n_embed))


def substrate_sources(args: argparse.Namespace, shape: Shape) -> dict[str, Callable[[], Substrate]]:
    """Each substrate by name, loaded when called: the folders given, else the shape's synthetic ones."""
    sources: dict[str, Callable[[], Substrate]] = {}
    for spec in args.substrate:
        name, _, folder = spec.partition("=")
        if not name or not folder:
            raise BvvtokError(f"--substrate {spec!r}: write NAME=DIR")
        sources[name] = partial(folder_substrate, name, folder)
    return sources or {s.name: partial(synthetic_substrate, s) for s in shape.synthetic}


def model_config(shape: Shape, substrate: Substrate, frozen: bool) -> RunConfig:
    """The paper preset (or the dry run's tiny model) with the substrate's size; its [train] values drive AdamW."""
    vocab, n_embed = substrate.weight.shape
    return with_substrate(resolve_config("paper", None, {**shape.model, "frozen": frozen}, {}), vocab, n_embed)


class PastBudget(Exception):
    """Raised in a row still running when the time budget ends."""


@contextlib.contextmanager
def stop_at(seconds: float) -> Iterator[None]:
    """Raise PastBudget in what runs `seconds` from now (SIGALRM, so between Python bytecodes: a kernel, or a
    wait on the GPU, ends first), so that a hung or slow row cannot take the run past its budget."""

    def stop(signum: int, frame: object) -> None:
        raise PastBudget("still running at the time budget")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def failure(error: BaseException) -> dict[str, str]:
    """A row's status and note for an exception: its type and first line."""
    lines = str(error).strip().splitlines()
    oom = isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()
    status = "stopped" if isinstance(error, PastBudget) else "oom" if oom else "error"
    return {"status": status, "note": f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]}


class Bench:
    """The run's figures and clock: every configuration goes through `attempt`, which reports it and saves the JSON."""

    def __init__(self, args: argparse.Namespace, device: torch.device, shape: Shape) -> None:
        self.args, self.device, self.shape = args, device, shape
        self.dtype = pick_dtype(args.dtype, device)
        self.latest: dict[str, float] = {}  # seconds of the last row of each kind
        self.measured_tflops: float | None = None
        self.figures: dict[str, Any] = {"environment": environment(device), "settings": self.settings(),
                                        "substrates": [], "matmul": [], "training": [], "generation": [],
                                        "strategies": []}  # fmt: skip

    def settings(self) -> dict[str, Any]:
        s, model = self.shape, resolve_config("paper", None, self.shape.model, {}).model
        return {"dry_run": self.args.dry_run, "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch."), "compile": self.compile_enabled(),
                "peak_tflops": self.args.peak_tflops, "budget_s": self.args.budget_s,
                "model": {k: getattr(model, k) for k in ("d_model", "n_layer", "n_head", "context")},
                "batches": s.batches, "warmup": s.warmup, "steps": s.steps, "prompt": s.prompt,
                "new_tokens": s.new_tokens, "generation_batches": s.generation_batches}  # fmt: skip

    def compile_enabled(self) -> bool:
        return self.args.compile == "on" or (self.args.compile == "auto" and self.device.type == "cuda")

    def elapsed(self) -> float:
        return time.perf_counter() - STARTED

    def over_budget(self, kind: str) -> str | None:
        """Why a row of this kind would not end within the budget, judged by the last one of its kind (the first
        compile fills the caches that make the next ones faster)."""
        expected = self.latest.get(kind, FIRST_GUESS_S.get(kind, 0.0))
        if self.elapsed() + expected <= self.args.budget_s:
            return None
        used = f"{self.elapsed():.0f} of {self.args.budget_s:.0f} s"
        return f"time budget: {used} used, a {kind} row takes ~{expected:.0f} s"

    def attempt(self, section: str, kind: str, row: dict[str, Any],
                work: Callable[[], dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        """Run one configuration; its figures, or why it failed or was skipped, go in its row."""
        return self.attempt_all(section, kind, [row], lambda: [work()])[0]

    def attempt_all(self, section: str, kind: str, rows: list[dict[str, Any]],
                    work: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:  # fmt: skip
        """Configurations measured together (one torchrun): a figures dict per row, which may carry its own failure."""
        reason = self.over_budget(kind)
        if reason:
            return [self.skip(section, row, reason) for row in rows]
        began = time.perf_counter()
        try:
            with stop_at(self.args.budget_s - self.elapsed()):
                results = work()
            for row, figures in zip(rows, results, strict=True):
                row.update({"status": "ok", **figures})
        except Exception as e:  # noqa: BLE001 - one configuration's failure is a figure, not the end of the run
            for row in rows:
                row.update(failure(e))
        finally:  # the exception, and the tensors its frames held, are gone by now
            if kind == "compile":
                torch.compiler.reset()  # the next compile starts afresh, not as a recompile with dynamic shapes
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        seconds = round(time.perf_counter() - began, 2)
        self.latest[kind] = seconds
        return [self.record(section, {**row, "seconds": seconds}) for row in rows]

    def skip(self, section: str, row: dict[str, Any], reason: str) -> dict[str, Any]:
        return self.record(section, {**row, "status": "skipped", "note": reason})

    def record(self, section: str, row: dict[str, Any]) -> dict[str, Any]:
        self.figures[section].append(row)
        print(f"[{self.elapsed():5.0f} s] {section}: {summary(row)}", flush=True)
        self.save()
        return row

    def save(self) -> None:
        self.figures["elapsed_s"] = round(self.elapsed(), 1)
        self.args.json.parent.mkdir(parents=True, exist_ok=True)
        self.args.json.write_text(json.dumps(self.figures, indent=1) + "\n", encoding="utf-8")

    def start_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int | None:
        """The most memory tensors held since start_peak (CUDA only: a CPU process has no per-configuration peak)."""
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None

    def throughput(self, model: torch.nn.Module, tokens: int, seconds: float, devices: int = 1) -> dict[str, Any]:
        """Tokens/s, and MFU against `devices` times the datasheet peak and the measured matmul peak."""
        per_token = flops_per_token(model)
        achieved = per_token * tokens / seconds
        measured = self.measured_tflops
        return {"tokens_per_s": tokens / seconds, "step_s": seconds, "flops_per_token": per_token,
                "matmul_weights": matmul_weights(model), "tflops": achieved / 1e12,
                "mfu": achieved / (devices * self.args.peak_tflops * 1e12),
                "mfu_measured": achieved / (devices * measured * 1e12) if measured else None}  # fmt: skip


def environment(device: torch.device) -> dict[str, Any]:
    """What the figures depend on besides the code; gcc because triton builds its kernel launchers with it."""
    facts: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.version.cuda, "bvvtok": bvvtok.__version__, "commit": git_commit(),
                             "cpu_cores": os.cpu_count(), "gcc": shutil.which("gcc")}  # fmt: skip
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        facts |= {"device": p.name, "devices": torch.cuda.device_count(), "capability": f"{p.major}.{p.minor}",
                  "memory_gib": round(p.total_memory / GIB, 1), "triton": package_version("triton")}  # fmt: skip
    else:
        facts |= {"device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)", "devices": 1}
    return facts


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- 1. the matmul probe ---------------------------------------------------------------------------------------


def matmul_figures(bench: Bench) -> dict[str, Any]:
    """TFLOP/s of a square bf16 matmul, after a warm-up that lets cuBLAS choose its kernel and the clocks rise."""
    n, repeats = bench.shape.matmul, bench.shape.matmul_repeats
    a, b, c = (torch.randn(n, n, device=bench.device, dtype=torch.bfloat16) for _ in range(3))
    for _ in range(repeats // 5 + 1):
        torch.mm(a, b, out=c)
    synchronize(bench.device)
    began = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b, out=c)
    synchronize(bench.device)
    return {"tflops": 2 * n**3 * repeats / (time.perf_counter() - began) / 1e12}


# --- 2 and 5. training: the eager sweep, then compiled at the fastest batch -------------------------------------


def train_figures(bench: Bench, substrate: Substrate, frozen: bool, batch: int, compiled: bool = False,
                  wrap: Wrap | None = None, devices: int = 1) -> dict[str, Any]:  # fmt: skip
    """Tokens/s (of all `devices`, each process running this) from the median of the timed steps; the first step
    of a compiled model, which compiles it, is reported on its own."""
    shape = bench.shape
    bench.start_peak()
    config = model_config(shape, substrate, frozen)
    run = trainer(config, substrate.weight, bench.device, bench.dtype, compile=compiled, wrap=wrap)
    context = config.model.context
    ids = torch.randint(0, config.model.vocab_size, (batch, context + 1), device=bench.device)
    times = timed_steps(run, ids, int(compiled) + shape.warmup + shape.steps)
    figures = bench.throughput(run.model, devices * batch * context, statistics.median(times[-shape.steps :]), devices)
    return {**figures, "compile_s": times[0] if compiled else None, "peak_bytes": bench.peak_bytes()}


def training_row(substrate: Substrate, embedding: str, batch: int | None, compiled: bool) -> dict[str, Any]:
    return {"substrate": substrate.name, "embedding": embedding, "batch": batch, "compile": compiled}


def sweep(bench: Bench, substrate: Substrate, embedding: str) -> int | None:
    """The eager batch sweep of one configuration; its fastest batch (None when none ran)."""
    ran_out: int | None = None
    best: dict[str, Any] | None = None
    for batch in bench.shape.batches:
        row = training_row(substrate, embedding, batch, compiled=False)
        if ran_out is not None:
            bench.skip("training", row, f"batch {ran_out} ran out of memory")
            continue
        done = bench.attempt("training", "train", row,
                             partial(train_figures, bench, substrate, EMBEDDINGS[embedding], batch))  # fmt: skip
        if done["status"] == "oom":
            ran_out = batch
        elif done["status"] == "ok" and (best is None or done["tokens_per_s"] > best["tokens_per_s"]):
            best = done
    return best["batch"] if best else None


def compiled(bench: Bench, substrate: Substrate, embedding: str, batch: int | None) -> None:
    row = training_row(substrate, embedding, batch, compiled=True)
    if not bench.compile_enabled():
        bench.skip("training", row, f"compile off on {bench.device.type} (--compile on runs it)")
    elif batch is None:
        bench.skip("training", row, "no eager batch ran")
    else:
        work = partial(train_figures, bench, substrate, EMBEDDINGS[embedding], batch, compiled=True)
        bench.attempt("training", "compile", row, work)


# --- 3. generation -----------------------------------------------------------------------------------------------


def generation_figures(bench: Bench, substrate: Substrate, batch: int, dtype: torch.dtype) -> dict[str, Any]:
    """bvvtok's generate, greedy, so every sequence gets all its new tokens; the time includes the prompt's pass."""
    shape, device = bench.shape, bench.device
    bench.start_peak()
    model = build_model(model_config(shape, substrate, frozen=True), substrate.weight, device)
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, model.vocab_size, (batch, shape.prompt), generator=generator).tolist()
    with autocast(device, dtype):  # fp32: no autocast, as `bvvtok generate` runs
        generate(model, prompts, Sampling(greedy=True), 4)  # warm-up
        synchronize(device)
        began = time.perf_counter()
        out = generate(model, prompts, Sampling(greedy=True), shape.new_tokens)
        synchronize(device)
    seconds = time.perf_counter() - began
    return {"tokens_per_s": sum(map(len, out)) / seconds, "ms_per_token": 1000 * seconds / shape.new_tokens,
            "peak_bytes": bench.peak_bytes()}  # fmt: skip


def generation(bench: Bench, substrate: Substrate) -> None:
    shape = bench.shape
    for batch in shape.generation_batches:
        for dtype in dict.fromkeys((torch.float32, bench.dtype)):  # as bvvtok generates, then in the bench's dtype
            row = {"substrate": substrate.name, "batch": batch, "dtype": str(dtype).removeprefix("torch."),
                   "autocast": dtype != torch.float32, "prompt": shape.prompt,
                   "new_tokens": shape.new_tokens}  # fmt: skip
            bench.attempt("generation", "generate", row, partial(generation_figures, bench, substrate, batch, dtype))


# --- 4. strategies: DDP and FSDP ---------------------------------------------------------------------------------


def wrapper(strategy: str, world: World) -> Wrap:
    """bvvtok's own wrapping, as `bvvtok train --strategy` does it (a world of one is left unwrapped)."""
    return lambda net: distributed.wrap(net, world, strategy)


def processes(device: torch.device) -> int:
    """Every GPU present; on a CPU, two processes (gloo), as bvvtok's own test of DDP runs."""
    return torch.cuda.device_count() if device.type == "cuda" else 2


def strategy_figures(bench: Bench, strategy: str, substrate: str, batch: int) -> list[dict[str, Any]]:
    """One strategy under torchrun, one process per device, frozen then unfrozen; rank 0 writes the figures."""
    args = bench.args
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rank0.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes(bench.device)}", __file__, "--worker", strategy, substrate,
                   str(batch), str(out), "--device", bench.device.type, "--dtype", args.dtype,
                   "--peak-tflops", str(args.peak_tflops), "--steps", str(bench.shape.steps),
                   *(["--dry-run"] if args.dry_run else []), *(f"--substrate={s}" for s in args.substrate)]  # fmt: skip
        # a session of its own, so that torchrun and its workers end together when the budget stops the wait
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            output, _ = proc.communicate()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0 or not out.is_file():
            tail = [line for line in output.strip().splitlines() if line.strip()][-3:]
            raise RuntimeError(f"torchrun exited with {proc.returncode}: {' | '.join(tail)}")
        return json.loads(out.read_text(encoding="utf-8"))


def strategies(bench: Bench, substrate: Substrate, batch: int | None) -> None:
    for strategy in distributed.STRATEGIES:
        rows = [{"strategy": strategy, "substrate": substrate.name, "embedding": embedding, "batch": batch,
                 "processes": processes(bench.device)} for embedding in EMBEDDINGS]  # fmt: skip
        if batch is None:
            for row in rows:
                bench.skip("strategies", row, "no eager batch ran")
        else:
            work = partial(strategy_figures, bench, strategy, substrate.name, batch)
            bench.attempt_all("strategies", "strategy", rows, work)


def worker(args: argparse.Namespace) -> None:
    """One process of a strategy under torchrun: bvvtok joins the process group and picks the device."""
    strategy, name, batch, out = args.worker
    world = distributed.join(args.device)
    if not dist.is_initialized():  # one GPU: a group of one, wrapped as bvvtok train wraps it (DDP: not at all)
        world = World(0, 1, torch.device("cuda", 0) if world.device.type == "cuda" else world.device)
        if world.device.type == "cuda":
            torch.cuda.set_device(world.device)
        dist.init_process_group("nccl" if world.device.type == "cuda" else "gloo")
    shape = run_shape(args)
    bench = Bench(args, world.device, shape)
    substrate = substrate_sources(args, shape)[name]()
    rows = []
    for frozen in EMBEDDINGS.values():
        try:
            wrap = wrapper(strategy, world)
            rows.append(train_figures(bench, substrate, frozen, int(batch), wrap=wrap, devices=world.size))
        except Exception as e:  # noqa: BLE001 - reported in the strategy's row by the parent
            rows.append(failure(e))
        gc.collect()
        if world.device.type == "cuda":
            torch.cuda.empty_cache()
    if world.main:
        Path(out).write_text(json.dumps(rows), encoding="utf-8")
    dist.destroy_process_group()


# --- the report ------------------------------------------------------------------------------------------------


def number(value: float | None, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value / scale:{spec}}{suffix}"


def summary(row: dict[str, Any]) -> str:
    """One progress line: what ran, and its result."""
    what = " ".join(str(row[k]) for k in ("strategy", "substrate", "embedding", "dtype") if k in row)
    if "n" in row:
        what += f" {row['n']}^3"
    if "batch" in row:
        what += f" batch {row['batch']}"
    if row.get("compile"):
        what += " compiled"
    if row["status"] != "ok":
        return f"{what}: {row['status']}: {row.get('note', '')}"
    figures = [f"{row['tokens_per_s']:,.0f} tokens/s"] if "tokens_per_s" in row else []
    if "tflops" in row:
        figures.append(f"{row['tflops']:,.1f} TFLOP/s")
    if "mfu" in row:
        figures.append(f"MFU {number(row['mfu'], '.1%')}")
    if row.get("peak_bytes") is not None:
        figures.append(f"peak {row['peak_bytes'] / GIB:.1f} GiB")
    if row.get("compile_s") is not None:
        figures.append(f"compiling step {row['compile_s']:.0f} s")
    return f"{what}: {', '.join(figures)}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def note(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('note', '')}".replace("|", "/")
    return f"compiling step {row['compile_s']:.0f} s" if row.get("compile_s") is not None else ""


def peak(row: dict[str, Any]) -> str:
    return number(row.get("peak_bytes"), ",.1f", GIB, " GiB")


def report(figures: dict[str, Any]) -> str:
    """The Markdown to paste into docs/train.md."""
    env, settings, probe = figures["environment"], figures["settings"], figures["matmul"][0]
    datasheet, m = settings["peak_tflops"], settings["model"]
    parts = [
        f"{env['device']} x {env['devices']}; torch {env['torch']}, CUDA {env['cuda']}, bvvtok {env['bvvtok']} "
        f"({env['commit'] or 'no git'}); {settings['dtype']} autocast; d_model {m['d_model']}, {m['n_layer']} layers, "
        f"{m['n_head']} heads, context {m['context']}. MFU against {datasheet:g} TFLOP/s (datasheet) and "
        f"{number(probe.get('tflops'), ',.0f')} TFLOP/s (measured: a bf16 {probe['n']}^3 matmul)."
    ]
    for s in figures["substrates"]:
        ran = next((r for r in figures["training"] if r["substrate"] == s["name"] and r["status"] == "ok"), None)
        flops = (f"FLOPs per token 6 x {ran['matmul_weights']:,} matmul weights (the blocks' and the head's Linear "
                 f"weights) + 12 x n_layer x d_model x context (attention) = {ran['flops_per_token'] / 1e9:.3f} GFLOP"
                 if ran else "no training row ran")  # fmt: skip
        kind = "synthetic" if s["synthetic"] else s["source"]
        parts.append(f"- {s['name']} ({kind}, {s['vocab']:,} x {s['n_embed']:,}): {flops}")
    parts.append(table(
        ["substrate", "embedding", "batch", "compile", "tokens/s", "step ms", "TFLOP/s", f"MFU ({datasheet:g})",
         "MFU (measured)", "peak memory", "note"],
        [[r["substrate"], r["embedding"], f"{r['batch'] or '-'} x {m['context']}", "yes" if r["compile"] else "no",
          number(r.get("tokens_per_s"), ",.0f"), number(r.get("step_s"), ",.1f", 1e-3),
          number(r.get("tflops"), ",.0f"), number(r.get("mfu"), ".1%"), number(r.get("mfu_measured"), ".1%"),
          peak(r), note(r)] for r in figures["training"]],
    ))  # fmt: skip
    best = max((r for r in figures["training"] if r["status"] == "ok"), key=lambda r: r["mfu"], default=None)
    if best:
        mode = "compiled" if best["compile"] else "eager"
        how = f"{best['substrate']}, {best['embedding']}, batch {best['batch']}, {mode}"
        parts.append(f"Best MFU {best['mfu']:.1%} of the datasheet peak ({how}); the aim is 40%.")
    parts.append(table(
        ["substrate", "batch", "dtype", "prompt + new tokens", "tokens/s", "ms per step", "peak memory", "note"],
        [[r["substrate"], str(r["batch"]), r["dtype"] + (" (autocast)" if r["autocast"] else " (as bvvtok runs it)"),
          f"{r['prompt']} + {r['new_tokens']}", number(r.get("tokens_per_s"), ",.0f"),
          number(r.get("ms_per_token"), ".2f"), peak(r), note(r)] for r in figures["generation"]],
    ))  # fmt: skip
    parts.append(table(
        ["strategy", "processes", "substrate", "embedding", "batch per process", "tokens/s (all)",
         f"MFU ({datasheet:g})", "peak memory (rank 0)", "note"],
        [[r["strategy"], str(r["processes"]), r["substrate"], r["embedding"], str(r["batch"] or "-"),
          number(r.get("tokens_per_s"), ",.0f"), number(r.get("mfu"), ".1%"), peak(r), note(r)]
         for r in figures["strategies"]],
    ))  # fmt: skip
    return "\n\n".join(parts)


# --- the run -----------------------------------------------------------------------------------------------------


def run_shape(args: argparse.Namespace) -> Shape:
    shape = DRY_RUN if args.dry_run else PAPER
    if args.batches:
        shape = dataclasses.replace(shape, batches=tuple(int(b) for b in args.batches.split(",")))
    return dataclasses.replace(shape, steps=args.steps) if args.steps else shape


def run(bench: Bench) -> None:
    env, settings = bench.figures["environment"], bench.figures["settings"]
    print(f"torch {env['torch']}, CUDA {env['cuda']}, {env['device']} x {env['devices']}, python {env['python']}, "
          f"bvvtok {env['bvvtok']} ({env['commit'] or 'no git'}); {settings['dtype']}, "
          f"compile {'on' if settings['compile'] else 'off'}, budget {bench.args.budget_s:.0f} s",
          flush=True)  # fmt: skip
    substrates = [load() for load in substrate_sources(bench.args, bench.shape).values()]
    bench.figures["substrates"] = [s.describe() for s in substrates]
    probe = {"n": bench.shape.matmul, "dtype": "bfloat16"}
    bench.measured_tflops = bench.attempt("matmul", "matmul", probe, partial(matmul_figures, bench)).get("tflops")
    best = {(s.name, e): sweep(bench, s, e) for s in substrates for e in EMBEDDINGS}
    for s in substrates:
        generation(bench, s)
    strategies(bench, substrates[0], best[substrates[0].name, "frozen"])
    for embedding in EMBEDDINGS:  # the method's compiles first, the baseline's after
        for s in substrates:
            compiled(bench, s, embedding, best[s.name, embedding])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--dry-run", action="store_true", help="a tiny model, two timed steps: the code path, fast")
    parser.add_argument("--substrate", action="append", default=[], metavar="NAME=DIR",
                        help="a substrate folder (repeatable); default: synthetic, the published shapes")  # fmt: skip
    parser.add_argument("--batches", help="the sweep's batch sizes, comma-separated (default 8,16,32; dry run 2,4)")
    parser.add_argument("--steps", type=int, help="timed steps per configuration (default 10; dry run 2)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of one GPU (H100/H200: 989)")
    parser.add_argument("--budget-s", type=float, default=400.0, help="no configuration starts that would end later")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="auto: on CUDA only")
    parser.add_argument("--dtype", default="bf16", help="autocast dtype: bf16, fp32 or auto (bvvtok train's names)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "gpu-bench.json",
                        help="the figures; the Markdown goes beside it (.md)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)  # STRATEGY SUBSTRATE BATCH OUT, under torchrun
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    try:
        device = pick_device(args.device)
        if device.type != "cuda" and not args.dry_run:  # minutes per step: fail now, not at the end of the budget
            raise BvvtokError("no CUDA device: the paper preset needs a GPU (--dry-run runs a tiny model on the CPU)")
        bench = Bench(args, device, run_shape(args))
        run(bench)
    except BvvtokError as e:
        sys.exit(f"bench/gpu.py: {e}")
    markdown = report(bench.figures)
    print("\n" + markdown, flush=True)
    bench.save()
    args.json.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    print(f"\n{bench.elapsed():.0f} s; figures in {args.json} and {args.json.with_suffix('.md').name}", flush=True)


if __name__ == "__main__":
    main()
