"""Glyph codes: the recipe's fixed points (the published recipe) and the fast batch path against the reference.

`recipe.reference_code` is the specification (one token at a time, as the notebooks did);
`glyph_codes.glyph_codes` must give the same bits, bit for bit, for every kind of token.
Needs GNU Unifont from Debian's fonts-unifont; skipped where it is absent.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
UPPER = UNIFONT.with_name("unifont_upper.otf")

if not UNIFONT.is_file():
    pytest.skip(f"GNU Unifont not found at {UNIFONT}", allow_module_level=True)

from bvvtok.errors import BvvtokError  # noqa: E402
from bvvtok.substrate import glyph_codes as fast  # noqa: E402
from bvvtok.substrate import glyphs  # noqa: E402
from bvvtok.substrate.fonts import font_for, resolve_chain  # noqa: E402
from bvvtok.substrate.glyph_codes import glyph_codes  # noqa: E402
from bvvtok.substrate.glyphs import fonts_per_char, open_pillow_fonts, render_glyphs, render_glyphs_cached  # noqa: E402
from bvvtok.substrate.recipe import RECIPES, easy_code_points, get_recipe, is_easy, reference_code, snake_order  # noqa: E402

# the published recipe: numpy.packbits(bits).tobytes().hex() with Debian's Unifont 15.0.01 unifont.otf
FIXED_POINTS = {
    ("bvv241-2-3", "A"): "b9a8cb28c9e080b1218890820024908200024e808042c2e04e401c2c42a0c0820180920a2200b012020022001a0000000000080020000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000040000000000000000000000000000000000000000000000010000000",
    ("bvv241-2-3", "the"): "0004040c0e0c204803022000021000000021000000002100200c00c02d000c000008008290000400008042908000400040a0048c4044c0c100884080408840a084010100404040880000408100000000800042800000034000000010000000000000000000000000002000400000000000000800000080000000200000000000",
    ("bvv241-2-3", "中"): "0c8e1c8212112302300e2323183021210780418b04b13004e1ee53d03c34bca2d1ac43c8c0ce2d021210c807c008c0e1c805e612080408e904c0e1c040c0c08404012805210040802000408002110200000040000000000002121000000000000000000820000000000000000000000000000000000000000000000000000000",
    ("bvv241-max", "A"): "2331f3d2783c220829012202810c220a804080046022e0c00f108e2c20e0208c2e008a0a090810102020aa0088000802000c080010000000032000000001000854008008000000010002000000000001000000000000000000000000100000000000000040000008002000000000080000010000000002001000000010000000",
    ("bvv241-max", "the"): "d016041e0e0d0048020604000211000000211008000021003128000021200030800000021000064080000010c01083c80280141a408c81c0200c040c010400004000c00100000100000000010d00200000000240400002001000001000000080000000000000400c002020402000000000000800000080000000200000008002",
}

EASY = ["A", "the", "Hello", "ñandú", "é", "ÿ", "ǅ", "Ωμέγα", "Привет", "Բարեւ", "ё"]
COMPLEX = ["中", "中文", "日本語", "한국어", "مرحبا", "שלום", "नमस्ते", "कि", "ไทย", "ภาษาไทย"]
COMBINING = [
    "\u0301",  # a combining acute alone
    "a\u0301",
    "\u0488",  # easy (Cyrillic block) and its ink reaches outside its cell
    "a\u0488b",
    "\u0489x",
    "\u093f",  # Devanagari vowel sign i: ink outside its cell, complex
    "ب\u0611",  # Arabic with an overflowing mark
]
MIXED = ["aб", "a中", "中a", "xयz", "Ωא", "ab中cd", "Яก", "the中"]
SPECIALS = ["<pad>", "<s>", "<special_token_57367>", "<unused_65535>", "abcdefghij" * 4]
ODD = [
    "\n",  # Pillow cannot lay it out
    " ",
    "  ",
    "\x00",
    "\t",
    "\u2029",  # paragraph separator: raqm cannot lay it out
    "a\u2029b",
    "\ufffe",  # no font has it
    "a\ufffe",
    "\U0001F600",  # drawn by Unifont Upper, blank without it
    "a\U0001F600",
]
TOKENS = EASY + COMPLEX + COMBINING + MIXED + SPECIALS + ODD
SIZE_64_TOKENS = ["A", "the", "中", "a\u0488b", "कि", "<pad>", "\U0001F600", "\n", "ab中cd"]

ALPHABET = list("aZé ñΩжԲ") + ["\u0301", "\u0488", "中", "한", "ب", "\u0611", "ש", "न", "\u093f", "ก", "\n", "\u2029", "\ufffe", "\U0001F600"]


@pytest.fixture(scope="module", autouse=True)
def private_glyph_cache(tmp_path_factory):
    """Rendered glyphs are cached on disk ($BVVTOK_CACHE_DIR): keep the tests' cache out of the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(tmp_path_factory.mktemp("glyph-cache")))
        yield


