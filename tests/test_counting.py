import random
from collections import Counter

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bvvtok.errors import BvvtokError
from bvvtok.vocab.counting import NgramCounter, TextCounter, bvv241_units, default_units, get_rule, top_weighted_ngrams

# --- the bvv241 rule (the published recipe) ---


def test_bvv241_straightens_quotes():
    assert bvv241_units("don’t rock‘n‘roll it`s") == ["don't", "rock'n'roll", "it's"]


def test_bvv241_deletes_digits_instead_of_splitting():
    assert bvv241_units("abc123def room 42b") == ["abcdef", "room", "b"]


def test_bvv241_control_spaces_separate_words():
    assert bvv241_units("ab\tcd\ref\fgh\vij") == ["ab", "cd", "ef", "gh", "ij"]


def test_bvv241_cjk_text_is_one_unit_without_white_space():
    assert bvv241_units("中文 字\n符\t12 abc, x") == ["中文字符abc,x"]
    assert bvv241_units("한국어 텍스트") == ["한국어텍스트"]
    assert bvv241_units("ひらがな カタカナ") == ["ひらがなカタカナ"]


def test_bvv241_words_cover_latin_and_cyrillic_only():
    assert bvv241_units("Ærøskøbing façade, привет!") == ["Ærøskøbing", "façade", "привет"]
    assert bvv241_units("Ελληνικά κείμενα") == []
    assert bvv241_units("مرحبا بالعالم") == []
    assert bvv241_units("e\u0301te") == ["e", "te"]  # a combining mark is outside the original regex


# --- bvvtok's default rule ---


