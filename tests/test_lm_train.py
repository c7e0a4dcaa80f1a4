"""`bvvtok train` end to end on a small character substrate: learning, frozen vs unfrozen, resume, DDP, bad input."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Payload, assert_user_error, invoke, write_char_vocab
from PIL import Image
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import resolve_config
from bvvtok.lm.metrics import mean_tokens_per_s, read_metrics
from bvvtok.lm.train import train

SMALL = dict(d_model=32, n_layer=2, n_head=4, context=32)
FAST = dict(steps=40, batch_size=8, lr=1e-2, warmup=4, eval_every=8, eval_windows=16)
ANIMALS = ["cat", "dog", "hen", "fox", "owl"]


@pytest.fixture(autouse=True)
def token_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Patterned text: a model that reads the context can beat the unigram entropy by far."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(400):
        a, b = rng.choice(ANIMALS, 2)
        lines.append(json.dumps({"text": f"the {a} saw the {b}. the {b} ran. {i % 7} 你好"}))
    path = tmp_path_factory.mktemp("corpus") / "animals.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config(**train):
    return resolve_config("tiny", None, dict(SMALL), {**FAST, **train})


def cpu_train(substrate, corpus, out, cfg=None, **kwargs):
    return train(substrate, [corpus], out, cfg or config(), device="cpu", **kwargs)


def weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "model.safetensors"))


def test_frozen_run_learns_and_keeps_the_substrate(char_substrate, corpus, tmp_path):
    run = tmp_path / "run"
    result = cpu_train(char_substrate, corpus, run)
    vals = [r.val_loss for r in result.rows if r.val_loss is not None]
    assert len(result.rows) == 41 and len(vals) == 6  # step 0 (before training) and every 8th step
    start = result.rows[0]
    assert (start.step, start.train_loss, start.lr, start.tokens_per_s) == (0, None, None, None)
    assert vals[0] > result.unigram_entropy > 2 * vals[-1]  # starts knowing nothing, learns far more than frequencies
    assert result.rows[-1].train_loss < result.rows[1].train_loss
    substrate = load_file(str(char_substrate / "embeddings.safetensors"))["weight"]
    assert np.array_equal(weights(run)["token_embeddings.weight"], substrate)  # bit-identical after training

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] | {"vocab_size": 117, "n_embed": 16, "d_model": 32, "scale": 2, "frozen": True} == cfg["model"]
    manifest = json.loads((run / "bvvtok.json").read_text())
    assert manifest["run"]["substrate"]["manifest_sha256"] == manifest["files"]["substrate.json"]
    assert (run / "substrate.json").read_bytes() == (char_substrate / "bvvtok.json").read_bytes()
    assert (run / "tokenizer.json").read_bytes() == (char_substrate / "tokenizer.json").read_bytes()
    assert [r.step for r in read_metrics(run / "metrics.csv")] == list(range(0, 41))
    assert Image.open(run / "loss.png").size[0] > 100
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["model.safetensors", "optimizer.pt", "state.json"]


def test_same_seed_gives_the_same_bytes(char_substrate, corpus, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cpu_train(char_substrate, corpus, tmp_path / name / "run", config(steps=6, seed=seed))
    a, b, c = (tmp_path / name / "run" for name in "abc")
    for name in ("model.safetensors", "config.json", "loss.png"):  # metrics.csv records the speed: not reproducible
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_unfrozen_trains_the_embedding(char_substrate, corpus, tmp_path):
    cfg = resolve_config("tiny", None, {**SMALL, "frozen": False}, {**FAST, "steps": 6})
    cpu_train(char_substrate, corpus, tmp_path / "run", cfg)
    substrate = load_file(str(char_substrate / "embeddings.safetensors"))["weight"]
    trained = weights(tmp_path / "run")["token_embeddings.weight"]
    assert trained.shape == substrate.shape and not np.array_equal(trained, substrate)


class Killed(Exception):
    pass


def test_resume_after_a_kill_continues_the_same_trajectory(char_substrate, corpus, tmp_path):
    cfg = config(steps=12, checkpoint_every=4)
    whole = cpu_train(char_substrate, corpus, tmp_path / "whole", cfg)

    def kill_at_step_7(kind, info):
        if kind == "step" and info["row"].step == 7:
            raise Killed  # after the checkpoint of step 4; steps 5-7 are lost

    with pytest.raises(Killed):
        cpu_train(char_substrate, corpus, tmp_path / "killed", cfg, on_event=kill_at_step_7)
    assert json.loads((tmp_path / "killed" / "checkpoint" / "state.json").read_text())["step"] == 4
    resumed = cpu_train(char_substrate, corpus, tmp_path / "killed", cfg, resume=True)
    assert [(r.step, r.train_loss, r.val_loss) for r in resumed.rows[5:]] == [(r.step, r.train_loss, r.val_loss) for r in whole.rows[5:]]
    logged = [read_metrics(tmp_path / name / "metrics.csv") for name in ("whole", "killed")]
    assert [(r.step, r.train_loss, r.val_loss) for r in logged[0]] == [(r.step, r.train_loss, r.val_loss) for r in logged[1]]
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_two_gloo_processes_equal_one_with_the_same_global_batch(char_substrate, corpus, tmp_path):
    common = ["--substrate", char_substrate, "--corpus", corpus, "--device", "cpu", "--steps", "6", "--d-model", "32",
              "--n-layer", "2", "--n-head", "4", "--context", "32", "--lr", "1e-2", "--warmup", "2", "--eval-every", "3"]  # fmt: skip
    single = invoke("train", *common, "--batch-size", "8", "--out", tmp_path / "one")
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "bvvtok", "train"]
    two = subprocess.run([*launcher, *map(str, common), "--batch-size", "4", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-5, err_msg=k)
    rows_a, rows_b = read_metrics(tmp_path / "one" / "metrics.csv"), read_metrics(tmp_path / "two" / "metrics.csv")
    assert [r.val_loss for r in rows_a] == pytest.approx([r.val_loss for r in rows_b], abs=1e-4)
    assert json.loads((tmp_path / "two" / "bvvtok.json").read_text())["run"]["world_size"] == 2


def test_cli_train_prints_losses_and_the_unigram_entropy(char_substrate, corpus, tmp_path):
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", tmp_path / "run", "--device", "cpu",
                    *[f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, **FAST, "steps": 8}.items()])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "unigram entropy" in result.stdout and "validation loss" in result.stdout
    assert "frozen 16-dim bits substrate (scale 2)" in result.stdout
    assert "2 layers, 4 heads" in result.stdout  # and "1 layer": tests/test_lm_memory.py


def test_cli_train_leaves_no_progress_line_and_one_speed(char_substrate, corpus, tmp_path):
    """The progress line goes at the end; the summary's tokens/s is the mean the line showed (issue 20, item 11)."""
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", tmp_path / "run", "--device", "cpu",
                    *[f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, **FAST, "steps": 6}.items()])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tok/s" not in result.output and "step 6/6" not in result.output
    shown = re.search(r"tokens/s\W+([\d,]+) \(mean over steps\)", result.stdout)
    assert shown, result.stdout
    speed = mean_tokens_per_s(read_metrics(tmp_path / "run" / "metrics.csv"))  # rounded to 6 digits there
    assert abs(int(shown[1].replace(",", "")) - speed) <= 1


