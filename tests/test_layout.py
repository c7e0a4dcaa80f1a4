import random

import pytest

from bvvtok.errors import BvvtokError
from bvvtok.vocab.layout import NAMED_SPECIALS, base_vocab, get_preset, lay_out, ngram_order

P65 = get_preset("65k")
P131 = get_preset("131k")


def cjk_pairs(count):
    """`count` distinct two-character strings whose (-len, s) order is their list order."""
    return [chr(0x4E00 + i // 300) + chr(0x4E00 + i % 300) for i in range(count)]


def assert_bijection(layout, vocab_size):
    assert len(layout.vocab) == vocab_size
    assert sorted(layout.vocab.values()) == list(range(vocab_size))


def test_monograms_keep_their_code_point():
    vocab = base_vocab()
    assert vocab["A"] == 65
    assert vocab["\x00"] == 0
    assert vocab["\ud7ff"] == 0xD7FF
    assert vocab["中"] == 0x4E2D
    assert vocab["\uf900"] == 0xF900
    assert vocab["\ufffe"] == 0xFFFE
    for absent in ("\uffff", "\ud800", "\udfff", "\ue000", "\uf8ff", "\U0001F600"):
        assert absent not in vocab


def test_named_specials_start_at_e000():
    vocab = base_vocab()
    assert len(NAMED_SPECIALS) == 23
    assert [vocab[t] for t in NAMED_SPECIALS] == list(range(0xE000, 0xE000 + 23))
    assert vocab["<pad>"] == 57344
    assert vocab["<s>"] == 57345
    assert vocab["</s>"] == 57346
    assert vocab["<unk>"] == 57347
    assert vocab["[FILE_SEP]"] == 57366


def test_filler_specials_fill_up_to_e0ff():
    vocab = base_vocab()
    assert vocab["<special_token_57367>"] == 57367
    assert vocab["<special_token_57599>"] == 0xE0FF
    fillers = [t for t in vocab if t.startswith("<special_token_")]
    assert len(fillers) == 0xE100 - 57367
    assert "<special_token_57366>" not in vocab  # that id is [FILE_SEP]
    assert "<special_token_57600>" not in vocab  # 0xE100 is the first n-gram slot


def test_base_vocab_ids_are_distinct():
    vocab = base_vocab()
    assert len(set(vocab.values())) == len(vocab) == 0xD800 + 0x100 + (0xFFFF - 0xF900)


def test_empty_layout_65k():
    layout = lay_out(P65, [])
    assert_bijection(layout, 65_536)
    assert layout.vocab["<unused_65535>"] == 0xFFFF
    assert layout.vocab["<unused_55296>"] == 0xD800  # an empty slot
    assert layout.vocab["<unused_63743>"] == 0xF8FF
    assert layout.placed == layout.dropped == layout.merges == []
    assert layout.vocab["A"] == 65 and layout.vocab["<pad>"] == 0xE000  # a bijection: each id holds this token


def test_empty_layout_131k():
    layout = lay_out(P131, [])
    assert_bijection(layout, 131_072)
    assert layout.vocab["<unused_65535>"] == 0xFFFF
    assert layout.vocab["<unused_65536>"] == 0x10000
    assert layout.vocab["<unused_131071>"] == 0x1FFFF


def test_ngram_order_is_longest_first_then_code_point():
    assert ngram_order(["b", "ab", "aa", "abc", "ab", "Zz"]) == ["abc", "Zz", "aa", "ab", "b"]
    # Code-point order, not UTF-16 order: U+FF01 sorts before U+1F600 (whose UTF-16 form starts with 0xD83D).
    assert ngram_order(["\U0001F600x", "\uff01x", "中x", "éx"]) == ["éx", "中x", "\uff01x", "\U0001F600x"]


def test_placement_follows_ngram_order():
    layout = lay_out(P65, ["zz", "ab", "abc", "bc", "Ab"])
    assert layout.placed == ["abc", "Ab", "ab", "bc", "zz"]
    assert [layout.vocab[s] for s in layout.placed] == list(range(0xD800, 0xD805))
    assert layout.dropped == []
    assert_bijection(layout, 65_536)


def test_placement_continues_at_e100_after_the_surrogate_block():
    strings = [f"x{chr(0x100 + i)}y" for i in range(1000)] + [f"q{chr(0x100 + i)}" for i in range(1500)]
    shuffled = strings[:]
    random.Random(0).shuffle(shuffled)
    layout = lay_out(P65, shuffled)
    expected = sorted(strings, key=lambda s: (-len(s), s))
    assert layout.placed == expected
    assert layout.vocab[expected[2047]] == 0xDFFF
    assert layout.vocab[expected[2048]] == 0xE100  # the 2049th placed string
    assert [layout.vocab[s] for s in expected] == list(range(0xD800, 0xE000)) + list(range(0xE100, 0xE100 + 452))
    assert "<special_token_57600>" not in layout.vocab
    assert_bijection(layout, 65_536)


def test_65k_drops_strings_beyond_the_last_slot():
    strings = cjk_pairs(8192 + 5)
    layout = lay_out(P65, reversed(strings))
    assert layout.placed == strings[:8192]
    assert layout.dropped == strings[8192:]
    assert layout.vocab[strings[8191]] == 0xF8FF
    assert all(s not in layout.vocab for s in layout.dropped)
    assert layout.vocab["<unused_65535>"] == 0xFFFF
    assert_bijection(layout, 65_536)
    # Dropped strings emit no merges; each placed pair emits exactly its one split.
    assert layout.merges == [(s[0], s[1]) for s in strings[:8192]]


def test_131k_fills_plane_one_and_keeps_1ffff_unused():
    assert P131.slot_count == 2048 + 6144 + 65_535
    strings = cjk_pairs(P131.slot_count + 10)
    layout = lay_out(P131, strings)
    assert len(layout.placed) == 73_727
    assert layout.dropped == strings[73_727:]
    assert layout.vocab[strings[8191]] == 0xF8FF
    assert layout.vocab[strings[8192]] == 0x10000
    assert layout.vocab[strings[73_726]] == 0x1FFFE
    assert layout.vocab["<unused_131071>"] == 0x1FFFF
    assert layout.vocab["<unused_65535>"] == 0xFFFF
    assert_bijection(layout, 131_072)


def test_strings_that_are_already_tokens_are_not_placed():
    layout = lay_out(P65, ["<s>", "a", "ab", "", "<special_token_57400>", "\ufffe"])
    assert layout.placed == ["ab"]
    assert sorted(layout.already_tokens) == sorted(["<s>", "a", "<special_token_57400>", "\ufffe"])
    assert layout.vocab["<s>"] == 57345
    assert layout.vocab["ab"] == 0xD800
    assert layout.vocab["<unused_55297>"] == 0xD801
    assert "" not in layout.vocab
    assert_bijection(layout, 65_536)


def test_strings_spelled_like_unused_names_take_no_slot():
    # Placing '<unused_65535>' would hand its name to an n-gram id, and the empty id 65535 would lose it.
    layout = lay_out(P65, ["<unused_65535>", "xy"])
    assert layout.placed == ["xy"]
    assert "<unused_65535>" in layout.already_tokens
    assert layout.vocab["<unused_65535>"] == 0xFFFF
    assert_bijection(layout, 65_536)


def test_merges_follow_placement_order_and_every_valid_split():
    layout = lay_out(P65, {"ab", "bc", "abc"})
    assert layout.placed == ["abc", "ab", "bc"]
    assert layout.merges == [("a", "bc"), ("ab", "c"), ("a", "b"), ("b", "c")]


def test_merges_need_both_halves_to_be_tokens():
    # 'abcd' has no split into two tokens ('cd', 'bcd', 'abc' are not tokens).
    assert lay_out(P65, ["abcd", "ab"]).merges == [("a", "b")]
    # A character outside the vocabulary still lets the string be placed, but gives no merge.
    layout = lay_out(P65, ["a\U0001F600"])
    assert layout.placed == ["a\U0001F600"]
    assert layout.merges == []
    # Specials count as tokens when splitting.
    assert lay_out(P65, ["<s>x"]).merges == [("<s>", "x")]


def test_a_string_with_several_splits_emits_several_merges():
    layout = lay_out(P65, ["abcd", "ab", "cd", "abc", "bcd"])
    abcd = [m for m in layout.merges if "".join(m) == "abcd"]
    assert abcd == [("a", "bcd"), ("ab", "cd"), ("abc", "d")]
    assert layout.merges[:3] == abcd  # the longest string comes first


@pytest.mark.parametrize("name, expected", [("65k", "65k"), ("bvv241-2-3", "65k"), ("131k", "131k"), ("bvv241-max", "131k")])
def test_get_preset_accepts_names_and_aliases(name, expected):
    assert get_preset(name).name == expected


@pytest.mark.parametrize("name", ["", "256k", "bvv241", "bvv241-2-3-4-5"])
def test_get_preset_rejects_unknown_names(name):
    with pytest.raises(BvvtokError, match="unknown preset"):
        get_preset(name)


def test_preset_shapes():
    assert (P65.vocab_size, P65.top_k, P65.slot_count, P65.alias) == (65_536, 338, 8192, "bvv241-2-3")
    assert (P131.vocab_size, P131.top_k, P131.alias) == (131_072, 906, "bvv241-max")
    assert (P65.offline_orders, P131.offline_orders) == ((2, 3, 4), (2, 3, 4, 5))