def test_default_counts_every_script():
    assert default_units("Ελληνικά κείμενα") == ["Ελληνικά", "κείμενα"]
    assert default_units("مرحبا بالعالم") == ["مرحبا", "بالعالم"]
    assert default_units("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # vowel signs and virama stay inside the word
    assert default_units("e\u0301te") == ["e\u0301te"]


def test_default_splits_on_digits_and_punctuation_and_keeps_inner_apostrophes():
    assert default_units("abc123def") == ["abc", "def"]
    assert default_units("中文，字符") == ["中文", "字符"]
    assert default_units("don’t 'quoted' l'homme") == ["don't", "quoted", "l'homme"]


def test_get_rule():
    assert get_rule("bvv241") is bvv241_units
    assert get_rule("default") is default_units
    with pytest.raises(BvvtokError, match="nope"):
        get_rule("nope")


# --- NgramCounter ---


def test_windows_stay_inside_units():
    counter = NgramCounter([2, 3])
    counter.add(["hello", "world"])
    assert counter.counts[2]["ll"] == 1
    assert counter.counts[2]["lo"] == 1
    assert "ow" not in counter.counts[2]  # 'hello' + 'world' would give it
    assert "low" not in counter.counts[3]
    assert sum(counter.counts[3].values()) == 3 + 3
    counter.add(["hi"])  # shorter than 3: only a 2-gram
    assert sum(counter.counts[3].values()) == 6
    assert counter.counts[2]["hi"] == 1


def test_weights_multiply_counts():
    counter = NgramCounter([2])
    counter.add(["abab"], weight=3)
    counter.add(["ab"])
    assert counter.counts[2] == {"ab": 7, "ba": 3}


def test_top_ranks_by_count_then_code_point():
    counter = NgramCounter([2])
    counter.add(["zz", "ba", "ab", "Ab", "\U0001F600x", "\uff01x", "zz"])
    assert counter.top(10)[2] == [("zz", 2), ("Ab", 1), ("ab", 1), ("ba", 1), ("\uff01x", 1), ("\U0001F600x", 1)]
    assert counter.top(2)[2] == [("zz", 2), ("Ab", 1)]


def test_pruning_keeps_the_most_frequent():
    counter = NgramCounter([2], max_entries=4)
    counter.add(["zzzzzz"])
    assert not counter.pruned
    counter.add(["ab", "cd", "ef", "gh", "ij"])
    assert counter.pruned
    assert len(counter.counts[2]) == 2
    assert counter.counts[2]["zz"] == 5
    counter.add(["zz"])
    assert counter.top(1) == {2: [("zz", 6)]}


def test_no_pruning_under_the_limit():
    counter = NgramCounter([2], max_entries=5)
    counter.add(["ab", "cd", "ef", "gh", "ij"])
    assert not counter.pruned
    assert len(counter.counts[2]) == 5


# --- the vectorised fast path ---


def reference_top(units, weights, orders, k):
    counter = NgramCounter(orders)
    for unit, weight in zip(units, weights):
        counter.add([unit], weight)
    return counter.top(k)


def test_top_weighted_ngrams_example():
    assert top_weighted_ngrams(["abab", "ba"], [2, 5], [2, 3], 2) == {2: [("ba", 7), ("ab", 4)], 3: [("aba", 2), ("bab", 2)]}


# Latin, a combining mark, an apostrophe, CJK, a fullwidth sign, Hebrew and a non-BMP emoji.
ALPHABET = "abZ'é\u0301\u0308中文\uff01\u05d0\U0001F600"
weighted_units = st.lists(st.tuples(st.text(ALPHABET, max_size=12), st.integers(1, 10**9)), max_size=30)


@given(weighted_units, st.sets(st.integers(2, 5), min_size=1), st.integers(1, 40))
@example([("\U0001F600a", 1), ("\uff01a", 1)], {2}, 1)  # tie broken by code point, not UTF-16
@example([], {2, 3}, 5)
def test_top_weighted_ngrams_matches_the_counter(pairs, orders, k):
    units = [u for u, _ in pairs]
    weights = [w for _, w in pairs]
    assert top_weighted_ngrams(units, weights, orders, k) == reference_top(units, weights, orders, k)


def test_top_weighted_ngrams_large_alphabet_falls_back_to_the_counter():
    # 7,000 distinct characters: 7000**5 does not fit in 63 bits, 7000**2 does.
    chars = [chr(0x4E00 + i) for i in range(7000)]
    units = ["".join(chars[i : i + 9]) for i in range(0, 7000, 7)]
    weights = [1 + i % 5 for i in range(len(units))]
    assert top_weighted_ngrams(units, weights, [2, 5], 50) == reference_top(units, weights, [2, 5], 50)


def test_top_weighted_ngrams_k_zero():
    assert top_weighted_ngrams(["abc"], [1], [2], 0) == reference_top(["abc"], [1], [2], 0) == {2: []}


# --- counting distinct units once, weighted; merging; the undercount bound ---


def every_window(units, weights, orders):
    """Counts of every window of every unit, one at a time: what NgramCounter must match."""
    counts = {n: Counter() for n in orders}
    for unit, weight in zip(units, weights):
        for n, counter in counts.items():
            for i in range(len(unit) - n + 1):
                counter[unit[i : i + n]] += weight
    return counts


# NUL and a lone surrogate too: the bvv241 rule keeps them inside CJK text (a .jsonl may escape either).
WEIRD = ALPHABET + "\0\ud800"


@given(st.dictionaries(st.text(WEIRD, max_size=9), st.integers(1, 10**6), max_size=25), st.sets(st.integers(1, 5), min_size=1))
@example({"ab\0": 2, "\0\0a": 3, "b\ud800": 1}, {1, 2, 3})
def test_add_counts_equals_counting_every_window(unit_counts, orders):
    counter = NgramCounter(orders)
    counter.add_counts(unit_counts)
    expected = every_window(list(unit_counts), list(unit_counts.values()), orders)
    assert {n: dict(c) for n, c in counter.counts.items()} == {n: dict(c) for n, c in expected.items()}


@given(st.lists(st.lists(st.text(WEIRD, max_size=7), max_size=8), max_size=12), st.integers(1, 4))
def test_text_counter_equals_counting_every_window(texts, flush_every):
    import bvvtok.vocab.counting as counting

    units = [unit for text in texts for unit in text]
    original = counting.UNIT_TALLY_CHARS
    counting.UNIT_TALLY_CHARS = flush_every  # tally flushed after nearly every batch
    try:
        counter = TextCounter([2, 3], rule="default")
        counter.units_of = lambda text: text  # the "texts" are lists of units already
        for start in range(0, len(texts), 2):
            counter.add_texts(texts[start : start + 2])
        counter.finish()
    finally:
        counting.UNIT_TALLY_CHARS = original
    assert counter.ngrams.counts == every_window(units, [1] * len(units), [2, 3])
    assert counter.chars == sum(map(len, units))


def test_merge_adds_counts_and_undercounts():
    a, b, both = NgramCounter([2, 3]), NgramCounter([2, 3]), NgramCounter([2, 3])
    a.add(["abc", "abd"])
    b.add(["abc", "xyz"])
    both.add(["abc", "abd", "abc", "xyz"])
    a.undercount[2], b.undercount[2] = 3, 4
    a.merge(b)
    assert a.counts == both.counts
    assert a.undercount == {2: 7, 3: 0}


@pytest.mark.parametrize("seed", range(4))
def test_pruned_counts_are_low_by_at_most_the_undercount(seed):
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefgh", k=rng.randint(2, 6))) for _ in range(300)]
    parts = [rng.choices(words, weights=[1 / (i + 1) for i in range(len(words))], k=200) for _ in range(3)]
    counters = [NgramCounter([2, 3], max_entries=40) for _ in parts]
    for counter, part in zip(counters, parts):
        for start in range(0, len(part), 10):
            counter.add(part[start : start + 10])
    merged = counters[0]
    for other in counters[1:]:
        merged.merge(other)
    truth = every_window([w for part in parts for w in part], [1] * 600, [2, 3])
    assert merged.pruned
    for n, counter in merged.counts.items():
        assert len(counter) <= 40
        for gram, count in counter.items():
            assert 0 <= truth[n][gram] - count <= merged.undercount[n]
        assert all(truth[n][gram] <= merged.undercount[n] for gram in truth[n].keys() - counter.keys())


def test_top_with_ties_at_the_cut():
    counter = NgramCounter([2])
    counter.add(["ab", "cd", "cd", "ef", "ef", "gh", "ij", "ij"])
    assert counter.top(2)[2] == [("cd", 2), ("ef", 2)]
    assert counter.top(4)[2] == [("cd", 2), ("ef", 2), ("ij", 2), ("ab", 1)]
    assert counter.top(0)[2] == []
