import pytest

from bvvtok.vocab.layout import MONOGRAM_RANGES
from bvvtok.vocab.selection import language_gains, select_balanced, select_top_k
from bvvtok.vocab.stats import LanguageStats


def is_monogram(s):
    return len(s) == 1 and any(ord(s) in r for r in MONOGRAM_RANGES)


def assert_reachable(chosen):
    """Every chosen gram splits into two tokens, each a chosen gram or a monogram."""
    for gram in chosen:
        assert any(
            (gram[:i] in chosen or is_monogram(gram[:i])) and (gram[i:] in chosen or is_monogram(gram[i:]))
            for i in range(1, len(gram))
        ), gram


def latin(n_grams=60, count=100, chars=1_000):
    grams = [a + b for a in "abcdefgh" for b in "ijklmnop"][:n_grams]
    return LanguageStats("en", "English", {2: [(g, count - i % 7) for i, g in enumerate(grams)]}, chars)


def cjk(n_grams=60, count=100, chars=1_000_000):
    grams = [chr(0x4E00 + i) + chr(0x5E00 + i) for i in range(n_grams)]
    return LanguageStats("zh", "Chinese", {2: [(g, count) for g in grams]}, chars)


def test_select_top_k_takes_the_first_k_per_language_and_order():
    en = LanguageStats("en", "English", {2: [("th", 9), ("he", 8), ("in", 7)], 3: [("the", 5), ("ing", 4)]})
    de = LanguageStats("de", "German", {2: [("ch", 9), ("th", 3)], 3: [("sch", 2)]})
    assert select_top_k([en, de], 1) == {"th", "the", "ch", "sch"}
    assert select_top_k([en, de], 2) == {"th", "he", "the", "ing", "ch", "sch"}
    assert select_top_k([en], 100) == {"th", "he", "in", "the", "ing"}
    assert select_top_k([], 5) == set()


def test_language_gains():
    entry = LanguageStats("en", "English", {1: [("e", 50)], 2: [("th", 10)], 3: [("the", 5)]}, 100)
    assert language_gains(entry) == pytest.approx({"th": 0.1, "the": 0.1})  # single characters save nothing


def test_balanced_respects_the_slot_count():
    entries = [latin(), cjk()]
    assert len(select_balanced(entries, 25)) == 25
    assert len(select_balanced(entries, 1000)) == 120  # every gram, no more
    assert select_balanced(entries, 0) == set()


def test_balanced_takes_only_reachable_grams():
    en = LanguageStats(
        "en",
        "English",
        {
            2: [("ab", 10), ("\U0001F600y", 500), ("\ue000z", 400)],  # halves outside the monogram ranges
            3: [("abc", 900), ("x\U0001F600y", 800)],
            4: [("abcd", 700)],
        },
        1_000,
    )
    chosen = select_balanced([en], 10)
    assert chosen == {"ab", "abc", "abcd"}
    assert_reachable(chosen)


def test_balanced_repeats_passes_until_longer_grams_become_reachable():
    en = LanguageStats("en", "English", {2: [("ab", 10)], 3: [("abc", 900)]}, 1_000)
    # 'abc' has the larger gain but needs 'ab' first; with one slot only 'ab' fits.
    assert select_balanced([en], 1, fair_share=0) == {"ab"}
    assert select_balanced([en], 2, fair_share=0) == {"ab", "abc"}


def test_balanced_gives_a_fair_share_to_low_gain_languages():
    entries = [latin(), cjk()]
    chosen = select_balanced(entries, 30)
    zh = {g for g in chosen if "\u4e00" <= g[0] <= "\u9fff"}
    assert zh, "the CJK-like language got no slots"
    assert len(chosen - zh) > len(zh)  # the Latin-like language still gets most
    # Without the fair share, the higher Latin gains take every slot.
    assert not any("\u4e00" <= g[0] <= "\u9fff" for g in select_balanced(entries, 30, fair_share=0))
    assert_reachable(chosen)


def test_a_language_split_over_several_entries_counts_once():
    whole = LanguageStats("zh", "Chinese", {2: cjk().top_ngrams[2], 3: [("中国人", 50), ("人民币", 40)]}, 1_000_000)
    parts = [
        LanguageStats("zh", "Chinese", {2: cjk().top_ngrams[2]}, 1_000_000),
        LanguageStats("zh", "Chinese", {3: [("中国人", 50), ("人民币", 40)]}, 1_000_000),
    ]
    assert select_balanced([latin()] + parts, 30) == select_balanced([latin(), whole], 30)


def test_balanced_is_deterministic():
    entries = [latin(), cjk()]
    first = select_balanced(entries, 40)
    assert select_balanced([latin(), cjk()], 40) == first
    assert select_balanced([cjk(), latin()], 40) == first
