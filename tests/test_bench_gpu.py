"""bench/gpu.sh, the GPU bench of issue 21: its CPU dry run goes through every configuration, and its FLOPs count.

The GPU gets one try at it, so the dry run runs the same code as the real run on a tiny model (two timed steps,
DDP over two gloo processes); the figures themselves are not checked, only that each one is there and makes sense.
"""

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bvvtok.lm.config import resolve_config, with_substrate

ROOT = Path(__file__).resolve().parent.parent
GPU_SH = ROOT / "bench" / "gpu.sh"


@pytest.fixture
def bench_module(monkeypatch):
    """Import a module of bench/ (they import each other by bare name); forgotten after the test."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    yield importlib.import_module
    for name in ("gpu", "lm_step"):
        sys.modules.pop(name, None)


def run_bench(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    """bench/gpu.sh as the GPU machine runs it, from another folder, with this interpreter instead of python3."""
    out = tmp_path / "figures" / "gpu-bench.json"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(GPU_SH), "--device", "cpu", "--dry-run", "--json", str(out), *flags],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text(encoding="utf-8"))


def test_dry_run_measures_every_configuration(tmp_path):
    done, figures = run_bench(tmp_path)
    assert figures["environment"]["torch"] == torch.__version__
    assert [s["synthetic"] for s in figures["substrates"]] == [True, True]
    names = [s["name"] for s in figures["substrates"]]
    [probe] = figures["matmul"]
    assert probe["status"] == "ok" and probe["tflops"] > 0

    training = {(r["substrate"], r["embedding"], r["batch"], r["compile"]): r for r in figures["training"]}
    for name in names:
        for embedding in ("frozen", "unfrozen"):
            for batch in (2, 4):
                row = training.pop((name, embedding, batch, False))
                assert row["status"] == "ok", row
                assert row["tokens_per_s"] > 0 and row["flops_per_token"] > 0
                assert math.isfinite(row["mfu"]) and row["mfu"] > 0 and math.isfinite(row["mfu_measured"])
            [(key, row)] = [(k, r) for k, r in training.items() if k[:2] == (name, embedding) and k[3]]
            assert key[2] in (2, 4) and row["status"] == "skipped" and "compile off" in row["note"]
            del training[key]
    assert not training, f"unexpected rows: {list(training)}"

    generation = {(r["substrate"], r["batch"], r["dtype"]): r for r in figures["generation"]}
    assert set(generation) == {(n, b, d) for n in names for b in (1, 2) for d in ("float32", "bfloat16")}
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 for r in generation.values()), generation

    strategies = {(r["strategy"], r["embedding"]): r for r in figures["strategies"]}
    assert set(strategies) == {(s, e) for s in ("ddp", "fsdp") for e in ("frozen", "unfrozen")}
    for row in strategies.values():
        assert row["status"] == "ok" and row["processes"] == 2 and row["tokens_per_s"] > 0, row
        assert math.isfinite(row["mfu"])

    assert "| substrate | embedding | batch | compile | tokens/s |" in done.stdout  # the table for docs/train.md
    assert "| strategy | processes |" in done.stdout
    assert (tmp_path / "figures" / "gpu-bench.md").read_text(encoding="utf-8").strip() in done.stdout


def test_a_spent_budget_skips_everything_and_still_reports(char_substrate, tmp_path):
    _, figures = run_bench(tmp_path, "--budget-s", "0", "--substrate", f"chars={char_substrate}")
    [substrate] = figures["substrates"]  # loaded, through bvvtok's checks, before anything runs
    assert (substrate["name"], substrate["synthetic"], substrate["n_embed"]) == ("chars", False, 16)
    rows = [r for section in ("matmul", "training", "generation", "strategies") for r in figures[section]]
    assert rows and all(r["status"] == "skipped" for r in rows), rows
    assert any("time budget" in r["note"] for r in rows)


def test_a_row_still_running_at_the_budget_is_stopped_and_reported(bench_module, tmp_path):
    gpu = bench_module("gpu")
    args = argparse.Namespace(dtype="fp32", dry_run=True, compile="off", peak_tflops=989.0, budget_s=0.0,
                              json=tmp_path / "b.json")  # fmt: skip
    bench = gpu.Bench(args, torch.device("cpu"), gpu.DRY_RUN)
    args.budget_s = bench.elapsed() + 0.3
    began = time.perf_counter()
    row = bench.attempt("training", "train", {"substrate": "s", "batch": 1}, lambda: time.sleep(30) or {})
    assert time.perf_counter() - began < 10
    assert row["status"] == "stopped" and "time budget" in row["note"]
    assert json.loads(args.json.read_text(encoding="utf-8"))["training"] == [row]


def test_flops_per_token_counts_the_matmul_weights_of_the_paper_preset(bench_module):
    """6 x (12 d_model^2 per block + the head's d_model x vocab) + 12 x layers x d_model x context, the embedding
    not counted, frozen or not: 1.812 GFLOP per token at 65k, 2.215 at 131k."""
    lm_step = bench_module("lm_step")
    meta = torch.device("meta")  # the paper model's shapes without its memory
    for vocab, frozen, flops in ((65_536, True, 1_811_939_328), (131_072, False, 2_214_592_512)):
        config = with_substrate(resolve_config("paper", None, {"frozen": frozen}, {}), vocab, 1024)
        model = lm_step.build_model(config, torch.empty(vocab, 1024, device=meta), meta)
        assert lm_step.matmul_weights(model) == 16 * 12 * 1024**2 + 1024 * vocab
        assert lm_step.flops_per_token(model) == flops
