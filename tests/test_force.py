"""What `--out` and `--force` do replace: bvvtok's own folders (and a run that never reached a checkpoint), written
where a link points. What they refuse is in tests/test_bad_inputs.py's CASES, one line each."""

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_user_error, invoke, make_world


@pytest.fixture
def world(char_substrate, char_run, tmp_path, monkeypatch) -> Path:
    folder = make_world(tmp_path / "world", char_substrate, char_run)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_force_replaces_a_folder_bvvtok_wrote(world):
    assert invoke("build-vocab", "--ngrams", "stats.txt", "--out", "V").exit_code == 0
    assert_user_error(invoke("build-vocab", "--ngrams", "stats.txt", "--out", "V"), "bvvtok folder", "--force")
    assert invoke("build-vocab", "--ngrams", "stats.txt", "--out", "V", "--force").exit_code == 0
    assert invoke("train", "--substrate", "S", "--corpus", "D/c.txt", "--out", "R3", "--steps", "1").exit_code == 2
    (world / "R3" / "notes.txt").unlink()
    result = invoke("train", "--substrate", "S", "--corpus", "D/c.txt", "--out", "R3", "--force", "--steps", "2",
                    "--d-model", "32", "--n-layer", "1", "--n-head", "4", "--context", "16", "--eval-every", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in world.iterdir() if p.name.startswith(".")) == []  # no temporaries or locks


def test_a_run_that_never_reached_a_checkpoint_is_started_again_without_force(world):
    run = world / "R4"
    shape = ("--d-model", "32", "--n-layer", "1", "--n-head", "4", "--context", "16", "--eval-every", "2")
    result = invoke("train", "--substrate", "S", "--corpus", "D/c.txt", "--out", run, "--steps", "2", *shape)
    assert result.exit_code == 0, result.output
    shutil.rmtree(run / "checkpoint")  # as if killed before its first checkpoint (tests/test_crash.py does it for real)
    for name in ("model.safetensors", "metrics.csv", "loss.png"):
        (run / name).unlink()
    for extra in ([], ["--resume"]):
        result = invoke("train", "--substrate", "S", "--corpus", "D/c.txt", "--out", run, "--steps", "2", *shape, *extra)
        assert result.exit_code == 0, result.output
        assert (run / "checkpoint" / "state.json").is_file()
        shutil.rmtree(run / "checkpoint")


def test_a_link_as_out_is_written_through(world, tmp_path):
    target = tmp_path / "elsewhere" / "vocab"
    target.parent.mkdir()
    os.symlink(target, world / "link", target_is_directory=True)
    for extra in ([], ["--force"]):
        result = invoke("build-vocab", "--ngrams", "stats.txt", "--out", "link", *extra)
        assert result.exit_code == 0, result.output
        assert (world / "link").is_symlink()
        assert (target / "tokenizer.json").is_file()
    os.symlink(tmp_path / "elsewhere" / "a.png", world / "a.png")
    assert invoke("compare", "R", "R2", "-o", "a.png").exit_code == 0
    assert (world / "a.png").is_symlink() and (tmp_path / "elsewhere" / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_force_replaces_a_folder_of_the_kinds_the_command_writes(world):
    """A new vocabulary replaces a substrate (a vocabulary with its embedding); a model folder replaces a run or a
    mixture; embed adds a substrate to a vocabulary bvvtok built, in place, and replaces its own substrate there."""
    assert invoke("build-vocab", "--ngrams", "stats.txt", "--out", "V").exit_code == 0
    for extra in ([], ["--force", "--bits", "24"]):
        result = invoke("embed", "V", "--method", "bits", *(extra or ["--bits", "16"]))
        assert result.exit_code == 0, result.output
    assert json.loads((world / "V" / "bvvtok.json").read_text())["substrate"]["settings"]["bits"] == 24
    result = invoke("build-vocab", "--ngrams", "stats.txt", "--out", "V", "--force")
    assert result.exit_code == 0, result.output
    assert not (world / "V" / "embeddings.safetensors").exists()
    assert invoke("combine", "R", "R2", "--out", "M").exit_code == 0
    result = invoke("grow", "R", "--add-layers", "1", "--out", "M", "--force")
    assert result.exit_code == 0, result.output
    result = invoke("combine", "R", "R2", "--out", "M", "--force")
    assert result.exit_code == 0, result.output
