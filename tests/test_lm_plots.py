"""The metrics file of a run, its loss picture, and the comparison of several runs."""

import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from bvvtok.errors import BvvtokError
from bvvtok.lm.metrics import FIELDS, Row, read_metrics, write_metrics
from bvvtok.lm.plots import RunSummary, compare_runs, fit_to_training, plot_losses, value_range
from conftest import invoke

TRAIN_COLOUR = (0x1F, 0x77, 0xB4)  # matplotlib's first and second default colours (C0, C1)
VAL_COLOUR = (0xFF, 0x7F, 0x0E)


def make_rows(steps: int = 20, eval_every: int | None = 5, offset: float = 0.0) -> list[Row]:
    """A falling loss, validated every `eval_every` steps (never if None)."""
    return [
        Row(
            step=s,
            train_loss=5.0 - 0.1 * s + offset,
            val_loss=5.2 - 0.1 * s + offset if eval_every and s % eval_every == 0 else None,
            lr=1e-3 * s / steps,
            tokens_per_s=1234.5 + s,
        )
        for s in range(1, steps + 1)
    ]


def write_run(folder: Path, rows: list[Row], frozen: bool = True, init: str = "substrate", steps: int = 20,
              substrate: dict | None = None, n_embed: int | None = None) -> Path:  # fmt: skip
    """A fake run folder: metrics.csv and config.json as the trainer writes them, and the substrate manifest's
    section `substrate` if given."""
    folder.mkdir(parents=True)
    write_metrics(folder / "metrics.csv", rows)
    model = {"frozen": frozen, "init": init, "d_model": 32, "n_layer": 2, **({"n_embed": n_embed} if n_embed else {})}
    (folder / "config.json").write_text(json.dumps({"model": model, "train": {"steps": steps}}), encoding="utf-8")
    if substrate is not None:
        (folder / "substrate.json").write_text(json.dumps({"substrate": substrate}), encoding="utf-8")
    return folder


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=int)


def count_near(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 30) -> int:
    """Pixels within `tolerance` of `colour` on every channel: how much of a curve was drawn."""
    return int((np.abs(image - np.array(colour)) <= tolerance).all(axis=-1).sum())


# metrics.csv


