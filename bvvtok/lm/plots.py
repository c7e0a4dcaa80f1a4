"""Loss curves of one run, and the validation curves of several runs side by side.

Drawn with matplotlib's object API on the Agg canvas (no pyplot: no global figure
state, no display) under the default style (a user's matplotlibrc does not change
the picture), and saved without the Software tag: the same rows give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file, check_output_file, check_png_path, distinct_names
from bvvtok.lm.metrics import METRICS, Row, read_metrics, source_names, source_rows

CONFIG = "config.json"
SUBSTRATE_MANIFEST = "substrate.json"  # as bvvtok.lm.run_folder names it (which imports torch)
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
    method: str | None = None  # the substrate's method (glyph, bits, gaussian), None if the folder does not say
    dim: int | None = None  # its width (n_embed)
    sources: dict[str, float | None] = dataclasses.field(default_factory=dict)  # named sources' final bits per byte

    @property
    def substrate(self) -> str:
        """The substrate as the table shows it: "glyph 256", "bits 16" ("-" if unknown)."""
        return " ".join(str(part) for part in (self.method, self.dim) if part is not None) or "-"

    @property
    def label(self) -> str:
        """The legend entry: the name, the substrate, whether the embedding trained, and its init unless it is the
        substrate (two frozen runs on different substrates must not both read "frozen")."""
        substrate = "" if self.substrate == "-" else f"{self.substrate}, "
        if self.frozen and self.init == "substrate":
            return f"{self.name} ({substrate}frozen)"
        return f"{self.name} ({substrate}{'frozen' if self.frozen else 'unfrozen'}, init {self.init})"


Panel = tuple[str, list[Curve], str | None]  # the y-axis label, the curves drawn on it, the unit to fit the axis in


def save_png(figure: Figure, out: Path, force: bool = False, part: bool = False) -> None:
    """`figure` into `out` (atomic), drawn under the default style and without the Software tag: same bytes.
    `part`: a picture of the bvvtok folder it is written into (bvvtok.files.atomic_file), replaced if there."""
    with matplotlib.style.context("default"), atomic_file(Path(out), force or part, part=part) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def value_range(values: Iterable[float], margin: float = 0.05) -> tuple[float, float] | None:
    """(low, high) around the finite `values` with `margin` of their span either side; None if there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    pad = (high - low) * margin or max(abs(high) * margin, 1e-3)  # one value: a band around it
    return low - pad, high + pad


def outside(values: Iterable[float], limits: tuple[float, float], what: str, unit: str) -> str | None:
    """A note for the finite `values` that fall outside `limits` ("step 0: 7.95 bits/byte, above the range shown"),
    None if all are inside: a reader must know that a point was left off the picture, and where it is."""
    out = sorted(v for v in values if math.isfinite(v) and not limits[0] <= v <= limits[1])
    if not out:
        return None
    side = "above" if out[0] > limits[1] else "below" if out[-1] < limits[0] else "outside"
    span = f"{out[0]:.2f}" if f"{out[0]:.2f}" == f"{out[-1]:.2f}" else f"{out[0]:.2f}–{out[-1]:.2f}"
    return f"{what}: {span} {unit}, {side} the range shown"


def fit_to_training(ax: Axes, curves: Sequence[Curve], unit: str) -> str | None:
    """Set the y limits on the values after step 0 and return the note that says where step 0 went (or None).

    Step 0 is the model before training (untrained: ln V nats, about 8 bits per byte): on the axis it squashes the
    trained part, where runs differ by hundredths, into a flat line.
    """
    values = [(r.step, getattr(r, field)) for _, rows, field, _ in curves for r in rows]
    limits = value_range(v for step, v in values if step > 0)
    if limits is None:
        return None
    ax.set_ylim(limits)
    return outside((v for step, v in values if step == 0), limits, "step 0 (before training)", unit)


def note(ax: Axes, text: str) -> None:
    """A small grey line above the axes, on the left: what the picture leaves out or how to read it."""
    ax.set_title(text, loc="left", fontsize="small", color="0.35")


