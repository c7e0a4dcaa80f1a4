"""The manifest `bvvtok.json`: what a folder holds, how it was made, and the sha256 of every file.

Each pipeline stage (vocabulary, substrate, model) adds its own section; the file
hashes are recomputed whenever the folder is written, so `verify` can tell a
folder that was changed by hand from one bvvtok wrote. No timestamps or absolute
paths go in: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, atomic_file, sha256_file

MANIFEST_VERSION = 1  # raised when the manifest's meaning changes; verify refuses newer ones


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (beside the final name, then renamed over it)."""
    with atomic_file(path, force=True) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_manifest(folder: Path, manifest: dict[str, Any], known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write bvvtok.json with the sha256 of every other file in the folder.

    `known`: digests the caller already has (file name -> sha256, taken while writing the file).
    """
    known = known or {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    with ThreadPoolExecutor() as pool:  # hashlib releases the GIL: large files hash in parallel
        digests = list(pool.map(lambda p: known.get(p.name) or sha256_file(p), files))
    manifest = {"manifest_version": MANIFEST_VERSION, **manifest, "files": {p.name: d for p, d in zip(files, digests)}}
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
