"""How many bytes of text the tokens stand for: the denominator of bits per byte.

Loss per token depends on the tokenizer (a token of 3 characters carries more than one of 1), so runs on
different tokenizers or substrates are compared on bits per byte of UTF-8 text instead, as nanochat reports
it: the loss of the tokens that are text, in bits, over their bytes. Special tokens (`</s>` between documents,
padding) are not text: they count no bytes, and their loss is left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer


def special_ids(tokenizer: Tokenizer, vocab_size: int) -> torch.Tensor:
    """A bool [vocab_size] table: True for the tokenizer's special tokens."""
    table = torch.zeros(vocab_size, dtype=torch.bool)
    for i, token in tokenizer.get_added_tokens_decoder().items():
        if token.special and i < vocab_size:
            table[i] = True
    return table


def text_bytes(tokenizer: Tokenizer, ids: Sequence[int]) -> int:
    """The UTF-8 bytes of the text `ids` decode to, special tokens left out."""
    return len(tokenizer.decode(list(ids), skip_special_tokens=True).encode("utf-8"))


def bits_per_byte(text_loss: float, nbytes: int) -> float | None:
    """Bits per byte from the summed loss (nats) of the text tokens and their bytes (None: no text)."""
    return text_loss / math.log(2) / nbytes if nbytes else None
