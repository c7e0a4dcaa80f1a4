"""`bvvtok experiment run` as a library call: a spec in, an experiment folder with its cells and report out.

    result = run_experiment(Path("experiments/ablation-tiny.toml"), Path("artifacts/ablation"))

The spec is checked whole and the plan made before anything is built. The folder records the
spec it was started with: run again, the same spec skips finished cells and resumes the others
where they stopped; another spec is refused, naming what changed, unless `force`, which keeps
the finished cells whose settings did not change and makes the rest again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bvvtok import __version__
from bvvtok.errors import BvvtokError, option
from bvvtok.experiment.cells import RUN, CellJob, HeldOut, cell_state, is_done, read_record, tagged
from bvvtok.experiment.executors import ExecutorOptions, get_executor
from bvvtok.experiment.plan import CellPlan, Plan, make_plan
from bvvtok.experiment.spec import Spec, read_spec
from bvvtok.files import MANIFEST_NAME, atomic_file
from bvvtok.lm.config import differences
from bvvtok.lm.evals import TASKS, Task
from bvvtok.lm.sources import absolute, parse_sources, source_paths
from bvvtok.manifest import read_manifest, write_json, write_manifest
from bvvtok.output import claim, real

SPEC_COPY = "spec.toml"
VOCAB = "vocab"
SUBSTRATES = "substrates"
CELLS = "cells"


@dataclass
class ExperimentResult:
    folder: Path
    plan: Plan
    states: dict[str, str]  # cell -> done | failed | pending
    report: list[Path]

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state == "failed"]


def run_experiment(
    spec_path: Path,
    out: Path,
    executor: str = "local",
    options: ExecutorOptions | None = None,
    track: Sequence[str] = (),
    force: bool = False,
    on_plan: Callable[[Plan, list[CellPlan], float | None], None] | None = None,
    dry_run: bool = False,
) -> ExperimentResult:
    """Check, plan, build, run every cell that is not done, and write the report. `on_plan(plan, to_run, seconds)`
    is told the plan before any work, with the estimated training time of the cells to run (None where they run on
    other machines).
    With `dry_run`, nothing more: the plan is checked and told, nothing written."""
    from bvvtok.experiment.plan import estimate_seconds

    spec_path, out = Path(spec_path), Path(out)
    spec = read_spec(spec_path)
    plan = make_plan(spec)
    options = options or ExecutorOptions()
    runner = get_executor(executor, options)
    corpora = {path for arm in spec.arms.values() for path in source_paths(arm.corpus(spec))}
    inputs = [spec_path, *source_paths(spec.corpus), *corpora, *(spec.vocab.get("ngrams") or []), *([spec.vocab["path"]] if "path" in spec.vocab else [])]
    with claim(out, inputs) if not dry_run else contextlib.nullcontext(real(out)) as target:
        _check_folder(target, out, spec, force)
        jobs = _jobs(target, plan, options.gpus_per_cell, tuple(track))
        to_run = [job.cell for job in jobs if not is_done(job)]
        if on_plan is not None:
            on_plan(plan, to_run, estimate_seconds(plan, to_run) if runner.here else None)
        if dry_run:
            return ExperimentResult(out, plan, {job.cell.name: cell_state(job.folder)[0] for job in jobs}, [])
        if force:
            _forget(target, jobs)
        _start(target, plan, spec_path)
        _build(target, plan)
        for wave in sorted({job.cell.wave for job in jobs}):
            pending = [job for job in jobs if job.cell.wave == wave and not is_done(job)]
            if pending:  # an executor is given cells to run, never none (a Slurm array needs one job at least)
                runner.run(pending)
        files = write_experiment_report(target)
    states = {job.cell.name: cell_state(job.folder)[0] for job in jobs}
    return ExperimentResult(out, plan, states, files)


def _check_folder(target: Path, out: Path, spec: Spec, force: bool) -> None:
    """A new folder, or an experiment started with this spec (another only with `force`); nothing else."""
    if target.exists() and not target.is_dir():
        raise BvvtokError(f"{option('out', out)} exists and is not a folder; choose another path")
    if not target.is_dir() or not any(target.iterdir()):
        return
    manifest = read_manifest(target) if (target / MANIFEST_NAME).is_file() else {}
    recorded = manifest.get("experiment")
    if not isinstance(recorded, dict):
        what = "a folder bvvtok did not write" if not manifest else "a folder written by another bvvtok command"
        raise BvvtokError(f"{option('out', out)} is {what}, not an experiment; choose another path")
    changed = differences(recorded.get("spec", {}), spec.raw)
    if changed and not force:
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise BvvtokError(f"{option('out', out)} was started with another spec ({shown}); run the spec it was started with, "
                          f"pass {option('force', True)} to take the new one (finished cells whose settings did not "
                          "change are kept), or choose another path")  # fmt: skip


def _start(target: Path, plan: Plan, spec_path: Path) -> None:
    """The folder's record of its spec, cells and report: written before any work, so that a rerun knows what it was
    started with, and `status` and `report` need nothing but the folder."""
    target.mkdir(parents=True, exist_ok=True)
    with atomic_file(target / SPEC_COPY, force=True, part=True) as tmp:
        shutil.copyfile(spec_path, tmp)
    section = {"name": plan.spec.name, "spec": plan.spec.raw, "cells": [c.name for c in plan.cells], "report": report_info(plan)}
    write_json(target / MANIFEST_NAME, {"bvvtok_version": __version__, "experiment": section})


def _build(target: Path, plan: Plan) -> None:
    """The vocabulary and every substrate, each once (kept when there already with the same settings)."""
    from bvvtok.substrate.embed import embed
    from bvvtok.vocab.build import build_vocab, save_vocab

    spec = plan.spec
    vocab = Path(spec.vocab["path"]) if "path" in spec.vocab else target / VOCAB
    if "preset" in spec.vocab and read_manifest(vocab).get("experiment_key") != _key(spec.vocab):
        build = build_vocab(spec.vocab["preset"], spec.vocab.get("ngrams") or [])
        save_vocab(dataclasses.replace(build, manifest={**build.manifest, "experiment_key": _key(spec.vocab)}), vocab,
                   force=vocab.exists())  # fmt: skip
    for sub in plan.substrates.values():
        folder = target / SUBSTRATES / sub.name
        wanted = _key({"vocab": _vocab_identity(vocab), "method": sub.method, **sub.settings})
        if folder.is_dir() and read_manifest(folder).get("experiment_key") == wanted:
            continue
        embed(vocab, sub.method, out=folder, force=folder.exists(), **sub.settings)
        manifest = read_manifest(folder)
        write_manifest(folder, {**manifest, "experiment_key": wanted})


def _vocab_identity(vocab: Path) -> str:
    from bvvtok.files import sha256_file

    return sha256_file(vocab / "tokenizer.json")


def _key(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _tasks(spec: Spec) -> tuple[tuple[Task, str], ...]:
    """The [eval] tasks, one per file, each with the settings the spec gives it, and the tag of its figures: the
    file's name where the task has several files (`held_out_bpb[fortunes-en]`), else none."""
    tasks = []
    for name, files in spec.eval.items():
        if name not in TASKS:
            continue
        kind = TASKS[name]
        settings = {f.name: spec.eval[f.name] for f in dataclasses.fields(kind) if f.name != "path" and f.name in spec.eval}
        tasks += [(kind(Path(path), **settings), Path(path).name.split(".")[0] if len(files) > 1 else "") for path in files]
    return tuple(tasks)


