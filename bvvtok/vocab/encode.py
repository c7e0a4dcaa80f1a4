"""Encoding a text for inspection: tokens, ids, and what fell to `<unk>`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from bvvtok.vocab.layout import UNK
from bvvtok.vocab.tokenizer_files import load_tokenizer


@dataclass
class Encoded:
    ids: list[int]
    tokens: list[str]
    pieces: list[str]  # the span of the input each token covers
    unknown: list[str]  # distinct characters that became <unk>, in order of appearance


def encode(folder: Path, text: str) -> Encoded:
    return encode_with(load_tokenizer(Path(folder)), text)


def encode_with(tokenizer: Tokenizer, text: str) -> Encoded:
    encoding = tokenizer.encode(text, add_special_tokens=False)
    pieces = [text[start:end] for start, end in encoding.offsets]
    unknown = [piece for token, piece in zip(encoding.tokens, pieces) if token == UNK and piece != UNK]
    return Encoded(encoding.ids, encoding.tokens, pieces, list(dict.fromkeys(unknown)))