@pytest.fixture(scope="module")
def chain():
    return resolve_chain([UNIFONT, UPPER] if UPPER.is_file() else [UNIFONT])


@pytest.fixture(scope="module")
def pillow_fonts(chain):
    cache = {}

    def fonts(size):
        if size not in cache:
            cache[size] = open_pillow_fonts([f.path for f in chain], size)
        return cache[size]

    return fonts


@pytest.fixture(scope="module")
def reference(chain, pillow_fonts):
    """reference_code(token) with the chain's font for each character, as glyph_codes picks them."""

    def code(token, recipe, size=32):
        fonts = pillow_fonts(size)
        per_char = fonts_per_char(token, chain, fonts)
        return reference_code(token, per_char, RECIPES[recipe], size)

    return code


def hexcode(bits):
    return np.packbits(bits).tobytes().hex()


# --- fixed points ---


@pytest.mark.parametrize("recipe,token", sorted(FIXED_POINTS))
def test_reference_code_fixed_points(reference, recipe, token):
    bits = reference(token, recipe)
    assert bits.dtype == np.uint8 and bits.shape == (1024,)
    assert set(np.unique(bits)) <= {0, 1}
    assert hexcode(bits) == FIXED_POINTS[recipe, token]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_fast_path_fixed_points(chain, recipe):
    tokens = ["A", "the", "中"]
    codes = glyph_codes(tokens, chain, RECIPES[recipe])
    assert codes.bits.shape == (3, 1024) and codes.bits.dtype == np.uint8
    for i, token in enumerate(tokens):
        # complex tokens get the same augmentation under both recipes, so 中 has one code
        expected = FIXED_POINTS.get((recipe, token)) or FIXED_POINTS["bvv241-2-3", token]
        assert hexcode(codes.bits[i]) == expected, token


def test_fixed_points_use_debian_unifont_15(chain):
    assert chain[0].sha256 == "db1960227adcb14640063e7384fdcd2867aaf819d9ca4866bca289d4db9a9f67"


def test_recipes_differ_only_for_easy_tokens(reference):
    assert hexcode(reference("A", "bvv241-2-3")) != hexcode(reference("A", "bvv241-max"))
    assert np.array_equal(reference("中文", "bvv241-2-3"), reference("中文", "bvv241-max"))


# --- recipe parameters ---


def test_recipe_table():
    """the published recipe's table."""
    r23, rmax = RECIPES["bvv241-2-3"], RECIPES["bvv241-max"]
    assert (r23.easy.rotate, r23.easy.shift, r23.easy.noise, r23.easy.blur) == (4, 2, 0.01, True)
    assert (rmax.easy.rotate, rmax.easy.shift, rmax.easy.noise, rmax.easy.blur) == (7, 3, 0.03, True)
    for r in (r23, rmax):
        assert (r.complex.rotate, r.complex.shift, r.complex.noise, r.complex.blur) == (0, 0, 0.001, False)


def test_get_recipe_unknown_name():
    with pytest.raises(BvvtokError, match="nope"):
        get_recipe("nope")


@pytest.mark.parametrize(
    "token,easy",
    [("A", True), ("ɏ", True), ("ɐ", False), ("Ͱ", True), ("Ͽ", True), ("Ѐ", True), ("֏", True), ("֐", False),
     ("˙", False), ("the", True), ("a中", False), ("\n", True), ("", True)],
)
def test_script_class(token, easy):
    assert is_easy(token) is easy


def test_easy_code_points_follow_the_recipe_ranges():
    """the published recipe: easy is U+0000-024F, U+0370-03FF, U+0400-058F (written here as the
    notebooks' regular expression); every code point of the first planes' start, and a few beyond."""
    recipe_md = re.compile("[\u0000-\u024f\u0370-\u03ff\u0400-\u058f]")
    code_points = [*range(0x1000), 0x4E2D, 0xFFFF, 0x10000, 0x10FFFF]
    assert easy_code_points(code_points).tolist() == [recipe_md.fullmatch(chr(c)) is not None for c in code_points]


