"""The experiment report: its files and numbers (recomputed here independently), its sentences, and its pictures."""

import csv
import math
import statistics
from pathlib import Path

import matplotlib
import pytest
from scipy.stats import t as student_t

from bvvtok.errors import BvvtokError
from bvvtok.experiment.pictures import ArmCurves, band, curves_figure, mean_curve
from bvvtok.experiment.report import CellResult, Figure, ReportInfo, sentence, write_report
from bvvtok.experiment.stats import Estimate, estimate, paired
from bvvtok.lm.metrics import Row

FIGURES = [
    Figure("final_val_bpb", "final validation bits per byte", "bits/byte", True, True),
    Figure("final_val_loss", "final validation loss", "nats/token", True, False),
]
ARMS = ["glyph", "bits", "unfrozen"]
LABELS = {"glyph": "glyph 256-dim, frozen", "bits": "bits 16-dim, frozen", "unfrozen": "glyph 256-dim, unfrozen"}
SUBSTRATES = {"glyph": ("glyph", 256), "bits": ("bits", 16), "unfrozen": ("glyph", 256)}
# final bits per byte by arm and seed: glyph vs unfrozen is not resolved over 3 seeds, bits vs unfrozen is
FINAL = {"glyph": [2.10, 2.12, 2.14], "bits": [2.30, 2.33, 2.36], "unfrozen": [2.00, 2.13, 2.15]}
STEP0 = 8.0  # bits per byte of the untrained model
PER_STEP = 256


def rows(final: float) -> list[Row]:
    """Step 0, then validations every 50 of 200 steps falling to `final` bits per byte (loss: bits per byte x 1.4)."""
    bpb = [STEP0, final + 0.6, final + 0.3, final + 0.1, final]
    return [Row(s, None if s == 0 else 3.0, b * 1.4, None if s == 0 else 1e-3, None if s == 0 else 500.0, b)
            for s, b in zip(range(0, 201, 50), bpb)]  # fmt: skip


def cell(arm: str, seed: int, final: float | None, state: str = "done", reason: str | None = None) -> CellResult:
    method, dim = SUBSTRATES[arm]
    figures = {} if final is None else {"final_val_bpb": final, "final_val_loss": final * 1.4, "other": 1.0}
    record = {
        "cell": f"{arm}-s{seed}", "arm": arm, "seed": seed, "kind": "train", "state": state, "reason": reason,
        "label": LABELS[arm], "substrate": {"name": method, "method": method, "dim": dim},
        "frozen": arm != "unfrozen", "steps": 200, "tokens_per_step": PER_STEP, "tokens": 200 * PER_STEP,
        "parameters": {"total": 1000, "trainable": 900}, "wall_s": 93.25, "tokens_per_s": 549.03,
        "unigram_bpb": 2.0, "figures": figures,
    }  # fmt: skip
    return CellResult(record, rows(final) if final is not None and math.isfinite(final) else None)


def experiment() -> list[CellResult]:
    """3 arms x 3 seeds done (given in a shuffled order), and a fourth seed of bits that failed."""
    cells = [cell(arm, seed, FINAL[arm][seed]) for seed in (2, 0, 1) for arm in reversed(ARMS)]
    return [*cells, cell("bits", 3, None, "failed", "CUDA out of memory at step 120")]


def info(baseline: str | None = "unfrozen", figures: list[Figure] = FIGURES) -> ReportInfo:
    return ReportInfo("frozen vs unfrozen", baseline, ARMS, LABELS, figures)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def signed(x: float) -> str:
    return f"{x:+.4f}".replace("-", "\u2212")


def interval(values: list[float]) -> tuple[float, float, float, float]:
    """mean, sd, low, high computed here, independently of bvvtok.experiment.stats."""
    mean, sd = statistics.mean(values), statistics.stdev(values)
    half = student_t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, sd, mean - half, mean + half


@pytest.fixture
def report(tmp_path) -> Path:
    written = write_report(tmp_path / "exp", info(), experiment())
    names = ["results.csv", "summary.csv", "report.md", "curves.png", "final.png"]
    assert written == [tmp_path / "exp" / n for n in names]
    return tmp_path / "exp"


# --- the numbers ---


def test_estimate_and_paired_agree_with_a_direct_computation():
    values = [2.1, 2.4, 2.0, 2.6]
    e = estimate(values)
    assert (e.n, e.mean, e.sd, e.low, e.high) == pytest.approx((4, *interval(values)))
    assert e.half_width == pytest.approx((e.high - e.low) / 2)
    assert estimate([3.0]) == Estimate(1, 3.0, None, None, None)
    seeds, d = paired({0: 1.0, 1: 2.0, 2: 4.0, 5: 9.0}, {0: 0.5, 1: 1.0, 2: 3.5, 3: 0.0})
    assert seeds == [0, 1, 2] and d.mean == pytest.approx(statistics.mean([0.5, 1.0, 0.5]))
    assert paired({0: 1.0}, {1: 1.0}) == ([], None)
    assert not Estimate(3, 0.1, 0.1, 0.0, 0.2).excludes_zero  # an end at 0 does not exclude it
    assert Estimate(3, -0.1, 0.1, -0.2, -0.01).excludes_zero


