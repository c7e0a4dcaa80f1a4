"""One cell of an experiment (an arm at one seed): made, evaluated and recorded in `cells/ARM-sSEED/cell.json`.

`run_cell(job)` is all a worker needs: the job carries every path and setting (an executor sends it to another
process, or to a Slurm node, as it is). A cell whose record says done with the same key is skipped; any other
is made again from where it stopped (a run resumes from its last checkpoint). Whatever goes wrong in a cell
(out of memory, a loss that is not a number, bad input) is recorded as its reason, and the others go on.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bvvtok.errors import BvvtokError
from bvvtok.experiment.arms import CellContext, Made
from bvvtok.experiment.plan import CellPlan
from bvvtok.files import pid_alive
from bvvtok.lm.config import RunConfig
from bvvtok.lm.evals import Task
from bvvtok.lm.metrics import METRICS, Row, mean_tokens_per_s, read_metrics, source_names, source_rows
from bvvtok.manifest import write_json

RECORD = "cell.json"
RUN = "run"  # the cell's model folder
LOG = "log.txt"


@dataclass(frozen=True)
class HeldOut:
    """The experiment's held-out text: every cell is evaluated on the same windows of it."""

    corpus: tuple[str, ...]  # `train --corpus` values
    val_fraction: float
    eval_windows: int


@dataclass(frozen=True)
class CellJob:
    experiment: Path  # the experiment folder
    cell: CellPlan
    key: str  # what the cell's result depends on: a record with another key is out of date
    label: str
    substrate_dir: Path
    corpus: tuple[str, ...]  # what the cell trains on (`train --corpus` values)
    held_out: HeldOut
    tasks: tuple[tuple[Task, str], ...]  # the spec's [eval], each with the tag of its figures (see `tagged`)
    sources: dict[str, Path] = field(default_factory=dict)  # arm -> its model folder at this seed
    processes: int = 1  # > 1: the cell trains under torchrun, a process per GPU
    track: tuple[str, ...] = ()  # where train also logs its curves (bvvtok.lm.tracking)

    @property
    def folder(self) -> Path:
        return self.experiment / "cells" / self.cell.name


class CellFailed(Exception):
    """A cell that cannot go on (its message is the record's reason)."""


def read_record(folder: Path) -> dict[str, Any]:
    """A cell's record, or {} where there is none (or it cannot be read: the cell is then made again)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def is_done(job: CellJob) -> bool:
    record = read_record(job.folder)
    return record.get("state") == "done" and record.get("key") == job.key


def run_cell(job: CellJob, echo: Callable[[str], None] | None = None) -> str:
    """Make, evaluate and record one cell; its state at the end (done or failed)."""
    if is_done(job):
        return "done"
    job.folder.mkdir(parents=True, exist_ok=True)
    before = read_record(job.folder)
    spent = before.get("wall_s", 0.0) if before.get("key") == job.key else 0.0  # earlier attempts' time
    record = base_record(job)
    write_json(job.folder / RECORD, {**record, "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                     "wall_s": spent})  # fmt: skip
    began = time.perf_counter()
    with open(job.folder / LOG, "a", encoding="utf-8") as log:
        say = _teller(job.cell.name, log, echo)
        try:
            made = _make(job, say)
            figures, unigram_bpb = _evaluate(job, made)
        except Exception as e:  # noqa: BLE001  every failure is the cell's, recorded; the experiment goes on
            reason = _reason(e)
            say(f"failed: {reason}")
            write_json(job.folder / RECORD, {**record, "state": "failed", "reason": reason,
                                             "wall_s": spent + time.perf_counter() - began})  # fmt: skip
            return "failed"
        rows = _rows(job)
        done = {
            **record, "state": "done", "steps": made.steps, "tokens_per_step": made.tokens_per_step,
            "tokens": made.steps * made.tokens_per_step, "parameters": made.parameters,
            "wall_s": round(spent + time.perf_counter() - began, 3),
            "tokens_per_s": mean_tokens_per_s(rows) if rows else None, "unigram_bpb": unigram_bpb, "figures": figures,
        }  # fmt: skip
        write_json(job.folder / RECORD, done)
        say(f"done: validation {figures['final_val_bpb']:.4f} bits per byte")
    return "done"


def base_record(job: CellJob) -> dict[str, Any]:
    """What a cell's record says of it whatever its state: which arm, seed and substrate, and its key."""
    cell = job.cell
    config = cell.config
    return {
        "cell": cell.name, "arm": cell.arm.name, "seed": cell.seed, "kind": cell.arm.kind, "key": job.key,
        "label": job.label,
        "substrate": {"name": cell.substrate.name, "method": cell.substrate.method, "dim": cell.substrate.width},
        "frozen": config.model.frozen if config is not None else None,
        "reason": None,
    }  # fmt: skip


def _make(job: CellJob, say: Callable[[str], None]) -> Made:
    context = CellContext(job.folder, job.folder / RUN, job.cell.seed, job.substrate_dir, job.corpus, job.sources,
                          job.cell.config, lambda config, init_from=None: _train(job, config, init_from, say))  # fmt: skip
    return job.cell.arm.make(context)


