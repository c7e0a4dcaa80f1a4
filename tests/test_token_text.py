"""Recovering the text each token stands for (byte-level BPE stand-ins, partial UTF-8, added tokens)."""

import json

import pytest
from tokenizers import AddedToken, ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers

from bvvtok.substrate.token_text import byte_stand_ins, is_byte_level, token_texts

SENTENCES = ["the cat sat on the mat", "café café déjà vu", "中文 中文 中国", "the end\n", "naïve façade"]


def test_byte_stand_ins():
    stand_ins = byte_stand_ins()
    assert len(stand_ins) == 256
    assert sorted(stand_ins.values()) == list(range(256))
    assert stand_ins["Ġ"] == 32
    assert stand_ins["Ċ"] == 10
    assert stand_ins["ĉ"] == 9
    assert stand_ins["Ā"] == 0
    assert stand_ins["!"] == 33 and stand_ins["~"] == 126
    assert stand_ins["¡"] == 0xA1 and stand_ins["ÿ"] == 0xFF
    assert stand_ins["Ń"] == 0xAD  # the soft hyphen is not printable: it gets a stand-in past U+00FF


def test_byte_stand_ins_agree_with_the_tokenizers_library():
    """Every stand-in is what tokenizers' ByteLevel pre-tokenizer itself uses for that byte."""
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    assert set(byte_stand_ins()) == alphabet


