"""A full or read-only disk: a one-line error, exit 2, and the disk as it was (no half-written output, no temporaries).

The disks are real: small tmpfs file systems mounted in a throwaway folder (root only; skipped otherwise),
filled up to the room a case leaves.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_ENTRIES, assert_user_error, invoke, snapshot, write_char_vocab, write_literal


@pytest.fixture
def disk(tmp_path):
    """`make(size_kb, free_kb=None, read_only=False)`: a mounted file system of that size, filled to leave `free_kb`."""
    mounted = []

    def make(size_kb: int, free_kb: int | None = None, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        options = f"size={size_kb}k" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("mounting a small file system (tmpfs) needs root")
        mounted.append(point)
        if free_kb is not None:
            room = shutil.disk_usage(point).free - free_kb * 1024
            with open(point / "filler", "wb") as f:
                f.write(b"\0" * room)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


def test_build_vocab(disk, tmp_path):
    stats = write_literal(tmp_path / "stats.txt", TINY_ENTRIES)
    full = disk(1024)
    assert_user_error(invoke("build-vocab", "--ngrams", stats, "--out", full / "vocab"), "No space left on device")
    assert sorted(p.name for p in full.iterdir()) == []


def test_embed_into_the_vocabulary_folder(disk, char_substrate):
    full = disk(2048)
    shutil.copytree(char_substrate, full / "substrate")
    room = shutil.disk_usage(full).free - 200 * 1024
    (full / "filler").write_bytes(b"\0" * room)
    before = snapshot(full)
    result = invoke("embed", full / "substrate", "--method", "bits", "--bits", "1024", "--force")
    assert_user_error(result, "No space left on device", "free some space")
    assert snapshot(full) == before


@pytest.mark.parametrize("command", [["export", "{run}", "--out", "{full}/out"],
                                     ["combine", "{run}", "{run}", "--out", "{full}/out"],
                                     ["grow", "{run}", "--add-layers", "2", "--out", "{full}/out"]])  # fmt: skip
def test_model_folders(disk, char_run, command):
    full = disk(1024, free_kb=40)
    before = snapshot(full)
    assert_user_error(invoke(*(a.format(run=char_run, full=full) for a in command)), "No space left on device")
    assert snapshot(full) == before


def test_train_is_refused_before_it_starts(disk, char_substrate, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat saw the dog. " * 100, encoding="utf-8")
    args = ["train", "--substrate", char_substrate, "--corpus", corpus, "--steps", "1", "--d-model", "32",
            "--n-layer", "1", "--n-head", "4", "--context", "16"]  # fmt: skip
    full = disk(1024, free_kb=20)
    assert_user_error(invoke(*args, "--out", full / "run"), "not enough disk space", "kB free")
    assert sorted(p.name for p in full.iterdir()) == ["filler"]
    read_only = disk(1024, read_only=True)
    assert_user_error(invoke(*args, "--out", read_only / "run"), "Read-only file system", "choose a writable path")


def test_a_read_only_vocabulary_folder(disk, tmp_path):
    """embed into a vocabulary on a read-only disk: told so, not "no space"."""
    source = write_char_vocab(tmp_path / "vocab")
    read_only = disk(1024, read_only=True)
    result = invoke("embed", source, "--method", "bits", "--bits", "16", "--out", read_only / "out")
    assert_user_error(result, "Read-only file system")
