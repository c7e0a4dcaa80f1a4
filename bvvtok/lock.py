"""One writer per output: an advisory lock beside the output, held for the whole command.

The lock is `flock` on `.NAME.lock` next to `NAME`, so the operating system releases it
when the process dies, however it dies; a second writer gets a one-line error at once
(or, for caches, waits). The lock file is removed on release. A process that opened
it just before can then hold a lock on a file that is no longer there: after locking,
the file's identity is compared with what the path names now, and on a mismatch
it tries again. Locks are re-entrant within a process, so a library function can
claim what the command calling it already claimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bvvtok.errors import BvvtokError
from bvvtok.files import write_errors


@dataclass
class _Held:
    fd: int
    path: Path
    count: int


_held: dict[Path, _Held] = {}


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def holds(target: Path) -> bool:
    """Whether this process holds the writer lock of `target` (a resolved path)."""
    return target in _held


def _open_locked(path: Path, wait: bool) -> int | None:
    """A descriptor of `path` holding its lock, or None when another process holds it (and not `wait`)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file as we opened it: lock the one there now


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f" (pid {int(path.read_text(encoding='ascii'))})"
    return ""


@contextlib.contextmanager
def writer_lock(target: Path, wait: bool = False) -> Iterator[None]:
    """Hold the writer lock of `target` (a resolved path) for the block; refuse if another process holds it."""
    held = _held.get(target)
    if held is not None:
        held.count += 1
        try:
            yield
        finally:
            held.count -= 1
        return
    path = lock_path(target)
    with write_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path, wait)
    if fd is None:
        raise BvvtokError(f"another bvvtok process{_holder(path)} is writing {target}; wait for it to finish or choose another path")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    _held[target] = _Held(fd, path, 1)
    try:
        yield
    finally:
        del _held[target]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked: whoever opened it meanwhile sees it is gone, and retries
        os.close(fd)
