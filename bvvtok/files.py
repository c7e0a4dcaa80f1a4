"""Atomic output: nothing half-written, nothing overwritten without consent.

Every artifact bvvtok writes is first built under a temporary name next to its
final place (same file system, so the final step is one `rename`), then moved in.
An interrupted or failed run leaves at most a hidden temporary entry, never a
folder or file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bvvtok.errors import BvvtokError

MANIFEST_NAME = "bvvtok.json"


def umask() -> int:
    """The process's umask (read without changing it for longer than an instant)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where reusable intermediate results live: $BVVTOK_CACHE_DIR, else $XDG_CACHE_HOME/bvvtok, else ~/.cache/bvvtok."""
    explicit = os.environ.get("BVVTOK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bvvtok"


def distinct_names(paths: list[Path]) -> list[str]:
    """Names to show for distinct paths: the last part, lengthened by parent folders where two would be equal."""
    names = []
    for p in paths:
        depth = 1
        while any(q != p and q.parts[-depth:] == p.parts[-depth:] for q in paths):
            depth += 1
        names.append(str(Path(*p.parts[-depth:])))
    return names


def check_png_path(out: Path) -> None:
    if Path(out).suffix.lower() != ".png":
        raise BvvtokError(f"{out} is not a .png path; give a .png path")


def is_bvvtok_folder(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse to replace an existing, non-empty folder unless `force` is set."""
    if out.exists() and not out.is_dir():
        raise BvvtokError(f"--out {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        what = "a bvvtok folder" if is_bvvtok_folder(out) else "a non-empty folder that bvvtok did not write"
        raise BvvtokError(f"--out {out} is {what}; pass --force to replace it or choose another path")


@contextlib.contextmanager
def atomic_folder(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `out` in one rename."""
    check_output_folder(out, force)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes it private; the result should not be
    except OSError as e:
        raise BvvtokError(f"cannot create {out}: {e.strerror}; choose a writable --out") from e
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_output_file(out: Path, force: bool) -> None:
    if out.is_dir():
        raise BvvtokError(f"--out {out} is a folder; give a file path")
    if out.exists() and not force:
        raise BvvtokError(f"--out {out} exists; pass --force to replace it or choose another path")


@contextlib.contextmanager
def atomic_file(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `out` in one rename."""
    check_output_file(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
        os.chmod(name, 0o666 & ~umask())
    except OSError as e:
        raise BvvtokError(f"cannot write {out}: {e.strerror}; choose a writable --out") from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
