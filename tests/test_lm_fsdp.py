"""`--strategy fsdp` under torchrun with 2 gloo processes on the CPU: the same training as one process with the same
global batch, sharded checkpoints that resume after a kill to the same weights, and run folders that one process
reads as any other; `--activation-checkpointing` changes memory, not results."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, invoke
from safetensors.numpy import load_file

from bvvtok.lm.metrics import read_metrics

KILL_AT = Path(__file__).with_name("kill_at.py")
SHAPE = ["--device", "cpu", "--d-model", "32", "--n-layer", "2", "--n-head", "4", "--context", "32", "--lr", "1e-2",
         "--warmup", "2", "--eval-every", "3", "--steps", "6"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    animals = ["cat", "dog", "hen", "fox", "owl"]
    lines = [json.dumps({"text": f"the {a} saw the {b}. {i % 7}"}) for i, (a, b) in enumerate(rng.choice(animals, (300, 2)))]
    path = tmp_path_factory.mktemp("corpus") / "animals.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "BVVTOK_CACHE_DIR": str(tmp_path / "cache")}


def torchrun(args: list, env: dict, kill_at: int | None = None) -> subprocess.CompletedProcess:
    """`bvvtok ARGS` in 2 gloo processes; with `kill_at` (tests/kill_at.py), rank 0 is SIGKILLed before its
    kill_at-th folder change (only rank 0 changes folders; torchrun then stops the other), or lists them (0)."""
    program = ["-m", "bvvtok"] if kill_at is None else [str(KILL_AT), str(kill_at)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *program]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "model.safetensors"))


def train_args(char_substrate, corpus, out: Path, *extra: str) -> list:
    return ["train", "--substrate", char_substrate, "--corpus", corpus, "--out", out, *SHAPE, *extra]


def test_fsdp_on_two_processes_equals_one_process(char_substrate, corpus, tmp_path, env):
    one = invoke(*train_args(char_substrate, corpus, tmp_path / "one", "--batch-size", "8"))
    assert one.exit_code == 0, one.output
    two = torchrun(train_args(char_substrate, corpus, tmp_path / "two", "--batch-size", "4", "--strategy", "fsdp"), env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert set(a) == set(b)  # the whole weights, gathered: the same names and shapes as any run's
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-5, err_msg=k)
    rows_a, rows_b = read_metrics(tmp_path / "one" / "metrics.csv"), read_metrics(tmp_path / "two" / "metrics.csv")
    assert [r.val_loss for r in rows_a] == pytest.approx([r.val_loss for r in rows_b], abs=1e-4)
    state = json.loads((tmp_path / "two" / "checkpoint" / "state.json").read_text())
    assert (state["strategy"], state["world_size"]) == ("fsdp", 2)
    assert (tmp_path / "two" / "checkpoint" / "optimizer" / ".metadata").is_file()  # the sharded optimizer state
    result = invoke("generate", tmp_path / "two", "--prompt", "the", "--greedy", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output  # one process reads a run trained sharded
    assert invoke("export", tmp_path / "two", "--out", tmp_path / "hf").exit_code == 0


def test_a_killed_fsdp_run_resumes_to_the_same_weights(char_substrate, corpus, tmp_path, env):
    args = train_args(char_substrate, corpus, tmp_path / "whole", "--batch-size", "4", "--strategy", "fsdp")
    assert torchrun(args, env).returncode == 0
    expected = weights(tmp_path / "whole")
    trace = torchrun(train_args(char_substrate, corpus, tmp_path / "trace", "--batch-size", "4", "--strategy", "fsdp"), env, 0)
    commits = [i for i, line in enumerate((line for line in trace.stderr.splitlines() if line.startswith("moment")), 1)
               if "bvvtok-commit" in line]  # fmt: skip
    assert len(commits) == 2, trace.stderr[-2000:]
    run = tmp_path / "run"
    args = train_args(char_substrate, corpus, run, "--batch-size", "4", "--strategy", "fsdp")
    killed = torchrun(args, env, commits[1] + 1)  # in the middle of the second checkpoint's commit
    assert killed.returncode != 0 and not (run / "checkpoint" / "state.json").read_text().count('"step": 6')
    resumed = torchrun([*args, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = weights(run)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_a_sharded_checkpoint_resumes_only_as_it_was_saved(char_substrate, corpus, tmp_path, env):
    args = train_args(char_substrate, corpus, tmp_path / "run", "--batch-size", "4", "--strategy", "fsdp")
    assert torchrun(args, env).returncode == 0
    result = invoke(*train_args(char_substrate, corpus, tmp_path / "run", "--batch-size", "4"), "--resume")  # one process
    assert_user_error(result, "written by --strategy fsdp on 2 process(es)", "run --strategy fsdp on 2")


def test_activation_checkpointing_changes_no_result(char_substrate, corpus, tmp_path):
    for name, extra in (("plain", []), ("recomputed", ["--activation-checkpointing"])):
        result = invoke(*train_args(char_substrate, corpus, tmp_path / name, "--batch-size", "8", *extra))
        assert result.exit_code == 0, result.output
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "recomputed")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)


def test_an_unknown_strategy_is_refused(char_substrate, corpus, tmp_path):
    assert_user_error(invoke(*train_args(char_substrate, corpus, tmp_path / "run", "--strategy", "zero3")),
                      "--strategy 'zero3': choose ddp or fsdp")  # fmt: skip
