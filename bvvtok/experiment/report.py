"""The report of an experiment: results.csv, summary.csv, report.md, curves.png and final.png in its folder.

    write_report(folder, info, cells) -> the files written

results.csv has a row per cell, summary.csv a row per arm and figure (mean, sd, 95% Student-t interval over seeds)
and then per arm other than the baseline and figure the difference arm - baseline paired by seed. report.md says it
in sentences ("glyph − unfrozen: +0.0120 bits/byte, 95% interval −0.0080 to +0.0320 over 3 seeds: not resolved"),
and shows the pictures (bvvtok.experiment.pictures). The same cells give the same bytes in every file.

Decisions where the design leaves a choice:
- Only done cells count. A done cell whose figure is missing or not finite (a run that diverged to nan) is left out
  of that figure's statistics and listed, with the value, under "Left out" next to the failed cells and their
  reasons and the cells not finished yet (pending, running): a reader sees every cell the numbers do not include.
- An arm with no value for a figure still has its summary row: n 0, the rest empty.
- "Resolved" means the 95% interval of the paired difference excludes 0 (an end exactly at 0 is not resolved); the
  verdict says which arm is lower, as the design words it, whatever the direction of better (the table headers say
  that).
- Numbers: report.md gives every figure with 4 decimals and a real minus sign (−); the CSV files give 6 decimals
  and ASCII, for programs (the comparison column reads "glyph - unfrozen"). report.md shows the headline figures;
  summary.csv has every figure.
- A picture with nothing to draw (no cell has curves; no headline figure has a value) is not written, and one left
  from an earlier report of the folder is removed: it would show other cells than the report.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError
from bvvtok.experiment.pictures import ArmCurves, ArmValues, Headline, curves_figure, final_figure, seed_count
from bvvtok.experiment.stats import Estimate, estimate, paired
from bvvtok.files import atomic_file
from bvvtok.lm.metrics import Row
from bvvtok.lm.plots import save_png

RESULTS, SUMMARY, REPORT, CURVES, FINAL = "results.csv", "summary.csv", "report.md", "curves.png", "final.png"
MINUS = "\u2212"


@dataclass
class Figure:
    key: str  # its key in cell.json's "figures"
    title: str  # "final validation bits per byte"
    unit: str  # "bits/byte"
    lower_is_better: bool
    headline: bool  # shown in report.md and final.png (summary.csv has every figure)


@dataclass
class ReportInfo:
    name: str
    baseline: str | None  # the arm the others are compared with, None for no comparison
    arms: list[str]  # in spec order
    labels: dict[str, str]  # arm -> "glyph 256-dim, frozen"
    figures: list[Figure]


@dataclass
class CellResult:
    record: dict[str, Any]  # cell.json
    rows: list[Row] | None  # its metrics.csv (None: not there, as for a combine cell or a failed one)


def write_report(folder: Path, info: ReportInfo, cells: list[CellResult]) -> list[Path]:
    """Write the report files into `folder` (atomically, each replacing its old self); the paths written."""
    folder = Path(folder)
    cells = _ordered(info, cells)
    values = {(arm, f.key): _values(cells, arm, f.key) for arm in info.arms for f in info.figures}
    colours = {arm: f"C{i}" for i, arm in enumerate(info.arms)}
    pictures = {
        CURVES: curves_figure(f"{info.name}: validation", _curves(info, cells, colours), _unigram(cells)),
        FINAL: final_figure(f"{info.name}: per arm", [
            Headline(f.title, f.unit, f.lower_is_better,
                     [ArmValues(_label(info, a), colours[a], list(values[a, f.key].values())) for a in info.arms])
            for f in info.figures if f.headline
        ]),
    }  # fmt: skip
    drawn = [name for name, figure in pictures.items() if figure is not None]
    texts = {RESULTS: _results(info, cells), SUMMARY: _summary(info, values),
             REPORT: _markdown(info, cells, values, drawn)}  # fmt: skip
    written = []
    for name, text in texts.items():
        with atomic_file(folder / name, force=True, part=True) as tmp:
            tmp.write_text(text, encoding="utf-8", newline="")
        written.append(folder / name)
    for name, figure in pictures.items():
        if figure is None:
            (folder / name).unlink(missing_ok=True)  # an earlier report's picture would show other cells
        else:
            save_png(figure, folder / name, part=True)
            written.append(folder / name)
    return written


# --- the cells ---


def _ordered(info: ReportInfo, cells: Sequence[CellResult]) -> list[CellResult]:
    """The cells by arm (spec order) and seed; a cell of an unknown arm or a second cell of an arm and seed refused."""
    if info.baseline is not None and info.baseline not in info.arms:
        raise BvvtokError(f"the baseline {info.baseline!r} is not one of the arms ({', '.join(info.arms)}); name one")
    seen: set[tuple[str, int]] = set()
    for c in cells:
        arm, seed = c.record["arm"], c.record["seed"]
        if arm not in info.arms:
            raise BvvtokError(f"cell {c.record['cell']}: arm {arm!r} is not one of the arms ({', '.join(info.arms)}); "
                              "was the spec edited after the cell ran?")  # fmt: skip
        if (arm, seed) in seen:
            raise BvvtokError(f"cell {c.record['cell']}: a second cell of arm {arm} and seed {seed}; keep one")
        seen.add((arm, seed))
    return sorted(cells, key=lambda c: (info.arms.index(c.record["arm"]), c.record["seed"]))


def _figure(record: dict[str, Any], key: str) -> float | None:
    """The cell's figure `key` as a float (None if it has none); a value that is not a number is refused."""
    value = (record.get("figures") or {}).get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise BvvtokError(f"cell {record['cell']}: figure {key} is {value!r}, not a number; fix its cell.json")
    return None if value is None else float(value)