def test_results_csv_has_a_row_per_cell_failed_ones_with_their_reason(report):
    rows = read_csv(report / "results.csv")
    assert list(rows[0]) == ["cell", "arm", "seed", "kind", "state", "substrate", "method", "dim", "frozen",
                             "steps", "tokens", "final_val_bpb", "final_val_loss", "wall_s", "tokens_per_s",
                             "reason"]  # fmt: skip
    assert [r["cell"] for r in rows] == [*(f"{a}-s{s}" for a in ARMS[:2] for s in range(3)), "bits-s3",
                                         *(f"unfrozen-s{s}" for s in range(3))]  # fmt: skip
    glyph = rows[0]
    assert glyph == {
        "cell": "glyph-s0", "arm": "glyph", "seed": "0", "kind": "train", "state": "done", "substrate": "glyph",
        "method": "glyph", "dim": "256", "frozen": "true", "steps": "200", "tokens": "51200",
        "final_val_bpb": "2.100000", "final_val_loss": "2.940000", "wall_s": "93.2", "tokens_per_s": "549.0",
        "reason": "",
    }  # fmt: skip
    failed = rows[6]
    assert (failed["state"], failed["reason"], failed["final_val_bpb"], failed["final_val_loss"]) == (
        "failed", "CUDA out of memory at step 120", "", "")  # fmt: skip
    assert rows[7]["frozen"] == "false" and rows[3]["method"] == "bits" and rows[3]["dim"] == "16"


def test_summary_csv_agrees_with_an_independent_computation(report):
    rows = read_csv(report / "summary.csv")
    assert list(rows[0]) == ["arm", "figure", "n", "mean", "sd", "ci95_low", "ci95_high", "comparison"]
    plain = {(r["arm"], r["figure"]): r for r in rows if r["comparison"] == ""}
    diffs = {(r["arm"], r["figure"]): r for r in rows if r["comparison"]}
    assert list(plain) == [(a, f.key) for a in ARMS for f in FIGURES]  # spec order, figures order
    assert list(diffs) == [(a, f.key) for a in ("glyph", "bits") for f in FIGURES]
    assert {r["comparison"] for r in diffs.values()} == {"glyph - unfrozen", "bits - unfrozen"}
    numbers = ("mean", "sd", "ci95_low", "ci95_high")
    for arm in ARMS:
        for key, scale in (("final_val_bpb", 1.0), ("final_val_loss", 1.4)):
            row = plain[arm, key]
            assert row["n"] == "3"  # the failed fourth seed of bits is not counted
            expected = interval([v * scale for v in FINAL[arm]])
            assert [float(row[c]) for c in numbers] == pytest.approx(expected, abs=2e-6)
            if arm != "unfrozen":
                diff = diffs[arm, key]
                expected = interval([(a - b) * scale for a, b in zip(FINAL[arm], FINAL["unfrozen"])])
                assert diff["n"] == "3"
                assert [float(diff[c]) for c in numbers] == pytest.approx(expected, abs=2e-6)
    assert all(len(r["mean"].split(".")[1]) == 6 for r in rows)  # a fixed format


def test_report_md_says_resolved_and_not_resolved(report):
    text = (report / "report.md").read_text(encoding="utf-8")
    mean, _, low, high = interval([a - b for a, b in zip(FINAL["glyph"], FINAL["unfrozen"])])
    assert low < 0 < high
    expected = (f"glyph \u2212 unfrozen: {signed(mean)} bits/byte, 95% interval {signed(low)} to {signed(high)} over"
                " 3 seeds: not resolved")  # fmt: skip
    assert f"- {expected}\n" in text
    mean, _, low, high = interval([a - b for a, b in zip(FINAL["bits"], FINAL["unfrozen"])])
    assert low > 0
    expected = (f"bits \u2212 unfrozen: {signed(mean)} bits/byte, 95% interval {signed(low)} to {signed(high)} over"
                " 3 seeds: resolved, bits is higher")  # fmt: skip
    assert f"- {expected}\n" in text
    assert text.startswith("# frozen vs unfrozen\n\n3 arms (glyph: glyph 256-dim, frozen; bits: bits 16-dim, frozen; "
                           "unfrozen: glyph 256-dim, unfrozen) × 4 seeds (0, 1, 2, 3) = 10 cells, each trained 200 steps of 256 tokens (51,200 "
                           "tokens): 9 done, 1 failed.")  # fmt: skip
    g_mean, _, g_low, g_high = interval(FINAL["glyph"])
    assert (f"| glyph | glyph 256-dim, frozen | 3 | {g_mean:.4f} ± {(g_high - g_low) / 2:.4f} | {g_low:.4f} to "
            f"{g_high:.4f} |") in text  # fmt: skip
    assert "final validation loss" not in text  # not a headline figure: summary.csv has it
    assert "![validation bits per byte against tokens trained, per arm](curves.png)" in text
    assert "](final.png)" in text and "-0." not in text  # a real minus sign in prose and tables


