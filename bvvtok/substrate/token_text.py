"""The text each token stands for, so that it can be drawn.

bvvtok's vocabularies (and most others) store token text as is. Byte-level BPE
vocabularies (GPT-2 style: `Ġ` for a space, `Ċ` for a newline) store each byte
as a printable stand-in character; their text is recovered by mapping the
stand-ins back to bytes and decoding UTF-8. A token whose bytes are not UTF-8
(a piece of a multi-byte character) is drawn as its escaped bytes (`\\xe2\\x80`),
which is deterministic and tells such tokens apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from tokenizers import Tokenizer


@lru_cache(maxsize=1)
def byte_stand_ins() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted: character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[chr(b)] = b
        else:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


def _mentions_byte_level(node: object) -> bool:
    if isinstance(node, dict):
        return node.get("type") == "ByteLevel" or any(_mentions_byte_level(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_byte_level(v) for v in node)
    return False


def is_byte_level(tokenizer: Tokenizer) -> bool:
    """Whether the pre-tokenizer or the decoder is (or holds) ByteLevel: their own JSON, not the whole file's."""
    parts = (tokenizer.pre_tokenizer, tokenizer.decoder)
    return any(part is not None and _mentions_byte_level(json.loads(part.__getstate__())) for part in parts)


@dataclass
class TokenTexts:
    texts: list[str]  # by id; "" for ids with no token
    byte_level: bool
    escaped: list[int]  # ids whose bytes are not UTF-8, drawn as escapes
    empty_ids: list[int]  # ids the vocabulary leaves without a token


def token_texts(tokenizer: Tokenizer) -> TokenTexts:
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    size = max(vocab.values()) + 1 if vocab else 0
    by_id = [""] * size
    for token, i in vocab.items():
        by_id[i] = token
    byte_level = is_byte_level(tokenizer)
    escaped: list[int] = []
    if byte_level:
        stand_ins = byte_stand_ins()
        added = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
        for i, token in enumerate(by_id):
            if token in added or not token or any(ch not in stand_ins for ch in token):
                continue
            raw = bytes(stand_ins[ch] for ch in token)
            try:
                by_id[i] = raw.decode("utf-8")
            except UnicodeDecodeError:
                by_id[i] = raw.decode("utf-8", errors="backslashreplace")
                escaped.append(i)
    empty = [i for i, t in enumerate(by_id) if not t]
    return TokenTexts(by_id, byte_level, escaped, empty)