def _jobs(target: Path, plan: Plan, gpus_per_cell: int, track: tuple[str, ...]) -> list[CellJob]:
    """Every cell's job, its key covering everything its result depends on (the cells it starts from included)."""
    spec = plan.spec
    first = spec.arm_config({}, {}, spec.seeds[0]).train
    held_out = HeldOut(absolute(spec.corpus), first.val_fraction, first.eval_windows)
    tasks = _tasks(spec)
    keys: dict[str, str] = {}
    jobs = []
    for cell in plan.cells:
        arm = cell.arm
        corpus = absolute(arm.corpus(spec))
        sources = {name: target / CELLS / f"{name}-s{cell.seed}" / RUN for name in arm.needs()}
        identity = {
            "arm": {"kind": arm.kind, **dataclasses.asdict(arm)}, "seed": cell.seed,
            "config": dataclasses.asdict(cell.config) if cell.config else None,
            "substrate": {"method": cell.substrate.method, **cell.substrate.settings}, "vocab": spec.vocab,
            "corpus": list(corpus), "held_out": dataclasses.asdict(held_out),
            "eval": {k: [str(p) for p in v] if isinstance(v, list) else v for k, v in spec.eval.items()},
            "sources": [keys[f"{name}-s{cell.seed}"] for name in arm.needs()],
        }  # fmt: skip
        keys[cell.name] = _key(identity)
        jobs.append(CellJob(target, cell, keys[cell.name], plan.label(arm), target / SUBSTRATES / cell.substrate.name,
                            corpus, held_out, tasks, sources, max(1, gpus_per_cell), track))  # fmt: skip
    return jobs