def _draw(out: Path, force: bool, title: str, panels: list[Panel], part: bool = False) -> None:
    """The panels side by side (those with curves), one title over them."""
    panels = [p for p in panels if p[1]]
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(8 if len(panels) == 1 else 12, 5), layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(title)
        for i, (ylabel, curves, unit) in enumerate(panels, 1):
            ax = figure.add_subplot(1, len(panels), i)
            for label, rows, field, style in curves:
                ax.plot([r.step for r in rows], [getattr(r, field) for r in rows], label=label, **style)
            ax.set(xlabel="step", ylabel=ylabel)
            ax.grid(True, alpha=0.4)
            ax.legend()
            if unit is not None and (text := fit_to_training(ax, curves, unit)):
                note(ax, text)
    save_png(figure, out, force, part)


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
    names = source_names(rows)
    whole = "validation, all sources" if names else "validation"
    losses += [(whole, val, "val_loss", {"color": "C1", "marker": "o", "markersize": 4})] if val else []
    bits: list[Curve] = [(whole, bpb, "val_bpb", {"color": "C1", "marker": "o", "markersize": 4})] if bpb else []
    for i, name in enumerate(names):  # named sources: each one's own validation, dashed
        own = source_rows(rows, name)
        style = {"color": f"C{i + 2}", "marker": ".", "markersize": 4, "linestyle": "--"}
        losses.append((f"validation, {name}", own, "val_loss", style))
        bits += [(f"validation, {name}", [r for r in own if r.val_bpb is not None], "val_bpb", style)]
    panels: list[Panel] = [("loss (nats/token)", losses, None), ("validation bits per byte of text", bits, None)]
    _draw(out, True, title, panels, part=True)


def _config(folder: Path) -> tuple[bool, str, int, int | None]:
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
    n_embed = config["model"].get("n_embed")
    return frozen, init, steps, n_embed if type(n_embed) is int else None


def _substrate(folder: Path) -> tuple[str | None, int | None]:
    """The method and width in the run's copy of the substrate manifest ((None, None) where it has none: a summary
    does not need it, and older or foreign folders may lack it)."""
    try:
        section = json.loads((folder / SUBSTRATE_MANIFEST).read_text(encoding="utf-8"))["substrate"]
        method, dim = section.get("method"), section.get("dim")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None
    return method if isinstance(method, str) else None, dim if type(dim) is int else None


SOURCE_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))  # a run's named sources, told apart in the legend


def _last_bpb(val: Sequence[Row]) -> dict[str, float | None]:
    return {name: next((r.val_bpb for r in reversed(source_rows(val, name))), None) for name in source_names(val)}


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
        frozen, init, steps, n_embed = _config(folder)
        method, dim = _substrate(folder)
        val = [r for r in rows if r.val_loss is not None]
        losses = [r.val_loss for r in val if not math.isnan(r.val_loss)]
        last = rows[-1] if rows else None
        summary = RunSummary(
            name, Path(given), frozen, init, last.step if last else 0, steps, last.train_loss if last else None,
            val[-1].val_loss if val else None, min(losses, default=None), val[-1].val_bpb if val else None,
            method, dim if dim is not None else n_embed, _last_bpb(val),
        )  # fmt: skip
        summaries.append(summary)
        style = {"color": f"C{len(curves)}", "marker": "o", "markersize": 3}  # one colour per drawn run
        if val:
            curves.append((summary.label, val, "val_loss", style))
        bpb = [r for r in val if r.val_bpb is not None]
        if bpb:
            bits.append((summary.label, bpb, "val_bpb", style))
        for i, name in enumerate(summary.sources):  # each named source: the run's colour, its own dashes
            dashes = SOURCE_DASHES[i % len(SOURCE_DASHES)]
            own = [r for r in source_rows(val, name) if r.val_bpb is not None]
            bits.append((f"{summary.label}, {name}", own, "val_bpb", {**style, "linestyle": dashes, "marker": "."}))
    if out is not None:
        if not curves:
            raise BvvtokError("none of the runs has validation rows (val_loss is always empty); leave out the .png")
        _draw(out, force, "validation", [("loss (nats/token)", curves, "nats/token"),
                                          ("bits per byte of text", bits, "bits/byte")])
    return summaries
