"""The tokenizer object and the files of a vocabulary folder.

The tokenizer is a plain Hugging Face `tokenizers` BPE exactly as the published
builders made it: no normalizer, no pre-tokenizer, no post-processor, an empty
decoder sequence (so decoding concatenates tokens), and the 23 named specials
registered as special tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders
from tokenizers.models import BPE

from bvvtok.errors import BvvtokError
from bvvtok.manifest import write_json
from bvvtok.vocab.layout import BOS, EOS, NAMED_SPECIALS, PAD, UNK, Layout, Preset, lay_out, placed_ngrams

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
ROLE_SPECIALS = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD}


def make_tokenizer(layout: Layout) -> Tokenizer:
    tokenizer = Tokenizer(BPE(vocab=layout.vocab, merges=layout.merges, unk_token=UNK))
    tokenizer.decoder = decoders.Sequence([])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in NAMED_SPECIALS])
    return tokenizer


def tokenizer_for_ids(preset: Preset, vocab: Mapping[str, int]) -> Tokenizer:
    """The tokenizer bvvtok writes for the n-grams an id table holds: how a folder with these ids must behave."""
    return make_tokenizer(lay_out(preset, placed_ngrams(preset, vocab)))


def write_tokenizer_files(tokenizer: Tokenizer, folder: Path, max_length: int = 1024) -> None:
    """Write the five tokenizer files the published repositories carry."""
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))  # vocab.json + merges.txt
    extra = [t for t in NAMED_SPECIALS if t not in ROLE_SPECIALS.values()]
    config = {
        "model_type": "gpt2",
        "tokenizer_class": "PreTrainedTokenizerFast",
        **ROLE_SPECIALS,
        "additional_special_tokens": extra,
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=False),
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
    }
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", {**ROLE_SPECIALS, "additional_special_tokens": extra})


def load_tokenizer(folder: Path) -> Tokenizer:
    """Load `tokenizer.json` from any tokenizer folder (bvvtok's or not)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise BvvtokError(f"{folder} has no tokenizer.json; pass a folder written by `bvvtok build-vocab` or a Hugging Face tokenizer folder")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception on malformed files
        raise BvvtokError(f"cannot load {path}: {e}; rebuild it") from None