def test_characters_flattens_tokens_with_their_starts():
    flat, starts = fast._characters(["a\ud800", "", "中b", "\U0001F600"])  # a lone surrogate passes through
    assert flat.tolist() == [0x61, 0xD800, 0x4E2D, 0x62, 0x1F600]
    assert starts.tolist() == [0, 2, 2, 4, 5]


def test_batches_hold_every_drawn_token_once_by_class_and_length():
    tokens = ["A", "中", "", "ab", "a中", "ab", "xyz", "Ω", "", "中文"] * 300  # more than a BATCH of some kinds
    flat, starts = fast._characters(tokens)
    batches = fast._batches(flat, starts)
    ids = np.concatenate([ids for _, ids in batches])
    assert sorted(ids.tolist()) == [i for i, t in enumerate(tokens) if t]
    for easy, ids in batches:
        assert len(ids) <= fast.BATCH
        assert {len(tokens[i]) for i in ids} == {len(tokens[ids[0]])}
        assert {is_easy(tokens[i]) for i in ids} == {easy}
    lengths = [len(tokens[ids[0]]) for _, ids in batches]
    assert lengths == sorted(lengths, reverse=True)  # the longest, slowest batches first


def test_snake_order_is_a_permutation_starting_at_the_centre():
    for size in (32, 64):
        order = snake_order(size)
        assert sorted(order.tolist()) == list(range(size * size))
        c = size // 2
        assert order[0] == c * size + c  # r = 0 first
        x, y = order[-1] % size, order[-1] // size
        assert (x, y) == (0, 0)  # the farthest corner from (c, c) is (0, 0)


# --- fast path == reference ---


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_fast_path_matches_reference(chain, reference, recipe):
    codes = glyph_codes(TOKENS, chain, RECIPES[recipe], 32)
    assert codes.bits.shape == (len(TOKENS), 1024)
    assert codes.size == 32
    mismatched = [t for i, t in enumerate(TOKENS) if not np.array_equal(codes.bits[i], reference(t, recipe))]
    assert mismatched == []


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_fast_path_matches_reference_at_64px(chain, reference, recipe):
    codes = glyph_codes(SIZE_64_TOKENS, chain, RECIPES[recipe], 64)
    assert codes.bits.shape == (len(SIZE_64_TOKENS), 4096)
    mismatched = [t for i, t in enumerate(SIZE_64_TOKENS) if not np.array_equal(codes.bits[i], reference(t, recipe, 64))]
    assert mismatched == []


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("chars", [1, 2, 3, 5, 9])
def test_blur_table_equals_pillow_on_black_and_white_canvases(recipe, size, chars):
    """The lookup path (bitmap fonts) and Pillow's own blur give the same bits on every width."""
    rng = np.random.default_rng(size * 100 + chars)
    canvases = np.where(rng.random((64, size, size * chars)) < 0.3, 0, 255).astype(np.uint8)
    aug = RECIPES[recipe].easy
    assert aug.blur
    assert np.array_equal(fast._augment(canvases, aug, size, black_and_white=True), fast._augment(canvases, aug, size))


def test_blur_table_covers_every_window():
    """One value per (position in the window, 7-bit pattern); all white stays white, all black stays black."""
    assert fast.BLUR_RADIUS < 2**0.5  # else a box pass reaches past the neighbours and 7 pixels do not suffice
    table = fast._row_blur_table().reshape(7, 128)
    assert (table[:, 0] == 255).all() and (table[:, 127] == 0).all()
    assert len(np.unique(table[3])) > 2  # the interior position really mixes neighbours


def test_anti_aliased_font_matches_reference(tmp_path):
    """A font with grey pixels takes Pillow's blur path, and still gives the reference bits."""
    matplotlib = pytest.importorskip("matplotlib")
    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    grey_chain = resolve_chain([dejavu])
    fonts = open_pillow_fonts([dejavu], 32)
    tokens = ["A", "the", "Hello", "ñandú", "Привет", "ab"]
    codes = glyph_codes(tokens, grey_chain, RECIPES["bvv241-max"])
    grey = render_glyphs([("a", 0)], grey_chain, 32)
    assert not grey.black_and_white and not glyphs.is_black_and_white(grey.cells)
    for i, token in enumerate(tokens):
        assert np.array_equal(codes.bits[i], reference_code(token, fonts_per_char(token, grey_chain, fonts), RECIPES["bvv241-max"], 32)), token


