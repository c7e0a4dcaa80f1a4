"""Reading a user's corpus and counting it (`bvvtok ngrams` as a library call)."""

import gzip
import json
import random
from collections import Counter

import pytest

from bvvtok.errors import BvvtokError
from bvvtok.vocab.corpus import corpus_files, iter_texts
from bvvtok.vocab import corpus_stats
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
    assert [p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path)] == ["a.jsonl", "b.txt", "sub/c.txt.gz", "sub/d.jsonl.gz"]
    assert corpus_files(tmp_path / "b.txt") == [tmp_path / "b.txt"]
    with pytest.raises(BvvtokError, match="unsupported"):
        corpus_files(tmp_path / "notes.md")
    with pytest.raises(BvvtokError, match="not found"):
        corpus_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BvvtokError, match="empty"):
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
