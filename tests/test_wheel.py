"""The wheel carries its data: built, installed apart from the checkout, it embeds with the fast glyph path and names its fonts.

A non-editable install once left out the font table and the fast-path proof (then in the checkout's
fonts/): the direct FreeType path silently turned off and manifests said "unifont.otf" instead of
"unifont.otf 15.0.01". Here the wheel is built offline from a copy of the sources and installed into
a fresh venv, which runs its own `bvvtok` from a temporary current directory. The venv borrows the
dependencies of this one (a path line, offline: no index is reached); this venv's editable install
of the checkout is not among them (asserted: bvvtok is imported from the fresh venv).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
DATA = ["bvvtok/substrate/data/known_fonts.json", "bvvtok/substrate/data/plain_glyphs.json"]

pytestmark = pytest.mark.skipif(not UNIFONT.is_file(), reason=f"GNU Unifont not found at {UNIFONT}")

# `python -m bvvtok embed ...` as it is (runpy runs bvvtok/__main__.py), watching the proof lookups of the glyph
# renderer: each (font sha256, size) it asked for and how many proven ranges it got (None: Pillow draws them all).
DRIVER = """
import json, runpy, sys
from pathlib import Path
import bvvtok
from bvvtok.substrate import fonts, glyphs, plain_glyphs

asked = []
real = glyphs.plain_ranges
def watched(sha256, size, *args, **kwargs):
    ranges = real(sha256, size, *args, **kwargs)
    asked.append([sha256, size, None if ranges is None else len(ranges)])
    return ranges
glyphs.plain_ranges = watched
where = {"bvvtok": bvvtok.__file__, "fonts_dir": fonts.FONTS_DIR and str(fonts.FONTS_DIR),
         "known_fonts": str(fonts.KNOWN_FONTS), "table": str(plain_glyphs.TABLE)}
sys.argv = ["bvvtok", *sys.argv[1:]]
try:
    runpy.run_module("bvvtok", run_name="__main__", alter_sys=True)
finally:
    Path("watched.json").write_text(json.dumps({"where": where, "asked": asked}))
"""


def sysconfig_paths() -> list[str]:
    """Where this venv's dependencies are installed (a path line adds them; the .pth files among them, this venv's
    editable install of the checkout included, are not run)."""
    import sysconfig

    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_embeds_with_the_fast_path_and_names_its_fonts(tmp_path, tiny_stats):
    pytest.importorskip("setuptools", reason="the offline wheel build needs setuptools in this venv (the dev extra)")
    from bvvtok.substrate.fonts import resolve_chain
    from bvvtok.substrate.plain_glyphs import plain_ranges

    chain = [f for f in resolve_chain() if f.path.parent == UNIFONT.parent]
    described = [f.describe() for f in chain]
    if not chain or "version" not in described[0]:
        pytest.skip(f"the Unifont at {UNIFONT} is not one bvvtok knows (bvvtok/substrate/data/known_fonts.json)")
    if plain_ranges(chain[0].sha256, 32) is None:
        pytest.skip("the table proves no fast path for these library versions here either: run scripts/plain_glyphs.py")

    # the sources as a fresh checkout would give them: no build/ or egg-info of earlier builds to leak into the wheel
    src = tmp_path / "src"
    shutil.copytree(ROOT / "bvvtok", src / "bvvtok", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BVVTOK_FONT", "BVVTOK_CACHE_DIR")}
    pip_env = {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    pip = [sys.executable, "-m", "pip", "-q"]
    run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist")], tmp_path, pip_env)
    (wheel,) = (tmp_path / "dist").glob("bvvtok-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert all(name in names for name in DATA), f"{wheel.name} lacks {[n for n in DATA if n not in names]}"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)], tmp_path, pip_env)
    python = venv / "bin" / "python"
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "borrowed_dependencies.pth").write_text("\n".join(sysconfig_paths()) + "\n", encoding="utf-8")
    here = tmp_path / "run"  # the current directory: neither the checkout nor the install
    here.mkdir()
    (here / "driver.py").write_text(DRIVER, encoding="utf-8")
    env.update(BVVTOK_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="200")  # a cold glyph cache

    run([str(venv / "bin" / "bvvtok"), "build-vocab", "--ngrams", str(tiny_stats), "--out", "vocab"], here, env)
    shown = run([str(python), "driver.py", "embed", "vocab", "--dim", "16"], here, env)
    watched = json.loads((here / "watched.json").read_text(encoding="utf-8"))

    where = {k: v and Path(v) for k, v in watched["where"].items()}
    assert where["bvvtok"].is_relative_to(site), f"bvvtok imported from {where['bvvtok']}, not the installed wheel"
    assert where["known_fonts"].is_relative_to(site) and where["table"].is_relative_to(site)
    assert where["fonts_dir"] is None  # no checkout around an installed wheel: no fonts/ folder to look in

    # the fast path was on: the renderer asked for the proof of every font it drew with, and got ranges
    assert watched["asked"], "no glyph was rendered: the cache was not cold"
    asked = {(sha, size): n for sha, size, n in watched["asked"]}
    assert asked.get((chain[0].sha256, 32)), f"no proof for Unifont at 32 px in the installed wheel: {asked}"
    assert all(asked.values()), f"fonts drawn without a proof: {asked}"

    manifest = json.loads((here / "vocab" / "bvvtok.json").read_text(encoding="utf-8"))
    assert manifest["substrate"]["fonts"] == described  # with names and versions, as from the checkout
    named = ", ".join(f"{f['file']} {f['version']}" for f in described)  # "unifont.otf 15.0.01, ..."
    assert named in shown
    assert named in run([str(venv / "bin" / "bvvtok"), "info", "vocab"], here, env)
