"""A substrate folder as `verify` reads it: each part read once, on first use, or why it could not be.

The checks are functions of this view that keep nothing: what one check needs of a file another
check judges, it reads here (the embedding is read once for the five checks that use it), so the
order of the checks decides the order of the report and nothing else. A part that cannot be read
is a `Failed` with the reader's message; a check that needs it says so instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from bvvtok.difference import listing
from bvvtok.manifest import read_manifest
from bvvtok.substrate.folder import CODES, EMBEDDINGS

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """A part that could not be read, and why (the reader's message)."""

    reason: str


def attempt(read: Callable[[], T]) -> T | Failed:
    try:
        return read()
    except Exception as e:  # a damaged file raises whatever its reader raises
        return Failed(str(e) or type(e).__name__)


def ids(numbers: Any) -> str:
    """Token ids in a message: the first few, and how many more."""
    return listing(int(i) for i in numbers)


class TokenizerFile(NamedTuple):
    config: dict[str, Any]  # tokenizer.json as JSON
    tokenizer: Tokenizer
    vocab: dict[str, int]  # with the added tokens


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"tokenizer.json lists {key!r} twice")
        seen[key] = value
    return seen


class View:
    """The folder's parts; read-only for the checks (a part is a value or a `Failed`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: dict[str, Any] | Failed = attempt(lambda: read_manifest(path))

    @property
    def substrate(self) -> dict[str, Any]:
        """The manifest's substrate section ({} when there is none, or it is not an object)."""
        section = self.manifest.get("substrate") if isinstance(self.manifest, dict) else None
        return section if isinstance(section, dict) else {}

    @cached_property
    def tokenizer(self) -> TokenizerFile | Failed:
        def read() -> TokenizerFile:
            path = self.path / "tokenizer.json"
            config = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
            tokenizer = Tokenizer.from_file(str(path))
            return TokenizerFile(config, tokenizer, tokenizer.get_vocab(with_added_tokens=True))

        return attempt(read)

    @cached_property
    def weight(self) -> np.ndarray | Failed:
        """Tensor `weight` of embeddings.safetensors, if it is float32 of the manifest's shape."""

        def read() -> np.ndarray:
            tensors = load_file(str(self.path / EMBEDDINGS))
            if "weight" not in tensors:
                raise ValueError(f"{EMBEDDINGS} has no tensor 'weight'")
            weight = tensors["weight"]
            expected = (self.substrate["tokens"], self.substrate["n_embed"])
            if weight.dtype != np.float32 or weight.shape != expected:
                raise ValueError(f"{weight.dtype} {list(weight.shape)}, expected float32 {list(expected)}")
            return weight

        return attempt(read)

    @cached_property
    def codes(self) -> np.ndarray | Failed:
        """The 0/1 codes [tokens, bits] of codes.npy (packed bits, uint8; never unpickled)."""

        def read() -> np.ndarray:
            n_bits, tokens = self.substrate["bits"], self.substrate["tokens"]
            packed = np.load(self.path / CODES, allow_pickle=False)
            expected = [tokens, (n_bits + 7) // 8]
            if packed.dtype != np.uint8 or list(packed.shape) != expected:
                raise ValueError(f"{CODES} is {packed.dtype} {list(packed.shape)}, expected uint8 {expected}")
            return np.unpackbits(packed, axis=1)[:, :n_bits]

        return attempt(read)

    def need_weight(self) -> np.ndarray:
        """The embedding, for a check that judges something else with it."""
        if isinstance(self.weight, Failed):
            raise ValueError(f"{EMBEDDINGS} could not be read (see above)")
        return self.weight

    def need_codes(self) -> np.ndarray:
        """The codes, for the check that judges them (it reports why they could not be read)."""
        if isinstance(self.codes, Failed):
            raise ValueError(self.codes.reason)
        return self.codes