def test_prepare_then_train_from_the_prepared_folder(char_substrate, corpus, tmp_path):
    result = invoke("prepare", "--substrate", char_substrate, "--corpus", corpus, "--out", tmp_path / "tokens")
    assert result.exit_code == 0, result.output
    assert "train" in result.stdout and "validation tokens" in result.stdout
    run = cpu_train(char_substrate, tmp_path / "tokens", tmp_path / "run", config(steps=2))
    assert run.rows[-1].step == 2


def test_compare_two_runs(char_substrate, corpus, tmp_path):
    cpu_train(char_substrate, corpus, tmp_path / "frozen", config(steps=8))
    unfrozen = resolve_config("tiny", None, {**SMALL, "frozen": False}, {**FAST, "steps": 8})
    cpu_train(char_substrate, corpus, tmp_path / "unfrozen", unfrozen)
    result = invoke("compare", tmp_path / "frozen", tmp_path / "unfrozen", "-o", tmp_path / "cmp.png")
    assert result.exit_code == 0, result.output
    assert "frozen" in result.stdout and "unfrozen (substrate)" in result.stdout and "8/8" in result.stdout
    assert (tmp_path / "cmp.png").is_file()


# --- bad input: one line, exit 2, nothing overwritten ---


def train_cli(substrate, corpus, out, *extra):
    return invoke("train", "--substrate", substrate, "--corpus", corpus, "--out", out, "--device", "cpu",
                  *[f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, **FAST, "steps": 2}.items()], *extra)  # fmt: skip


def test_existing_run_is_not_overwritten_without_resume_or_force(char_substrate, corpus, tmp_path):
    run = tmp_path / "run"
    assert train_cli(char_substrate, corpus, run).exit_code == 0
    before = (run / "model.safetensors").read_bytes()
    assert_user_error(train_cli(char_substrate, corpus, run), "--resume to continue it, --force to replace it")
    assert (run / "model.safetensors").read_bytes() == before
    assert train_cli(char_substrate, corpus, run, "--force", "--seed=3").exit_code == 0
    assert (run / "model.safetensors").read_bytes() != before