def _done(cells: Sequence[CellResult], arm: str | None = None) -> Iterator[CellResult]:
    return (c for c in cells if c.record["state"] == "done" and arm in (None, c.record["arm"]))


def _values(cells: Sequence[CellResult], arm: str, key: str) -> dict[int, float]:
    """Seed -> the figure, over the arm's done cells whose value is finite."""
    found = {c.record["seed"]: _figure(c.record, key) for c in _done(cells, arm)}
    return {seed: v for seed, v in found.items() if v is not None and math.isfinite(v)}


def _left_out(info: ReportInfo, cells: Sequence[CellResult]) -> list[str]:
    """A line per cell that is not done, and per done cell's figure that is missing or not finite."""
    lines = []
    for c in cells:
        r = c.record
        where = f"{r['cell']} ({info.labels.get(r['arm'], r['arm'])}, seed {r['seed']})"
        if r["state"] != "done":
            lines.append(f"{where}: {r['state']}" + (f": {r['reason']}" if r.get("reason") else ""))
            continue
        for f in info.figures:
            v = _figure(r, f.key)
            if v is None or not math.isfinite(v):
                lines.append(f"{where}: {'no ' + f.key if v is None else f'{f.key} is {v}'}")
    return lines


def _label(info: ReportInfo, arm: str) -> str:
    """The arm's name and what it is, as legends show it: "glyph: glyph 256-dim, frozen"."""
    return f"{arm}: {info.labels[arm]}" if arm in info.labels else arm


def _unigram(cells: Sequence[CellResult]) -> float | None:
    """The mean unigram entropy over the done cells that give one."""
    found = [float(v) for c in _done(cells) if (v := c.record.get("unigram_bpb")) is not None and math.isfinite(v)]
    return sum(found) / len(found) if found else None


def _curves(info: ReportInfo, cells: Sequence[CellResult], colours: dict[str, str]) -> list[ArmCurves]:
    """Per arm, each done cell's validation bits per byte by tokens trained (step x tokens per step)."""
    arms = []
    for arm in info.arms:
        seeds = []
        for c in _done(cells, arm):
            per_step = c.record.get("tokens_per_step")
            curve = [(r.step * per_step, r.val_bpb) for r in c.rows or [] if r.val_bpb is not None and per_step]
            if curve:
                seeds.append(curve)
        arms.append(ArmCurves(_label(info, arm), colours[arm], seeds))
    return arms


