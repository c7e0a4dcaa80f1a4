"""Reading a user's corpus and counting it (`bvvtok ngrams` as a library call)."""

import gzip
import json

import pytest

from bvvtok.errors import BvvtokError
from bvvtok.vocab.corpus import CorpusFile, corpus_files, iter_texts
from bvvtok.vocab.corpus_stats import corpus_size, count_corpus

TEXT = "the the the then\nthe cat\n"


def write_jsonl(path, texts, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text, "id": 1}) + "\n")
    return path


def test_the_three_formats_give_the_same_texts(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text(TEXT, encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "a.jsonl", ["the the the then", "", "the cat"])
    gz = write_jsonl(tmp_path / "a.jsonl.gz", ["the the the then", "the cat"], gzip.open)
    assert list(iter_texts(txt)) == ["the the the then\n", "the cat\n"]
    assert list(iter_texts(jsonl)) == ["the the the then", "", "the cat"]
    assert list(iter_texts(gz)) == ["the the the then", "the cat"]


def test_blank_jsonl_lines_are_skipped(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "ab"}\n\n   \n{"text": "cd"}\n', encoding="utf-8")
    assert list(iter_texts(path)) == ["ab", "cd"]


def test_on_bytes_adds_up_to_the_file_size(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("".join(f"line {i} ünïcödé\n" for i in range(20_000)), encoding="utf-8")
    seen = []
    texts = list(iter_texts(path, seen.append))
    assert len(texts) == 20_000
    assert sum(seen) == path.stat().st_size


@pytest.mark.parametrize(
    "content, where",
    [
        ('{"text": "ok"}\nnot json\n', "bad.jsonl:2"),
        ('{"text": "ok"}\n{"body": "no text"}\n', "bad.jsonl:2"),
        ('{"text": 5}\n', "bad.jsonl:1"),
        ('["text"]\n', "bad.jsonl:1"),
    ],
)
def test_bad_jsonl_lines_are_named(tmp_path, content, where):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BvvtokError, match=where):
        list(iter_texts(path))


def test_non_utf8_is_an_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème\n".encode("latin-1"))
    with pytest.raises(BvvtokError, match="latin1.txt.*UTF-8"):
        list(iter_texts(path))


def test_corrupt_gzip_is_an_error(tmp_path):
    path = tmp_path / "broken.txt.gz"
    path.write_bytes(gzip.compress(b"hello world\n" * 100)[:40])
    with pytest.raises(BvvtokError, match="broken.txt.gz"):
        list(iter_texts(path))


def test_corpus_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.txt", "a.jsonl", "sub/c.txt.gz", "sub/d.jsonl.gz", "notes.md", "data.csv"]:
        (tmp_path / name).write_bytes(b"")
    found = corpus_files(tmp_path)
    assert [f.name for f in found] == ["a.jsonl", "b.txt", "sub/c.txt.gz", "sub/d.jsonl.gz"]
    assert [f.path for f in found] == [tmp_path / f.name for f in found]
    assert corpus_files(tmp_path / "b.txt") == [CorpusFile(tmp_path / "b.txt", "b.txt", ".txt")]
    with pytest.raises(BvvtokError, match="unsupported"):
        corpus_files(tmp_path / "notes.md")
    with pytest.raises(BvvtokError, match="not found"):
        corpus_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BvvtokError, match="empty holds no corpus files"):
        corpus_files(tmp_path / "empty")


def test_count_corpus(tmp_path):
    (tmp_path / "en.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "el.txt").write_text("καλή καλή μέρα\n", encoding="utf-8")
    inputs = {"en": tmp_path / "en.txt", "el": tmp_path / "el.txt"}
    stats = count_corpus(inputs, orders=(2, 3), top=2)
    en, el = stats.languages
    assert (en.lang, en.language_name, en.chars) == ("en", "English", 19)
    assert en.top_ngrams == {2: [("he", 5), ("th", 5)], 3: [("the", 5), ("cat", 1)]}
    assert (el.lang, el.chars) == ("el", 12)
    assert el.top_ngrams[2] == [("αλ", 2), ("κα", 2)]  # ties by code point
    assert stats.meta["rule"] == "default"
    assert stats.meta["approximate_languages"] == []
    assert corpus_size(inputs) == len(TEXT) + len("καλή καλή μέρα\n".encode("utf-8"))


def test_count_corpus_errors(tmp_path):
    (tmp_path / "el.txt").write_text("καλή μέρα\n", encoding="utf-8")
    with pytest.raises(BvvtokError, match="no countable text"):
        count_corpus({"el": tmp_path / "el.txt"}, rule="bvv241")  # the original regex ignores Greek
    with pytest.raises(BvvtokError, match="unknown counting rule"):
        count_corpus({"el": tmp_path / "el.txt"}, rule="nope")
    with pytest.raises(BvvtokError, match="^top must be at least 1"):
        count_corpus({"el": tmp_path / "el.txt"}, top=0)
    with pytest.raises(BvvtokError, match="no corpus"):
        count_corpus({})
