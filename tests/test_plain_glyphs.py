"""The direct FreeType path: its table is a proof, and without one nothing changes.

`bvvtok/substrate/data/plain_glyphs.json` claims, per font and size, that FreeType drawn
directly gives Pillow's cells for the listed characters. The first test makes
that comparison again for every character the installed Unifont maps (a few
seconds), so the claim is checked on every machine whose libraries match the
table's; the others check that a missing or stale proof falls back to Pillow.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from bvvtok.substrate import plain_glyphs
from bvvtok.substrate.fonts import font_for, resolve_chain
from bvvtok.substrate.glyphs import prove_plain, render_glyphs
from bvvtok.substrate.plain_glyphs import in_ranges, plain_ranges, range_text, renderer_versions

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
needs_unifont = pytest.mark.skipif(not UNIFONT.is_file(), reason=f"GNU Unifont not found at {UNIFONT}")


def table_entries() -> list[dict]:
    return json.loads(plain_glyphs.TABLE.read_text(encoding="utf-8"))["tables"] if plain_glyphs.TABLE.is_file() else []


@needs_unifont
@pytest.mark.parametrize("entry", table_entries(), ids=lambda e: f"{e['file']}-{e['size']}")
def test_table_is_the_comparison_of_every_character(entry):
    font = next((f for f in resolve_chain() if f.sha256 == entry["sha256"]), None)
    if font is None:
        pytest.skip(f"{entry['file']} with sha256 {entry['sha256'][:12]}... is not installed")
    if entry["renderer"] != renderer_versions():
        pytest.skip(f"table made with {entry['renderer']}, this machine has {renderer_versions()}: run scripts/plain_glyphs.py")
    plain = prove_plain(font, entry["size"], workers=2)
    assert range_text(plain) == entry["plain"]
    assert len(plain) > 0.9 * len({c for c, _ in font.face.get_chars()})  # the path is worth having


@needs_unifont
def test_the_installed_unifont_takes_the_direct_path():
    """Else a cold build silently costs 3x the render time: the table needs remaking for this machine."""
    unifont = resolve_chain()[0]
    if not any(e["sha256"] == unifont.sha256 and e["renderer"] == renderer_versions() for e in table_entries()):
        pytest.skip("no table entry for this Unifont and these library versions: run scripts/plain_glyphs.py")
    ranges = plain_ranges(unifont.sha256, 32)
    assert ranges is not None
    assert in_ranges([ord("A"), ord("中")], ranges).all()
    assert not in_ranges([0x0301, 0x200B], ranges).any()  # a combining mark and a default-ignorable: shaped


@needs_unifont
@pytest.mark.parametrize("size", [32, 64])
def test_direct_and_pillow_give_the_same_rendering(size):
    """Direct, shaped, overflowing, unrenderable and upper-plane characters mixed in one list, across chunks."""
    chain = resolve_chain()
    text = "Aж中한\u0301\u0488\u093f\u200b\u2029\n\u0627\u0626 \U0001F600x"
    items = [(ch, i) for ch in text * 700 if (i := font_for(ch, chain)) is not None]
    direct = render_glyphs(items, chain, size, workers=2)
    pillow = render_glyphs(items, chain, size, workers=2, direct=False)
    assert np.array_equal(direct.cells, pillow.cells)
    assert direct.failed == pillow.failed and direct.failed  # \u2029 and \n: raqm cannot lay them out
    assert sorted(direct.overflow) == sorted(pillow.overflow) and direct.overflow
    assert all(np.array_equal(direct.overflow[k].mask, g.mask) for k, g in pillow.overflow.items())
    assert direct.black_and_white and pillow.black_and_white


def test_ranges_are_inclusive_at_both_ends():
    ranges = np.array([[10, 12], [20, 20]])
    assert in_ranges([9, 10, 12, 13, 19, 20, 21], ranges).tolist() == [False, True, True, False, False, True, False]
    assert range_text([0x0A, 0x0B, 0x0C, 0x14, 0x1F600]) == ["000A-000C", "0014-0014", "1F600-1F600"]


@needs_unifont
def test_no_proof_for_other_versions_sizes_or_fonts(tmp_path, monkeypatch):
    sha = resolve_chain()[0].sha256
    table = tmp_path / "plain_glyphs.json"
    entry = {"file": "unifont.otf", "sha256": sha, "size": 32, "renderer": renderer_versions(), "plain": ["0041-005A"]}
    table.write_text(json.dumps({"tables": [entry]}), encoding="utf-8")
    assert plain_ranges(sha, 32, table).tolist() == [[0x41, 0x5A]]
    assert plain_ranges(sha, 64, table) is None
    assert plain_ranges("0" * 64, 32, table) is None
    assert plain_ranges(sha, 32, tmp_path / "absent.json") is None
    damaged = tmp_path / "damaged.json"
    damaged.write_text(table.read_text(encoding="utf-8")[:100], encoding="utf-8")
    assert plain_ranges(sha, 32, damaged) is None
    newer = {**renderer_versions(), "pillow": "99.0.0"}
    monkeypatch.setattr(plain_glyphs, "renderer_versions", lambda: newer)
    assert plain_ranges(sha, 32, table) is None
