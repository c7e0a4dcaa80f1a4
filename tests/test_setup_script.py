"""scripts/setup.sh with stand-ins for apt-get, dpkg-query and sudo on PATH: what it asks apt-get to do."""

import os
import subprocess
import sys
from pathlib import Path

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"


def stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def test_apt_get_waits_for_another_package_manager(tmp_path):
    """Another apt-get or dpkg holding the lock (an unattended upgrade at boot) is waited for, up to 10 minutes, with
    apt-get's own lock timeout, and said once; without it apt-get gives up at once and so does the set-up."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "apt-get-calls"
    stand_in(bin_, "apt-get", f'echo "$*" >> {calls}')
    stand_in(bin_, "dpkg-query", "exit 1")  # every system package missing
    stand_in(bin_, "sudo", 'exec "$@"')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stand_in(venv / "bin", "python", "exit 0")  # a virtual environment already there
    (venv / ".bvvtok-installed").touch()  # newer than pyproject.toml: nothing for pip to do
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}", "VENV": str(venv), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text(encoding="utf-8").splitlines()
    assert [next(w for w in line.split() if w in ("update", "install")) for line in lines] == ["update", "install"]
    for line in lines:
        assert "-o DPkg::Lock::Timeout=600" in line, line
    assert result.stdout.count("waiting up to 10 minutes") == 1, result.stdout
