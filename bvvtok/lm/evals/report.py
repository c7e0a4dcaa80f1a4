"""Several model folders through the same evaluation tasks: one row of figures per folder.

    rows = evaluate_runs([Path("artifacts/run-tiny"), Path("artifacts/run-tiny-unfrozen")],
                         [PerplexityTask(Path("held-out.txt"))])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file, check_output_file, sha256_file
from bvvtok.lm.evals import TASKS, Start, Task
from bvvtok.lm.run_folder import load_model

Progress = Callable[[str, int], None]  # (task, total) when a task starts; then ("", 0) per item done


def _starter(run: str, progress: Progress | None) -> Start:
    """What a task calls as it starts: shows "run: what" with its total, and returns the call made per item."""

    def start(what: str, total: int) -> Callable[[], None]:
        if progress is None:
            return lambda: None
        progress(f"{run}: {what}", total)
        return lambda: progress("", 0)

    return start


def evaluate_runs(runs: Sequence[Path], tasks: Sequence[Task], limit: int | None = None,
                  device: torch.device | str = "cpu", progress: Progress | None = None,
                  on_skip: Callable[[str], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """One dict of figures per run (keys in the tasks' order); each task's file read once, its first `limit` items."""
    if not tasks:
        offered = ", ".join(sorted(map(option, TASKS)))
        raise BvvtokError(f"nothing to evaluate: give a file to one of {offered}")
    if limit is not None and limit < 1:
        raise BvvtokError(f"{option('limit')} must be at least 1 (got {limit})")
    for task in tasks:
        task.check()
    items = [task.read(on_skip)[:limit] for task in tasks]
    rows = []
    for run in runs:
        model, tokenizer = load_model(run, device)
        row: dict[str, Any] = {"run": Path(run).name, "tokenizer_sha256": sha256_file(Path(run) / "tokenizer.json")[:12]}
        for task, its_items in zip(tasks, items):
            row |= task.score(Path(run), model, tokenizer, its_items, _starter(Path(run).name, progress))
        rows.append(row)
    return rows


def check_results_path(path: Path, force: bool = False, inputs: Sequence[Path] = ()) -> None:
    """Refuse a results file `write_results` would refuse: called before the evaluations, not after them."""
    check_output_file(path, force, inputs)
    if path.suffix not in (".csv", ".json"):
        raise BvvtokError(f"{path}: results are written as .csv or .json; choose one of those suffixes")


def write_results(rows: list[dict[str, Any]], path: Path, force: bool = False) -> None:
    """`.json`: the rows as a list; `.csv`: one line per run, columns in first-seen order."""
    check_results_path(path, force)
    with atomic_file(path, force) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.suffix == ".json":
            f.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        else:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(f, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
