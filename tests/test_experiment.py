"""`bvvtok experiment`: a small spec run end to end on the tests' character vocabulary, killed and resumed, through
submitit's local executor, changed, broken; and the report's figures recomputed from the cells' own files."""

import csv
import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from tests.conftest import assert_user_error, invoke, write_char_vocab

KILL_AT = Path(__file__).with_name("kill_at.py")
TIMES = {"wall_s", "tokens_per_s"}  # what may differ between two runs of the same cells

SPEC = """\
name = "micro"
seeds = [0, 1]
baseline = "unfrozen"
[vocab]
path = "{vocab}"
[data]
corpus = ["{corpus}"]
[model]
d_model = 32
n_layer = 1
n_head = 4
context = 16
[train]
steps = {steps}
batch_size = 4
eval_every = 3
eval_windows = 4
lr = 1e-2
warmup = 1
[substrates.bits16]
method = "bits"
bits = 16
[substrates.gauss]
method = "gaussian"
[arms.bits16]
substrate = "bits16"
[arms.gauss]
substrate = "gauss"
[arms.unfrozen]
substrate = "bits16"
frozen = false
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A vocabulary, a corpus and a private token cache, shared by the module's experiments."""
    folder = tmp_path_factory.mktemp("experiment")
    vocab = write_char_vocab(folder / "vocab")
    corpus = folder / "corpus.jsonl"
    lines = [json.dumps({"text": f"the cat {i % 7} saw the dog {i}. the end."}) for i in range(400)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(folder / "cache"))
        yield folder, vocab, corpus


def write_spec(path: Path, world, steps: int = 6, extra: str = "", arms: tuple[str, ...] = ()) -> Path:
    """The micro spec; with `arms`, only those arms (a cell's result depends on its own arm alone)."""
    _, vocab, corpus = world
    text = SPEC.format(vocab=vocab, corpus=corpus, steps=steps)
    if arms:
        head, *tables = text.split("[arms.")
        text = head + "".join(f"[arms.{t}" for t in tables if t.split("]")[0] in arms)
        text = text if "unfrozen" in arms else text.replace('baseline = "unfrozen"\n', "")
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished(world):
    """The micro experiment run once, uninterrupted (read-only for tests)."""
    folder = world[0]
    spec = write_spec(folder / "micro.toml", world)
    result = invoke("experiment", "run", spec, "--out", folder / "done")
    assert result.exit_code == 0, result.output
    return folder / "done"