def _forget(target: Path, jobs: list[CellJob]) -> None:
    """With `force`: remove the cells of settings that changed, and those the spec no longer has."""
    wanted = {job.cell.name: job.key for job in jobs}
    cells = target / CELLS
    for folder in sorted(cells.iterdir()) if cells.is_dir() else []:
        record = read_record(folder)
        if folder.is_dir() and record and record.get("key") != wanted.get(folder.name):
            shutil.rmtree(folder)


def write_experiment_report(folder: Path) -> list[Path]:
    """The report of an experiment folder from its cells' records (what `experiment report` writes again)."""
    from bvvtok.experiment.report import CellResult, Figure, ReportInfo, write_report
    from bvvtok.lm.metrics import METRICS, read_metrics

    recorded = _recorded(folder)
    info = recorded["report"]
    results = []
    for name in recorded["cells"]:
        state, record = cell_state(folder / CELLS / name)
        if state in ("done", "failed"):
            metrics = folder / CELLS / name / RUN / METRICS
            results.append(CellResult(record, read_metrics(metrics) if metrics.is_file() else None))
    figures = [Figure(**f) for f in info["figures"]]
    return write_report(folder, ReportInfo(**{**info, "figures": figures}), results)


def report_info(plan: Plan) -> dict[str, Any]:
    """What the report needs of the spec, recorded in the folder: the arms, their legends and the figures."""
    figures = [{"key": "final_val_bpb", "title": "validation bits per byte", "unit": "bits/byte"},
               {"key": "final_val_loss", "title": "validation loss", "unit": "nats/token"},
               {"key": "best_val_bpb", "title": "best validation bits per byte", "unit": "bits/byte"},
               {"key": "best_val_loss", "title": "best validation loss", "unit": "nats/token"}]  # fmt: skip
    figures = [{**f, "lower_is_better": True, "headline": f["key"] == "final_val_bpb"} for f in figures]
    for source in parse_sources(plan.spec.corpus):  # named sources: each one's own validation, a headline too
        if source.name:
            figures.append({"key": tagged("final_val_bpb", source.name), "title": f"validation bits per byte ({source.name})",
                            "unit": "bits/byte", "lower_is_better": True, "headline": True})  # fmt: skip
    for task, tag in _tasks(plan.spec):
        for column in task.columns:
            title = f"{column.title} ({tag})" if tag else column.title
            figures.append({"key": tagged(column.key, tag), "title": title, "unit": "", "headline": column is task.columns[0],
                            "lower_is_better": column.lower_is_better})  # fmt: skip
    arms = list(plan.spec.arms)
    labels = {a: plan.label(plan.spec.arms[a]) for a in arms}
    return {"name": plan.spec.name, "baseline": plan.spec.baseline, "arms": arms, "labels": labels, "figures": figures}


def experiment_status(folder: Path) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(cell, state, record, its latest validation row or None) for every cell of an experiment folder."""
    from bvvtok.lm.metrics import METRICS, read_metrics

    found = []
    for name in _recorded(folder)["cells"]:
        state, record = cell_state(folder / CELLS / name)
        metrics = folder / CELLS / name / RUN / METRICS
        rows = [r for r in read_metrics(metrics) if r.val_loss is not None] if metrics.is_file() else []
        found.append((name, state, record, rows[-1] if rows else None))
    return found


def _recorded(folder: Path) -> dict[str, Any]:
    """The experiment section of a folder's manifest: its spec, cells and report settings."""
    folder = Path(folder)
    recorded = read_manifest(folder).get("experiment") if folder.is_dir() else None
    if not isinstance(recorded, dict) or not {"cells", "report"} <= set(recorded):
        raise BvvtokError(f"{folder} is not an experiment folder (one written by `bvvtok experiment run`); give one")
    return recorded
