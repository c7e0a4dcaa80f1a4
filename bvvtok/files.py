"""Atomic file output, hashing, and the temporaries bvvtok leaves when it is killed.

Every file bvvtok writes is first written under a temporary name next to its
final place (same file system, so the final step is one `rename`), then moved in.
A temporary is named `.NAME.tmp-PID-XXXXXXXX` (or `.old-` for what is being
replaced): the name it stands for and the process that made it, so that a later
command can tell its own temporaries from those of a process that died, and
remove the latter (`remove_stale`). Folders are handled by bvvtok.output and
bvvtok.commit on top of this.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError, option

MANIFEST_NAME = "bvvtok.json"
# `.NAME.tmp-PID-RANDOM` (bvvtok 0.1 wrote `.NAME.tmp-RANDOM`, without the PID: kept recognisable)
TEMP = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<pid>\d+)-)?[a-z0-9_]+")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded")


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


def load_tensors(path: Path, fix: str, **kwargs: Any) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU: tensors and plain containers only. A pickle of anything
    else is refused in one line naming `path` and `fix`, not PyTorch's advice to unpickle it anyway; its warnings
    about the pickle are not printed."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol 4 ...": the refusal below says what matters
            return torch.load(path, weights_only=True, map_location="cpu", **kwargs)
    except pickle.UnpicklingError:
        raise BvvtokError(f"{path} holds something other than tensors (a pickled Python object), and bvvtok will not "
                          f"unpickle it; {fix}") from None  # fmt: skip


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


# --- temporaries ---


def make_temp(directory: Path, name: str, kind: str = "tmp", folder: bool = False) -> Path:
    """A new, empty temporary file or folder standing for `directory/name`, readable as the final one would be."""
    prefix = f".{name}.{kind}-{os.getpid()}-"
    if folder:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
        path.chmod(0o777 & ~umask())  # mkdtemp makes it private; the result should not be
    else:
        fd, created = tempfile.mkstemp(prefix=prefix, dir=directory)
        os.close(fd)
        path = Path(created)
        path.chmod(0o666 & ~umask())
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def stale_temps(directory: Path, of: str | None = None, held: bool = False) -> list[Path]:
    """bvvtok's temporaries in `directory` (those standing for `of` only, when given) left by dead processes.

    `held`: the caller holds the writer lock of `of` (or of `directory` itself), so no other
    process writes these: every temporary not this process's is stale, the PID's fate aside.
    """
    found = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = TEMP.fullmatch(entry.name)
        if not match or (of is not None and match["name"] != of):
            continue
        pid = int(match["pid"]) if match["pid"] else None
        if pid == os.getpid():
            continue
        if held or (pid is not None and not pid_alive(pid)):
            found.append(entry)
    return found


def remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


# --- errors of writing ---


def disk_full(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) is a full disk, however the library that hit it said so."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return True
        if any(text in str(seen) for text in DISK_FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def write_errors(out: Path, unwritable: bool = True) -> Iterator[None]:
    """Turn a full disk met while writing `out` into a one-line BvvtokError, and with `unwritable`
    (around the creation of the output's place, where it cannot be a read of something else) a
    read-only or forbidden place too."""
    try:
        yield
    except BvvtokError:
        raise
    except Exception as e:
        if disk_full(e):
            raise BvvtokError(f"cannot write {out}: No space left on device; free some space or choose another path") from None
        if unwritable and isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise BvvtokError(f"cannot write {out}: {e.strerror}; choose a writable path") from None
        raise


# --- single files ---


def bvvtok_folder_around(path: Path) -> Path | None:
    """The innermost bvvtok folder (one with a manifest) that `path` lies in, as given or where links point; None if
    none does. One look per folder above it."""
    path = Path(path)
    for folder in [*path.parents, *Path(os.path.realpath(path)).parents]:  # as given first: the name the user knows
        if is_bvvtok_folder(folder):
            return folder
    return None


def check_output_file(out: Path, force: bool, inputs: Iterable[Path] = (), part: bool = False) -> None:
    """Refuse to replace a folder, an existing file without `force`, or one of the command's inputs; and, unless the
    file is `part` of a bvvtok folder being written, a path inside a bvvtok folder (its manifest would not list it:
    the folder could no longer be proven or replaced, or the file would replace one of the folder's own)."""
    out = Path(out)
    real = Path(os.path.realpath(out))
    for given in inputs:
        source = Path(os.path.realpath(given))
        if real == source or source in real.parents:
            where = "is" if real == source else "is inside"
            raise BvvtokError(f"{out} {where} the input {given}; write the output elsewhere")
    if out.is_dir():
        raise BvvtokError(f"{out} is a folder; give a file path")
    folder = None if part else bvvtok_folder_around(out)
    if folder is not None:
        from bvvtok.manifest import describe_kind, folder_kind  # bvvtok.manifest writes with this module

        kind = describe_kind(folder_kind(folder))
        raise BvvtokError(f"{out} is inside {folder}, {kind} of bvvtok's; write it outside that folder")
    if out.exists() and not force:
        raise BvvtokError(f"{out} exists; pass {option('force', True)} to replace it or choose another path")


@contextlib.contextmanager
def atomic_file(out: Path, force: bool = False, inputs: Iterable[Path] = (), part: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `out` (where a link points, if `out` is one) in one rename.

    `part`: a file bvvtok keeps for itself (of a bvvtok folder it is writing: a manifest, a log, a run's curves; or
    of its cache), not an output of the user's, which is refused inside a bvvtok folder (`check_output_file`)."""
    check_output_file(out, force, inputs, part)
    target = Path(os.path.realpath(out))
    with write_errors(out):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove(stale_temps(target.parent, of=target.name))
        tmp = make_temp(target.parent, target.name)
    try:
        with write_errors(out, unwritable=False):
            yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
