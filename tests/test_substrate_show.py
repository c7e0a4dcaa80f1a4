"""`bvvtok show`: the picture of a substrate, and its errors."""

from pathlib import Path

import pytest
from PIL import Image

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
if not UNIFONT.is_file():
    pytest.skip(f"GNU Unifont not found at {UNIFONT}", allow_module_level=True)

from conftest import assert_user_error, invoke  # noqa: E402
from test_substrate_embed import TOKENS, write_vocab  # noqa: E402

from bvvtok.substrate.embed import embed_glyph  # noqa: E402
from bvvtok.substrate.show import NEIGHBOURS, SCALE, substrate_rows  # noqa: E402


@pytest.fixture(scope="module")
def substrate(tmp_path_factory) -> Path:
    folder = write_vocab(tmp_path_factory.mktemp("show") / "vocab")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("BVVTOK_FONT", raising=False)
        embed_glyph(folder, dim=16)
    return folder


def test_rows_hold_the_substrate_codes_and_neighbours(substrate):
    rows = substrate_rows(substrate, ["a", "中文", "#5"])
    assert [r.token_id for r in rows] == [TOKENS.index("a"), TOKENS.index("中文"), 5]
    first = rows[0]
    assert first.picture.size == first.grid.size == (32, 32)
    assert first.glyph.size == (32, 32) and rows[1].glyph.size == (64, 32)  # one cell per character
    assert len(first.neighbours) == NEIGHBOURS
    assert first.token_id not in [j for j, _, _ in first.neighbours]
    scores = [s for _, _, s in first.neighbours]
    assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)


def test_show_writes_a_png(substrate, tmp_path):
    out = tmp_path / "sheet.png"
    result = invoke("show", substrate, "a", "中文", "#5", "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.height >= 3 * 32 * SCALE  # three rows of scaled pictures
        assert image.getextrema() == (0, 255)  # ink on white


def test_show_errors(substrate, tmp_path):
    out = tmp_path / "sheet.png"
    assert_user_error(invoke("show", substrate, "not-a-token", "-o", out), "not-a-token")
    assert not out.exists()
    out.write_bytes(b"old")
    assert_user_error(invoke("show", substrate, "a", "-o", out), "--force")
    assert out.read_bytes() == b"old"
    assert invoke("show", substrate, "a", "-o", out, "--force").exit_code == 0


def test_show_needs_a_substrate(tmp_path):
    folder = write_vocab(tmp_path / "plain")
    assert_user_error(invoke("show", folder, "a", "-o", tmp_path / "x.png"), "no glyph substrate")
