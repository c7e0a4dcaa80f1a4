"""Changing a folder all at once: a whole new folder swapped in, or several files of one replaced together.

A killed command must leave the old state or the new one, never a mix that looks complete:
- `replace_folder`: the new folder is assembled under a temporary name beside the old one,
  then the two are exchanged in one `renameat2(RENAME_EXCHANGE)` (Linux); where the file
  system lacks it, the old one is renamed aside first, and `recover` puts it back if the
  process died between the two renames.
- `Update`: new files (and subfolders) are written into a hidden staging folder inside the
  folder; then a journal naming them (and the old files the update drops) is written (one
  rename, so it exists whole or not at all), the dropped ones are moved into the staging
  folder, the new ones into place, the journal removed. Whoever finds a journal later
  finishes the moves (`recover`): everything it names was complete before it was written.
Both run under the output's writer lock (bvvtok.lock), which is also when `recover`
removes what dead writers left.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bvvtok.files import MANIFEST_NAME, TEMP, make_temp, remove, stale_temps, write_errors
from bvvtok.lock import writer_lock
from bvvtok.manifest import dump_json, manifest_of, write_json

JOURNAL = ".bvvtok-commit.json"
STAGING = "staging"  # the staging folder is `.staging.tmp-PID-XXXXXXXX`
REPLACED = ".replaced"  # inside it, subfolders that staged ones replaced
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the platform or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def replace_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block succeeds, it takes the place of `out` (made or replaced)."""
    with write_errors(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp(out.parent, out.name, folder=True)
    try:
        with write_errors(out, unwritable=False):
            yield tmp
        if not out.exists():
            os.rename(tmp, out)
        elif _exchange(tmp, out):
            remove([tmp])  # now the old folder
        else:
            old = make_temp(out.parent, out.name, kind="old", folder=True)
            os.rename(out, old / "x")  # not over `old` itself: rename cannot replace a folder with another
            os.rename(tmp, out)
            remove([old])
    finally:
        remove([tmp])


class Update:
    """Files and subfolders of an existing folder replaced together with its manifest; see the module's docstring.

        update = Update(folder)
        write(update.new("model.safetensors"))
        update.commit({"run": {...}})

    What is new is written into a hidden staging folder inside `folder`, under its final name.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.staging: Path | None = None
        self.dropped: list[str] = []

    def _staging(self) -> Path:
        if self.staging is None:
            with write_errors(self.folder):
                self.staging = make_temp(self.folder, STAGING, folder=True)
        return self.staging

    def new(self, name: str, folder: bool = False) -> Path:
        """Where to write what becomes `name` at commit (made empty, for a subfolder)."""
        path = self._staging() / name
        if folder:
            path.mkdir()
        return path

    def drop(self, name: str) -> None:
        """Have the folder's `name` gone at commit (a file the new state does not have: a substrate without codes)."""
        self.dropped.append(name)

    def commit(self, manifest: dict[str, Any] | None = None, known: dict[str, str] | None = None) -> dict[str, Any] | None:
        """Move everything staged into place, with a new manifest (hashing the top-level files) when given."""
        staging = self._staging()
        staged = sorted(p.name for p in staging.iterdir() if p.name != MANIFEST_NAME)
        written = None
        if manifest is not None:
            kept = (p for p in self.folder.iterdir() if p.is_file() and _is_kept(p.name) and p.name not in self.dropped)
            files = {p.name: p for p in kept}
            files.update({name: staging / name for name in staged if (staging / name).is_file()})
            written = manifest_of(files, manifest, known)
            dump_json(staging / MANIFEST_NAME, written)
            staged.append(MANIFEST_NAME)  # last: it vouches for the rest
        with write_errors(self.folder, unwritable=False):
            write_json(self.folder / JOURNAL, {"staging": staging.name, "names": staged, "dropped": self.dropped})
        _finish(self.folder)
        self.staging, self.dropped = None, []
        return written

    def discard(self) -> None:
        if self.staging is not None:
            remove([self.staging])
            self.staging = None


def _is_kept(name: str) -> bool:
    return name not in (MANIFEST_NAME, JOURNAL) and not TEMP.fullmatch(name)


def _finish(folder: Path) -> None:
    """Do the renames a journal lists (again, if a process died halfway: each step can be repeated), then drop it."""
    journal = json.loads((folder / JOURNAL).read_text(encoding="utf-8"))
    staging = folder / journal["staging"]
    for name in journal.get("dropped", []):  # first: the new manifest never sits beside a file it does not list
        if (folder / name).exists():
            (staging / REPLACED).mkdir(exist_ok=True)
            os.rename(folder / name, staging / REPLACED / name)
    for name in journal["names"]:
        source, target = staging / name, folder / name
        if not source.exists():
            continue  # moved before
        if source.is_dir() and target.exists():
            (staging / REPLACED).mkdir(exist_ok=True)
            os.rename(target, staging / REPLACED / name)
        os.replace(source, target)
    remove([staging])
    (folder / JOURNAL).unlink()


def recover(out: Path) -> None:
    """Under `out`'s writer lock: finish a commit a dead process left, put back a folder renamed aside,
    and remove the temporaries of dead writers beside and inside `out`."""
    if not out.exists():
        aside = [p for p in stale_temps(out.parent, of=out.name, held=True) if ".old-" in p.name and (p / "x").is_dir()]
        if aside:
            os.rename(max(aside, key=lambda p: p.stat().st_mtime) / "x", out)
    remove(stale_temps(out.parent, of=out.name, held=True))
    if out.is_dir():
        if (out / JOURNAL).is_file():
            _finish(out)
        remove(stale_temps(out, held=True))


def recover_for_reading(folder: Path) -> None:
    """Before reading `folder`: finish a commit a dead writer left (a live writer's is left to it)."""
    if not (folder / JOURNAL).is_file():
        return
    real = Path(os.path.realpath(folder))
    with contextlib.suppress(Exception):  # read-only media, or a writer at work: read what is there
        with writer_lock(real):
            recover(real)
