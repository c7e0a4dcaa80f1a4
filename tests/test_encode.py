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


def edited_copy(folder, tmp_path, change, reseal: bool):
    """A copy of the vocabulary with tokenizer.json edited (and, with `reseal`, its sha256 in the manifest updated)."""
    import hashlib
    import json
    import shutil

    copy = shutil.copytree(folder, tmp_path / "vocab")
    config = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    change(config)
    (copy / "tokenizer.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    if reseal:
        manifest = json.loads((copy / "bvvtok.json").read_text(encoding="utf-8"))
        manifest["files"]["tokenizer.json"] = hashlib.sha256((copy / "tokenizer.json").read_bytes()).hexdigest()
        (copy / "bvvtok.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy


def swap_a_b(config):
    vocab = config["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]


@pytest.mark.parametrize(
    "change, reseal, fragment",
    [
        (swap_a_b, False, "tokenizer.json: sha256 is "),
        (lambda c: c.update(normalizer={"type": "Lowercase"}), True, "normalizer is Lowercase, bvvtok writes none"),
    ],
    ids=["ids swapped", "a Lowercase normalizer with the sha256 updated"],
)
def test_encode_refuses_a_tokenizer_that_is_not_its_manifests(tiny_vocab_dir, tmp_path, change, reseal, fragment):
    from conftest import assert_user_error, invoke

    folder = edited_copy(tiny_vocab_dir, tmp_path, change, reseal)
    with pytest.raises(BvvtokError, match="tokenizer is not what its bvvtok.json says"):
        encode(folder, "the cat")
    assert_user_error(invoke("encode", "--vocab", folder, "the cat"), fragment, "bvvtok verify")