def test_sentences_for_lower_one_seed_and_no_seed():
    lower = Estimate(3, -0.05, 0.01, -0.07, -0.03)
    assert sentence("bits", "glyph", lower, "bits/byte") == (
        "bits \u2212 glyph: \u22120.0500 bits/byte, 95% interval \u22120.0700 to \u22120.0300 over 3 seeds: "
        "resolved, bits is lower"
    )
    assert sentence("bits", "glyph", Estimate(1, 0.012, None, None, None), "bits/byte") == (
        "bits \u2212 glyph: +0.0120 bits/byte on 1 shared seed: no interval can be given"
    )
    assert sentence("bits", "glyph", None, "") == (
        "bits \u2212 glyph: no seed finished in both arms: no difference can be given"
    )


def test_one_shared_seed_gives_no_interval(tmp_path):
    cells = [cell("glyph", 0, 2.1), cell("glyph", 1, 2.2), cell("unfrozen", 1, 2.0), cell("unfrozen", 2, 2.3),
             cell("bits", 5, 2.4)]  # fmt: skip
    write_report(tmp_path, info(), cells)
    rows = {(r["arm"], r["figure"], r["comparison"]): r for r in read_csv(tmp_path / "summary.csv")}
    one = rows["glyph", "final_val_bpb", "glyph - unfrozen"]
    assert (one["n"], one["mean"], one["sd"], one["ci95_low"], one["ci95_high"]) == ("1", "0.200000", "", "", "")
    none = rows["bits", "final_val_bpb", "bits - unfrozen"]
    assert (none["n"], none["mean"], none["ci95_low"]) == ("0", "", "")
    single = rows["bits", "final_val_bpb", ""]
    assert (single["n"], single["mean"], single["sd"]) == ("1", "2.400000", "")
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "- glyph \u2212 unfrozen: +0.2000 bits/byte on 1 shared seed: no interval can be given\n" in text
    assert "- bits \u2212 unfrozen: no seed finished in both arms: no difference can be given\n" in text
    assert "| bits | bits 16-dim, frozen | 1 | 2.4000 | none from one seed |" in text


def test_failed_unfinished_and_diverged_cells_are_listed_and_left_out(tmp_path):
    cells = [*experiment(), cell("glyph", 3, math.nan), cell("unfrozen", 3, None, "running")]
    cells[0].record["figures"].pop("final_val_loss")  # unfrozen-s2: done, one figure missing
    write_report(tmp_path, info(), cells)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    left_out = text.split("## Left out of the statistics\n\n")[1].split("\n\n")[0].splitlines()
    assert left_out == [
        "- glyph-s3 (glyph 256-dim, frozen, seed 3): final_val_bpb is nan",
        "- glyph-s3 (glyph 256-dim, frozen, seed 3): final_val_loss is nan",
        "- bits-s3 (bits 16-dim, frozen, seed 3): failed: CUDA out of memory at step 120",
        "- unfrozen-s2 (glyph 256-dim, unfrozen, seed 2): no final_val_loss",
        "- unfrozen-s3 (glyph 256-dim, unfrozen, seed 3): running",
    ]
    rows = {(r["arm"], r["figure"], r["comparison"]): r for r in read_csv(tmp_path / "summary.csv")}
    assert rows["glyph", "final_val_bpb", ""]["n"] == "3"  # the nan left out, not averaged in
    assert float(rows["glyph", "final_val_bpb", ""]["mean"]) == pytest.approx(statistics.mean(FINAL["glyph"]))
    assert rows["unfrozen", "final_val_loss", ""]["n"] == "2"
    assert rows["glyph", "final_val_loss", "glyph - unfrozen"]["n"] == "2"  # paired over the seeds both have
    results = {r["cell"]: r for r in read_csv(tmp_path / "results.csv")}
    assert results["glyph-s3"]["final_val_bpb"] == "nan" and results["unfrozen-s3"]["state"] == "running"
    assert ": 10 done, 1 failed, 1 running." in text


