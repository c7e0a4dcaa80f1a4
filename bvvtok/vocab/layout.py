"""The code-space layout of the bvv241 tokenizers (the published recipe).

A token's id is where it sits in the Unicode code space: single characters keep
their code point, and multi-character n-grams fill ranges that hold no
characters (the surrogate block, the private-use area, and for the 131k preset
the supplementary plane 1). Every quirk of the published builders is kept on
purpose, because checkpoints were trained on exactly these ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from bvvtok.errors import BvvtokError

NAMED_SPECIALS: tuple[str, ...] = (
    "<pad>", "<s>", "</s>", "<unk>", "<think>", "</think>", "<emotions>", "</emotions>",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "[INST]", "[/INST]", "[EOT]", "[USER]", "[ASSISTANT]",
    "[FIM_PREFIX]", "[FIM_MIDDLE]", "[FIM_SUFFIX]", "[FIM_PAD]", "[REPO_NAME]", "[FILE_SEP]",
)  # fmt: skip
SPECIALS_START = 0xE000
UNUSED = re.compile(r"<unused_\d+>")
UNK = "<unk>"
BOS, EOS, PAD = "<s>", "</s>", "<pad>"  # EOS also ends every document in the training data

# Where single characters keep their code point as id. 0xFFFF is left out (a quirk).
MONOGRAM_RANGES = (range(0x0000, 0xD800), range(0xF900, 0xFFFF))
# Ids between the named specials and the n-gram slots hold `<special_token_{id}>`.
FILLER_SPECIALS = range(SPECIALS_START + len(NAMED_SPECIALS), 0xE100)
# The n-gram slots, filled in this order. Plane 1 stops at 0x1FFFE: 0x1FFFF stays unused.
SLOTS_65K = (range(0xD800, 0xE000), range(0xE100, 0xF900))
SLOTS_131K = SLOTS_65K + (range(0x10000, 0x1FFFF),)

@dataclass(frozen=True)
class Preset:
    """A published tokenizer shape: size, top-k, slot ranges, and the n-gram orders the offline default counts.

    The published statistics files decide their own orders (2-3 for 65k, 2-5
    for 131k). The offline 65k counts 4-grams too, on purpose: from wordfreq's
    word lists, 2- and 3-grams alone give 1.69 characters per token on English
    prose, below bvv241-2-3's 1.73; letting 4-grams compete for the same 8,192
    slots gives 1.75 (Chinese unchanged at 1.10; `bench/compression.py`).
    """

    name: str
    alias: str
    vocab_size: int
    top_k: int
    slots: tuple[range, ...]
    offline_orders: tuple[int, ...]

    @property
    def slot_count(self) -> int:
        return sum(len(r) for r in self.slots)

    @cached_property
    def slot_ids(self) -> frozenset[int]:
        return frozenset(i for r in self.slots for i in r)


PRESETS: dict[str, Preset] = {
    "65k": Preset("65k", "bvv241-2-3", 65_536, 338, SLOTS_65K, offline_orders=(2, 3, 4)),
    "131k": Preset("131k", "bvv241-max", 131_072, 906, SLOTS_131K, offline_orders=(2, 3, 4, 5)),
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name (`65k`, `131k`) or published alias (`bvv241-2-3`, `bvv241-max`)."""
    for preset in PRESETS.values():
        if name in (preset.name, preset.alias):
            return preset
    known = ", ".join(f"{p.name} ({p.alias})" for p in PRESETS.values())
    raise BvvtokError(f"unknown preset {name!r}; choose one of {known}")


def ngram_order(strings: Iterable[str]) -> list[str]:
    """The published placement order: longest first, ties by code-point order."""
    return sorted(set(strings), key=lambda s: (-len(s), s))


@dataclass
class Layout:
    """The result of laying a set of n-grams into a preset's code space."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    placed: list[str]
    dropped: list[str]
    already_tokens: list[str]


def base_vocab() -> dict[str, int]:
    """Monograms, named specials and filler specials: the part shared by every preset."""
    vocab = {chr(cp): cp for cp in MONOGRAM_RANGES[0]}
    vocab.update({tok: SPECIALS_START + i for i, tok in enumerate(NAMED_SPECIALS)})
    vocab.update({f"<special_token_{cp}>": cp for cp in FILLER_SPECIALS})
    vocab.update({chr(cp): cp for cp in MONOGRAM_RANGES[1]})
    return vocab


def lay_out(preset: Preset, ngrams: Iterable[str]) -> Layout:
    """Place n-grams into the preset's slots and derive the merges (the published recipe).

    Strings that are already tokens (single characters, special names) or are
    spelled like the reserved `<unused_N>` take no slot; strings beyond the last
    slot are dropped.
    """
    vocab = base_vocab()
    order = ngram_order(s for s in ngrams if s)
    # `<unused_N>` names are reserved for the empty ids; a string spelled so would lose its id to them
    already = [s for s in order if s in vocab or UNUSED.fullmatch(s)]
    candidates = [s for s in order if s not in vocab and not UNUSED.fullmatch(s)]
    slot_ids = (i for r in preset.slots for i in r)
    placed: list[str] = []
    for s, i in zip(candidates, slot_ids):
        vocab[s] = i
        placed.append(s)
    dropped = candidates[len(placed) :]
    taken = set(vocab.values())
    vocab.update({f"<unused_{i}>": i for i in range(preset.vocab_size) if i not in taken})
    return Layout(vocab, merges_for(placed, vocab), placed, dropped, already)


def placed_ngrams(preset: Preset, vocab: Mapping[str, int]) -> list[str]:
    """The n-grams an id table holds: the tokens in the preset's slots that are not `<unused_N>`, in id order."""
    slots = preset.slot_ids
    return [t for i, t in sorted((i, t) for t, i in vocab.items() if i in slots and not UNUSED.fullmatch(t))]


def merges_for(placed: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of every placed n-gram whose two halves are both tokens, in placement order."""
    return [(p[:i], p[i:]) for p in placed for i in range(1, len(p)) if p[:i] in vocab and p[i:] in vocab]
