import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bvvtok.errors import BvvtokError
from bvvtok.vocab.counting import NgramCounter, bvv241_units, default_units, get_rule, top_weighted_ngrams

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
