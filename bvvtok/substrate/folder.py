"""The substrate folder: a tokenizer folder plus its frozen embedding, codes and manifest.

Files added to the tokenizer's own:
- `embeddings.safetensors`: tensor `weight`, float32 [V, dim];
- `normalized_embeddings_weights.pt`: the same tensor as the published repositories saved it
  (a plain tensor), so their loading code works; read it with `torch.load(..., weights_only=True)`;
- `codes.npy`: the raw codes, `numpy.packbits(bits, axis=1)`, uint8 [V, bits/8];
- `bvvtok.json`: the manifest, with a `substrate` section and the sha256 of every file.

The whole folder is assembled under a temporary name and swapped in at the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save_file

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, atomic_file, atomic_folder, umask
from bvvtok.manifest import read_manifest, write_manifest

EMBEDDINGS = "embeddings.safetensors"
PUBLISHED_WEIGHTS = "normalized_embeddings_weights.pt"
CODES = "codes.npy"
SUBSTRATE_FILES = (EMBEDDINGS, PUBLISHED_WEIGHTS, CODES)


def check_replace(out: Path, vocab_dir: Path, settings: dict[str, Any], force: bool) -> None:
    """Refuse, without --force, to overwrite a different substrate or an unrelated non-empty folder.

    Re-running the same settings into the same place is allowed; so is adding a
    substrate to the vocabulary folder itself.
    """
    if force or not out.is_dir() or not any(out.iterdir()):
        if out.exists() and not out.is_dir():
            raise BvvtokError(f"--out {out} exists and is not a folder; choose another path")
        return
    old = read_manifest(out).get("substrate")
    if old is not None and old.get("settings") != settings:
        raise BvvtokError(f"{out} already holds a different substrate ({old.get('settings')}); pass --force to replace it")
    if old is None and out.resolve() != vocab_dir.resolve():
        raise BvvtokError(f"--out {out} is a non-empty folder that holds no substrate; pass --force to replace it or choose another path")


def write_substrate(
    vocab_dir: Path,
    out: Path,
    embeddings: np.ndarray,
    bits: np.ndarray,
    substrate: dict[str, Any],
    dump_text: tuple[Path, list[str]] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the substrate files and the manifest into `out`; returns the manifest.

    Into the vocabulary folder itself, each file is written beside its final
    name and renamed over it, the manifest last, and nothing else in the folder
    (subfolders included) is touched. Elsewhere, a new folder is assembled from
    the vocabulary's files and swapped in whole.
    """
    manifest = read_manifest(vocab_dir)
    manifest.setdefault("bvvtok_version", substrate["bvvtok_version"])
    manifest["substrate"] = {k: v for k, v in substrate.items() if k != "bvvtok_version"}
    manifest.pop("files", None)
    if out.resolve() == vocab_dir.resolve():
        _write_files(out, embeddings, bits)
        manifest = write_manifest(out, manifest)
    else:
        with atomic_folder(out, force=True) as tmp:
            for item in sorted(vocab_dir.iterdir()):
                if item.is_file() and item.name not in (*SUBSTRATE_FILES, MANIFEST_NAME):
                    shutil.copy2(item, tmp / item.name)
            _write_files(tmp, embeddings, bits)
            manifest = write_manifest(tmp, manifest)
    if dump_text is not None:
        write_codes_text(dump_text[0], dump_text[1], bits, force)
    return manifest


def _write_files(folder: Path, embeddings: np.ndarray, bits: np.ndarray) -> None:
    with atomic_file(folder / EMBEDDINGS, force=True) as tmp:
        save_file({"weight": embeddings}, str(tmp))
        tmp.chmod(0o666 & ~umask())  # safetensors creates its file private
    with atomic_file(folder / PUBLISHED_WEIGHTS, force=True) as tmp:
        torch.save(torch.from_numpy(embeddings), tmp)
    with atomic_file(folder / CODES, force=True) as tmp, open(tmp, "wb") as f:
        np.save(f, np.packbits(bits, axis=1))


def write_codes_text(path: Path, tokens: list[str], bits: np.ndarray, force: bool = False) -> None:
    """One line per token: id, token (as a Python literal), the bits as 0/1 characters."""
    digits = (bits + ord("0")).astype(np.uint8)
    with atomic_file(path, force) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (token, row) in enumerate(zip(tokens, digits)):
            f.write(f"{i}\t{token!r}\t{row.tobytes().decode('ascii')}\n")
