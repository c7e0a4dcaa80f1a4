"""Reading a user's corpus and counting it (`bvvtok ngrams` as a library call)."""

import gzip
import itertools
import json
import pickle
import random
import shutil
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import assert_user_error, invoke, write_corpus_formats

from bvvtok.errors import BvvtokError
from bvvtok.vocab import corpus_stats
from bvvtok.vocab.corpus import ZST_RATIO, CorpusFile, corpus_files, hf_source, iter_texts, read_documents
from bvvtok.vocab.corpus_stats import corpus_size, count_corpus
from bvvtok.vocab.count_workers import _Workers
from bvvtok.vocab.counting import get_rule

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


# every format (conftest.write_corpus_formats writes the same documents in each)

DOCS = ["hello world", "the cat sat\non the mat", "你好世界，今天天气很好", "", "a</s>b <s> literal specials", "x",
        "ünïcödé ελληνικά"] * 3  # fmt: skip


@pytest.fixture
def formats(tmp_path):
    return write_corpus_formats(tmp_path / "formats", DOCS)


def test_every_format_gives_the_same_documents(formats):
    for kind, path in formats.items():
        files = corpus_files(path)
        texts = [t for file in files for t in (["".join(iter_texts(file))] if kind == "txt" else iter_texts(file))]
        assert texts == DOCS, kind
        assert all(file.records for file in files) == (kind != "txt")
        assert all(pickle.loads(pickle.dumps(file)) == file for file in files)  # a worker process can be handed one


def test_every_format_gives_the_same_ngram_counts(formats):
    counts = {kind: count_corpus({"en": path}, orders=(1, 2, 3), top=50) for kind, path in formats.items()}
    first = counts.pop("jsonl").languages[0]
    assert first.chars > 0
    for kind, stats in counts.items():
        assert (stats.languages[0].top_ngrams, stats.languages[0].chars) == (first.top_ngrams, first.chars), kind


def test_read_documents_takes_every_format(formats, tmp_path):
    for kind, path in formats.items():
        assert read_documents(path) == [d for d in DOCS if d or kind != "txt"], kind  # an empty .txt file is no document
    with zstandard.open(tmp_path / "a.txt.zst", "wt", encoding="utf-8") as f:
        f.write("first\nparagraph\n\nsecond\n")
    assert read_documents(tmp_path / "a.txt.zst") == ["first\nparagraph", "second"]


@pytest.mark.parametrize("kind", ["jsonl.zst", "parquet", "saved"])
def test_on_bytes_adds_up_to_the_size_on_disk(formats, kind):
    seen = []
    files = corpus_files(formats[kind])
    assert len(list(itertools.chain.from_iterable(iter_texts(file, seen.append) for file in files))) == len(DOCS)
    assert sum(seen) == sum(file.size for file in files) == corpus_size({"en": formats[kind]})
    assert len(seen) > 1 or kind == "jsonl.zst"  # a row group or record batch at a time


def test_a_hf_dataset_has_no_size(formats):
    assert corpus_files(formats["hf"])[0].size is None
    assert corpus_size({"en": formats["hf"], "zh": formats["jsonl"]}) is None


def test_parquet_is_read_one_row_group_at_a_time(formats, monkeypatch):
    reads = []
    read_row_group = pq.ParquetFile.read_row_group

    def spy(self, index, *args, **kwargs):
        reads.append(index)
        return read_row_group(self, index, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq, "read_table", None)  # never the whole file
    texts = iter_texts(corpus_files(formats["parquet"])[0])
    assert next(texts) == DOCS[0] and reads == [0]
    groups = pq.ParquetFile(formats["parquet"]).metadata.num_row_groups
    assert list(texts) == DOCS[1:] and reads == list(range(groups)) and groups > 2