def test_resume_refuses_a_different_config_or_corpus(char_substrate, corpus, tmp_path):
    run = tmp_path / "run"
    assert train_cli(char_substrate, corpus, run).exit_code == 0
    assert_user_error(train_cli(char_substrate, corpus, run, "--resume", "--lr=0.5"), "different configuration", "train.lr")
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "something else entirely, long enough to train on. "}\n' * 200, encoding="utf-8")
    assert_user_error(train_cli(char_substrate, other, run, "--resume"), "the corpus differs")
    assert_user_error(train_cli(char_substrate, corpus, tmp_path / "none", "--resume"), "not a run folder")


def test_damaged_substrate_is_refused(char_substrate, corpus, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(char_substrate, damaged)
    with open(damaged / "embeddings.safetensors", "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x80\x7f")
    assert_user_error(train_cli(damaged, corpus, tmp_path / "run"), "fails verify", "file hashes", "bvvtok verify")
    assert not (tmp_path / "run").exists()


def test_vocabulary_and_embedding_mismatch_is_refused(char_substrate, corpus, tmp_path):
    other = write_char_vocab(tmp_path / "other")
    shutil.copy(char_substrate / "embeddings.safetensors", other / "embeddings.safetensors")
    with pytest.raises(BvvtokError, match="fails verify"):
        cpu_train(other, corpus, tmp_path / "run")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--d-model=8", "--n-head=2"], "by `embed` with --dim 8 or raise --d-model"),
        (["--context=100000"], "longer than the training text"),
        (["--init=random"], "--init random needs --unfrozen"),
        (["--device=tpu"], "choose auto, cpu or cuda"),
        (["--dtype=fp8"], "choose auto, fp32 or bf16"),
        (["--preset=huge"], "unknown preset 'huge'"),
    ],
)
def test_bad_options(char_substrate, corpus, tmp_path, extra, fragment):
    assert_user_error(train_cli(char_substrate, corpus, tmp_path / "run", *extra), fragment)


def test_resume_needs_a_run_folder(char_substrate, corpus, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(BvvtokError, match="notes is not a run folder written by bvvtok train; drop resume=True"):
        cpu_train(char_substrate, corpus, tmp_path / "notes", resume=True)
    assert (tmp_path / "notes" / "a.txt").read_text(encoding="utf-8") == "mine"


def test_empty_corpus_names_the_files(char_substrate, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_user_error(train_cli(char_substrate, tmp_path / "empty.txt", tmp_path / "run"), "empty.txt")


def test_small_validation_split_is_explained(char_substrate, tmp_path):
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text('{"text": "a few words"}\n' * 3, encoding="utf-8")
    assert_user_error(train_cli(char_substrate, tiny, tmp_path / "run"), "longer than the training text")


def test_not_enough_disk(char_substrate, corpus, tmp_path, monkeypatch):
    """Sizes in the unit that shows them (a small model's checkpoints are not "about 0 MB"): first the token shards
    do not fit, then (the cache, in tmp_path/cache, has room) the checkpoints do not."""
    room = {"cache": 1000, "run": 1000}  # free bytes
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        10**12, 0, room["cache" if "cache" in Path(path).parts else "run"]))  # fmt: skip
    result = train_cli(char_substrate, corpus, tmp_path / "run")
    assert_user_error(result, "not enough disk space", "for the token shards", "1.0 kB free")
    assert re.search(r"need about [1-9][\d.]* kB,", result.stderr), result.stderr
    room["cache"] = 10**12
    result = train_cli(char_substrate, corpus, tmp_path / "run")
    assert_user_error(result, "not enough disk space", "1.0 kB free")
    assert re.search(r"checkpoints need about [1-9][\d.]* kB,", result.stderr), result.stderr
    assert not (tmp_path / "run").exists()


def test_checkpoint_is_read_without_pickle(char_substrate, corpus, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "pickle-ran"
    cpu_train(char_substrate, corpus, run, config(steps=2))
    optimizer = run / "checkpoint" / "optimizer.pt"
    optimizer.unlink()  # written anew, not through a link the run may share
    torch.save(Payload(marker), optimizer)
    with pytest.raises(BvvtokError, match="optimizer.pt holds something other than tensors"):
        cpu_train(char_substrate, corpus, run, config(steps=2), resume=True)
    assert not marker.exists()
    torch.load(optimizer, weights_only=False)  # the file does run code when unpickled
    assert marker.is_dir()


def test_validation_falls_back_to_the_tail_of_the_training_text(char_substrate, tmp_path):
    book = tmp_path / "book.txt"  # one small .txt file is one piece: the content split puts it all on one side
    book.write_text("".join(f"the cat saw the dog {i}.\n" for i in range(200)), encoding="utf-8")
    result = cpu_train(char_substrate, book, tmp_path / "run", config(steps=2, val_fraction=0.1))
    data = json.loads((tmp_path / "run" / "bvvtok.json").read_text())["run"]["data"]
    assert 0 in (data["train_tokens"], data["val_tokens"]) and data["validation"].startswith("the last ")
    assert result.rows[-1].val_loss is not None