def test_metrics_round_trip(tmp_path):
    rows = make_rows(steps=7, eval_every=3)
    path = tmp_path / "metrics.csv"
    write_metrics(path, rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(FIELDS)
    assert lines[3] == "3,4.700000,4.900000,0.000428571,1237.5,"  # losses to 6 decimals, the rest 6 significant
    assert lines[1].split(",")[2] == ""  # no validation on step 1
    back = read_metrics(path)
    assert [r.step for r in back] == list(range(1, 8))
    assert [r.val_loss is None for r in back] == [r.val_loss is None for r in rows]
    for a, b in zip(back, rows):
        assert a.train_loss == pytest.approx(b.train_loss, abs=1e-6)
        assert a.lr == pytest.approx(b.lr, rel=1e-5) and a.tokens_per_s == pytest.approx(b.tokens_per_s, rel=1e-5)
        assert (a.val_loss is None) or a.val_loss == pytest.approx(b.val_loss, abs=1e-6)
    write_metrics(path, rows[:2])  # rewritten whole, as a run's log grows
    assert len(read_metrics(path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary left behind


def test_bits_per_byte_round_trip_and_older_files_still_read(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, [Row(5, 3.0, 2.5, 1e-3, 100.0, 3.25), Row(6, 2.9, None, 1e-3, 100.0)])
    assert [r.val_bpb for r in read_metrics(path)] == [3.25, None]
    path.write_text("step,train_loss,val_loss,lr,tokens_per_s\n5,3.0,2.5,0.001,100\n", encoding="utf-8")  # bvvtok 0.1
    (row,) = read_metrics(path)
    assert (row.val_loss, row.val_bpb) == (2.5, None)


def test_step_zero_is_validation_only_and_the_plot_skips_its_train_loss(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, [Row(0, None, 9.5, None, None, 7.25), *make_rows(steps=5)])
    assert path.read_text(encoding="utf-8").splitlines()[1] == "0,,9.500000,,,7.250000"
    back = read_metrics(path)
    assert (back[0].step, back[0].train_loss, back[0].val_loss, back[0].lr, back[0].tokens_per_s) == (0, None, 9.5, None, None)
    plot_losses(back, tmp_path / "loss.png", "start")  # the train curves begin at step 1
    assert pixels(tmp_path / "loss.png").shape[1] > 100


def test_metrics_header_only_and_diverged_values(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, [])
    assert read_metrics(path) == []
    write_metrics(path, [Row(1, math.nan, math.inf, 0.0, 0.0)])
    (row,) = read_metrics(path)
    assert math.isnan(row.train_loss) and row.val_loss == math.inf  # data, not a malformed file


@pytest.mark.parametrize(
    "bad_line, fragments",
    [
        ("4,4.6,,abc,1.0,", ["line 4", "lr", "'abc'"]),
        ("4,4.6,,0.001", ["line 4", "4 fields", "expected 6"]),
        ("4.5,4.6,,0.001,1.0,", ["line 4", "step", "'4.5'"]),
        ("4,x,,0.001,1.0,", ["line 4", "train_loss", "'x'"]),
        ("4,4.6,4.7,0.001,1.0,x", ["line 4", "val_bpb", "'x'"]),
    ],
)
def test_malformed_metrics_line_is_named(tmp_path, bad_line, fragments):
    path = tmp_path / "metrics.csv"
    write_metrics(path, make_rows(steps=2))
    path.write_text(path.read_text(encoding="utf-8") + bad_line + "\n5,4.5,,0.001,1.0,\n", encoding="utf-8")
    with pytest.raises(BvvtokError) as e:
        read_metrics(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_metrics_wrong_header_and_missing_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,2.0\n", encoding="utf-8")
    with pytest.raises(BvvtokError, match="line 1.*header"):
        read_metrics(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(BvvtokError, match="line 1.*missing"):
        read_metrics(path)
    with pytest.raises(BvvtokError, match="has no metrics.csv; is it a run folder"):
        read_metrics(tmp_path / "elsewhere" / "metrics.csv")


# plot_losses


def test_plot_losses_draws_both_curves_reproducibly(tmp_path):
    rows = make_rows()
    first, second = tmp_path / "a" / "loss.png", tmp_path / "b" / "loss.png"
    plot_losses(rows, first, "run a")
    with matplotlib.rc_context({"lines.linewidth": 6, "axes.facecolor": "black"}):  # a user's matplotlibrc
        plot_losses(rows, second, "run a")
    assert first.read_bytes() == second.read_bytes()
    with Image.open(first) as png:
        assert "Software" not in png.info  # no version tag: another matplotlib gives the same bytes if it draws alike
    image = pixels(first)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert count_near(image, TRAIN_COLOUR) > 100 and count_near(image, VAL_COLOUR) > 100  # both curves are drawn
    plot_losses(rows, second, "run b")  # replaces its own file; a different title is a different picture
    assert second.read_bytes() != first.read_bytes()


def test_plot_losses_without_validation_and_bad_input(tmp_path):
    out = tmp_path / "loss.png"
    plot_losses(make_rows(eval_every=None), out, "no validation")
    image = pixels(out)
    assert count_near(image, TRAIN_COLOUR) > 100 and count_near(image, VAL_COLOUR) == 0
    with pytest.raises(BvvtokError, match="give a .png path"):
        plot_losses(make_rows(), tmp_path / "loss.svg", "x")
    with pytest.raises(BvvtokError, match="no metrics rows"):
        plot_losses([], tmp_path / "empty.png", "x")
    assert not (tmp_path / "loss.svg").exists() and not (tmp_path / "empty.png").exists()


# compare_runs


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    frozen = write_run(tmp_path / "runs" / "frozen", make_rows())
    # killed after 12 of 30 steps; its best validation is not its last
    killed_rows = make_rows(steps=12, eval_every=4, offset=0.5)
    killed_rows[-1].val_loss = 9.0
    unfrozen = write_run(tmp_path / "runs" / "random", killed_rows, frozen=False, init="random", steps=30)
    return [frozen, unfrozen]


def test_compare_summaries(runs):
    frozen, killed = compare_runs(runs, None)
    assert frozen == RunSummary(
        "frozen", runs[0], True, "substrate", 20, 20, pytest.approx(3.0), pytest.approx(3.2), pytest.approx(3.2)
    )
    assert (killed.steps_done, killed.steps_planned) == (12, 30)
    assert killed.final_val_loss == 9.0 and killed.best_val_loss == pytest.approx(5.2 - 0.8 + 0.5)
    assert killed.final_train_loss == pytest.approx(5.0 - 1.2 + 0.5)
    assert frozen.label == "frozen (frozen)"
    assert killed.label == "random (unfrozen, init random)"
    trained_substrate = RunSummary("x", Path("x"), False, "substrate", 0, 1, None, None, None)
    assert trained_substrate.label == "x (unfrozen, init substrate)"


def test_compare_writes_one_png_and_honours_force(runs, tmp_path):
    out = tmp_path / "compare.png"
    compare_runs(runs, out)
    image = pixels(out)
    assert count_near(image, TRAIN_COLOUR) > 50 and count_near(image, VAL_COLOUR) > 50  # one curve per run
    before = out.read_bytes()
    with pytest.raises(BvvtokError, match="force=True"):
        compare_runs(runs[:1], out)
    assert out.read_bytes() == before
    compare_runs(runs[:1], out, force=True)
    assert out.read_bytes() != before
    assert count_near(pixels(out), VAL_COLOUR) == 0  # only the first run now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png", "runs"]  # no temporaries left behind


def test_compare_legend_names_each_run(runs, tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    labels = []
    legend = Axes.legend

    def recording_legend(self, *args, **kwargs):
        labels.extend(self.get_legend_handles_labels()[1])
        return legend(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "legend", recording_legend)
    silent = write_run(tmp_path / "silent", make_rows(eval_every=None))
    compare_runs([*runs, silent], tmp_path / "compare.png")
    assert labels == ["frozen (frozen)", "random (unfrozen, init random)"]  # no curve, no entry for `silent`


def test_compare_skips_runs_without_validation(runs, tmp_path):
    silent = write_run(tmp_path / "silent", make_rows(eval_every=None))
    summaries = compare_runs([silent, runs[0]], tmp_path / "compare.png")
    assert (summaries[0].final_val_loss, summaries[0].best_val_loss) == (None, None)
    assert summaries[0].final_train_loss == pytest.approx(3.0)
    image = pixels(tmp_path / "compare.png")
    assert count_near(image, TRAIN_COLOUR) > 50 and count_near(image, VAL_COLOUR) == 0  # one curve: no second colour
    with pytest.raises(BvvtokError, match="none of the runs has validation"):
        compare_runs([silent], tmp_path / "other.png")
    assert compare_runs([silent], None)[0].steps_done == 20  # summaries need no validation
    assert not (tmp_path / "other.png").exists()


def test_compare_empty_metrics_run(tmp_path):
    empty = write_run(tmp_path / "empty", [])
    (summary,) = compare_runs([empty], None)
    assert (summary.steps_done, summary.steps_planned, summary.final_train_loss) == (0, 20, None)


def test_compare_duplicate_folder_names(tmp_path):
    a = write_run(tmp_path / "a" / "run", make_rows())
    b = write_run(tmp_path / "b" / "run", make_rows(offset=1.0))
    c = write_run(tmp_path / "c", make_rows())
    summaries = compare_runs([a, b, c], None)
    assert [s.name for s in summaries] == ["a/run", "b/run", "c"]
    assert summaries[0].label == "a/run (frozen)"
    deeper = write_run(tmp_path / "x" / "a" / "run", make_rows())
    assert [s.name for s in compare_runs([a, deeper], None)] == [str(Path(tmp_path.name, "a", "run")), "x/a/run"]
    with pytest.raises(BvvtokError, match="named twice"):
        compare_runs([a, tmp_path / "b" / ".." / "a" / "run"], None)


def test_compare_errors(runs, tmp_path):
    with pytest.raises(BvvtokError, match="at least one run"):
        compare_runs([], tmp_path / "c.png")
    with pytest.raises(BvvtokError, match="give a .png path"):
        compare_runs(runs, tmp_path / "c.jpg")
    with pytest.raises(BvvtokError, match="is not a folder"):
        compare_runs([tmp_path / "nowhere"], None)
    no_metrics = tmp_path / "no-metrics"
    no_metrics.mkdir()
    with pytest.raises(BvvtokError, match="no-metrics has no metrics.csv; is it a run folder"):
        compare_runs([runs[0], no_metrics], None)
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    write_metrics(no_config / "metrics.csv", make_rows())
    with pytest.raises(BvvtokError, match="no-config has no config.json"):
        compare_runs([no_config], None)
    (no_config / "config.json").write_text('{"model": {"frozen": true}}', encoding="utf-8")
    with pytest.raises(BvvtokError, match="config.json is not a run config"):
        compare_runs([no_config], None)
    (no_config / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BvvtokError, match="config.json is not a run config"):
        compare_runs([no_config], None)
    (no_config / "config.json").write_text(
        '{"model": {"frozen": "yes", "init": "substrate"}, "train": {"steps": 5}}', encoding="utf-8"
    )
    with pytest.raises(BvvtokError, match="wrong type"):
        compare_runs([no_config], None)
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "c.jpg").exists()


def test_compare_names_the_substrate_in_the_table_and_the_legend(tmp_path):
    glyph = write_run(tmp_path / "glyph", make_rows(), substrate={"method": "glyph", "dim": 256}, n_embed=256)
    bits = write_run(tmp_path / "bits", make_rows(), substrate={"method": "bits"}, n_embed=16)  # the width: config's
    unfrozen = write_run(tmp_path / "unfrozen", make_rows(), frozen=False, substrate={"method": "glyph", "dim": 256})
    broken = write_run(tmp_path / "broken", make_rows(), substrate={"method": 7, "dim": "wide"})
    (tmp_path / "broken" / "substrate.json").write_text("{not json", encoding="utf-8")
    unknown = write_run(tmp_path / "unknown", make_rows())
    summaries = compare_runs([glyph, bits, unfrozen, broken, unknown], None)
    assert [s.substrate for s in summaries] == ["glyph 256", "bits 16", "glyph 256", "-", "-"]
    assert [s.label for s in summaries] == [
        "glyph (glyph 256, frozen)", "bits (bits 16, frozen)", "unfrozen (glyph 256, unfrozen, init substrate)",
        "broken (frozen)", "unknown (frozen)",
    ]  # fmt: skip
    result = invoke("compare", glyph, bits, unfrozen)
    assert result.exit_code == 0, result.output
    assert "substrate" in result.stdout and "glyph 256" in result.stdout and "bits 16" in result.stdout


def captured_figures(monkeypatch) -> list:
    """The figures compare draws, caught on their way to the file."""
    import bvvtok.lm.plots as plots

    figures = []
    save = plots.save_png
    monkeypatch.setattr(plots, "save_png", lambda f, out, *args, **kwargs: (figures.append(f), save(f, out, *args, **kwargs)))
    return figures


def untrained_first(offset: float = 0.0) -> list[Row]:
    """Step 0 (the untrained model, far above) and then a run validated every 5 steps, with bits per byte."""
    rows = [Row(0, None, 11.0, None, None, 8.0), *make_rows(offset=offset)]
    for r in rows[1:]:
        r.val_bpb = None if r.val_loss is None else r.val_loss / 2
    return rows


def test_compare_leaves_step_zero_out_of_the_axis_and_says_so(tmp_path, monkeypatch):
    figures = captured_figures(monkeypatch)
    a = write_run(tmp_path / "a", untrained_first())
    b = write_run(tmp_path / "b", untrained_first(offset=0.3))
    compare_runs([a, b], tmp_path / "compare.png")
    (figure,) = figures
    loss, bpb = figure.axes
    trained = [5.2 - 0.1 * s + o for s in (5, 10, 15, 20) for o in (0.0, 0.3)]  # the validated steps after 0
    low, high = loss.get_ylim()
    assert low < min(trained) and max(trained) < high < 11.0  # the trained part fills the axis; step 0 is off it
    assert high - low < 1.1 * (max(trained) - min(trained))
    assert loss.get_title(loc="left") == "step 0 (before training): 11.00 nats/token, above the range shown"
    assert bpb.get_ylim()[1] < 8.0
    assert bpb.get_title(loc="left") == "step 0 (before training): 8.00 bits/byte, above the range shown"
    assert loss.get_xlim()[0] <= 0  # step 0 is still drawn, going up off the top


def test_fit_to_training_notes_only_what_it_leaves_out():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    within = [Row(0, None, 4.1, None, None), Row(5, 4.0, 4.0, 1e-3, 1.0), Row(10, 3.0, 4.2, 1e-3, 1.0)]
    assert fit_to_training(ax, [("a", within, "val_loss", {})], "nats/token") is None  # step 0 inside: nothing to say
    assert ax.get_ylim() == pytest.approx((3.99, 4.21))
    below = [Row(0, None, 1.0, None, None), *within[1:]]
    assert fit_to_training(ax, [("a", below, "val_loss", {})], "nats/token") == (
        "step 0 (before training): 1.00 nats/token, below the range shown"
    )
    only_start = [Row(0, None, 9.0, None, None)]
    assert fit_to_training(ax, [("a", only_start, "val_loss", {})], "nats/token") is None  # nothing trained: left as is
    assert value_range([2.0, math.nan, math.inf]) == pytest.approx((1.9, 2.1))  # one finite value: a band around it
    assert value_range([math.nan]) is None
