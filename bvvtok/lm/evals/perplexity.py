"""Loss on held-out text: nats per token, perplexity, bits per character and bits per byte.

Bits per character and per byte (of UTF-8) divide the same total loss by characters or bytes
instead of tokens, so runs with different tokenizers can be compared on the same text; per-token
figures cannot. Bits per byte is the figure `bvvtok train` reports on its validation text.
Each document is read after `</s>` (how training separates documents), so every one of
its tokens is predicted; a document longer than the context is read in windows that
each continue from the previous window's last token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from bvvtok.lm.evals import Column, Start, Task, four_decimals, register
from bvvtok.vocab.corpus import TEXT_COLUMN, read_documents
from bvvtok.vocab.layout import EOS

SEPARATOR = EOS


@dataclass
class Perplexity:
    documents: int
    tokens: int
    characters: int
    loss: float  # mean nats per token
    perplexity: float
    bits_per_char: float
    bits_per_byte: float


@torch.no_grad()
def perplexity(model: torch.nn.Module, tokenizer: Tokenizer, documents: Sequence[str],
               on_document: Callable[[], None] | None = None) -> Perplexity:  # fmt: skip
    device = next(model.parameters()).device
    separator = tokenizer.token_to_id(SEPARATOR)
    total, tokens, characters, nbytes = 0.0, 0, 0, 0
    for text in documents:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if ids:
            sequence = torch.tensor(([separator] if separator is not None else []) + ids, device=device)
            for start in range(1, len(sequence), model.context):  # without a separator the first token is not predicted
                window = sequence[start - 1 : start + model.context]
                logits, _ = model(window[None, :-1])
                total += F.cross_entropy(logits[0].float(), window[1:], reduction="sum").item()
            tokens += len(sequence) - 1
            characters += len(text)
            nbytes += len(text.encode("utf-8"))
        if on_document:
            on_document()
    loss = total / max(tokens, 1)
    bits = total / math.log(2)
    return Perplexity(len(documents), tokens, characters, loss, math.exp(loss), bits / max(characters, 1), bits / max(nbytes, 1))


@register
@dataclass
class PerplexityTask(Task):
    """--perplexity CORPUS: documents, a record each (in .txt, separated by blank lines), of any corpus format."""

    name = "perplexity"
    text_column: str = TEXT_COLUMN  # where records hold their text
    columns = (Column("loss", "loss/token", four_decimals, lower_is_better=True),
               Column("perplexity", "perplexity", lower_is_better=True),
               Column("bits_per_char", "bits/char", lower_is_better=True),
               Column("bits_per_byte", "bits/byte", lower_is_better=True))  # fmt: skip

    def read(self, on_skip: Callable[[str], None] | None) -> list[str]:
        return read_documents(self.path, self.text_column, purpose="nothing to score")

    def score(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, documents: list[str],
              start: Start) -> dict[str, Any]:  # fmt: skip
        p = perplexity(model, tokenizer, documents, start("perplexity", len(documents)))
        return {"tokens": p.tokens, "loss": p.loss, "perplexity": p.perplexity, "bits_per_char": p.bits_per_char,
                "bits_per_byte": p.bits_per_byte}  # fmt: skip
