"""The experiment's two pictures: validation curves over tokens trained (curves.png) and the headline figures per
arm (final.png). They take plain data (report.py turns the cells into it) and return the matplotlib figure, which
report.py saves with bvvtok.lm.plots.save_png: the same data give the same bytes.

Decisions where the design leaves a choice:
- The band (curves) and the bar (final) are the 95% Student-t interval of the mean over seeds where there are 3 seeds
  or more. With 2 seeds that interval is 12.7 sd / sqrt(2) wide either side, about six times the distance between
  the two runs: drawn, it would cover the picture and hide the curves, so 2 seeds get their min-max instead (a note
  on the picture says so); 1 seed gets no band. summary.csv always has the true interval.
- The y axis of curves.png covers the points after step 0 (the model before training, about 8 bits per byte, would
  squash the trained part into a flat line); a note over the axes gives step 0's values. The unigram entropy is drawn
  as a dashed line when including it at most doubles the span of the axis, else the note gives its value.
- final.png is a forest plot: one row per arm (spec order, top down), each seed a dot, the mean a diamond, its
  interval a bar; one panel per headline figure, side by side, sharing the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from bvvtok.experiment.stats import estimate
from bvvtok.lm.plots import note, outside, value_range


@dataclass
class ArmCurves:
    label: str  # the arm's label, as the legend shows it
    colour: str  # the arm's colour, the same in both pictures ("C0")
    seeds: list[list[tuple[int, float]]]  # one curve per finished seed: (tokens trained, bits per byte), in order


@dataclass
class ArmValues:
    label: str
    colour: str
    values: list[float]  # one per finished seed, finite


@dataclass
class Headline:
    title: str  # "final validation bits per byte"
    unit: str
    lower_is_better: bool
    arms: list[ArmValues]  # in spec order


def band(values: list[float]) -> tuple[float, float] | None:
    """What the picture draws around a mean: the 95% interval for 3 seeds or more, min..max for 2, nothing for 1."""
    if len(values) >= 3:
        e = estimate(values)
        return e.low, e.high
    return (min(values), max(values)) if len(values) == 2 else None


def spread_words(counts: set[int]) -> str | None:
    """What `band` draws for arms of these numbers of seeds, in words for the picture's note (None: nothing)."""
    words = ["its 95% t-interval"] if max(counts) >= 3 else []
    if 2 in counts:
        words.append("2 seeds: their min\u2013max" if words else "the min\u2013max of the 2 seeds")
    if 1 in counts and words:
        words.append("1 seed: none")
    return "; ".join(words) or None


def seed_count(n: int) -> str:
    """The number of seeds in words: "1 seed", "3 seeds"."""
    return f"{n} seed" if n == 1 else f"{n} seeds"


def mean_curve(seeds: list[list[tuple[int, float]]]) -> list[tuple[int, float, tuple[float, float] | None]]:
    """(tokens, mean, band) at every point any seed has, over the seeds that have it, the non-finite left out."""
    at: dict[int, list[float]] = {}
    for curve in seeds:
        for tokens, value in curve:
            if math.isfinite(value):
                at.setdefault(tokens, []).append(value)
    return [(tokens, sum(v) / len(v), band(v)) for tokens, v in sorted(at.items())]


