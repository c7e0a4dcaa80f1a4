"""The manifest `bvvtok.json`: what a folder holds, how it was made, and the sha256 and size of every file.

Each pipeline stage (vocabulary, substrate, model) adds its own section; the file
hashes are recomputed whenever the folder is written, so `verify` can tell a
folder that was changed by hand from one bvvtok wrote, and every reader checks the
files it loads against them (`check_files`). No timestamps or absolute paths go in:
the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, atomic_file, sha256_file

MANIFEST_VERSION = 1  # raised when the manifest's meaning changes; verify refuses newer ones


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (beside the final name, then renamed over it)."""
    with atomic_file(path, force=True, part=True) as tmp:
        dump_json(tmp, data)


def _digests(paths: Iterable[Path], known: Mapping[str, str]) -> list[str]:
    with ThreadPoolExecutor() as pool:  # hashlib releases the GIL: large files hash in parallel
        return list(pool.map(lambda p: known.get(p.name) or sha256_file(p), paths))


def manifest_of(files: Mapping[str, Path], manifest: dict[str, Any], known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`manifest` with the sha256 and size of `files` (final name -> where its bytes are now).

    `known`: digests the caller already has (file name -> sha256, taken while writing the file).
    """
    names = sorted(files)
    digests = _digests([files[n] for n in names], {files[n].name: known[n] for n in names if n in (known or {})})
    sizes = {n: files[n].stat().st_size for n in names}
    return {"manifest_version": MANIFEST_VERSION, **manifest, "files": dict(zip(names, digests)), "sizes": sizes}


def write_manifest(folder: Path, manifest: dict[str, Any], known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write bvvtok.json with the sha256 of every other file in the folder (a folder being assembled)."""
    files = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME}
    manifest = manifest_of(files, {k: v for k, v in manifest.items() if k not in ("files", "sizes")}, known)
    write_json(folder / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, or {} for a folder bvvtok did not write."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BvvtokError(f"cannot read {path}: {e}; rebuild the folder") from None
    if not isinstance(manifest, dict):
        raise BvvtokError(f"{path} is not a JSON object; rebuild the folder")
    return manifest


def file_problems(folder: Path, manifest: dict[str, Any], hashed: Iterable[str] = ()) -> list[str]:
    """How the folder differs from its manifest: missing files, other sizes, and other sha256 among `hashed`
    (the files the caller reads anyway: hashing the rest would cost a read of the whole folder)."""
    files, sizes = manifest.get("files"), manifest.get("sizes") or {}
    if not isinstance(files, dict) or not files:
        return [f"{MANIFEST_NAME} lists no files"]
    missing = [name for name in files if not (folder / name).is_file()]
    resized = [n for n, size in sizes.items() if n in files and n not in missing and (folder / n).stat().st_size != size]
    to_hash = [n for n in hashed if n in files and n not in missing and n not in resized]
    changed = [n for n, d in zip(to_hash, _digests([folder / n for n in to_hash], {})) if d != files[n]]
    problems = [f"{name} is missing" for name in missing]
    problems += [f"{name} has another size" for name in resized]
    problems += [f"{name} changed" for name in changed]
    return problems


def check_files(folder: Path, manifest: dict[str, Any], hashed: Iterable[str] = (), fix: str = "rebuild it") -> None:
    """Refuse a folder whose files are not the ones its manifest lists (see `file_problems`); `fix` says what to do."""
    problems = file_problems(folder, manifest, hashed)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise BvvtokError(f"{folder} is not what its {MANIFEST_NAME} says ({shown}); {fix}")


# What a bvvtok folder is, as its manifest tells: the kinds, and how messages call them.
KINDS = {
    "vocab": "a vocabulary folder",
    "substrate": "a substrate folder",
    "tokens": "a token folder",
    "run": "a run folder",
    "mixture": "a mixture folder",
    "hf-export": "a Hugging Face export folder",
    "experiment": "an experiment folder",
}


def manifest_kind(manifest: dict[str, Any]) -> str | None:
    """The kind (a key of KINDS) of the folder `manifest` describes, None for one that names none.

    Told by the section the writing command puts in (every version of bvvtok wrote one), else by `kind`. A substrate
    is a vocabulary folder with an embedding added: its manifest keeps the vocabulary's `kind`, the `substrate`
    section decides. Grown and imported models are runs (they train on); a mixture is a run section naming its members.
    """
    if isinstance(manifest.get("experiment"), dict):
        return "experiment"
    if isinstance(manifest.get("export"), dict):
        return "hf-export"
    run = manifest.get("run")
    if isinstance(run, dict):
        return "mixture" if isinstance(run.get("mixture"), dict) else "run"
    if isinstance(manifest.get("tokens"), dict):
        return "tokens"
    if isinstance(manifest.get("substrate"), dict):
        return "substrate"
    if isinstance(manifest.get("vocab"), dict):
        return "vocab"
    kind = manifest.get("kind")
    return kind if isinstance(kind, str) and kind in KINDS else None


def folder_kind(folder: Path) -> str | None:
    """`manifest_kind` of the folder's manifest; None without one (a folder bvvtok did not write), or with one that
    cannot be read or names no kind."""
    try:
        return manifest_kind(read_manifest(folder))
    except BvvtokError:
        return None


def describe_kind(kind: str | None) -> str:
    return KINDS.get(kind or "", "a bvvtok folder")