def test_same_inputs_give_the_same_bytes(tmp_path):
    write_report(tmp_path / "a", info(), experiment())
    with matplotlib.rc_context({"lines.linewidth": 6, "axes.facecolor": "black", "savefig.dpi": 50}):  # a user's rc
        written = write_report(tmp_path / "b", info(), experiment()[::-1])  # the cells in another order
    assert len(written) == 5
    for path in written:
        assert (tmp_path / "a" / path.name).read_bytes() == path.read_bytes(), path.name
    write_report(tmp_path / "b", info(), experiment()[:-2])  # other cells: other bytes, files replaced
    assert (tmp_path / "b" / "curves.png").read_bytes() != (tmp_path / "a" / "curves.png").read_bytes()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(p.name for p in written)  # no temporaries


def test_no_baseline_no_comparison(tmp_path):
    write_report(tmp_path, info(baseline=None), experiment())
    assert all(r["comparison"] == "" for r in read_csv(tmp_path / "summary.csv"))
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "No baseline: no paired differences." in text and "\u2212 unfrozen" not in text


def test_a_picture_with_nothing_to_draw_is_not_written_and_an_old_one_goes(report):
    failed = [cell(arm, 0, None, "failed", "diverged") for arm in ARMS]
    written = write_report(report, info(), failed)
    assert [p.name for p in written] == ["results.csv", "summary.csv", "report.md"]
    assert not (report / "curves.png").exists() and not (report / "final.png").exists()
    text = (report / "report.md").read_text(encoding="utf-8")
    assert ".png" not in text and "- glyph-s0 (glyph 256-dim, frozen, seed 0): failed: diverged" in text


@pytest.mark.parametrize(
    "cells, baseline, fragment",
    [
        ([cell("glyph", 0, 2.0)], "nope", "baseline 'nope' is not one of the arms"),
        ([CellResult({**cell("glyph", 0, 2.0).record, "arm": "other"}, None)], None, "arm 'other' is not one"),
        ([cell("glyph", 0, 2.0), cell("glyph", 0, 2.1)], None, "a second cell of arm glyph and seed 0"),
        ([CellResult({**cell("glyph", 0, 2.0).record, "figures": {"final_val_bpb": "2.0"}}, None)], None,
         "figure final_val_bpb is '2.0', not a number"),
    ],
)  # fmt: skip
def test_inconsistent_cells_are_refused(tmp_path, cells, baseline, fragment):
    with pytest.raises(BvvtokError, match=fragment):
        write_report(tmp_path, info(baseline), cells)
    assert not any(tmp_path.iterdir())


# --- the pictures ---


def test_the_band_is_the_interval_for_three_seeds_min_max_for_two():
    assert band([2.0, 2.1, 2.5]) == pytest.approx(interval([2.0, 2.1, 2.5])[2:])
    assert band([2.0, 2.5]) == (2.0, 2.5)
    assert band([2.0]) is None
    points = mean_curve([[(0, 8.0), (10, 3.0)], [(0, 8.2), (10, math.nan), (20, 2.5)]])
    assert points == [(0, pytest.approx(8.1), (8.0, 8.2)), (10, 3.0, None), (20, 2.5, None)]


def test_curves_leave_step_zero_out_of_the_y_limits_and_say_so():
    arms = [ArmCurves(LABELS[arm], f"C{i}", [[(r.step * PER_STEP, r.val_bpb) for r in rows(v)] for v in FINAL[arm]])
            for i, arm in enumerate(ARMS)]  # fmt: skip
    figure = curves_figure("t", arms, unigram=1.9)
    (ax,) = figure.axes
    low, high = ax.get_ylim()
    trained = [v for arm in FINAL.values() for final in arm for v in (final, final + 0.6)]
    assert low < min(trained) and max(trained) < high < STEP0  # the trained points fill the axis; step 0 is off it
    assert high - low < 2 * (max(trained) + 0.2 - 1.9)
    assert ax.get_xlabel() == "tokens trained" and ax.get_ylabel() == "validation bits per byte of text"
    title = ax.get_title(loc="left")
    assert "step 0 (before training): 8.00 bits/byte, above the range shown" in title
    assert "band: its 95% t-interval" in title
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    unigram = "unigram entropy of the training text (1.90 bits/byte)"
    assert legend == [f"{LABELS[a]} (3 seeds)" for a in ARMS] + [unigram]
    assert [line.get_linestyle() for line in ax.get_lines()][-1] == "--"  # the unigram reference, dashed
    far = curves_figure("t", arms, unigram=0.5).axes[0]  # too far below: would squash the curves, so named instead
    assert "unigram entropy: 0.50 bits/byte, below the range shown" in far.get_title(loc="left")
    assert far.get_ylim()[0] > 1.5 and len(far.get_legend().get_texts()) == 3
    assert curves_figure("t", [ArmCurves("x", "C0", [])], None) is None
