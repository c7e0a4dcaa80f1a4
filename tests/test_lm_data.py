"""The trainer's data: a corpus tokenized once into memory-mapped shards (bvvtok.lm.data)."""

import gzip
import hashlib
import json
import shutil
from collections import Counter, namedtuple
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_char_vocab, write_corpus_formats, write_wordlevel_vocab

from bvvtok.errors import BvvtokError
from bvvtok.lm import data
from bvvtok.lm.data import SEPARATOR, Split, is_token_folder, load_tokens, prepare_tokens
from bvvtok.vocab.corpus import corpus_files
from bvvtok.vocab.tokenizer_files import load_tokenizer

DOCS = ["hello world", "the cat sat\non the mat", "你好世界", "a</s>b <s> literal specials", "x"]


def write_jsonl(path, texts, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return path


def ids(split: Split) -> list[int]:
    return [int(i) for shard in split.shards for i in shard]


def documents(tokenizer, split: Split) -> list[str]:
    """The split's stream decoded and cut at the separators (each document must end with one)."""
    text = tokenizer.decode(ids(split), skip_special_tokens=False)
    assert text == "" or text.endswith(SEPARATOR)
    return text.split(SEPARATOR)[:-1]


def is_val(piece: str, fraction: float) -> bool:
    """The rule from the spec, written out independently of the module."""
    return int.from_bytes(hashlib.sha256(piece.encode()).digest()[:8], "big") / 2**64 < fraction


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def tok(char_substrate):
    return load_tokenizer(char_substrate)


def test_ids_round_trip_with_a_separator_after_each_document(tmp_path, char_substrate, tok):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "a.jsonl", DOCS[:3] + [""])  # an empty record is no document
    (corpus / "b.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    result = prepare_tokens(char_substrate, [corpus], out=tmp_path / "tokens", val_fraction=0)
    assert documents(tok, result.train) == DOCS[:3] + ["first line\nsecond line\n"]
    assert ids(result.train).count(tok.token_to_id(SEPARATOR)) == 4
    section = result.manifest["tokens"]
    assert (section["documents"], section["pieces"], section["train_tokens"]) == (4, 4, result.train.n_tokens)
    assert [entry["name"] for entry in section["corpus"]] == ["a.jsonl", "b.txt"]
    assert result.vocab_size == tok.get_vocab_size(with_added_tokens=True)
    assert result.train.shards[0].dtype == np.uint16 and section["dtype"] == "uint16"
    assert not result.train.shards[0].flags.writeable


def test_many_batches_in_flight_keep_the_documents_in_order(tmp_path, monkeypatch, char_substrate, tok):
    """Batches are encoded in a helper thread while the last one is written: the stream is still the corpus's order."""
    monkeypatch.setattr(data, "BATCH_PIECES", 2)
    texts = [f"document {i}: " + DOCS[i % len(DOCS)] for i in range(23)]
    result = prepare_tokens(char_substrate, [write_jsonl(tmp_path / "a.jsonl", texts)], out=tmp_path / "t", val_fraction=0.3)
    tok.encode_special_tokens = True
    for split, wanted in ((result.train, [t for t in texts if not is_val(t, 0.3)]), (result.val, [t for t in texts if is_val(t, 0.3)])):
        assert wanted and ids(split) == [i for t in wanted for i in tok.encode(t, add_special_tokens=False).ids + [tok.token_to_id(SEPARATOR)]]


def test_a_literal_separator_in_the_text_is_text(tmp_path, char_substrate, tok):
    corpus = write_jsonl(tmp_path / "a.jsonl", DOCS[3:])
    result = prepare_tokens(char_substrate, [corpus], out=tmp_path / "tokens", val_fraction=0)
    stream = ids(result.train)
    assert stream.count(tok.token_to_id(SEPARATOR)) == 2  # the two appended ones only
    assert tok.token_to_id("<s>") not in stream
    assert tok.decode(stream, skip_special_tokens=False) == "a</s>b <s> literal specials</s>x</s>"


def test_a_txt_file_is_one_document_read_in_pieces_of_whole_lines(tmp_path, monkeypatch, char_substrate, tok):
    monkeypatch.setattr(data, "PIECE_CHARS", 20)
    text = "".join(f"line number {i}\n" for i in range(30)) + "no newline at the end"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(data._pieces(corpus_files(path)[0], lambda n: None))
    assert len(pieces) > 10
    assert "".join(p for p, _ in pieces) == text
    assert [ends for _, ends in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(p.endswith("\n") for p, _ in pieces[:-1])  # never a line cut in two
    result = prepare_tokens(char_substrate, [path], out=tmp_path / "tokens", val_fraction=0)
    assert documents(tok, result.train) == [text]
    assert result.manifest["tokens"]["pieces"] == len(pieces)


def test_gz_input_gives_the_same_tokens(tmp_path, char_substrate):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.mkdir(), packed.mkdir()
    write_jsonl(plain / "a.jsonl", DOCS)
    write_jsonl(packed / "a.jsonl.gz", DOCS, gzip.open)
    (plain / "b.txt").write_text("some text\n" * 50, encoding="utf-8")
    with gzip.open(packed / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("some text\n" * 50)
    a = prepare_tokens(char_substrate, [plain], out=tmp_path / "a", val_fraction=0.2)
    b = prepare_tokens(char_substrate, [packed], out=tmp_path / "b", val_fraction=0.2)
    assert (ids(a.train), ids(a.val)) == (ids(b.train), ids(b.val))
    assert corpus_files(packed / "b.txt.gz")[0].text_bytes() == 500  # the disk estimate reads the gzip trailer
    assert a.key != b.key  # the key hashes the files' bytes


def test_val_split_is_by_content_not_file_order(tmp_path, char_substrate, tok):
    docs = [f"document number {i} says {i * i}" for i in range(300)]
    write_jsonl(tmp_path / "a.jsonl", docs[:150])
    write_jsonl(tmp_path / "b.jsonl", docs[150:])
    write_jsonl(tmp_path / "c.jsonl", docs[::-1])  # the same records, in another order, in one file
    first = prepare_tokens(char_substrate, [tmp_path / "a.jsonl", tmp_path / "b.jsonl"], out=tmp_path / "1",
                           val_fraction=0.25)
    second = prepare_tokens(char_substrate, [tmp_path / "c.jsonl"], out=tmp_path / "2", val_fraction=0.25)
    expected_val = [d for d in docs if is_val(d, 0.25)]
    assert 40 < len(expected_val) < 110
    assert documents(tok, first.val) == expected_val
    assert documents(tok, first.train) == [d for d in docs if not is_val(d, 0.25)]
    assert sorted(documents(tok, second.val)) == sorted(expected_val)
    assert first.manifest["tokens"]["val_tokens"] == first.val.n_tokens > 0


def test_the_separator_follows_the_last_piece_of_a_txt_document(tmp_path, monkeypatch, char_substrate, tok):
    monkeypatch.setattr(data, "PIECE_CHARS", 8)
    path = tmp_path / "doc.txt"
    path.write_text("".join(f"row {i:03d}\n" for i in range(64)), encoding="utf-8")
    pieces = [p for p, _ in data._pieces(corpus_files(path)[0], lambda n: None)]
    result = prepare_tokens(char_substrate, [path], out=tmp_path / "tokens", val_fraction=0.5)
    val_text = tok.decode(ids(result.val), skip_special_tokens=False)
    train_text = tok.decode(ids(result.train), skip_special_tokens=False)
    in_val = [p for p in pieces if is_val(p, 0.5)]
    assert 0 < len(in_val) < len(pieces)
    last_split, other = (val_text, train_text) if is_val(pieces[-1], 0.5) else (train_text, val_text)
    assert last_split.endswith(pieces[-1] + SEPARATOR) and SEPARATOR not in other
    assert val_text.replace(SEPARATOR, "") == "".join(in_val)


def test_val_fraction_zero_writes_no_val_shards(tmp_path, char_substrate):
    result = prepare_tokens(char_substrate, [write_jsonl(tmp_path / "a.jsonl", DOCS)], out=tmp_path / "t",
                            val_fraction=0)
    assert result.val.shards == [] and result.val.n_tokens == 0 and result.val.n_windows(4) == 0
    assert not list((tmp_path / "t").glob("val-*")) and result.manifest["tokens"]["shards"]["val"] == 0
    with pytest.raises(IndexError):
        result.val.window(0, 4)


def test_shards_hold_at_most_shard_tokens_and_windows_never_cross_them(tmp_path, monkeypatch, char_substrate):
    corpus = write_jsonl(tmp_path / "a.jsonl", [f"text {i} " * 3 for i in range(20)])
    whole = prepare_tokens(char_substrate, [corpus], out=tmp_path / "whole", val_fraction=0)
    monkeypatch.setattr(data, "SHARD_TOKENS", 50)
    sharded = prepare_tokens(char_substrate, [corpus], out=tmp_path / "sharded", val_fraction=0)
    lengths = [len(s) for s in sharded.train.shards]
    n = whole.train.n_tokens
    assert lengths == [50] * (n // 50) + ([n % 50] if n % 50 else [])
    assert ids(sharded.train) == ids(whole.train)
    names = sorted(p.name for p in (tmp_path / "sharded").glob("train-*.bin"))
    assert names == [f"train-{i:05d}.bin" for i in range(len(lengths))]
    assert sharded.manifest["tokens"]["shards"]["train"] == len(lengths)
    for context in (1, 7, 49, 50):
        expected = [s[k * context : k * context + context + 1] for s in sharded.train.shards
                    for k in range(max(0, (len(s) - 1) // context))]
        assert sharded.train.n_windows(context) == len(expected) == sum((n - 1) // context for n in lengths)
        got = [sharded.train.window(i, context) for i in range(len(expected))]
        assert all(w.dtype == np.int64 and len(w) == context + 1 for w in got)
        assert all(np.array_equal(w, e) for w, e in zip(got, expected))
        with pytest.raises(IndexError):
            sharded.train.window(len(expected), context)
    assert sharded.train.n_windows(50) == 0  # a 50-token shard holds no 51-token window


def test_big_vocabularies_get_uint32(tmp_path):
    words = [f"w{i}" for i in range(70_000)]
    vocab = write_wordlevel_vocab(tmp_path / "vocab", words, added=(SEPARATOR,))
    corpus = write_jsonl(tmp_path / "a.jsonl", ["w1 w69999 w65536", "w0"])
    result = prepare_tokens(vocab, [corpus], out=tmp_path / "t", val_fraction=0)
    assert result.vocab_size == 70_001 and result.manifest["tokens"]["dtype"] == "uint32"
    assert result.train.shards[0].dtype == np.uint32
    assert ids(result.train) == [1, 69999, 65536, 70000, 0, 70000]
    assert (tmp_path / "t" / "train-00000.bin").stat().st_size == 6 * 4


def test_a_second_run_loads_the_cache_without_tokenizing(tmp_path, monkeypatch, cache, char_substrate):
    corpus = write_jsonl(tmp_path / "a.jsonl", DOCS)
    first = prepare_tokens(char_substrate, [corpus])
    assert first.folder == cache / "tokens" / first.key[:32]

    def no_tokenizing(folder):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(data, "load_tokenizer", no_tokenizing)
    second = prepare_tokens(char_substrate, [corpus])
    assert (second.folder, second.key, ids(second.train)) == (first.folder, first.key, ids(first.train))
    explicit = prepare_tokens(char_substrate, [corpus], out=first.folder)  # an --out with the same key: loaded
    assert explicit.key == first.key
    with pytest.raises(AssertionError, match="tokenized again"):  # other inputs, another key: tokenized
        prepare_tokens(char_substrate, [corpus], val_fraction=0.02)


def test_a_damaged_cache_is_rebuilt(tmp_path, cache, char_substrate):
    corpus = write_jsonl(tmp_path / "a.jsonl", DOCS)
    first = prepare_tokens(char_substrate, [corpus])
    expected = ids(first.train)
    shard = first.folder / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(BvvtokError, match="damaged"):
        load_tokens(first.folder)
    assert ids(prepare_tokens(char_substrate, [corpus]).train) == expected


def test_the_key_follows_the_inputs(tmp_path, cache, char_substrate):
    corpus = write_jsonl(tmp_path / "a.jsonl", DOCS)

    def key(vocab: Path, val_fraction: float) -> str:
        return prepare_tokens(vocab, [corpus], val_fraction=val_fraction).key

    first = key(char_substrate, 0)
    assert first == key(char_substrate, 0.0)
    assert first != key(char_substrate, 0.1)
    other_vocab = write_char_vocab(tmp_path / "other")
    (other_vocab / "tokenizer.json").write_text((other_vocab / "tokenizer.json").read_text() + " ")
    assert first != key(other_vocab, 0)
    corpus.write_text(corpus.read_text() + '{"text": "more"}\n')
    assert first != key(char_substrate, 0)


def test_two_prepares_give_byte_identical_folders(tmp_path, char_substrate):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "a.jsonl", DOCS * 5)
    (corpus / "b.txt").write_text("plain text\n" * 10, encoding="utf-8")
    for out in ("one", "two"):
        prepare_tokens(char_substrate, [corpus], out=tmp_path / out, val_fraction=0.3)
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert one == two
    assert {"bvvtok.json", "train-00000.bin", "val-00000.bin"} == set(one)
    assert str(tmp_path) not in one["bvvtok.json"].decode()  # no absolute paths
    assert is_token_folder(tmp_path / "one") and not is_token_folder(char_substrate)


def test_progress_reports_the_corpus_bytes(tmp_path, char_substrate):
    write_jsonl(tmp_path / "a.jsonl.gz", DOCS * 100, gzip.open)
    (tmp_path / "b.txt").write_text("text\n" * 1000, encoding="utf-8")
    total = (tmp_path / "a.jsonl.gz").stat().st_size + (tmp_path / "b.txt").stat().st_size
    calls = []
    prepare_tokens(char_substrate, [tmp_path], out=tmp_path / "t", progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_unigram_counts(tmp_path, monkeypatch, char_substrate):
    monkeypatch.setattr(data, "SHARD_TOKENS", 16)
    result = prepare_tokens(char_substrate, [write_jsonl(tmp_path / "a.jsonl", DOCS)], out=tmp_path / "t",
                            val_fraction=0)
    assert len(result.train.shards) > 2
    counts = result.train.unigram_counts(result.vocab_size)
    assert counts.dtype == np.int64 and counts.shape == (result.vocab_size,)
    assert dict((i, int(c)) for i, c in enumerate(counts) if c) == Counter(ids(result.train))
    assert counts.sum() == result.train.n_tokens
    assert not result.val.unigram_counts(result.vocab_size).any()


def test_an_empty_corpus_names_its_files(tmp_path, char_substrate):
    (tmp_path / "a.txt").write_text("", encoding="utf-8")
    write_jsonl(tmp_path / "b.jsonl", ["", ""])
    with pytest.raises(BvvtokError, match="no text in") as e:
        prepare_tokens(char_substrate, [tmp_path / "a.txt", tmp_path / "b.jsonl"], out=tmp_path / "t")
    assert "a.txt" in str(e.value) and "b.jsonl" in str(e.value)
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.*"))  # nothing half-written


def test_a_file_that_is_not_utf8_is_named(tmp_path, char_substrate):
    write_jsonl(tmp_path / "a.jsonl", DOCS)
    (tmp_path / "bad.txt").write_bytes(b"fine\n\xff\xfe not utf-8\n")
    with pytest.raises(BvvtokError, match=r"bad\.txt is not valid UTF-8"):
        prepare_tokens(char_substrate, [tmp_path], out=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_tokenizer_without_the_separator_is_refused(tmp_path):
    vocab = write_wordlevel_vocab(tmp_path / "vocab", ["a", "b"])
    with pytest.raises(BvvtokError, match="has no </s> token"):
        prepare_tokens(vocab, [write_jsonl(tmp_path / "a.jsonl", ["a b"])], out=tmp_path / "t")


@pytest.mark.parametrize("fraction", [-0.01, 0.51, 1.0, float("nan")])
def test_val_fraction_must_be_between_0_and_half(tmp_path, char_substrate, fraction):
    with pytest.raises(BvvtokError, match="val_fraction must be between 0 and 0.5"):
        prepare_tokens(char_substrate, [write_jsonl(tmp_path / "a.jsonl", DOCS)], out=tmp_path / "t",
                       val_fraction=fraction)


def test_an_existing_out_is_kept_without_force(tmp_path, char_substrate, tok):
    corpus = write_jsonl(tmp_path / "a.jsonl", DOCS)
    out = tmp_path / "t"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    for force in (False, True):  # a folder of the user's: never replaced
        with pytest.raises(BvvtokError, match="did not write"):
            prepare_tokens(char_substrate, [corpus], out=out, force=force)
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "mine.txt").unlink()
    prepare_tokens(char_substrate, [corpus], out=out)
    replaced = prepare_tokens(char_substrate, [corpus], out=out, val_fraction=0, force=True)
    assert replaced.manifest["tokens"]["val_fraction"] == 0
    with pytest.raises(BvvtokError, match="force=True"):  # a token folder of other inputs is kept too
        prepare_tokens(char_substrate, [corpus], out=out, val_fraction=0.1)
    assert load_tokens(out).key == replaced.key


def test_not_enough_disk_space_is_refused_before_writing(tmp_path, monkeypatch, char_substrate):
    corpus = write_jsonl(tmp_path / "a.jsonl", ["x" * 600_000])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1_000_000, 1_000_000))
    with pytest.raises(BvvtokError, match="not enough disk space") as e:  # 600 kB of text needs 1.2 MB of uint16
        prepare_tokens(char_substrate, [corpus], out=tmp_path / "t")
    assert "need about 1.2 MB, 1.0 MB free" in str(e.value) and str(tmp_path) in str(e.value)
    assert not (tmp_path / "t").exists()


def test_load_tokens_refuses_other_folders(tmp_path, char_substrate):
    with pytest.raises(BvvtokError, match="not a token folder"):
        load_tokens(char_substrate)
    with pytest.raises(BvvtokError, match="not a token folder"):
        load_tokens(tmp_path)
    assert not is_token_folder(tmp_path)


def test_every_corpus_format_gives_the_same_shards(tmp_path, char_substrate):
    """The same documents as .txt files, .jsonl, .jsonl.zst, Parquet, a save_to_disk folder and hf: over Parquet."""
    texts = [*DOCS, "", "你好世界，今天天气很好", "</s>"] * 4
    formats = write_corpus_formats(tmp_path / "formats", texts)
    results = {kind: prepare_tokens(char_substrate, [path], out=tmp_path / f"tokens-{i}", val_fraction=0.2)
               for i, (kind, path) in enumerate(formats.items())}  # fmt: skip
    counts = ("train_tokens", "val_tokens", "documents", "pieces")
    expected = results.pop("jsonl")
    assert expected.manifest["tokens"]["documents"] == 4 * (len(DOCS) + 2)  # the empty texts are no documents
    for kind, result in results.items():
        assert {p.name: p.read_bytes() for p in result.folder.glob("*.bin")} == \
               {p.name: p.read_bytes() for p in expected.folder.glob("*.bin")}, kind  # fmt: skip
        assert [result.manifest["tokens"][c] for c in counts] == [expected.manifest["tokens"][c] for c in counts], kind
    (remote,) = results["hf"].manifest["tokens"]["corpus"]
    assert remote["bytes"] is None and "keyed by its name" in remote["keyed_by"]
    assert remote["name"] == str(formats["hf"]) and remote["text_column"] == "text"


def test_the_text_column_is_part_of_the_key(tmp_path, char_substrate, tok):
    pq.write_table(pa.table({"text": ["one", "two"], "body": ["three", "four"]}), tmp_path / "a.parquet")
    default = prepare_tokens(char_substrate, [tmp_path / "a.parquet"], out=tmp_path / "t1", val_fraction=0)
    body = prepare_tokens(char_substrate, [tmp_path / "a.parquet"], out=tmp_path / "t2", val_fraction=0,
                          text_column="body")  # fmt: skip
    assert documents(tok, default.train) == ["one", "two"] and documents(tok, body.train) == ["three", "four"]
    again = prepare_tokens(char_substrate, [tmp_path / "a.parquet"], out=tmp_path / "t3", val_fraction=0,
                           text_column="body")  # fmt: skip
    assert default.key != body.key == again.key
    assert body.manifest["tokens"]["corpus"][0]["text_column"] == "body"


def test_the_disk_estimate_reads_parquet_and_zst_headers(tmp_path):
    texts = [f"text number {i} " * 20 for i in range(500)]
    formats = write_corpus_formats(tmp_path, texts)
    text_bytes = sum(len(t.encode()) for t in texts)
    (parquet,) = corpus_files(formats["parquet"])
    assert text_bytes <= parquet.text_bytes() < 2 * text_bytes  # the text column's uncompressed pages
    (zst,) = corpus_files(formats["jsonl.zst"])
    assert zst.text_bytes() == formats["jsonl"].stat().st_size  # the frame's content size


def test_the_shards_hold_encode_batchs_ids_on_a_vocabulary_with_merges(tmp_path, offline_65k):
    """prepare encodes without offsets (encode_batch_fast): the ids must be encode_batch's, n-gram merges included."""
    from tokenizers import Tokenizer

    from bvvtok.vocab.build import save_vocab

    vocab = tmp_path / "vocab"
    save_vocab(offline_65k, vocab)
    texts = [f"{i}: the theory of the other thing, {DOCS[i % len(DOCS)]} 这是中文的文本。" for i in range(300)]
    result = prepare_tokens(vocab, [write_jsonl(tmp_path / "a.jsonl", texts)], out=tmp_path / "t", val_fraction=0)
    tok = Tokenizer.from_file(str(vocab / "tokenizer.json"))  # its own copy: the session's build is shared
    tok.encode_special_tokens = True
    separator = tok.token_to_id(SEPARATOR)
    expected = [i for e in tok.encode_batch(texts, add_special_tokens=False) for i in e.ids + [separator]]
    assert ids(result.train) == expected
    assert len(expected) < sum(len(t) for t in texts) + len(texts)  # merges: fewer tokens than characters