# --- the CSV files ---


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _fixed(value: float | None, spec: str = ".6f") -> str:
    return "" if value is None else format(value, spec)


def _results(info: ReportInfo, cells: Sequence[CellResult]) -> str:
    header = ["cell", "arm", "seed", "kind", "state", "substrate", "method", "dim", "frozen", "steps", "tokens",
              *(f.key for f in info.figures), "wall_s", "tokens_per_s", "reason"]  # fmt: skip
    rows: list[list[Any]] = [header]
    for c in cells:
        r = c.record
        substrate = r.get("substrate") or {}
        frozen = r.get("frozen")
        done = r["state"] == "done"
        rows.append([
            r["cell"], r["arm"], r["seed"], r.get("kind", ""), r["state"], substrate.get("name", ""),
            substrate.get("method", ""), substrate.get("dim", ""), "" if frozen is None else str(frozen).lower(),
            r.get("steps", ""), r.get("tokens", ""),
            *(_fixed(_figure(r, f.key) if done else None) for f in info.figures),
            _fixed(r.get("wall_s"), ".1f"), _fixed(r.get("tokens_per_s"), ".1f"), r.get("reason") or "",
        ])  # fmt: skip
    return _csv(rows)


def _stat_row(arm: str, key: str, e: Estimate | None, comparison: str) -> list[Any]:
    if e is None:
        return [arm, key, 0, "", "", "", "", comparison]
    return [arm, key, e.n, _fixed(e.mean), _fixed(e.sd), _fixed(e.low), _fixed(e.high), comparison]


def _comparisons(info: ReportInfo) -> list[str]:
    return [arm for arm in info.arms if info.baseline is not None and arm != info.baseline]


def _summary(info: ReportInfo, values: dict[tuple[str, str], dict[int, float]]) -> str:
    rows: list[list[Any]] = [["arm", "figure", "n", "mean", "sd", "ci95_low", "ci95_high", "comparison"]]
    for arm in info.arms:
        for f in info.figures:
            v = values[arm, f.key]
            rows.append(_stat_row(arm, f.key, estimate(list(v.values())) if v else None, ""))
    for arm in _comparisons(info):
        for f in info.figures:
            _, e = paired(values[arm, f.key], values[info.baseline, f.key])
            rows.append(_stat_row(arm, f.key, e, f"{arm} - {info.baseline}"))
    return _csv(rows)


# --- report.md ---


def _number(value: float, sign: bool = False) -> str:
    """4 decimals, a real minus sign; with `sign`, + before the positive."""
    return format(value, "+.4f" if sign else ".4f").replace("-", MINUS)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _columns(e: Estimate | None, sign: bool = False) -> tuple[str, str, str]:
    """n, mean ± half-width, interval, as a table shows them."""
    if e is None:
        return "0", "\u2013", "\u2013"
    if e.n == 1:
        return "1", _number(e.mean, sign), "none from one seed"
    return (str(e.n), f"{_number(e.mean, sign)} ± {_number(e.half_width)}",
            f"{_number(e.low, sign)} to {_number(e.high, sign)}")  # fmt: skip


def sentence(arm: str, baseline: str, e: Estimate | None, unit: str) -> str:
    """The difference arm − baseline in words: its size, its 95% interval, and whether the seeds resolve it."""
    unit = f" {unit}" if unit else ""
    head = f"{arm} {MINUS} {baseline}"
    if e is None:
        return f"{head}: no seed finished in both arms: no difference can be given"
    if e.n == 1:
        return f"{head}: {_number(e.mean, True)}{unit} on 1 shared seed: no interval can be given"
    verdict = f"resolved, {arm} is {'lower' if e.mean < 0 else 'higher'}" if e.excludes_zero else "not resolved"
    return (f"{head}: {_number(e.mean, True)}{unit}, 95% interval {_number(e.low, True)} to {_number(e.high, True)}"
            f" over {e.n} seeds: {verdict}")  # fmt: skip


