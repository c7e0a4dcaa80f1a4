"""Open a substrate folder for a model: the quick checks of `verify`, then the tensor and the tokenizer.

A trainer must not start on a folder whose files changed since `embed` wrote them:
the manifest's sha256 of every file is what lets a run prove which substrate it
was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, sha256_file
from bvvtok.manifest import read_manifest
from bvvtok.substrate.folder import EMBEDDINGS
from bvvtok.substrate.verify import verify
from bvvtok.vocab.tokenizer_files import load_tokenizer


@dataclass
class LoadedSubstrate:
    folder: Path
    manifest: dict[str, Any]
    manifest_sha256: str  # the substrate's identity: its manifest lists the sha256 of every file
    tokenizer: Tokenizer
    weight: torch.Tensor  # float32 [vocab_size, n_embed]


def load_substrate(folder: Path) -> LoadedSubstrate:
    folder = Path(folder)
    if not folder.is_dir():
        raise BvvtokError(f"substrate {folder} is not a folder; pass a folder written by `bvvtok embed`")
    failed = [c for c in verify(folder, quick=True) if not c.ok]
    if failed:
        first = failed[0]
        raise BvvtokError(f"substrate {folder} fails verify ({first.name}: {first.detail}); run `bvvtok verify {folder}` and rebuild it")
    weight = load_file(str(folder / EMBEDDINGS))["weight"]
    tokenizer = load_tokenizer(folder)
    return LoadedSubstrate(folder, read_manifest(folder), sha256_file(folder / MANIFEST_NAME), tokenizer, weight)
