"""One writer per output, and nothing left behind by writers that died.

A second process that writes the same output gets a one-line error at once (a cache waits instead);
the operating system releases the lock of a killed writer; the next command that writes an output
removes what dead writers left beside it and inside it.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_ENTRIES, assert_user_error, invoke, write_literal

from bvvtok.errors import BvvtokError
from bvvtok.lock import lock_path, writer_lock
from bvvtok.output import claim

KILL_AT = Path(__file__).with_name("kill_at.py")
HOLD = "import sys; from pathlib import Path; from bvvtok.output import claim\n" \
       "with claim(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()"  # fmt: skip


class Holder:
    """Another process holding `out` for writing until `release` (or `kill`)."""

    def __init__(self, out: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline() == "held\n"

    def release(self) -> None:
        self.process.communicate("")
        assert self.process.returncode == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate()


@pytest.fixture
def stats(tmp_path) -> Path:
    return write_literal(tmp_path / "stats.txt", TINY_ENTRIES)


def test_a_second_writer_is_refused_and_named(tmp_path, stats):
    out = tmp_path / "vocab"
    holder = Holder(out)
    try:
        result = invoke("build-vocab", "--ngrams", stats, "--out", out, "--force")
        assert_user_error(result, f"pid {holder.process.pid}", "is writing", str(out))
        assert not out.exists()
    finally:
        holder.release()
    assert invoke("build-vocab", "--ngrams", stats, "--out", out).exit_code == 0
    assert not lock_path(out).exists()


def test_the_lock_of_a_killed_writer_is_released(tmp_path, stats):
    out = tmp_path / "vocab"
    Holder(out).kill()
    assert lock_path(out).exists()  # the file stays, its lock does not
    assert invoke("build-vocab", "--ngrams", stats, "--out", out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.txt", "vocab"]


def test_claims_nest_within_a_process(tmp_path):
    out = tmp_path / "x"
    with claim(out):
        with claim(out):
            assert lock_path(out).exists()
        assert lock_path(out).exists()
    assert not lock_path(out).exists()


def test_a_cache_waits_for_its_writer(tmp_path):
    out = tmp_path / "cache-entry"
    holder = Holder(out)
    waiting = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; from bvvtok.lock import writer_lock\n"
                                "with writer_lock(Path(sys.argv[1]), wait=True): print('got it')", str(out)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    with pytest.raises(BvvtokError, match="is writing"):
        with writer_lock(out):
            pass
    holder.release()
    assert waiting.communicate()[0] == "got it\n"


def test_two_trainings_into_one_folder(char_substrate, tmp_path):
    """The first is paused at its first checkpoint; the second, even with --force, is refused; the first completes."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat saw the dog. " * 200, encoding="utf-8")
    run = tmp_path / "run"
    args = ["train", "--substrate", char_substrate, "--corpus", corpus, "--out", run, "--steps", "2", "--eval-every", "2",
            "--d-model", "32", "--n-layer", "1", "--n-head", "4", "--context", "16", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "BVVTOK_CACHE_DIR": str(tmp_path / "cache")}
    traced = [str(a) if a != run else str(tmp_path / "trace") for a in args]
    trace = subprocess.run([sys.executable, KILL_AT, "0", *traced], capture_output=True, text=True, env=env)
    assert trace.returncode == 0, trace.stderr
    commit = next(i for i, line in enumerate(trace.stderr.splitlines(), 1) if "bvvtok-commit" in line)
    first = subprocess.Popen([sys.executable, KILL_AT, str(-commit), *map(str, args)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert "paused\n" in iter(first.stdout.readline, "")  # after what train prints first
    second = invoke(*args, "--force")
    assert_user_error(second, "is writing", str(run))
    out, err = first.communicate("")
    assert first.returncode == 0, err
    assert json.loads((run / "bvvtok.json").read_text(encoding="utf-8"))["run"]["step"] == 2
    assert invoke("generate", run, "--prompt", "the", "--max-new-tokens", "3").exit_code == 0


def test_temporaries_of_dead_writers_are_removed(tmp_path, stats):
    out = tmp_path / "vocab"
    assert invoke("build-vocab", "--ngrams", stats, "--out", out).exit_code == 0
    dead = 2**22 + 12345  # above the default pid_max: no such process
    left = [tmp_path / f".vocab.tmp-{dead}-abcd1234", tmp_path / ".vocab.old-abcd1234",  # the second: bvvtok 0.1's name
            out / f".tokenizer.json.tmp-{dead}-x1y2z3w4", out / f".staging.tmp-{dead}-q1w2e3r4"]  # fmt: skip
    for path in left:
        path.mkdir()
        (path / "inside").write_text("partial", encoding="utf-8")
    unrelated = tmp_path / ".other.tmp-1-abcd1234"  # another output's temporary (a live pid: 1): not ours to remove
    unrelated.mkdir()
    assert invoke("build-vocab", "--ngrams", stats, "--out", out, "--force").exit_code == 0
    assert not any(path.exists() for path in left)
    assert unrelated.exists()


def test_a_folder_killed_between_its_two_renames_is_put_back(tmp_path, stats):
    """Without an atomic exchange, the old folder is renamed aside first: if the process dies then, it comes back."""
    out = tmp_path / "vocab"
    assert invoke("build-vocab", "--ngrams", stats, "--out", out).exit_code == 0
    aside = tmp_path / ".vocab.old-999999-abcdefgh"
    aside.mkdir()
    out.rename(aside / "x")
    with claim(out):
        pass
    assert (out / "tokenizer.json").is_file() and not aside.exists()
