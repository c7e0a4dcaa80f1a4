"""The offline default: `build_vocab('65k')` from wordfreq, no files (built once per session)."""

from hypothesis import example, given
from hypothesis import strategies as st

from bvvtok.vocab.languages import BVV241_LANGUAGES

WORDFREQ_LACKS = ["sa", "la", "hy", "az", "ka"]

# Every character that is its own token: 0..0xD7FF (surrogates excluded) and 0xF900..0xFFFE.
MONOGRAM_CHARS = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0xF900, max_codepoint=0xFFFE),
)


def test_every_slot_is_filled(offline_65k):
    layout = offline_65k.layout
    assert len(layout.placed) == 8192
    assert layout.dropped == []
    assert offline_65k.manifest["vocab"]["ngrams"]["placed"] == 8192
    slot_ids = set(range(0xD800, 0xE000)) | set(range(0xE100, 0xF900))
    assert {layout.vocab[s] for s in layout.placed} == slot_ids
    assert len(layout.vocab) == 65_536
    assert sorted(layout.vocab.values()) == list(range(65_536))


def test_manifest_describes_the_selection_and_languages(offline_65k):
    info = offline_65k.manifest["vocab"]
    assert info["selection"]["rule"] == "balanced"
    assert info["skipped_languages"] == WORDFREQ_LACKS
    assert info["languages"] == [lang for lang in BVV241_LANGUAGES if lang not in WORDFREQ_LACKS]
    assert info["inputs"][0]["source"] == "wordfreq"
    assert info["inputs"][0]["orders"] == [2, 3, 4]


def test_four_grams_take_slots(offline_65k):
    """The offline 65k counts 4-grams too (English prose needs them to reach bvv241-2-3's 1.73 chars/token)."""
    placed = offline_65k.layout.placed
    assert {len(s) for s in placed} == {2, 3, 4}
    assert {"tion", "that", "with"} <= set(placed)
    assert len(offline_65k.tokenizer.encode("tion").ids) == 1


def test_balanced_selection_serves_several_scripts(offline_65k):
    placed = offline_65k.layout.placed
    assert "th" in placed and "the" in placed
    assert any("\u4e00" <= s[0] <= "\u9fff" for s in placed)  # CJK
    assert any("\u0400" <= s[0] <= "\u04ff" for s in placed)  # Cyrillic
    assert any("\u0600" <= s[0] <= "\u06ff" for s in placed)  # Arabic script
    assert any("\u0900" <= s[0] <= "\u097f" for s in placed)  # Devanagari


def test_every_placed_gram_is_reachable_by_merges(offline_65k):
    vocab = offline_65k.layout.vocab
    merged = {a + b for a, b in offline_65k.layout.merges}
    assert set(offline_65k.layout.placed) <= merged
    assert all(a in vocab and b in vocab for a, b in offline_65k.layout.merges)


def test_fixed_ids(offline_65k):
    tokenizer = offline_65k.tokenizer
    assert tokenizer.encode("A").ids == [65]
    assert tokenizer.encode("\U0001F600").ids == [57347]
    assert tokenizer.encode("a\U0001F600b").ids == [97, 57347, 98]
    assert tokenizer.encode("\uffff").ids == [57347]  # 0xFFFF is not a monogram
    assert tokenizer.encode("<s>").ids == [57345]


def test_common_words_are_single_tokens(offline_65k):
    tokenizer = offline_65k.tokenizer
    for text in ["the", "and", "что", "中国", "我们", "한국"]:
        assert len(tokenizer.encode(text).ids) == 1, text


@given(st.text(MONOGRAM_CHARS, max_size=60))
@example("hello the test")
@example("中文 Ελληνικά नमस्ते <s>[INST]")
@example("\x00\ud7ff\uf900\ufffe")
def test_round_trip(offline_65k, text):
    tokenizer = offline_65k.tokenizer
    assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text