def test_the_token_list_exercises_overflowing_glyphs(chain):
    """The hand-picked list must reach the compositing path for ink outside a cell (else the test above proves less)."""
    chars = sorted({ch for t in TOKENS for ch in t})
    drawable = [(ch, i) for ch in chars if (i := font_for(ch, chain)) is not None]
    rendered = render_glyphs(drawable, chain, 32)
    overflowing = {drawable[k][0] for k in rendered.overflow}
    assert {"\u0488", "\u093f"} <= overflowing
    assert "A" not in overflowing


@settings(max_examples=30, deadline=None)
@given(
    tokens=st.lists(st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=6), min_size=1, max_size=4),
    recipe=st.sampled_from(sorted(RECIPES)),
)
def test_fast_path_matches_reference_on_random_tokens(chain, reference, tokens, recipe):
    codes = glyph_codes(tokens, chain, RECIPES[recipe])
    for i, token in enumerate(tokens):
        assert np.array_equal(codes.bits[i], reference(token, recipe)), token


def test_empty_token_is_all_zeros_and_blank(chain):
    codes = glyph_codes(["A", "", "b"], chain, RECIPES["bvv241-2-3"])
    assert not codes.bits[1].any()
    assert codes.bits[0].any() and codes.bits[2].any()
    assert codes.blank_tokens == [1]


def test_no_tokens(chain):
    codes = glyph_codes([], chain, RECIPES["bvv241-2-3"])
    assert codes.bits.shape == (0, 1024)
    assert codes.blank_tokens == [] and codes.missing_chars == [] and codes.unrenderable_chars == []


def test_tokens_do_not_depend_on_their_neighbours(chain):
    """A token's bits are the same alone or in a batch (tokens of one class and width are augmented together)."""
    recipe = RECIPES["bvv241-max"]
    together = glyph_codes(TOKENS, chain, recipe)
    for i in (0, 5, len(EASY), len(TOKENS) - 1):
        alone = glyph_codes([TOKENS[i]], chain, recipe)
        assert np.array_equal(alone.bits[0], together.bits[i]), TOKENS[i]


# --- reporting ---


def test_reports_blank_missing_and_unrenderable(chain):
    tokens = ["A", "\ufffe", "\n", "\u2029", "x\ufffe", "\uffff", "中", ""]
    codes = glyph_codes(tokens, chain, RECIPES["bvv241-2-3"])
    assert codes.missing_chars == ["\ufffe", "\uffff"]
    assert sorted(codes.unrenderable_chars) == ["\n", "\u2029"]
    assert codes.blank_tokens == np.flatnonzero(~codes.bits.any(axis=1)).tolist()
    # one-cell complex tokens with nothing drawn: only the recipe's 0.001 noise, whose seeded 32x32 mask is empty
    assert {1, 3, 5, 7} <= set(codes.blank_tokens)
    assert 0 not in codes.blank_tokens and 6 not in codes.blank_tokens
    assert 4 not in codes.blank_tokens  # 'x' is drawn


def test_progress_callbacks_count_characters_and_tokens(chain):
    tokens = ["ab", "ba", "中", "a中", "\ufffe"]
    calls = []
    glyph_codes(tokens, chain, RECIPES["bvv241-2-3"], progress=lambda *call: calls.append(call))
    render = [(done, total) for stage, done, total in calls if stage == "render"]
    codes = [(done, total) for stage, done, total in calls if stage == "codes"]
    # every distinct character: a, b, 中, and U+FFFE (no font, counted as done); running counts up to the total
    assert render[-1] == (4, 4) and all(total == 4 for _, total in render)
    assert codes[-1] == (len(tokens), len(tokens))
    assert [done for done, _ in codes] == sorted(done for done, _ in codes)
    assert {stage for stage, _, _ in calls} == {"render", "codes"}


# --- workers ---


@pytest.fixture(scope="module")
def many_tokens():
    """More distinct characters than one render chunk (4096) and more same-shape tokens than one batch (2048)."""
    assert fast.BATCH == 2048 and glyphs.CHUNK == 4096  # the sizes below are chosen to cross both
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 4300)]
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pairs = [a + b for a in letters for b in letters]  # 2,704 easy 2-character tokens
    return cjk + pairs + ["\u0488a", "a\u093f", "\ufffe", "\n", "\u0488"]


def test_workers_give_identical_codes(chain, many_tokens):
    recipe = RECIPES["bvv241-2-3"]
    one = glyph_codes(many_tokens, chain, recipe, workers=1)
    two = glyph_codes(many_tokens, chain, recipe, workers=2)
    assert np.array_equal(one.bits, two.bits)
    assert one.blank_tokens == two.blank_tokens
    assert one.missing_chars == two.missing_chars == ["\ufffe"]
    assert one.unrenderable_chars == two.unrenderable_chars == ["\n"]


