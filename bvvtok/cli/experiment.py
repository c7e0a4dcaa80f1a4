"""`bvvtok experiment run | status | report`: the papers' ablations as one command (bvvtok/experiment/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box

from bvvtok.cli.app import DataTable, command_group, console, example, print_table
from bvvtok.difference import plural
from bvvtok.errors import BvvtokError

experiment_app = command_group("experiment", "The papers' ablations: substrates x frozen/unfrozen x seeds, trained, "
                               "evaluated and reported with confidence intervals.")  # fmt: skip


def _slurm_options(values: list[str]) -> dict[str, str]:
    options = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise BvvtokError(f"--slurm {value!r} is not KEY=VALUE; write e.g. --slurm partition=gpu")
        options[key.replace("-", "_")] = setting
    return options


@experiment_app.command("run", epilog=example("bvvtok experiment run experiments/ablation-tiny.toml --out artifacts/ablation"))
def run_command(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's TOML file (see docs/experiment.md).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="The experiment folder: cells, report.")],
    executor: Annotated[str, typer.Option(metavar="NAME", help="local (this machine), slurm (submitit, a job per cell as an array) or submitit-local (submitit's subprocesses here, as on Slurm).")] = "local",
    parallel: Annotated[Optional[int], typer.Option(metavar="N", help="Cells at once. Default: 1 here; no limit on Slurm.")] = None,
    gpus_per_cell: Annotated[int, typer.Option(metavar="N", help="GPUs per cell; above 1 a cell trains under torchrun.")] = 0,
    slurm: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="An sbatch option for every cell's job (partition=gpu, time=240, account=...). Repeatable.")] = None,
    track: Annotated[Optional[list[str]], typer.Option(metavar="NAME", help="Also log every cell's training to tensorboard or wandb (as train --track). Repeatable.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the spec and print the plan and its time; build and run nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Take a changed spec: finished cells whose settings did not change are kept, the rest made again.")] = False,
) -> None:
    """Build, train, evaluate and report every cell (arm x seed) of a spec; a rerun goes on where it stopped."""
    from bvvtok.experiment.executors import ExecutorOptions
    from bvvtok.experiment.runner import run_experiment

    options = ExecutorOptions(parallel, gpus_per_cell, _slurm_options(slurm or []),
                              echo=lambda line: console.print(line, highlight=False))  # fmt: skip
    result = run_experiment(spec, out, executor, options, tuple(track or ()), force, on_plan=_print_plan, dry_run=dry_run)
    if dry_run:
        return
    done = sum(state == "done" for state in result.states.values())
    console.print(f"{out}: {done} of {plural(len(result.states), 'cell')} done; wrote "
                  + ", ".join(p.name for p in result.report))  # fmt: skip
    if result.failed:
        console.print(f"failed: {', '.join(result.failed)} (reasons in the report and in `bvvtok experiment status {out}`)")
        raise typer.Exit(code=1)


def _print_plan(plan, to_run, seconds: float | None) -> None:
    spec = plan.spec
    title = f"{spec.name}: {plural(len(spec.seeds), 'seed')} ({', '.join(map(str, spec.seeds))})"
    table = DataTable("arm", "substrate", "embedding", "model", "parameters", "steps", "cells", title=title,
                      title_justify="left", box=box.SIMPLE_HEAD)  # fmt: skip
    for arm in spec.arms.values():
        cells = [c for c in plan.cells if c.arm is arm]
        first = cells[0]
        m = first.config.model if first.config else None
        pending = sum(c in to_run for c in cells)
        table.add_row(arm.name, f"{first.substrate.method} {first.substrate.width}", arm.describe(spec),
                      f"{m.n_layer} x {m.d_model}" if m else "-",
                      f"{first.parameters['total']:,}" if first.parameters else "-",
                      f"{first.config.train.steps:,}" if first.config else "-", f"{pending} to run" if pending else "done")  # fmt: skip
    print_table(table)
    if to_run and seconds is not None:
        console.print(f"{plural(len(to_run), 'cell')} to run; their training takes about {_minutes(seconds)} on this machine "
                      "(from a measured step of each model)")  # fmt: skip
    elif to_run:
        console.print(f"{plural(len(to_run), 'cell')} to run, on the cluster's nodes")


def _minutes(seconds: float) -> str:
    """A duration in the unit that reads best: 45 s, 27 min, 5.2 h, 3,756 days."""
    for limit, unit, size in ((90, "s", 1), (90 * 60, "min", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:,.{1 if unit == 'h' else 0}f} {unit}"
    return f"{seconds / 86400:,.0f} days"


@experiment_app.command("status", epilog=example("bvvtok experiment status artifacts/ablation"))
def status_command(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="An experiment folder.")],
) -> None:
    """Each cell's state (done, running, interrupted, failed, pending), step and latest validation figures."""
    from bvvtok.experiment.runner import experiment_status

    table = DataTable("cell", "state", "step", "val loss", "bits/byte", "note", box=box.SIMPLE_HEAD)
    for name, state, record, row in experiment_status(folder):
        note = record.get("reason") or ""
        table.add_row(name, state, f"{row.step:,}" if row else "-", f"{row.val_loss:.4f}" if row else "-",
                      f"{row.val_bpb:.4f}" if row and row.val_bpb is not None else "-", note)  # fmt: skip
    print_table(table)


@experiment_app.command("report", epilog=example("bvvtok experiment report artifacts/ablation"))
def report_command(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="An experiment folder.")],
) -> None:
    """Write the report (results.csv, summary.csv, report.md, pictures) again from the cells there now."""
    from bvvtok.experiment.runner import write_experiment_report

    files = write_experiment_report(folder)
    console.print(f"wrote {', '.join(str(p) for p in files)}")
