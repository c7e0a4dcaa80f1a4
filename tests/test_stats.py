import json

import pytest

from bvvtok.errors import BvvtokError
from bvvtok.vocab.stats import LanguageStats, NgramStats, load_stats, merge_stats, save_stats

PUBLISHED = "[{'lang': 'en', 'language_name': 'English', 'top_ngrams': {2: [('th', 10), ('he', 9)], 3: [('the', 5)]}}]"


def three_languages():
    return NgramStats(
        [
            LanguageStats("en", "English", {2: [("th", 10)], 3: [("the", 5)]}, 1000),
            LanguageStats("ru", "Russian", {2: [("ст", 7)], 3: [("ств", 2)], 4: [("ство", 1)]}, 900),
            LanguageStats("de", "German", {2: [("ch", 8)]}, 800),
        ]
    )


def test_reads_the_published_python_literal_format(tmp_path):
    path = tmp_path / "ngrams-2-3.txt"
    path.write_text(PUBLISHED, encoding="utf-8")
    stats = load_stats(path)
    assert stats.languages == [LanguageStats("en", "English", {2: [("th", 10), ("he", 9)], 3: [("the", 5)]}, None)]
    assert stats.meta["format"] == "bvv241-python-literal"
    assert stats.meta["file"] == "ngrams-2-3.txt"


def test_language_name_defaults_to_the_code(write_stats):
    stats = load_stats(write_stats([{"lang": "xx", "top_ngrams": {2: [("ab", 1)]}}]))
    assert stats.languages[0].language_name == "xx"


def test_json_round_trip_keeps_everything(tmp_path):
    stats = NgramStats(
        [
            LanguageStats("en", "English", {2: [("th", 10), ("he", 9)], 3: [("the", 5)]}, 12_345),
            LanguageStats("zh", "Chinese", {2: [("中国", 3)], 5: [("\U0001F600abcd", 1)]}, 99),
            LanguageStats("xx", "Published", {2: [("ab", 2)]}, None),
        ],
        {"source": "corpus", "rule": "default"},
    )
    path = tmp_path / "stats.json"
    save_stats(stats, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (raw["format"], raw["version"]) == ("bvvtok-ngrams", 1)
    loaded = load_stats(path)
    assert loaded.languages == stats.languages
    assert loaded.meta["source"] == "corpus"
    assert loaded.meta["rule"] == "default"
    assert loaded.meta["file"] == "stats.json"


def test_save_stats_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text("keep", encoding="utf-8")
    with pytest.raises(BvvtokError, match="force=True"):
        save_stats(three_languages(), path)
    assert path.read_text(encoding="utf-8") == "keep"
    save_stats(three_languages(), path, force=True)
    assert load_stats(path).codes == ["en", "ru", "de"]
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]  # no temporary files left


@pytest.mark.parametrize(
    "payload",
    [
        "__import__('os').system('echo pwned')",
        "[{'lang': 'en', 'top_ngrams': {2: [(__import__('os').system('echo pwned'), 1)]}}]",
        "[{'lang': 'en', 'top_ngrams': {2: [('ab', open('PWNED', 'w'))]}}]",
    ],
)
def test_code_in_a_statistics_file_is_never_run(tmp_path, monkeypatch, capfd, payload):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.txt"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(BvvtokError, match="evil.txt"):
        load_stats(path)
    assert "pwned" not in capfd.readouterr().out
    assert not (tmp_path / "PWNED").exists()


BAD_FILES = {
    "not a literal": "[{'lang': 'en', 'top_ngrams': {2: [('th', 1)]}",
    "not a list": "{'lang': 'en', 'top_ngrams': {}}",
    "missing lang": "[{'language_name': 'English', 'top_ngrams': {2: [('th', 1)]}}]",
    "lang not a string": "[{'lang': 7, 'top_ngrams': {2: [('th', 1)]}}]",
    "missing top_ngrams": "[{'lang': 'en'}]",
    "count not a number": "[{'lang': 'en', 'top_ngrams': {2: [('th', 'many')]}}]",
    "count is a bool": "[{'lang': 'en', 'top_ngrams': {2: [('th', True)]}}]",
    "gram not a string": "[{'lang': 'en', 'top_ngrams': {2: [(12, 1)]}}]",
    "not a pair": "[{'lang': 'en', 'top_ngrams': {2: [('th', 1, 2)]}}]",
    "order not an integer": "[{'lang': 'en', 'top_ngrams': {'two': [('th', 1)]}}]",
    "chars not positive": '{"format": "bvvtok-ngrams", "version": 1, "languages": [{"lang": "en", "chars": 0, "top_ngrams": {}}]}',
    "bad version": '{"format": "bvvtok-ngrams", "version": 2, "languages": []}',
    "no languages": '{"format": "bvvtok-ngrams", "version": 1}',
    "empty file": "",
}


@pytest.mark.parametrize("text", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_malformed_statistics_raise_an_error_naming_the_file(tmp_path, text):
    path = tmp_path / "bad-stats.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BvvtokError) as caught:
        load_stats(path)
    assert str(path) in str(caught.value)


def test_bad_version_is_named(tmp_path):
    path = tmp_path / "v2.json"
    path.write_text('{"format": "bvvtok-ngrams", "version": 2, "languages": []}', encoding="utf-8")
    with pytest.raises(BvvtokError, match="version 2"):
        load_stats(path)


def test_unhashable_literal_raises_bvvtok_error(tmp_path):
    path = tmp_path / "unhashable.txt"
    path.write_text("[{'lang': 'en', 'top_ngrams': {[2]: [('th', 1)]}}]", encoding="utf-8")
    with pytest.raises(BvvtokError, match="unhashable.txt"):
        load_stats(path)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.txt"
    with pytest.raises(BvvtokError, match="nowhere.txt"):
        load_stats(path)


def test_non_utf8_and_folders_are_errors(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("[{'lang': 'fr', 'top_ngrams': {2: [('é', 1)]}}]".encode("latin-1"))
    with pytest.raises(BvvtokError, match="latin1.txt"):
        load_stats(latin1)
    with pytest.raises(BvvtokError):
        load_stats(tmp_path)


def test_entries_filter_languages_and_orders():
    stats = three_languages()
    assert {e.lang for e in stats.entries(["ru", "en", "fr"])} == {"en", "ru"}
    ru = stats.entries(["ru"], orders=[2, 4])[0]
    assert ru.top_ngrams == {2: [("ст", 7)], 4: [("ство", 1)]}
    assert ru.chars == 900
    assert stats.entries(["ru"])[0].top_ngrams.keys() == {2, 3, 4}
    assert stats.entries([]) == []
    # Filtering makes copies: the statistics themselves keep every order.
    assert stats.languages[1].top_ngrams.keys() == {2, 3, 4}


def test_merge_stats_concatenates_entries():
    a = NgramStats([LanguageStats("en", "English", {2: [("th", 1)]})], {"file": "a"})
    b = NgramStats([LanguageStats("en", "English", {2: [("he", 1)]}), LanguageStats("zh", "Chinese", {})], {"file": "b"})
    merged = merge_stats([a, b])
    assert [e.top_ngrams for e in merged.languages] == [{2: [("th", 1)]}, {2: [("he", 1)]}, {}]
    assert merged.codes == ["en", "zh"]
    assert merged.meta["sources"] == [{"file": "a"}, {"file": "b"}]