def test_forked_workers_render_into_the_shared_output_as_one_process_does(chain, many_tokens):
    """Forked workers write their cells straight into the parent's array, each chunk at its own rows."""
    items = [(ch, i) for ch in sorted({ch for t in many_tokens for ch in t}) if (i := font_for(ch, chain)) is not None]
    assert len(items) > glyphs.CHUNK  # more than one chunk, so the workers are used
    done = []
    one = render_glyphs(items, chain, 32, workers=1)
    two = render_glyphs(items, chain, 32, workers=2, on_done=done.append)
    assert np.array_equal(one.cells, two.cells)
    assert one.failed == two.failed and two.failed
    assert sorted(one.overflow) == sorted(two.overflow) and two.overflow
    assert one.black_and_white == two.black_and_white
    assert sum(done) == len(items)


def test_large_batches_match_reference(chain, reference, many_tokens):
    """Tokens past the first render chunk and the first batch still get the reference bits."""
    codes = glyph_codes(many_tokens, chain, RECIPES["bvv241-2-3"], workers=2)
    n_cjk = 4300
    picks = [0, 2047, 2048, 4095, 4096, n_cjk - 1, n_cjk, n_cjk + 2047, n_cjk + 2048, len(many_tokens) - 5, len(many_tokens) - 4, len(many_tokens) - 1]
    for i in picks:
        assert np.array_equal(codes.bits[i], reference(many_tokens[i], "bvv241-2-3")), (i, many_tokens[i])


# --- the on-disk render cache ($BVVTOK_CACHE_DIR) ---


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(folder))
    return folder


def cache_files(folder):
    return sorted(folder.rglob("*.npz"))


def assert_matches_reference(codes, tokens, reference, recipe, size=32):
    mismatched = [t for i, t in enumerate(tokens) if not np.array_equal(codes.bits[i], reference(t, recipe, size))]
    assert mismatched == []


