"""What `--out` and `--force` may replace: only bvvtok's own output, never an input or the user's files.

CASES is the corpus: one line per command line that must be refused, with the fragments its one-line
error must hold. Each runs in a throwaway world (a substrate S, a corpus folder D, runs R and R2, a
vocabulary W/vocab, a folder F of the user's, ngram statistics; {elsewhere} is a folder outside it),
from that world as the current directory, and nothing in the world may change.
"""

import os
import shutil
from pathlib import Path

import pytest
from conftest import TINY_ENTRIES, assert_user_error, invoke, snapshot, write_char_vocab, write_literal

CORPUS = "".join(f"the cat saw the dog {i}. \n" for i in range(100))

CASES = [
    # a command's own inputs, as --out or around it
    ("prepare into its corpus", "prepare --substrate S --corpus D --out D --force", "holds the input"),
    ("train over its substrate", "train --substrate S --corpus D/c.txt --out S --force", "is the input"),
    ("train over its corpus's folder", "train --substrate S --corpus D/c.txt --out D --force", "holds the input"),
    ("train over its init-from run", "train --substrate S --corpus D/c.txt --init-from R --out R --force", "is the input"),
    ("train into its substrate", "train --substrate S --corpus D/c.txt --out S/run", "is inside the input"),
    ("embed over the vocabulary's parent", "embed W/vocab --out W --force", "holds the input"),
    ("embed dump into the vocabulary", "embed W/vocab --method bits --bits 16 --dump-text W/vocab/codes.txt", "inside the input"),
    ("export over its run", "export R --out R --force", "is the input"),
    ("export into its run", "export R --out R/hf", "is inside the input"),
    ("grow over its run", "grow R --add-layers 1 --out R --force", "is the input"),
    ("combine over a member", "combine R R2 --out R2 --force", "is the input"),
    ("ngrams over its corpus", "ngrams --input en=D/c.txt --out D/c.txt --force", "is the input"),
    ("show into its substrate", "show S a -o S/a.png", "is inside the input"),
    ("compare into a run", "compare R R2 -o R/curves.png", "is inside the input"),
    ("eval over its text", "eval R --perplexity D/c.txt -o D/c.txt --force", "is the input"),
    ("bench-tokenizer over its text", "bench-tokenizer S --text en=D/c.txt --csv D/c.txt --force", "is the input"),
    ("plot-substrate into its substrate", "plot-substrate S -o S/map.png", "is inside the input"),
    # a folder bvvtok did not write (F holds marker.txt and sub/deep.txt)
    ("build-vocab over a user folder", "build-vocab --ngrams stats.txt --out F --force", "F holds marker.txt, sub", "did not write"),
    ("embed over a user folder", "embed W/vocab --method bits --bits 16 --out F --force", "did not write"),
    ("train over a user folder", "train --substrate S --corpus D/c.txt --out F --force", "did not write"),
    ("prepare over a user folder", "prepare --substrate S --corpus D --out F --force", "did not write"),
    ("export over a user folder", "export R --out F --force", "did not write"),
    ("combine over a user folder", "combine R R2 --out F --force", "did not write"),
    ("grow over a user folder", "grow R --add-layers 1 --out F --force", "did not write"),
    ("a run with a file of the user's", "train --substrate S --corpus D/c.txt --out R3 --force", "R3 holds notes.txt"),
    # places that are never replaced
    ("the current directory", "build-vocab --ngrams {elsewhere}/stats.txt --out . --force", "the current directory"),
    ("a folder above it", "build-vocab --ngrams {elsewhere}/stats.txt --out .. --force", "above the current directory"),
    ("a file system's root", "build-vocab --ngrams {elsewhere}/stats.txt --out / --force", "root of a file system"),
]


@pytest.fixture(scope="module")
def world_template(char_substrate, char_run, tmp_path_factory) -> Path:
    world = tmp_path_factory.mktemp("world")
    shutil.copytree(char_substrate, world / "S")
    (world / "D").mkdir()
    (world / "D" / "c.txt").write_text(CORPUS, encoding="utf-8")
    for name in ("R", "R2", "R3"):
        shutil.copytree(char_run, world / name)
    (world / "R3" / "notes.txt").write_text("my notes on this run", encoding="utf-8")
    write_char_vocab(world / "W" / "vocab")
    (world / "F" / "sub").mkdir(parents=True)
    (world / "F" / "marker.txt").write_text("mine", encoding="utf-8")
    (world / "F" / "sub" / "deep.txt").write_text("also mine", encoding="utf-8")
    write_literal(world / "stats.txt", TINY_ENTRIES)
    return world


@pytest.fixture
def world(world_template, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "world"
    shutil.copytree(world_template, folder, symlinks=True)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_and_nothing_changes(world, world_template, case):
    _, command, *fragments = case
    before = snapshot(world.parent)
    assert_user_error(invoke(*command.format(elsewhere=world_template).split()), *fragments)
    assert snapshot(world.parent) == before


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
