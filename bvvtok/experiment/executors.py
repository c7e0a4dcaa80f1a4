"""Where cells run: here (one after another, or N at once in worker processes), or through submitit on a Slurm
cluster, a job per cell as a job array. `submitit-local` is submitit's LocalExecutor: real subprocesses through
the same code path as Slurm, to try a cluster set-up on one machine.

An executor runs a wave of cells that do not depend on each other and returns when all have ended; each
cell records its own state (bvvtok.experiment.cells), so an executor only has to start them, and to record
a cell whose job died without a word (a node lost, a time limit) as failed.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bvvtok.errors import BvvtokError, option
from bvvtok.experiment.cells import RECORD, CellJob, base_record, read_record, run_cell
from bvvtok.manifest import write_json


@dataclass(frozen=True)
class ExecutorOptions:
    parallel: int | None = None  # cells at once (None: the executor's default)
    gpus_per_cell: int = 0
    slurm: dict[str, str] = field(default_factory=dict)  # submitit's slurm_* parameters, without the prefix
    echo: Callable[[str], None] | None = None  # where cells run in this process, their progress lines


class Executor(ABC):
    name: ClassVar[str]
    about: ClassVar[str]
    here: ClassVar[bool] = True  # the cells run on this machine (so a step measured here says how long they take)

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options

    def check(self) -> None:
        """Refuse options it cannot use, before any work."""

    @abstractmethod
    def run(self, jobs: Sequence[CellJob]) -> None:
        """Run the cells (independent of each other) to their end."""


EXECUTORS: dict[str, type[Executor]] = {}


def register(executor: type[Executor]) -> type[Executor]:
    EXECUTORS[executor.name] = executor
    return executor


def get_executor(name: str, options: ExecutorOptions) -> Executor:
    if name not in EXECUTORS:
        raise BvvtokError(f"{option('executor', name)} is not an executor; choose {', '.join(EXECUTORS)}")
    if options.parallel is not None and options.parallel < 1:
        raise BvvtokError(f"{option('parallel', options.parallel)} must be at least 1")
    if options.gpus_per_cell < 0:
        raise BvvtokError(f"{option('gpus_per_cell', options.gpus_per_cell)} must not be negative")
    executor = EXECUTORS[name](options)
    executor.check()
    return executor


def _threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


@register
class Local(Executor):
    name = "local"
    about = "this machine: cells one after another, or --parallel N at once in worker processes"

    def run(self, jobs: Sequence[CellJob]) -> None:
        parallel = min(self.options.parallel or 1, len(jobs))
        if parallel <= 1:
            for job in jobs:
                run_cell(job, self.options.echo)
            return
        threads = max(1, (os.cpu_count() or 1) // parallel)  # the cores shared out, not each worker taking all
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
        with ProcessPoolExecutor(parallel, mp_context=context, initializer=_threads, initargs=(threads,)) as pool:
            list(pool.map(run_cell, jobs))


@register
class Slurm(Executor):
    name = "slurm"
    about = "a Slurm cluster through submitit: a job per cell, as a job array (--slurm KEY=VALUE: sbatch's options)"
    here = False

    def executor(self, folder: Path) -> Any:
        import submitit

        return submitit.AutoExecutor(folder=folder, cluster="slurm")

    def parameters(self, jobs: Sequence[CellJob]) -> dict[str, Any]:
        gpus = self.options.gpus_per_cell
        chosen: dict[str, Any] = {"name": f"bvvtok-{jobs[0].experiment.name}", "nodes": 1, "tasks_per_node": 1,
                                  "gpus_per_node": gpus or None, "timeout_min": 24 * 60}  # fmt: skip
        if self.options.parallel:
            chosen["slurm_array_parallelism"] = self.options.parallel
        chosen |= {f"slurm_{k}": v for k, v in self.options.slurm.items()}
        return {k: v for k, v in chosen.items() if v is not None}

    def check(self) -> None:
        """submitit knows sbatch's options: an unknown --slurm KEY is refused here, not when the jobs are submitted."""
        try:
            import submitit
        except ImportError:
            raise BvvtokError(f"{option('executor', self.name)} needs submitit: pip install 'bvvtok[slurm]'") from None
        with tempfile.TemporaryDirectory() as folder:  # the debug executor checks slurm_* names without a cluster
            try:
                submitit.AutoExecutor(folder=folder, cluster="debug").update_parameters(
                    **{f"slurm_{k}": v for k, v in self.options.slurm.items()})  # fmt: skip
            except (NameError, ValueError, TypeError) as e:
                raise BvvtokError(f"{option('slurm')}: {str(e).splitlines()[0]}") from None

    def run(self, jobs: Sequence[CellJob]) -> None:
        folder = jobs[0].experiment / "submitit"
        executor = self.executor(folder / "%j")
        executor.update_parameters(**self.parameters(jobs))
        for batch in self.batches(jobs):
            submitted = executor.map_array(run_cell, batch)
            for job, handle in zip(batch, submitted):
                try:
                    handle.result()
                except Exception as e:  # noqa: BLE001  the job died: the cell says so, the others go on
                    _died(job, f"its job {handle.job_id} ended without finishing ({type(e).__name__}); see {folder}")

    def batches(self, jobs: Sequence[CellJob]) -> list[Sequence[CellJob]]:
        """One job array: Slurm keeps to --parallel itself."""
        return [jobs]


@register
class SubmititLocal(Slurm):
    name = "submitit-local"
    about = "submitit's LocalExecutor: each cell a job in a subprocess here, as on Slurm (to try a cluster set-up)"
    here = True

    def executor(self, folder: Path) -> Any:
        import submitit

        return submitit.LocalExecutor(folder=folder)

    def parameters(self, jobs: Sequence[CellJob]) -> dict[str, Any]:
        return {"timeout_min": 24 * 60, "gpus_per_node": self.options.gpus_per_cell}

    def batches(self, jobs: Sequence[CellJob]) -> list[Sequence[CellJob]]:
        """The LocalExecutor starts every job it is given at once: hand it --parallel (default 1) at a time."""
        size = self.options.parallel or 1
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _died(job: CellJob, reason: str) -> None:
    record = read_record(job.folder)
    if record.get("state") != "done":
        write_json(job.folder / RECORD, {**record, **base_record(job), "state": "failed", "reason": reason})