@pytest.mark.parametrize("size", [32, 64])
def test_cold_warm_and_partly_warm_cache_give_the_reference_bits(chain, reference, fresh_cache, size):
    recipe = "bvv241-2-3"
    tokens = TOKENS if size == 32 else SIZE_64_TOKENS
    first_half = tokens[: len(tokens) // 2]
    cold = glyph_codes(first_half, chain, RECIPES[recipe], size)
    assert len(cache_files(fresh_cache)) == 1  # the rendered cells were kept
    partly_warm = glyph_codes(tokens, chain, RECIPES[recipe], size)  # half the characters come from the cache
    warm = glyph_codes(tokens, chain, RECIPES[recipe], size)
    assert np.array_equal(cold.bits, partly_warm.bits[: len(first_half)])
    assert np.array_equal(partly_warm.bits, warm.bits)
    assert_matches_reference(warm, tokens, reference, recipe, size)
    for field in ("blank_tokens", "missing_chars", "unrenderable_chars"):
        assert getattr(partly_warm, field) == getattr(warm, field), field
    assert sorted(warm.unrenderable_chars) == sorted({"\n", "\u2029"} & {ch for t in tokens for ch in t})


def test_unifont_cells_are_known_black_and_white_cold_and_warm(chain, fresh_cache):
    """The flag picks the lookup-table blur; a cache that forgot it would still give the right bits, only slower."""
    items = [(ch, i) for ch in "Aж中\u0488" if (i := font_for(ch, chain)) is not None]
    cold = render_glyphs_cached(items, chain, 32)
    warm = render_glyphs_cached(items, chain, 32)
    assert cold.black_and_white and warm.black_and_white
    assert glyphs.is_black_and_white(warm.cells) and np.array_equal(cold.cells, warm.cells)
    assert sorted(warm.overflow) == sorted(cold.overflow) and 3 in warm.overflow  # U+0488 reaches outside its cell


def test_progress_counts_every_character_with_a_partly_warm_cache(chain, fresh_cache):
    glyph_codes(["ab"], chain, RECIPES["bvv241-2-3"])  # 'a', 'b' now cached
    rendered = []
    glyph_codes(["ab", "cd", "中"], chain, RECIPES["bvv241-2-3"], progress=lambda stage, done, total: rendered.append((stage, done, total)))
    assert [call for call in rendered if call[0] == "render"][-1] == ("render", 5, 5)  # a, b from the cache; c, d, 中 rendered


def test_cache_is_per_glyph_size_and_chain_order(chain, reference, fresh_cache):
    tokens = ["A", "中", "\U0001F600", "a\u0488b"]
    glyph_codes(tokens, chain, RECIPES["bvv241-max"], 32)
    at_64 = glyph_codes(tokens, chain, RECIPES["bvv241-max"], 64)
    assert_matches_reference(at_64, tokens, reference, "bvv241-max", 64)
    assert len(cache_files(fresh_cache)) == 2
    if len(chain) > 1:
        reversed_chain = list(reversed(chain))
        codes = glyph_codes(tokens, reversed_chain, RECIPES["bvv241-max"], 32)
        assert len(cache_files(fresh_cache)) == 3
        fonts = open_pillow_fonts([f.path for f in reversed_chain], 32)
        for i, token in enumerate(tokens):
            per_char = fonts_per_char(token, reversed_chain, fonts)
            assert np.array_equal(codes.bits[i], reference_code(token, per_char, RECIPES["bvv241-max"], 32)), token


def test_unwritable_cache_only_costs_time(chain, reference, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(blocker / "cache"))
    codes = glyph_codes(["A", "the"], chain, RECIPES["bvv241-2-3"])
    assert_matches_reference(codes, ["A", "the"], reference, "bvv241-2-3")


def test_garbage_cache_file_is_rendered_again(chain, reference, fresh_cache):
    tokens = ["A", "中", "a\u0488b"]
    glyph_codes(tokens, chain, RECIPES["bvv241-2-3"])
    (path,) = cache_files(fresh_cache)
    path.write_bytes(b"not a cache")
    codes = glyph_codes(tokens, chain, RECIPES["bvv241-2-3"])
    assert_matches_reference(codes, tokens, reference, "bvv241-2-3")


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_cache_file_is_rendered_again(chain, reference, fresh_cache, damage):
    tokens = ["A", "中", "a\u0488b"]
    glyph_codes(tokens, chain, RECIPES["bvv241-2-3"])
    (path,) = cache_files(fresh_cache)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    codes = glyph_codes(tokens, chain, RECIPES["bvv241-2-3"])
    assert_matches_reference(codes, tokens, reference, "bvv241-2-3")


# --- 2x2 blocks: single characters whose codes PCA takes narrow ---


@pytest.mark.parametrize("py,px", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_block_alignment_finds_the_offset_of_2x2_blocks(py, px):
    rng = np.random.default_rng(py * 2 + px)
    coarse = np.where(rng.random((20, 17, 17)) < 0.5, 0, 255).astype(np.uint8)
    cells = coarse.repeat(2, axis=1).repeat(2, axis=2)[:, py : py + 32, px : px + 32].copy()
    assert fast._block_alignment(cells).tolist() == [py * 2 + px] * 20  # random pictures fit one offset only
    cells[:, 10, 10] = 255 - cells[:, 10, 10]  # one pixel off its block
    assert fast._block_alignment(cells).tolist() == [-1] * 20
    assert fast._block_alignment(np.full((1, 32, 32), 255, np.uint8)).tolist() == [0]  # blank: every offset fits


@pytest.mark.parametrize("size", [32, 64])
def test_factors_repeat_the_codes_of_single_characters(chain, size):
    """Unifont at 32 and 64 px draws 2x2 blocks: single complex characters come as factors whose
    narrow matrix, repeated by its column map, is exactly their bits."""
    tokens = [chr(c) for c in range(0x4E00, 0x4E00 + 2 * fast.MIN_FACTOR_ROWS)] + EASY + ["中文", "\ufffe"]
    codes = glyph_codes(tokens, chain, RECIPES["bvv241-2-3"], size)
    assert codes.factors
    covered = np.concatenate([f.rows for f in codes.factors])
    assert len(covered) == len(set(covered.tolist())) >= fast.MIN_FACTOR_ROWS
    assert all(len(tokens[i]) == 1 and not is_easy(tokens[i]) for i in covered)  # blurred tokens never
    for f in codes.factors:
        assert f.small.shape == (len(f.rows), (size // 2 + 1) ** 2 + 2)
        assert np.array_equal(codes.bits[f.rows], f.small[:, f.columns])


def test_too_few_tokens_of_an_alignment_stay_dense(chain):
    codes = glyph_codes(["中", "文", "字"], chain, RECIPES["bvv241-2-3"])
    assert codes.factors == []