def test_a_folder_mixes_formats(formats, tmp_path):
    mixed = tmp_path / "mixed"
    (mixed / "sub").mkdir(parents=True)
    shutil.copy(formats["parquet"], mixed / "b.parquet")
    shutil.copy(formats["jsonl.zst"], mixed / "sub" / "c.jsonl.zst")
    shutil.copytree(formats["saved"], mixed / "d-saved")
    (mixed / "a.txt").write_text("plain\n", encoding="utf-8")
    shutil.copy(next((formats["saved"]).glob("*.arrow")), mixed / "stray.arrow")  # not in a save_to_disk folder
    files = corpus_files(mixed)
    assert [(f.name, f.format) for f in files] == [("a.txt", ".txt"), ("b.parquet", ".parquet"),
                                                    ("d-saved/data-00000-of-00001.arrow", ".arrow"),
                                                    ("sub/c.jsonl.zst", ".jsonl.zst")]  # fmt: skip
    assert [t for f in files for t in iter_texts(f)] == ["plain\n", *DOCS * 3]


def test_the_text_column_is_chosen(tmp_path):
    pq.write_table(pa.table({"text": ["not this"], "body": ["this"]}), tmp_path / "a.parquet")
    write_jsonl(tmp_path / "b.jsonl", ["not this"])
    (tmp_path / "b.jsonl").write_text('{"body": "that"}\n', encoding="utf-8")
    (folder,) = [tmp_path]
    files = corpus_files(folder, text_column="body")
    assert {f.text_column for f in files} == {"body"}
    assert [t for f in files for t in iter_texts(f)] == ["this", "that"]
    assert count_corpus({"en": folder}, orders=(2,), text_column="body").languages[0].chars == len("thisthat")


def test_a_zst_txt_file_is_read_line_by_line(tmp_path):
    lines = [f"line {i} 你好\n" for i in range(2000)]
    data = "".join(lines).encode()
    two_frames = zstandard.ZstdCompressor().compress(data[:5000]) + zstandard.ZstdCompressor().compress(data[5000:])
    (tmp_path / "a.txt.zst").write_bytes(two_frames)  # frames one after another, as `cat a.zst b.zst` makes
    (file,) = corpus_files(tmp_path / "a.txt.zst")
    seen = []
    assert list(iter_texts(file, seen.append)) == lines and sum(seen) == len(two_frames)
    assert file.text_bytes() == 5000  # the first frame's header
    with zstandard.open(tmp_path / "b.txt.zst", "wb") as f:  # streamed: no content size in the header
        f.write(data)
    assert corpus_files(tmp_path / "b.txt.zst")[0].text_bytes() == (tmp_path / "b.txt.zst").stat().st_size * ZST_RATIO


# bad files: one line naming the file and the fix


def test_a_parquet_file_without_the_column(tmp_path):
    pq.write_table(pa.table({"body": ["a"], "id": [1]}), tmp_path / "a.parquet")
    with pytest.raises(BvvtokError, match=r"a.parquet has no column 'text' \(it has body, id\); name the text's column with text_column"):
        list(iter_texts(tmp_path / "a.parquet"))


def test_a_parquet_column_that_is_not_text(tmp_path):
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "a.parquet")
    with pytest.raises(BvvtokError, match=r"a.parquet: column 'text' holds int64, not strings"):
        list(iter_texts(tmp_path / "a.parquet"))


def test_a_cut_short_parquet_file(formats, tmp_path):
    data = formats["parquet"].read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(BvvtokError, match=r"cut.parquet is not a readable Parquet file"):
        list(iter_texts(tmp_path / "cut.parquet"))


def test_a_damaged_parquet_row_group_is_named(tmp_path):
    pq.write_table(pa.table({"text": [f"row {i} " * 50 for i in range(300)]}), tmp_path / "a.parquet",
                   row_group_size=100, compression="zstd")  # fmt: skip
    chunk = pq.ParquetFile(tmp_path / "a.parquet").metadata.row_group(1).column(0)
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + 16] = b"\xff" * 16  # the first page header of row group 1
    (tmp_path / "a.parquet").write_bytes(bytes(data))
    texts = iter_texts(tmp_path / "a.parquet")
    assert [next(texts) for _ in range(100)]  # row group 0 is whole
    with pytest.raises(BvvtokError, match=r"a.parquet: row group 1 of 3 cannot be read .* write it again"):
        list(texts)


