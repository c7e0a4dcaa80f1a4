"""Encoding a text for inspection: tokens, ids, and what fell to `<unk>`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME
from bvvtok.manifest import read_manifest
from bvvtok.vocab.layout import UNK
from bvvtok.vocab.proof import prove_tokenizer
from bvvtok.vocab.tokenizer_files import load_tokenizer


@dataclass
class Encoded:
    ids: list[int]
    tokens: list[str]
    pieces: list[str]  # the span of the input each token covers
    unknown: list[str]  # distinct characters that became <unk>, in order of appearance


def encode(folder: Path, text: str) -> Encoded:
    """`text` through the folder's tokenizer, once it is proven to be the one the folder's manifest describes (a
    folder without bvvtok.json, any Hugging Face tokenizer folder, is taken as it is)."""
    folder = Path(folder)
    tokenizer = load_tokenizer(folder)
    manifest = read_manifest(folder)
    if manifest:
        try:
            prove_tokenizer(folder, manifest, ("tokenizer.json",), tokenizer)
        except ValueError as e:
            raise BvvtokError(f"{folder}'s tokenizer is not what its {MANIFEST_NAME} says ({e}); rebuild the folder "
                              f"(bvvtok build-vocab) or see `bvvtok verify {folder}`") from None  # fmt: skip
    return encode_with(tokenizer, text)


def encode_with(tokenizer: Tokenizer, text: str) -> Encoded:
    encoding = tokenizer.encode(text, add_special_tokens=False)
    pieces = [text[start:end] for start, end in encoding.offsets]
    unknown = [piece for token, piece in zip(encoding.tokens, pieces) if token == UNK and piece != UNK]
    return Encoded(encoding.ids, encoding.tokens, pieces, list(dict.fromkeys(unknown)))