@pytest.fixture(scope="module")
def byte_level(tmp_path_factory):
    """A GPT-2 style byte-level BPE trained on a few sentences (every possible merge learnt), with one special."""
    folder = tmp_path_factory.mktemp("byte-level")
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(SENTENCES, vocab_size=2000, min_frequency=1, special_tokens=["<|endoftext|>"])
    trainer.save(str(folder / "tokenizer.json"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return tokenizer, folder / "tokenizer.json"


def test_byte_level_texts(byte_level):
    tokenizer, path = byte_level
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    result = token_texts(tokenizer)
    assert result.byte_level
    assert len(result.texts) == len(vocab) == max(vocab.values()) + 1
    assert result.empty_ids == []
    texts = result.texts
    assert texts[vocab["Ġthe"]] == " the"
    assert texts[vocab["the"]] == "the"
    assert texts[vocab["Ġ"]] == " "
    assert texts[vocab["Ċ"]] == "\n"
    assert texts[vocab["ĠcafÃ©"]] == " café"
    assert texts[vocab["Ã©"]] == "é"
    assert texts[vocab["Ġä¸Ńæĸĩ"]] == " 中文"  # every merge is learnt: each word of SENTENCES is one token
    assert texts[vocab["ĠfaÃ§ade"]] == " façade"


def test_partial_utf8_tokens_are_escaped(byte_level):
    tokenizer, path = byte_level
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    result = token_texts(tokenizer)
    stand_ins = byte_stand_ins()
    single = vocab["ä"]  # byte 0xE4 alone: the first byte of 中
    assert result.texts[single] == "\\xe4"
    assert single in result.escaped
    assert result.texts[vocab["ä¸Ń"]] == "中"
    assert vocab["ä¸Ń"] not in result.escaped
    # every single byte from 0x80 up is a piece of a multi-byte character
    high = [vocab[ch] for ch, b in stand_ins.items() if b >= 0x80]
    assert set(high) <= set(result.escaped)
    # and exactly the tokens whose bytes are not UTF-8 are escaped, as their bytes
    added = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
    expected = []
    for token, i in vocab.items():
        if token in added:
            continue
        raw = bytes(stand_ins[ch] for ch in token)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            expected.append(i)
            assert result.texts[i] == raw.decode("utf-8", errors="backslashreplace")
    assert any(len(tokenizer.id_to_token(i)) > 1 for i in expected)  # multi-byte pieces too, e.g. 0xE4 0xB8
    assert result.escaped == sorted(expected)


def test_hand_built_partial_tokens(tmp_path):
    tokenizer, path = write_hand_built(tmp_path, {"ä": 0, "ä¸": 1, "ä¸Ń": 2, "Ġä¸": 3, "¸Ń": 4})
    result = token_texts(tokenizer)
    assert result.texts == ["\\xe4", "\\xe4\\xb8", "中", " \\xe4\\xb8", "\\xb8\\xad"]
    assert result.escaped == [0, 1, 3, 4]


def test_added_tokens_are_left_unchanged(byte_level):
    tokenizer, path = byte_level
    result = token_texts(tokenizer)
    assert result.texts[tokenizer.token_to_id("<|endoftext|>")] == "<|endoftext|>"


def test_added_token_made_of_stand_ins_is_left_unchanged(byte_level, tmp_path):
    tokenizer, _ = byte_level
    tokenizer = Tokenizer.from_str(tokenizer.to_str())
    tokenizer.add_special_tokens([AddedToken("ĠĠ", special=True)])
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    result = token_texts(tokenizer)
    assert result.texts[tokenizer.token_to_id("ĠĠ")] == "ĠĠ"


def test_texts_agree_with_the_byte_level_decoder(byte_level):
    """For every whole-UTF-8 token, the text is what the tokenizer's own decoder gives for that one id."""
    tokenizer, path = byte_level
    result = token_texts(tokenizer)
    added = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
    checked = 0
    for i, text in enumerate(result.texts):
        if i in result.escaped or tokenizer.id_to_token(i) in added:
            continue
        assert tokenizer.decode([i], skip_special_tokens=False) == text, (i, tokenizer.id_to_token(i))
        checked += 1
    assert checked > 100


def write_hand_built(folder, vocab, byte_level_pre=True, byte_level_dec=True):
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    if byte_level_pre:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    if byte_level_dec:
        tokenizer.decoder = decoders.ByteLevel()
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return Tokenizer.from_file(str(path)), path


def test_byte_level_detected_inside_a_sequence(tmp_path):
    tokenizer, path = write_hand_built(tmp_path, {"a": 0, "Ġa": 1}, byte_level_pre=True, byte_level_dec=False)
    assert is_byte_level(tokenizer)
    assert token_texts(tokenizer).texts == ["a", " a"]


def test_byte_level_detected_from_the_decoder_alone(tmp_path):
    tokenizer, path = write_hand_built(tmp_path, {"a": 0, "Ċ": 1}, byte_level_pre=False, byte_level_dec=True)
    assert is_byte_level(tokenizer)
    assert token_texts(tokenizer).texts == ["a", "\n"]


def test_tokens_outside_the_stand_in_alphabet_stay_raw(tmp_path):
    """A byte-level vocabulary can still hold strings that are not stand-ins (e.g. 中 written as itself)."""
    tokenizer, path = write_hand_built(tmp_path, {"Ġx": 0, "中": 1, "Ġ中": 2, "Ã©": 3})
    result = token_texts(tokenizer)
    assert result.texts == [" x", "中", "Ġ中", "é"]
    assert result.escaped == []


def test_non_byte_level_texts_are_the_raw_tokens(tmp_path):
    vocab = {"<unk>": 0, "Ġthe": 1, "▁the": 2, "中": 3, "Ã©": 4, "ä": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    assert not is_byte_level(Tokenizer.from_file(str(path)))
    result = token_texts(Tokenizer.from_file(str(path)))
    assert not result.byte_level
    assert result.texts == ["<unk>", "Ġthe", "▁the", "中", "Ã©", "ä"]
    assert result.escaped == [] and result.empty_ids == []


def test_ids_without_a_token_are_empty(tmp_path):
    tokenizer = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "c": 3}, unk_token="<unk>"))
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    result = token_texts(Tokenizer.from_file(str(path)))
    assert result.texts == ["<unk>", "a", "", "c"]
    assert result.empty_ids == [2]


def test_null_pre_tokenizer_and_decoder_are_not_byte_level(tmp_path):
    path = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")).save(str(path))
    config = json.loads(path.read_text(encoding="utf-8"))
    assert config["pre_tokenizer"] is None and config["decoder"] is None
    assert not is_byte_level(Tokenizer.from_file(str(path)))
