"""A command killed at any moment leaves the old folder or the new one, and the next command carries on.

Each test lists the moments at which the command changes its output (tests/kill_at.py, in a trace run),
then, in a fresh copy each time, SIGKILLs it before each of them in turn and checks what is left: after
the recovery that every later bvvtok command starts with, the folder is exactly the old one or exactly
the new one, and running the command again succeeds and leaves no temporaries behind.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snapshot, write_literal

from bvvtok.files import MANIFEST_NAME
from bvvtok.output import claim
from bvvtok.substrate.verify import verify

KILL_AT = Path(__file__).with_name("kill_at.py")


def bvvtok(stop: int, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`bvvtok ARGS` in a new process, SIGKILLed before its `stop`-th step (0: never)."""
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(KILL_AT), str(stop), *map(str, args)], capture_output=True, text=True, env=env)


def moments(*args, env: dict | None = None) -> list[str]:
    """The steps of an uninterrupted run, in order (it must succeed)."""
    done = bvvtok(0, *args, env=env)
    assert done.returncode == 0, done.stderr
    return [line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.startswith("moment ")]


def state(folder: Path) -> dict[str, str] | None:
    """Every entry under `folder` (None if there is no folder)."""
    return snapshot(folder) if folder.is_dir() else None


def recovered(folder: Path) -> dict[str, str] | None:
    """The folder as the next command sees it (claiming it runs the recovery)."""
    with claim(folder):
        pass
    return state(folder)


def leftovers(parent: Path) -> list[str]:
    """Hidden entries: bvvtok's temporaries, lock files and journals (none may outlive a successful command)."""
    return sorted(p.relative_to(parent).as_posix() for p in parent.rglob(".*"))


def killed(stop: int, *args, env: dict | None = None) -> None:
    result = bvvtok(stop, *args, env=env)
    assert result.returncode == -signal.SIGKILL, f"not killed at moment {stop}: {result.returncode} {result.stderr}"


@pytest.mark.parametrize("exchange", ["exchange", "rename aside"])
def test_build_vocab_replacing_a_folder(tmp_path, exchange):
    from conftest import TINY_ENTRIES

    env = {"KILL_AT_NO_EXCHANGE": "1"} if exchange == "rename aside" else {}
    old_stats = write_literal(tmp_path / "old.txt", TINY_ENTRIES)
    new_stats = write_literal(tmp_path / "new.txt", [{**TINY_ENTRIES[0], "top_ngrams": {2: [("ab", 3)], 3: [("abc", 2)]}}])
    reference = tmp_path / "reference"
    assert bvvtok(0, "build-vocab", "--ngrams", old_stats, "--out", reference / "old").returncode == 0
    shutil.copytree(reference / "old", reference / "new")  # the trace replaces a folder, as the killed runs do
    steps = moments("build-vocab", "--ngrams", new_stats, "--out", reference / "new", "--force", env=env)
    old, new = state(reference / "old"), state(reference / "new")
    assert old != new
    for stop in range(1, len(steps) + 1):
        work = tmp_path / f"at-{stop}"
        shutil.copytree(reference / "old", work / "vocab")
        args = ("build-vocab", "--ngrams", new_stats, "--out", work / "vocab", "--force")
        killed(stop, *args, env=env)
        assert recovered(work / "vocab") in (old, new), f"moment {stop}: {steps[stop - 1]}"
        assert bvvtok(0, *args).returncode == 0
        assert state(work / "vocab") == new
        assert leftovers(work) == []


def test_embed_into_the_vocabulary_folder(char_substrate, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(char_substrate, reference / "old")
    shutil.copytree(char_substrate, reference / "new")
    args = ("--method", "bits", "--bits", "32", "--seed", "3", "--force")
    steps = moments("embed", reference / "new", *args)
    old, new = state(reference / "old"), state(reference / "new")
    assert old != new
    for stop in range(1, len(steps) + 1):
        work = tmp_path / f"at-{stop}" / "substrate"
        shutil.copytree(reference / "old", work)
        killed(stop, "embed", work, *args)
        assert recovered(work) in (old, new), f"moment {stop}: {steps[stop - 1]}"
        assert all(check.ok for check in verify(work))
        assert bvvtok(0, "embed", work, *args).returncode == 0
        assert state(work) == new
        assert leftovers(work.parent) == []


def weights(run: Path) -> str:
    return hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()


def test_train_killed_at_any_moment_resumes_to_the_same_weights(char_substrate, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the cat saw the dog {i}. "}) + "\n" for i in range(200)), encoding="utf-8")
    env = {"BVVTOK_CACHE_DIR": str(tmp_path / "cache")}
    shape = ("--d-model", "32", "--n-layer", "1", "--n-head", "4", "--context", "16", "--batch-size", "4",
             "--steps", "4", "--eval-every", "2", "--warmup", "1", "--device", "cpu")  # fmt: skip

    def train(run: Path, *extra: str) -> tuple[str, ...]:
        return ("train", "--substrate", char_substrate, "--corpus", corpus, "--out", run, *shape, *extra)

    assert bvvtok(0, "prepare", "--substrate", char_substrate, "--corpus", corpus, env=env).returncode == 0  # cached
    steps = moments(*train(tmp_path / "uninterrupted"), env=env)
    expected = weights(tmp_path / "uninterrupted")
    # a sample of moments (each costs two runs): in the start of the run, and around the second checkpoint's commit
    journal = [i for i, step in enumerate(steps, 1) if "bvvtok-commit" in step]
    assert len(journal) == 2, steps
    start = next(i for i, step in enumerate(steps, 1) if step.startswith("rename .uninterrupted"))
    chosen = [start, journal[1] - 1, journal[1], journal[1] + 1, journal[1] + 3, len(steps)]
    for stop in chosen:
        run = tmp_path / f"at-{stop}"
        killed(stop, *train(run), env=env)
        if (run / MANIFEST_NAME).is_file() and recovered(run) is not None:
            manifest = json.loads((run / MANIFEST_NAME).read_text(encoding="utf-8"))
            checkpoint = run / "checkpoint" / "state.json"
            logged = json.loads(checkpoint.read_text(encoding="utf-8"))["step"] if checkpoint.is_file() else 0
            assert manifest["run"]["step"] == logged, f"moment {stop}: {steps[stop - 1]}"
        resumed = bvvtok(0, *train(run, *(["--resume"] if run.is_dir() else [])), env=env)
        assert resumed.returncode == 0, f"moment {stop}: {steps[stop - 1]}: {resumed.stderr}"
        assert weights(run) == expected, f"moment {stop}: {steps[stop - 1]}"
        assert leftovers(run.parent) == []
