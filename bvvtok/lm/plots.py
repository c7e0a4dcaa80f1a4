"""Loss curves of one run, and the validation curves of several runs side by side.

Drawn with matplotlib's object API on the Agg canvas (no pyplot: no global figure
state, no display) under the default style (a user's matplotlibrc does not change
the picture), and saved without the Software tag: the same rows give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file, check_output_file, check_png_path, distinct_names
from bvvtok.lm.metrics import METRICS, Row, read_metrics

CONFIG = "config.json"
NOT_A_RUN = "is it a run folder written by bvvtok train?"
Curve = tuple[str, list[Row], str, dict[str, Any]]  # label, rows, the Row field to draw, line style


@dataclass
class RunSummary:
    name: str  # the folder name, with as many parent folders as it takes to tell the runs apart
    path: Path
    frozen: bool
    init: str
    steps_done: int
    steps_planned: int
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    final_val_bpb: float | None = None  # bits per byte: comparable across tokenizers (None: bvvtok 0.1's metrics)

    @property
    def label(self) -> str:
        """The legend entry: the name, whether the embedding trained, and its init unless it is the substrate."""
        if self.frozen and self.init == "substrate":
            return f"{self.name} (frozen)"
        return f"{self.name} ({'frozen' if self.frozen else 'unfrozen'}, init {self.init})"


Panel = tuple[str, list[Curve]]  # the y-axis label, and the curves drawn on it


def _draw(out: Path, force: bool, title: str, panels: list[Panel]) -> None:
    """The panels side by side (those with curves), one title over them."""
    panels = [p for p in panels if p[1]]
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(8 if len(panels) == 1 else 12, 5), layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(title)
        for i, (ylabel, curves) in enumerate(panels, 1):
            ax = figure.add_subplot(1, len(panels), i)
            for label, rows, field, style in curves:
                ax.plot([r.step for r in rows], [getattr(r, field) for r in rows], label=label, **style)
            ax.set(xlabel="step", ylabel=ylabel)
            ax.grid(True, alpha=0.4)
            ax.legend()
        with atomic_file(Path(out), force) as tmp:
            figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def smoothed(rows: Sequence[Row], field: str) -> list[Row]:
    """Rows whose `field` is the mean of the last `window` values (a twentieth of the run): at batch 1 the raw train
    loss swings by nats from step to step, and the trend is what a reader wants to see."""
    window = max(1, len(rows) // 20)
    values = [getattr(r, field) for r in rows]
    return [dataclasses.replace(r, **{field: sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))})
            for i, r in enumerate(rows)]  # fmt: skip


def plot_losses(rows: Sequence[Row], out: Path, title: str) -> None:
    """`out` (a .png, replaced if there): the train loss (raw, faint, and smoothed), the validation loss; beside
    them, validation bits per byte when the rows have it."""
    check_png_path(out)
    if not rows:
        raise BvvtokError(f"no metrics rows to plot into {out}; log at least one step first")
    val = [r for r in rows if r.val_loss is not None]
    bpb = [r for r in val if r.val_bpb is not None]
    trained = [r for r in rows if r.train_loss is not None]
    losses: list[Curve] = [("train", trained, "train_loss", {"color": "C0", "linewidth": 0.6, "alpha": 0.25}),
                           ("train, smoothed", smoothed(trained, "train_loss"), "train_loss", {"color": "C0", "linewidth": 1.2})]  # fmt: skip
    losses += [("validation", val, "val_loss", {"color": "C1", "marker": "o", "markersize": 4})] if val else []
    bits: list[Curve] = [("validation", bpb, "val_bpb", {"color": "C1", "marker": "o", "markersize": 4})] if bpb else []
    _draw(out, True, title, [("loss (nats/token)", losses), ("validation bits per byte of text", bits)])


def _config(folder: Path) -> tuple[bool, str, int]:
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        frozen, init, steps = config["model"]["frozen"], config["model"]["init"], config["train"]["steps"]
    except FileNotFoundError:
        raise BvvtokError(f"{folder} has no {CONFIG}; {NOT_A_RUN}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable, not JSON, or a key missing
        raise BvvtokError(f"{path} is not a run config ({type(e).__name__}: {e}); {NOT_A_RUN}") from None
    if not isinstance(frozen, bool) or not isinstance(init, str) or type(steps) is not int:
        raise BvvtokError(f"{path}: model.frozen, model.init or train.steps has the wrong type; {NOT_A_RUN}")
    return frozen, init, steps


def compare_runs(run_dirs: Sequence[Path], out: Path | None, force: bool = False) -> list[RunSummary]:
    """Summaries of runs and, if `out` is given, one .png of their validation curves."""
    if not run_dirs:
        raise BvvtokError("name at least one run folder to compare")
    if out is not None:
        check_png_path(out)
        check_output_file(Path(out), force, run_dirs)  # fail before reading the runs, not after
    folders = [Path(d).resolve() for d in run_dirs]
    for given, folder in zip(run_dirs, folders):
        if not folder.is_dir() or folders.count(folder) > 1:
            why = "is named twice; give each run once" if folder.is_dir() else f"is not a folder; {NOT_A_RUN}"
            raise BvvtokError(f"{given} {why}")
    summaries: list[RunSummary] = []
    curves: list[Curve] = []
    bits: list[Curve] = []
    for given, folder, name in zip(run_dirs, folders, distinct_names(folders)):
        rows = read_metrics(folder / METRICS)
        frozen, init, steps = _config(folder)
        val = [r for r in rows if r.val_loss is not None]
        losses = [r.val_loss for r in val if not math.isnan(r.val_loss)]
        last = rows[-1] if rows else None
        summary = RunSummary(
            name, Path(given), frozen, init, last.step if last else 0, steps, last.train_loss if last else None,
            val[-1].val_loss if val else None, min(losses, default=None), val[-1].val_bpb if val else None,
        )  # fmt: skip
        summaries.append(summary)
        style = {"color": f"C{len(curves)}", "marker": "o", "markersize": 3}  # one colour per drawn run
        if val:
            curves.append((summary.label, val, "val_loss", style))
        bpb = [r for r in val if r.val_bpb is not None]
        if bpb:
            bits.append((summary.label, bpb, "val_bpb", style))
    if out is not None:
        if not curves:
            raise BvvtokError("none of the runs has validation rows (val_loss is always empty); leave out the .png")
        _draw(out, force, "validation", [("loss (nats/token)", curves), ("bits per byte of text", bits)])
    return summaries
