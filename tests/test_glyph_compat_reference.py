"""The glyph substrate of the rebuilt bvv241-2-3 vocabulary (65,536 tokens): the suite's one full-size embed.

Needs ../shared/reference (not part of the project) and GNU Unifont; skipped where either is absent.
"""

from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
NGRAMS_23 = REFERENCE / "ngrams" / "ngrams-2-3.txt"
UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")

if not NGRAMS_23.is_file():
    pytest.skip(f"reference statistics not found under {REFERENCE}", allow_module_level=True)
if not UNIFONT.is_file():
    pytest.skip(f"GNU Unifont not found at {UNIFONT}", allow_module_level=True)

from safetensors.numpy import load_file  # noqa: E402

from bvvtok.substrate.embed import embed_glyph  # noqa: E402
from bvvtok.substrate.fonts import resolve_chain  # noqa: E402
from bvvtok.substrate.glyphs import fonts_per_char, open_pillow_fonts  # noqa: E402
from bvvtok.substrate.recipe import RECIPES, reference_code  # noqa: E402
from bvvtok.substrate.token_text import token_texts  # noqa: E402
from bvvtok.vocab.build import build_vocab, save_vocab  # noqa: E402
from bvvtok.vocab.tokenizer_files import load_tokenizer  # noqa: E402

# the published recipe (bvv241-2-3, Debian's Unifont 15.0.01)
FIXED_POINTS = {
    "A": "b9a8cb28c9e080b1218890820024908200024e808042c2e04e401c2c42a0c0820180920a2200b012020022001a0000000000080020000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000000040000000000000000000000000000000000000000000000010000000",
    "the": "0004040c0e0c204803022000021000000021000000002100200c00c02d000c000008008290000400008042908000400040a0048c4044c0c100884080408840a084010100404040880000408100000000800042800000034000000010000000000000000000000000002000400000000000000800000080000000200000000000",
    "中": "0c8e1c8212112302300e2323183021210780418b04b13004e1ee53d03c34bca2d1ac43c8c0ce2d021210c807c008c0e1c805e612080408e904c0e1c040c0c08404012805210040802000408002110200000040000000000002121000000000000000000820000000000000000000000000000000000000000000000000000000",
}


@pytest.fixture(scope="module")
def substrate(tmp_path_factory):
    """bvv241-2-3 rebuilt from the published statistics, then embedded in place (default settings)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BVVTOK_FONT", raising=False)
        mp.setenv("BVVTOK_CACHE_DIR", str(tmp_path_factory.mktemp("glyph-cache")))
        folder = tmp_path_factory.mktemp("bvv241-2-3") / "vocab"
        save_vocab(build_vocab("65k", [NGRAMS_23]), folder)
        result = embed_glyph(folder, workers=2)
    tokenizer = load_tokenizer(folder)
    texts = token_texts(tokenizer).texts
    return folder, result, tokenizer, texts


def test_default_settings_follow_the_preset(substrate):
    _, result, _, texts = substrate
    sub = result.manifest["substrate"]
    assert len(texts) == 65_536
    assert (sub["recipe"], sub["glyph_size"], sub["dim"], sub["tokens"]) == ("bvv241-2-3", 32, 1024, 65_536)
    assert result.manifest["vocab"]["preset"] == "65k"  # the vocabulary's own section is kept


def test_fixed_points_in_the_full_vocabulary(substrate):
    folder, _, tokenizer, _ = substrate
    codes = np.load(folder / "codes.npy")
    assert codes.shape == (65_536, 128)
    for token, expected in FIXED_POINTS.items():
        token_id = tokenizer.token_to_id(token)
        assert token_id is not None, token
        assert codes[token_id].tobytes().hex() == expected, token


def test_sampled_tokens_match_the_reference(substrate):
    """Every 1,000th id plus the n-gram region, bit for bit against the per-token recipe."""
    _, result, _, texts = substrate
    fonts_chain = resolve_chain()
    pillow = open_pillow_fonts([f.path for f in fonts_chain], 32)
    ids = sorted({*range(0, 65_536, 1000), *range(55_296, 65_536, 97), 65, 0x2029, 0x4E2D})
    for i in ids:
        token = texts[i]
        per_char = fonts_per_char(token, fonts_chain, pillow)
        assert np.array_equal(result.bits[i], reference_code(token, per_char, RECIPES["bvv241-2-3"])), (i, token)


def test_embeddings_at_full_size(substrate):
    folder, result, _, _ = substrate
    weights = load_file(str(folder / "embeddings.safetensors"))["weight"]
    assert weights.shape == (65_536, 1024) and weights.dtype == np.float32
    assert np.array_equal(weights, result.embeddings)
    norms = np.sqrt(np.einsum("ij,ij->i", weights, weights))
    blank = ~result.bits.any(axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert result.manifest["substrate"]["blank_glyphs"] == int(blank.sum()) > 0
    # all blank codes are the same vector: they must share one embedding row
    rows = weights[blank]
    assert (rows == rows[0]).all()


def test_reported_characters(substrate):
    _, result, _, _ = substrate
    sub = result.manifest["substrate"]
    assert "\ufffe" in sub["missing_chars"]["first"]
    assert {"\n", "\u2029"} <= set(sub["unrenderable_chars"]["first"])
    assert sub["byte_level"] is False and sub["empty_ids"] == 0
