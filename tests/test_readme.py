"""The README's snippets run as written: the library snippet in an empty folder, the published-tokenizer commands
with the published statistics (skipped where ../shared/reference is absent)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "ngrams"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.DOTALL | re.MULTILINE)


def environment(folder: Path) -> dict[str, str]:
    """This Python's bvvtok first on PATH, and caches inside the throwaway folder."""
    env = {**os.environ, "BVVTOK_CACHE_DIR": str(folder / "cache"), "COLUMNS": "120"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def test_library_snippet_runs_in_an_empty_folder(tmp_path):
    (snippet,) = blocks("python")
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=environment(tmp_path),
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()
    assert printed[0] == "[104, 55661, 32, 59257, 32, 56776]"  # "hello the test", offline vocabulary
    assert printed[1] == "(65536, 256)"  # as the snippet's comment says
    losses = [float(x) for x in printed[2].strip("[]").split(",")]
    assert losses[0] == pytest.approx(11.09, abs=0.1) and losses[-1] < 3  # from a uniform guess to the repeated text
    assert printed[3].startswith("The cat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus.txt", "run", "substrate-256", "vocab-65k"]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the published statistics (../shared/reference) are not here")
def test_published_tokenizer_commands_give_the_ids_they_promise(tmp_path):
    (commands,) = [b for b in blocks("sh") if "--ngrams" in b]
    for name in ("ngrams-2-3.txt", "ngrams-2-3-4-5.txt", "intersection.txt"):
        shutil.copyfile(REFERENCE / name, tmp_path / name)
    for line in commands.splitlines():
        command, _, promise = line.partition("#")
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=environment(tmp_path), capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if promise.strip().startswith("["):  # the ids the comment promises are the ids printed
            assert f"ids: {promise.strip()}" in done.stdout, done.stdout
    assert (tmp_path / "artifacts" / "bvv241-2-3" / "embeddings.safetensors").is_file()
    assert (tmp_path / "artifacts" / "bvv241-max" / "tokenizer.json").is_file()
