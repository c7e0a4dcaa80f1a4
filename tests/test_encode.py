import pytest

from bvvtok.errors import BvvtokError
from bvvtok.vocab.encode import encode
from bvvtok.vocab.tokenizer_files import load_tokenizer


def test_encode_pieces_and_unknown_characters(tiny_vocab_dir):
    text = "hello \U0001F600\U0001F600 \U0001F680!"
    result = encode(tiny_vocab_dir, text)
    assert "".join(result.pieces) == text
    assert len(result.ids) == len(result.tokens) == len(result.pieces)
    assert result.ids[:2] == [0xD802, 0xD800]  # 'he' + 'llo' from the tiny statistics
    assert result.ids.count(57347) == 3
    assert result.unknown == ["\U0001F600", "\U0001F680"]  # distinct, in order of appearance


def test_a_literal_unk_token_is_not_an_unknown_character(tiny_vocab_dir):
    result = encode(tiny_vocab_dir, "<unk>x")
    assert result.ids == [57347, ord("x")]
    assert result.unknown == []


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(BvvtokError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BvvtokError, match="cannot load"):
        load_tokenizer(tmp_path)
