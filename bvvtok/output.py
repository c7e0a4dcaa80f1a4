"""What a command may write: the rules of `--out` and `--force`, checked before any work.

- `--out` is never one of the command's inputs, a folder holding one, or a folder inside one.
- An existing folder is replaced only with `--force`, and only when bvvtok wrote it: it
  has a manifest, and everything in it is a file the manifest lists (or a part bvvtok
  knows, such as a run's `checkpoint/` and `tensorboard/`). Anything else there is the user's: refused.
  Never the current directory, a folder above it, or a file system's root.
- ... and only when it is of a kind the command may replace (`REPLACES`, by the manifest where a
  link points): `train --force` replaces a run, never a vocabulary or an export.
- A symbolic link given as `--out` is followed: the output is written where it points.
- One writer per output: `claim` holds the writer lock (bvvtok.lock) for the whole block,
  and first finishes or removes what a killed writer left there (bvvtok.commit.recover).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from fnmatch import fnmatch
from pathlib import Path

from bvvtok.commit import recover, replace_folder
from bvvtok.errors import BvvtokError, option
from bvvtok.files import MANIFEST_NAME, TEMP
from bvvtok.lock import writer_lock
from bvvtok.manifest import describe_kind, folder_kind, read_manifest

# Subfolders bvvtok writes inside its folders, and the names (fnmatch patterns) they may hold: a run's checkpoint, and
# the logs of its trackers (bvvtok.lm.tracking), named as TensorBoard and wandb name them.
KNOWN_SUBFOLDERS = {
    "checkpoint": {"model.safetensors", "optimizer.pt", "state.json", "optimizer"},
    "tensorboard": {"events.out.tfevents.*"},
    "wandb": {"run_id.txt", "run-*", "offline-run-*", "latest-run", "debug.log", "debug-internal.log"},
}


# The kind of folder each writer writes (bvvtok.manifest.KINDS) -> the kinds its `--force` may replace, and how to say
# so. A substrate is a vocabulary folder with an embedding: a new vocabulary may replace it (the old embedding was
# of the old vocabulary). A run and a mixture are both model folders, read by the same commands.
REPLACES = {
    "vocab": (("vocab", "substrate"), "a vocabulary or substrate folder"),
    "substrate": (("substrate",), "a substrate folder"),
    "tokens": (("tokens",), "a token folder"),
    "run": (("run", "mixture"), "a run or mixture folder"),
    "mixture": (("run", "mixture"), "a run or mixture folder"),
    "hf-export": (("hf-export",), "a Hugging Face export folder"),
    "experiment": (("experiment",), "an experiment folder"),
}


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def check_target(out: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output path that is a file system's root, an input, holds one, or lies inside one."""
    target = real(out)
    if target == Path(target.anchor):
        raise BvvtokError(f"{option('out', out)} is the root of a file system; choose a new folder")
    for given in inputs:
        source = real(given)
        if target == source:
            raise BvvtokError(f"{option('out', out)} is the input {given}; write the output to another folder")
        if target in source.parents:
            raise BvvtokError(f"{option('out', out)} holds the input {given}; write the output to another folder")
        if source in target.parents:
            raise BvvtokError(f"{option('out', out)} is inside the input {given}; write the output outside it")


def foreign_entries(folder: Path) -> list[str]:
    """What in `folder` bvvtok did not write: everything, without a readable manifest."""
    try:
        listed = read_manifest(folder).get("files")
    except BvvtokError:
        listed = None
    entries = sorted(p.name for p in folder.iterdir())
    if not isinstance(listed, dict):
        return entries
    foreign = []
    for name in entries:
        path = folder / name
        if name == MANIFEST_NAME or TEMP.fullmatch(name) or (name in listed and path.is_file() and not path.is_symlink()):
            continue
        known = KNOWN_SUBFOLDERS.get(name)
        if known is not None and path.is_dir() and not path.is_symlink():
            inside = [p.name for p in path.iterdir()
                      if not any(fnmatch(p.name, k) for k in known) and not TEMP.fullmatch(p.name)]  # fmt: skip
            foreign += [f"{name}/{n}" for n in sorted(inside)]
            continue
        foreign.append(name)
    return foreign


def check_kind(out: Path, kind: str, given: Path | None = None) -> None:
    """Refuse an existing bvvtok folder (where a link points) that a command writing `kind` may not replace;
    `given`: `out` as the user named it, for the message."""
    target = real(out)
    if not (target / MANIFEST_NAME).is_file():
        return  # not bvvtok's: `foreign_entries` decides
    found = folder_kind(target)
    kinds, said = REPLACES[kind]
    if found not in kinds:
        raise BvvtokError(f"{option('out', given or out)} is {describe_kind(found)}; {option('force', True)} replaces only "
                          f"{said}: choose another {option('out')}")


def check_replace(out: Path, force: bool, kind: str, given: Path | None = None) -> None:
    """Refuse to replace an existing non-empty folder without `force`, one that bvvtok did not write, or one of
    another kind than `kind`, the kind the command writes (see REPLACES). `given`: `out` as the user named it."""
    if out.exists() and not out.is_dir():
        raise BvvtokError(f"{option('out', out)} exists and is not a folder; choose another path")
    if not out.is_dir() or not any(out.iterdir()):
        return
    here = Path.cwd().resolve()
    if real(out) == here or real(out) in here.parents:
        what = "the current directory" if real(out) == here else f"a folder above the current directory ({here})"
        raise BvvtokError(f"{option('out', out)} is {what}; bvvtok will not replace it: choose a new folder")
    check_kind(out, kind, given)
    foreign = foreign_entries(out)
    if not force:
        what = "a bvvtok folder" if not foreign else "a folder holding files bvvtok did not write"
        hint = f"pass {option('force', True)} to replace it or choose another path" if not foreign else "choose another path"
        raise BvvtokError(f"{option('out', out)} is {what}; {hint}")
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise BvvtokError(f"{option('out', out)} holds {shown}, which bvvtok did not write; {option('force', True)} replaces only bvvtok's own "
                          "folders: move those away or choose another path")  # fmt: skip


@contextlib.contextmanager
def claim(out: Path, inputs: Iterable[Path] = (), wait: bool = False) -> Iterator[Path]:
    """Hold `out` for writing during the block: the path rules above, then the writer lock and the recovery
    of what a killed writer left. Yields where to write (a link's target). Re-entrant in one process."""
    check_target(out, inputs)
    target = real(out)
    with writer_lock(target, wait):
        recover(target)
        yield target


@contextlib.contextmanager
def new_output(out: Path, force: bool = False, inputs: Iterable[Path] = (), *, kind: str) -> Iterator[Path]:
    """`claim`, and check at once that `out` may be replaced by a folder of `kind`: for a command that works a while
    before it writes."""
    with claim(out, inputs) as target:
        check_replace(target, force, kind, out)
        yield target


@contextlib.contextmanager
def atomic_folder(out: Path, force: bool = False, inputs: Iterable[Path] = (), *, kind: str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `out` (see `check_replace`) in one step."""
    with new_output(out, force, inputs, kind=kind) as target:
        with replace_folder(target) as tmp:
            yield tmp
            check_replace(target, force, kind, out)  # again: nothing of the user's may have arrived since