def results(folder: Path, arms: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """results.csv without the times (of `arms` only, if given)."""
    with open(folder / "results.csv", encoding="utf-8", newline="") as f:
        rows = [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(f)]
    return [r for r in rows if not arms or r["arm"] in arms]


def test_every_cell_is_trained_evaluated_and_reported(finished):
    rows = results(finished)
    assert [(r["arm"], r["seed"]) for r in rows] == [(a, s) for a in ("bits16", "gauss", "unfrozen") for s in ("0", "1")]
    assert {r["state"] for r in rows} == {"done"}
    assert {(r["arm"], r["method"], r["dim"], r["frozen"]) for r in rows} == {
        ("bits16", "bits", "16", "true"), ("gauss", "gaussian", "32", "true"), ("unfrozen", "bits", "16", "false")}
    assert {r["steps"] for r in rows} == {"6"} and {r["tokens"] for r in rows} == {str(6 * 4 * 16)}
    for name in ("results.csv", "summary.csv", "report.md", "curves.png", "final.png"):
        assert (finished / name).is_file(), name
    seeds = {r["arm"]: set() for r in rows}
    for r in rows:
        seeds[r["arm"]].add(r["final_val_bpb"])
    assert all(len(values) == 2 for values in seeds.values()), "the seeds trained the same model"


def test_the_held_out_figure_is_the_runs_last_validation(finished):
    """Every cell is evaluated on the experiment's held-out windows: for a run on that corpus, its last validation."""
    for row in results(finished):
        with open(finished / "cells" / row["cell"] / "run" / "metrics.csv", encoding="utf-8") as f:
            last = list(csv.DictReader(f))[-1]
        assert float(row["final_val_loss"]) == pytest.approx(float(last["val_loss"]), abs=1e-4)
        assert float(row["final_val_bpb"]) == pytest.approx(float(last["val_bpb"]), abs=1e-4)


def test_summary_intervals_are_recomputed_from_the_cells_metrics(finished):
    """The summary's mean, sd and 95% t-interval, and the paired differences, from each cell's metrics.csv."""
    last = {}
    for cell in (finished / "cells").iterdir():
        with open(cell / "run" / "metrics.csv", encoding="utf-8") as f:
            last[cell.name] = float(list(csv.DictReader(f))[-1]["val_bpb"])
    with open(finished / "summary.csv", encoding="utf-8", newline="") as f:
        summary = [r for r in csv.DictReader(f) if r["figure"] == "final_val_bpb"]
    for arm in ("bits16", "gauss", "unfrozen"):
        values = [last[f"{arm}-s0"], last[f"{arm}-s1"]]
        (row,) = [r for r in summary if r["arm"] == arm and not r["comparison"]]
        check_interval(row, values)
    for arm in ("bits16", "gauss"):
        differences = [last[f"{arm}-s{s}"] - last[f"unfrozen-s{s}"] for s in (0, 1)]
        (row,) = [r for r in summary if r["arm"] == arm and r["comparison"]]
        check_interval(row, differences)


def check_interval(row: dict[str, str], values: list[float]) -> None:
    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert int(row["n"]) == n
    for key, expected in (("mean", mean), ("sd", sd), ("ci95_low", mean - half), ("ci95_high", mean + half)):
        assert float(row[key]) == pytest.approx(expected, abs=2e-4), key


def test_a_run_killed_mid_cell_and_rerun_gives_the_same_results(world, finished, tmp_path):
    spec = write_spec(tmp_path / "micro.toml", world, arms=("bits16",))
    args = ["experiment", "run", spec, "--out", tmp_path / "killed"]
    trace = subprocess.run([sys.executable, KILL_AT, "0", *map(str, args[:-1]), tmp_path / "trace"], capture_output=True, text=True)
    assert trace.returncode == 0, trace.stderr
    moments = [line for line in trace.stderr.splitlines() if line.startswith("moment ")]
    checkpoints = [i for i, line in enumerate(moments, 1) if "checkpoint" in line]
    stop = checkpoints[len(checkpoints) // 2]  # a checkpoint in the middle of the experiment, mid-cell
    killed = subprocess.run([sys.executable, KILL_AT, str(stop), *map(str, args)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "results.csv").exists()
    status = invoke("experiment", "status", tmp_path / "killed")
    assert "interrupted" in status.output and "done" in status.output, status.output
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "resuming from its last checkpoint" in again.output
    assert results(tmp_path / "killed") == results(finished, ("bits16",))


def test_submitit_local_executor_gives_the_same_figures(world, finished, tmp_path):
    spec = write_spec(tmp_path / "micro.toml", world, arms=("gauss",))
    result = invoke("experiment", "run", spec, "--out", tmp_path / "submitit", "--executor", "submitit-local", "--parallel", "2")
    assert result.exit_code == 0, result.output
    assert results(tmp_path / "submitit") == results(finished, ("gauss",))
    again = invoke("experiment", "run", spec, "--out", tmp_path / "submitit", "--executor", "submitit-local")
    assert again.exit_code == 0, again.output  # every cell done: nothing submitted
    assert list((tmp_path / "submitit" / "submitit").rglob("*_log.out")), "submitit wrote no job logs"


def test_local_worker_processes_give_the_same_figures(world, finished, tmp_path):
    spec = write_spec(tmp_path / "micro.toml", world, arms=("unfrozen",))
    result = invoke("experiment", "run", spec, "--out", tmp_path / "parallel", "--parallel", "2")
    assert result.exit_code == 0, result.output
    # each worker computes with a share of the cores (one thread here): sums in another order, the same to 1e-5
    ours, theirs = results(tmp_path / "parallel"), results(finished, ("unfrozen",))
    assert [r.keys() for r in ours] == [r.keys() for r in theirs]
    for mine, other in zip(ours, theirs):
        for key, value in mine.items():
            assert value == other[key] or float(value) == pytest.approx(float(other[key]), abs=1e-5), key


def test_a_rerun_skips_finished_cells_and_a_changed_spec_is_refused(world, finished, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(finished, out)
    spec = write_spec(tmp_path / "micro.toml", world)
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}
    rerun = invoke("experiment", "run", spec, "--out", out)
    assert rerun.exit_code == 0, rerun.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")} == before
    changed = write_spec(tmp_path / "micro.toml", world, extra="[arms.gauss.train]\nsteps = 9\n")
    assert_user_error(invoke("experiment", "run", changed, "--out", out), "another spec", "arms.gauss.train", "--force")
    forced = invoke("experiment", "run", changed, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert {(r["arm"], r["steps"]) for r in results(out)} == {("bits16", "6"), ("unfrozen", "6"), ("gauss", "9")}
    kept = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json") if not p.parent.name.startswith("gauss")}
    assert kept == {p: t for p, t in before.items() if not p.parent.name.startswith("gauss")}


def test_growth_and_mixture_arms(world, tmp_path):
    extra = """
[arms.grown]
from = "bits16"
grow = 1
[arms.grown.train]
steps = 3
[arms.mix]
combine = ["bits16", "unfrozen"]
"""
    spec = write_spec(tmp_path / "micro.toml", world, extra=extra, arms=("bits16", "unfrozen")).read_text(encoding="utf-8")
    spec = spec.replace("seeds = [0, 1]", "seeds = [0]")
    (tmp_path / "micro.toml").write_text(spec, encoding="utf-8")
    result = invoke("experiment", "run", tmp_path / "micro.toml", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = {r["arm"]: r for r in results(tmp_path / "out")}
    assert rows["grown"]["state"] == rows["mix"]["state"] == "done"
    grown = json.loads((tmp_path / "out" / "cells" / "grown-s0" / "run" / "config.json").read_text(encoding="utf-8"))
    assert grown["model"]["n_layer"] == 2 and grown["trainable"] == ["blocks.1.*", "ln_f.*", "head.*"]
    mix = json.loads((tmp_path / "out" / "cells" / "mix-s0" / "run" / "config.json").read_text(encoding="utf-8"))
    assert len(mix["members"]) == 2 and rows["mix"]["steps"] == "0"


def test_named_sources_are_scored_each_on_their_own(world, tmp_path):
    folder, _, corpus = world
    lines = corpus.read_text(encoding="utf-8").splitlines()
    for name, part in (("a", lines[::2]), ("b", [line.replace("cat", "owl") for line in lines[1::2]])):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(part) + "\n", encoding="utf-8")
    extra = "[arms.mix]\ncombine = [\"bits16\", \"unfrozen\"]\n"
    spec = write_spec(tmp_path / "micro.toml", world, extra=extra, arms=("bits16", "unfrozen")).read_text(encoding="utf-8")
    spec = spec.replace("seeds = [0, 1]", "seeds = [0]").replace(
        f'corpus = ["{corpus}"]', f'corpus = ["a={tmp_path / "a.jsonl"}@3", "b={tmp_path / "b.jsonl"}@1"]')
    (tmp_path / "micro.toml").write_text(spec, encoding="utf-8")
    result = invoke("experiment", "run", tmp_path / "micro.toml", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output

    rows = {r["arm"]: r for r in results(tmp_path / "out")}
    metrics = (tmp_path / "out" / "cells" / "bits16-s0" / "run" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    header, last = metrics[0].split(","), metrics[-1].split(",")
    for source in ("a", "b"):  # a trained cell's figure is its own last validation of that source
        assert rows["bits16"][f"final_val_bpb[{source}]"] == last[header.index(f"val_bpb_{source}")]
        assert float(rows["mix"][f"final_val_bpb[{source}]"]) > 0  # a combined model is scored on each source
    assert rows["bits16"]["final_val_bpb[a]"] != rows["bits16"]["final_val_bpb[b]"]
    with open(tmp_path / "out" / "summary.csv", encoding="utf-8", newline="") as f:
        figures = {(r["arm"], r["figure"]) for r in csv.DictReader(f)}
    assert {("mix", "final_val_bpb[a]"), ("unfrozen", "final_val_bpb[b]")} <= figures
    assert "validation bits per byte (b)" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_a_failing_cell_is_recorded_and_the_others_go_on(world, tmp_path):
    extra = """
[arms.diverges]
substrate = "bits16"
[arms.diverges.train]
lr = 1e30
"""
    spec = write_spec(tmp_path / "micro.toml", world, extra=extra, arms=("bits16",))
    result = invoke("experiment", "run", spec, "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    rows = results(tmp_path / "out")
    assert {r["state"] for r in rows if r["arm"] != "diverges"} == {"done"}
    failed = [r for r in rows if r["arm"] == "diverges"]
    assert {r["state"] for r in failed} == {"failed"}
    assert all("not a number" in r["reason"] or "nan" in r["reason"] or "inf" in r["reason"] for r in failed), failed
    assert "diverges-s0" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_a_bad_spec_names_every_problem_at_once_and_builds_nothing(world, tmp_path):
    extra = """
[substrates.wide]
method = "bits"
bits = 1024
[arms.wide]
substrate = "wide"
[arms.typo]
substrate = "glyf"
[arms.loop]
from = "loop"
"""
    text = write_spec(tmp_path / "bad.toml", world, extra=extra).read_text(encoding="utf-8")
    text = text.replace("seeds = [0, 1]", "seeds = [0, 1.5]\ncolour = 3").replace('bits = 16\n', 'bits = 16\nfont = "x"\n', 1)
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    result = invoke("experiment", "run", tmp_path / "bad.toml", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    for key in ("colour: unknown key", "seeds: 1.5", "substrates.bits16.font", "arms.typo.substrate", "arms.loop"):
        assert key in result.stderr, (key, result.stderr)
    assert not (tmp_path / "out").exists()
    fits = text.replace("[arms.typo]\nsubstrate = \"glyf\"", "").replace("[arms.loop]\nfrom = \"loop\"", "")
    fits = fits.replace("seeds = [0, 1.5]\ncolour = 3", "seeds = [0]").replace('font = "x"\n', "")
    (tmp_path / "fits.toml").write_text(fits, encoding="utf-8")
    result = invoke("experiment", "run", tmp_path / "fits.toml", "--out", tmp_path / "out")
    assert_user_error_lines(result, "substrates.wide: 1024-bit codes do not fit d_model 32", "float = true")
    assert not (tmp_path / "out").exists()


def assert_user_error_lines(result, *fragments: str) -> None:
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def test_an_output_folder_of_another_command_is_refused(world, tmp_path):
    spec = write_spec(tmp_path / "micro.toml", world)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes", encoding="utf-8")
    assert_user_error(invoke("experiment", "run", spec, "--out", tmp_path / "mine"), "not an experiment")
    substrate = shutil.copytree(world[1], tmp_path / "substrate")
    assert invoke("embed", substrate, "--method", "bits", "--bits", "16").exit_code == 0
    assert_user_error(invoke("experiment", "run", spec, "--out", substrate), "written by another bvvtok command")
    assert (tmp_path / "mine" / "notes.txt").read_text(encoding="utf-8") == "my notes"


def test_slurm_jobs_ask_for_what_the_flags_say(world, tmp_path):
    """The parameters given to submitit's Slurm executor are ones it takes (it refuses unknown names), from the flags."""
    import submitit

    from bvvtok.experiment.executors import ExecutorOptions, get_executor
    from bvvtok.experiment.plan import make_plan
    from bvvtok.experiment.runner import _jobs
    from bvvtok.experiment.spec import read_spec

    plan = make_plan(read_spec(write_spec(tmp_path / "micro.toml", world)))
    jobs = _jobs(tmp_path / "out", plan, 8, ())
    slurm = get_executor("slurm", ExecutorOptions(parallel=4, gpus_per_cell=8, slurm={"partition": "gpu", "time": "240"}))
    parameters = slurm.parameters(jobs)
    assert parameters["gpus_per_node"] == 8 and parameters["slurm_array_parallelism"] == 4
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_time"] == "240"
    # submitit checks Slurm's parameter names without a cluster through its debug executor
    submitit.AutoExecutor(folder=tmp_path / "logs", cluster="debug").update_parameters(**parameters)
    assert {job.processes for job in jobs} == {8}  # a cell with 8 GPUs trains under torchrun, a process per GPU
    spec = tmp_path / "micro.toml"
    assert_user_error(invoke("experiment", "run", spec, "--out", tmp_path / "out", "--executor", "slurm", "--slurm", "partiton=gpu"),
                      "--slurm", "Unknown argument 'partiton'")
    assert not (tmp_path / "out").exists()