def _train(job: CellJob, config: RunConfig, init_from: Path | None, say: Callable[[str], None]) -> Made:
    """Train `config` into the cell's run folder, resuming it where it has a checkpoint."""
    from bvvtok.commit import recover_for_reading
    from bvvtok.lm.run_folder import has_checkpoint

    run = job.folder / RUN
    recover_for_reading(run)  # a commit a killed run left half done: finished first, then its checkpoint is seen
    resume = has_checkpoint(run)
    if resume:
        say("resuming from its last checkpoint")
    if job.processes > 1:
        _torchrun(job, config, init_from, resume)
        rows = read_metrics(run / METRICS)
        return Made(rows[-1].step, _tokens_per_step(config, job.processes), None, None)
    from bvvtok.lm.train import train

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind != "step":
            return
        row: Row = info["row"]
        for name, value in (("training loss", row.train_loss), ("validation loss", row.val_loss)):
            if value is not None and not math.isfinite(value):
                raise CellFailed(f"the {name} is {value} at step {row.step}: lower the learning rate or check the data")
        if row.val_loss is not None:
            say(f"step {row.step}: validation loss {row.val_loss:.4f}, {row.val_bpb or float('nan'):.4f} bits per byte")

    result = train(job.substrate_dir, list(job.corpus), run, config, resume=resume, on_event=on_event,
                   init_from=init_from, track=job.track)  # fmt: skip
    return Made(result.rows[-1].step if result.rows else 0, _tokens_per_step(config, 1), result.unigram_entropy,
                result.parameters)  # fmt: skip


def _tokens_per_step(config: RunConfig, processes: int) -> int:
    t = config.train
    return t.batch_size * t.grad_accum * processes * config.model.context


def _torchrun(job: CellJob, config: RunConfig, init_from: Path | None, resume: bool) -> None:
    """The cell's training as `bvvtok train` under torchrun, one process per GPU, from a config file in the cell."""
    from bvvtok.lm.config import write_config_file

    path = write_config_file(job.folder / "train.toml", config)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.processes}",
               "-m", "bvvtok", "train", "--substrate", str(job.substrate_dir), "--out", str(job.folder / RUN),
               "--config", str(path), *[a for c in job.corpus for a in ("--corpus", str(c))]]  # fmt: skip
    command += ["--resume"] if resume else []
    command += ["--init-from", str(init_from)] if init_from is not None else []
    command += [a for backend in job.track for a in ("--track", backend)]
    with open(job.folder / LOG, "a", encoding="utf-8") as log:
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if finished.returncode != 0:
        raise CellFailed(f"torchrun exited with {finished.returncode}; see {job.folder / LOG}")


def _evaluate(job: CellJob, made: Made) -> tuple[dict[str, float], float | None]:
    """The figures of the cell's model: the held-out loss and bits per byte (the same windows for every cell), the
    best of its own validation curve where it trained on the experiment's text, and the spec's [eval] tasks."""
    from bvvtok.lm.evals.held_out import held_out_figures, held_out_text
    from bvvtok.lm.evals.report import evaluate_runs

    run, held = job.folder / RUN, job.held_out
    rows = [r for r in _rows(job) if r.step > 0 and r.val_loss is not None]
    t = job.cell.config.train if job.cell.config is not None else None
    own = rows and t is not None and job.corpus == held.corpus and (t.val_fraction, t.eval_windows) == (
        held.val_fraction, held.eval_windows)  # fmt: skip
    figures: dict[str, float] = {}
    if own:  # its last validation read these very windows (eval --held-out gives the same figure)
        for tag in ["", *source_names(rows)]:  # the whole, then each named source
            curve = source_rows(rows, tag) if tag else rows
            figures[tagged("final_val_loss", tag)], figures[tagged("final_val_bpb", tag)] = curve[-1].val_loss, curve[-1].val_bpb
            figures[tagged("best_val_loss", tag)] = min(r.val_loss for r in curve)  # type: ignore[type-var]
            figures[tagged("best_val_bpb", tag)] = min(r.val_bpb for r in curve if r.val_bpb is not None)
    else:  # a model without a curve of its own on this text: scored on it, its best is its final
        scored = held_out_figures(run, held.corpus, held.val_fraction, held.eval_windows)
        for key, value in scored.items():
            for what in ("loss", "bpb"):
                if key.startswith(f"held_out_{what}"):
                    tail = key.removeprefix(f"held_out_{what}")
                    figures[f"final_val_{what}{tail}"] = figures[f"best_val_{what}{tail}"] = value
    for task, tag in job.tasks:
        (row,) = evaluate_runs([run], [task])
        figures |= {tagged(k, tag): v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    unigram = None
    if made.unigram_entropy is not None:  # nats per token of the training text, in bits per byte of the held-out's
        tokens, nbytes = held_out_text(run, held.corpus, held.val_fraction, held.eval_windows)
        unigram = made.unigram_entropy / math.log(2) * tokens / nbytes if nbytes else None
    return figures, unigram  # type: ignore[return-value]


def tagged(key: str, tag: str) -> str:
    """A figure's key in the report: `held_out_bpb`, or `held_out_bpb[fortunes-en]` for one of a task's files."""
    return f"{key}[{tag}]" if tag else key


def _rows(job: CellJob) -> list[Row]:
    path = job.folder / RUN / METRICS
    return read_metrics(path) if path.is_file() else []


def _reason(error: BaseException) -> str:
    """One line: what went wrong, in the words of whoever raised it."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return "out of memory: lower batch_size (with grad_accum to keep the batch) or give the cell more memory"
    if isinstance(error, (BvvtokError, CellFailed)):
        return str(error).splitlines()[0]
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'}"


def _teller(name: str, log: IO[str], echo: Callable[[str], None] | None) -> Callable[[str], None]:
    def say(line: str) -> None:
        log.write(line + "\n")
        log.flush()
        if echo is not None:
            echo(f"{name}: {line}")

    return say


def cell_state(folder: Path) -> tuple[str, dict[str, Any]]:
    """A cell's state as `experiment status` shows it, and its record: "running" only while its process lives (a
    record left "running" by a killed process reads "interrupted")."""
    record = read_record(folder)
    state = record.get("state", "pending")
    pid = record.get("pid")
    if state == "running" and record.get("host") == socket.gethostname() and not (isinstance(pid, int) and pid > 0 and pid_alive(pid)):
        state = "interrupted"
    return state, record