def curves_figure(title: str, arms: list[ArmCurves], unigram: float | None) -> Figure | None:
    """Validation bits per byte against tokens trained, one colour per arm (None if no arm has a curve)."""
    drawn = [(arm, mean_curve(arm.seeds)) for arm in arms if arm.seeds]
    drawn = [(arm, points) for arm, points in drawn if points]
    if not drawn:
        return None
    trained = [y for _, points in drawn for tokens, mean, b in points if tokens > 0 for y in (mean, *(b or ()))]
    limits = value_range(trained)
    if limits is not None and unigram is not None:
        wider = value_range([*trained, unigram])
        if wider[1] - wider[0] <= 2 * (limits[1] - limits[0]):  # near enough to draw without squashing the curves
            limits = wider
    spread = spread_words({len(arm.seeds) for arm, _ in drawn})
    notes = [f"line: mean over seeds; band: {spread}" if spread else "line: one seed per arm"]
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(9, 5.5), layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(title)
        ax = figure.add_subplot()
        for arm, points in drawn:
            xs = [tokens for tokens, _, _ in points]
            ax.plot(xs, [mean for _, mean, _ in points], color=arm.colour, marker="o", markersize=3,
                    label=f"{arm.label} ({seed_count(len(arm.seeds))})")  # fmt: skip
            banded = [(tokens, b) for tokens, _, b in points if b is not None]
            if banded:
                ax.fill_between([t for t, _ in banded], [b[0] for _, b in banded], [b[1] for _, b in banded],
                                color=arm.colour, alpha=0.2, linewidth=0)  # fmt: skip
        if limits is not None:
            ax.set_ylim(limits)
            start = [v for arm, _ in drawn for curve in arm.seeds for tokens, v in curve if tokens == 0]
            notes += [n for n in [outside(start, limits, "step 0 (before training)", "bits/byte")] if n]
        if unigram is not None:
            away = outside([unigram], limits, "unigram entropy", "bits/byte") if limits is not None else None
            if away:
                notes.append(away)
            else:
                ax.axhline(unigram, color="0.3", linestyle="--", linewidth=1.2,
                           label=f"unigram entropy of the training text ({unigram:.2f} bits/byte)")  # fmt: skip
        ax.set(xlabel="tokens trained", ylabel="validation bits per byte of text")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(True, alpha=0.4)
        ax.legend(loc="upper right")
        note(ax, "\n".join(notes))
    return figure


def final_figure(title: str, headlines: list[Headline]) -> Figure | None:
    """A forest plot per headline figure: the arms as rows, seeds as dots, the mean and its interval (None if no
    headline figure has a value)."""
    headlines = [h for h in headlines if any(arm.values for arm in h.arms)]
    if not headlines:
        return None
    rows = len(headlines[0].arms)
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(3.5 + 4.5 * len(headlines), 1.6 + 0.55 * rows), layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(title)
        axes = figure.subplots(1, len(headlines), sharey=True, squeeze=False)[0]
        for ax, headline in zip(axes, headlines):
            for i, arm in enumerate(headline.arms):
                y = rows - 1 - i  # the first arm on top
                if not arm.values:
                    ax.text(0.5, y, "no finished seed", transform=ax.get_yaxis_transform(), ha="center",
                            va="center", color="0.4", fontsize="small")  # fmt: skip
                    continue
                # the seeds in a strip above the bar, where neither the bar nor the mean hides one
                spread = [0.0] if len(arm.values) == 1 else [0.12 * (k / (len(arm.values) - 1) - 0.5)
                                                             for k in range(len(arm.values))]  # fmt: skip
                ax.scatter(arm.values, [y + 0.22 + d for d in spread], s=22, color=arm.colour, alpha=0.8, linewidths=0)
                mean = sum(arm.values) / len(arm.values)
                b = band(arm.values)
                if b is not None:
                    ax.hlines(y, *b, color=arm.colour, linewidth=2.5)
                ax.plot([mean], [y], marker="D", markersize=7, color=arm.colour, markeredgecolor="black")
            better = "lower is better" if headline.lower_is_better else "higher is better"
            ax.set_xlabel(f"{headline.title} ({headline.unit}; {better})" if headline.unit else
                          f"{headline.title} ({better})")  # fmt: skip
            ax.grid(True, axis="x", alpha=0.4)
        spread = spread_words({len(arm.values) for h in headlines for arm in h.arms if arm.values})
        note(axes[0], "dots (above): seeds; \u25c6 mean" + (f"; bar: {spread}" if spread else ""))  # one for all panels
        labels = []
        for i, arm in enumerate(headlines[0].arms):
            counts = {len(h.arms[i].values) for h in headlines}  # the seeds, when every panel has the same number
            labels.append(f"{arm.label}\n({seed_count(counts.pop())})" if len(counts) == 1 else arm.label)
        axes[0].set_yticks(range(rows), labels[::-1])
        axes[0].set_ylim(-0.6, rows - 0.4)
    return figure