def _plan(info: ReportInfo, cells: Sequence[CellResult]) -> str:
    seeds = sorted({c.record["seed"] for c in cells})
    arms = "; ".join(_label(info, arm) for arm in info.arms)
    text = (f"{len(info.arms)} arms ({arms}) × {seed_count(len(seeds))} ({', '.join(map(str, seeds))}) = "
            f"{len(cells)} cells")  # fmt: skip
    trained = [c.record for c in cells if c.record.get("steps") and c.record.get("tokens_per_step")]  # not combine
    budgets = {(r["steps"], r["tokens_per_step"]) for r in trained}
    if len(budgets) == 1:
        steps, per_step = budgets.pop()
        text += f", each trained {steps:,} steps of {per_step:,} tokens ({steps * per_step:,} tokens)"
    states = [c.record["state"] for c in cells]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("done", "failed", "running", "pending") if s in states)
    text += f": {counts}."
    if info.baseline is None:
        return text + " No baseline: no paired differences."
    return text + (f" Each arm is compared with the baseline, {info.baseline} ({info.labels.get(info.baseline, '')}), seed by"
                   " seed over the seeds both finished.")  # fmt: skip


def _markdown(info: ReportInfo, cells: Sequence[CellResult], values: dict[tuple[str, str], dict[int, float]],
              pictures: list[str]) -> str:
    headlines = [f for f in info.figures if f.headline]
    lines = [f"# {info.name}", "", _plan(info, cells), ""]
    for f in headlines:
        better = "lower is better" if f.lower_is_better else "higher is better"
        lines += [f"## {f.title}", "", f"{f.unit + ', ' if f.unit else ''}{better}; mean ± half-width of the 95% "
                  "interval (Student's t over seeds).", "",
                  "| arm | label | n | mean ± 95% | 95% interval |", "|---|---|---:|---:|---|"]  # fmt: skip
        for arm in info.arms:
            v = values[arm, f.key]
            n, mean, interval = _columns(estimate(list(v.values())) if v else None)
            lines.append(f"| {_cell(arm)} | {_cell(info.labels.get(arm, ''))} | {n} | {mean} | {interval} |")
        lines.append("")
    comparisons = _comparisons(info)
    if comparisons and headlines:
        lines += ["## Paired differences", "", f"Arm {MINUS} baseline, seed by seed over the seeds both finished.", "",
                  "| comparison | figure | n | mean ± 95% | 95% interval |", "|---|---|---:|---:|---|"]  # fmt: skip
        estimates = {(arm, f.key): paired(values[arm, f.key], values[info.baseline, f.key])[1]
                     for f in headlines for arm in comparisons}  # fmt: skip
        for f in headlines:
            for arm in comparisons:
                n, mean, interval = _columns(estimates[arm, f.key], sign=True)
                lines.append(f"| {_cell(arm)} {MINUS} {_cell(info.baseline)} | {f.key} | {n} | {mean} | {interval} |")
        for f in headlines:
            lines += ["", f"{f.title}:", ""]
            lines += [f"- {sentence(arm, info.baseline, estimates[arm, f.key], f.unit)}" for arm in comparisons]
        lines.append("")
    left_out = _left_out(info, cells)
    if left_out:
        lines += ["## Left out of the statistics", "", *(f"- {line}" for line in left_out), ""]
    alt = {CURVES: "validation bits per byte against tokens trained, per arm",
           FINAL: "the headline figures per arm: seeds, mean and 95% interval"}  # fmt: skip
    if pictures:
        lines += ["## Pictures", "", *(f"![{alt[name]}]({name})\n" for name in pictures)]
    lines += [f"Every cell and figure: [{RESULTS}]({RESULTS}); every figure's statistics: [{SUMMARY}]({SUMMARY}).", ""]
    return "\n".join(lines)