@pytest.mark.parametrize("cut", [True, False])
def test_a_damaged_zst_file_names_the_byte_reached(tmp_path, cut):
    frame = zstandard.ZstdCompressor().compress("".join(f"line {i}\n" for i in range(50_000)).encode())
    damaged = frame + (frame[: len(frame) // 2] if cut else b"not a zstd frame" + frame)  # the second frame is bad
    (tmp_path / "a.txt.zst").write_bytes(damaged)
    with pytest.raises(BvvtokError, match=rf"cannot read .*a.txt.zst \(stopped at byte [\d,]+ of {len(damaged):,}\): .*; the file is damaged or cut short"):
        list(iter_texts(tmp_path / "a.txt.zst"))


def test_a_hf_dataset_that_cannot_be_reached(monkeypatch):
    with pytest.raises(BvvtokError, match=r"^hf:nobody/nothing: the dataset could not be reached .*local files work offline$"):
        list(iter_texts(Path("hf:nobody/nothing")))


def test_hf_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    with pytest.raises(BvvtokError, match=r"needs the datasets package; install it with pip install 'bvvtok\[datasets\]'"):
        list(iter_texts(Path("hf:nobody/nothing")))


def test_hf_sources():
    assert hf_source("hf:wikitext") == ("wikitext", None, "train")
    assert hf_source("hf:wikitext:wikitext-2-raw-v1:test") == ("wikitext", "wikitext-2-raw-v1", "test")
    assert hf_source("hf:org/name::validation") == ("org/name", None, "validation")
    with pytest.raises(BvvtokError, match="names no dataset"):
        hf_source("hf:")


# the commands: --text-column, and hf: without the datasets package


@pytest.fixture
def body_parquet(tmp_path):
    pq.write_table(pa.table({"text": ["not this"], "body": ["hello world"]}), tmp_path / "a.parquet")
    return tmp_path / "a.parquet"


def test_commands_take_the_text_column(body_parquet, tmp_path, char_substrate, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    ngrams = invoke("ngrams", "--input", f"en={body_parquet}", "--out", str(tmp_path / "s.json"), "--text-column", "body")
    assert ngrams.exit_code == 0, ngrams.output
    prepare = invoke("prepare", "--substrate", str(char_substrate), "--corpus", str(body_parquet), "--out",
                     str(tmp_path / "tokens"), "--text-column", "body")  # fmt: skip
    assert prepare.exit_code == 0, prepare.output
    assert json.loads((tmp_path / "tokens" / "bvvtok.json").read_text())["tokens"]["corpus"][0]["text_column"] == "body"
    bench = invoke("bench-tokenizer", str(char_substrate), "--text", f"en={body_parquet}", "--text-column", "body")
    assert bench.exit_code == 0 and "en" in bench.output, bench.output
    counted = (tmp_path / "s.json").read_text(encoding="utf-8")
    assert '"ll"' in counted and '"th"' not in counted  # the body, not the text column


def test_train_and_eval_pass_the_text_column_on(monkeypatch, tmp_path):
    import bvvtok.lm.evals.report as report
    import bvvtok.lm.train as training

    seen = {}
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.setdefault("train", args[-1]) and None)
    monkeypatch.setattr(report, "evaluate_runs", lambda runs, tasks, *rest: seen.setdefault("eval", tasks) and [])
    invoke("train", "--substrate", "S", "--corpus", "hf:x", "--out", str(tmp_path / "out"), "--text-column", "body")
    invoke("eval", str(tmp_path), "--perplexity", "hf:x", "--held-out", "hf:x", "--text-column", "body")
    assert seen["train"] == "body"
    assert [task.text_column for task in seen["eval"]] == ["body", "body"]


def test_hf_without_the_datasets_package_on_the_command_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert_user_error(invoke("ngrams", "--input", "en=hf:nobody/nothing", "--out", str(tmp_path / "s.json")),
                      "hf:nobody/nothing: reading a Hugging Face dataset needs the datasets package",
                      "pip install 'bvvtok[datasets]'")  # fmt: skip
    assert not list(tmp_path.iterdir())


# --- counting in worker processes ---

SCRIPTS = {"en": "abcdefghij'’ 12,.", "zh": "中文字符的是了。，ab 3", "el": "αβγδεζ καλ,ab", "mix": "aé\u0301ж中\U0001F600 \t!\0"}


def random_corpus(folder, seed):
    """Several languages of Zipf-ish random text, one as a folder of two files (one gzipped .jsonl)."""
    rng = random.Random(seed)
    inputs = {}
    for lang, alphabet in SCRIPTS.items():
        words = ["".join(rng.choices(alphabet, k=rng.randint(1, 8))) for _ in range(60)]
        lines = [" ".join(rng.choices(words, weights=[1 / (i + 1) for i in range(60)], k=rng.randint(0, 12))) for _ in range(300)]
        if lang == "zh":
            inputs[lang] = folder / lang
            inputs[lang].mkdir()
            (inputs[lang] / "a.txt").write_text("\n".join(lines[:150]) + "\n", encoding="utf-8")
            write_jsonl(inputs[lang] / "b.jsonl.gz", lines[150:], gzip.open)
        else:
            inputs[lang] = folder / f"{lang}.txt"
            inputs[lang].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return inputs


def counted_one_text_at_a_time(inputs, orders, rule, top):
    """bvvtok's counts before worker processes: every window of every text, in order, into one Counter per order."""
    units_of = get_rule(rule)
    result = {}
    for lang, path in inputs.items():
        counts = {n: Counter() for n in orders}
        chars = 0
        for file in corpus_files(path):
            for text in iter_texts(file):
                units = units_of(text)
                chars += sum(map(len, units))
                for n, counter in counts.items():
                    counter.update(u[i : i + n] for u in units for i in range(len(u) - n + 1))
        result[lang] = ({n: sorted(c.items(), key=lambda gc: (-gc[1], gc[0]))[:top] for n, c in counts.items()}, chars)
    return result


@pytest.mark.parametrize("rule", ["default", "bvv241"])
@pytest.mark.parametrize("seed", range(3))
def test_any_number_of_workers_counts_the_same(tmp_path, monkeypatch, rule, seed):
    inputs = random_corpus(tmp_path, seed)
    expected = counted_one_text_at_a_time(inputs, (1, 2, 3, 5), rule, 40)
    monkeypatch.setattr(corpus_stats, "BATCH_CHARS", 500)  # many batches, shared out among the workers
    for workers in (1, 2, 3):
        stats = count_corpus(inputs, (1, 2, 3, 5), rule, top=40, workers=workers)
        assert {e.lang: (e.top_ngrams, e.chars) for e in stats.languages} == expected, f"{workers} workers"
        assert stats.codes == list(SCRIPTS)
        assert (stats.meta["approximate_languages"], stats.meta["max_undercount"]) == ([], {})


@pytest.mark.parametrize("workers", [1, 2])
def test_pruned_counts_state_how_low_they_may_be(tmp_path, monkeypatch, workers):
    inputs = random_corpus(tmp_path, 7)
    exact = counted_one_text_at_a_time(inputs, (2, 3), "default", 10**6)
    monkeypatch.setattr(corpus_stats, "BATCH_CHARS", 500)
    stats = count_corpus(inputs, (2, 3), top=20, max_entries=40, workers=workers)
    assert stats.meta["approximate_languages"] == list(stats.meta["max_undercount"]) != []
    for e in stats.languages:
        bound = stats.meta["max_undercount"].get(e.lang, 0)
        truth = {n: dict(ranked) for n, ranked in exact[e.lang][0].items()}
        assert e.chars == exact[e.lang][1]
        for n, ranked in e.top_ngrams.items():
            assert all(0 <= truth[n][gram] - count <= bound for gram, count in ranked)


def test_progress_is_reported_with_workers(tmp_path):
    inputs = random_corpus(tmp_path, 1)
    seen = []
    count_corpus(inputs, (2,), top=5, on_bytes=seen.append, workers=2)
    assert sum(seen) == corpus_size(inputs)


def test_workers_must_be_at_least_one(tmp_path):
    (tmp_path / "en.txt").write_text(TEXT, encoding="utf-8")
    for workers in (0, -1):
        with pytest.raises(BvvtokError, match=f"^workers must be at least 1 \\(got {workers}\\); give 1 to count in this process"):
            count_corpus({"en": tmp_path / "en.txt"}, workers=workers)


def test_a_worker_that_dies_is_an_error_not_a_wait():
    class Killed:
        exitcode = -9

    with _Workers(1, ((2,), "default", 100, 10)) as pool:
        pool.processes.append(Killed())
        with pytest.raises(BvvtokError, match="exit code -9.*fewer workers or a smaller max_entries"):
            pool.collect()
        pool.processes.clear()
