"""The font chain: where fonts are found, what is refused, what they cover and how they are described."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
UPPER = UNIFONT.with_name("unifont_upper.otf")
UNIFONT_SHA256 = "db1960227adcb14640063e7384fdcd2867aaf819d9ca4866bca289d4db9a9f67"

if not UNIFONT.is_file():
    pytest.skip(f"GNU Unifont not found at {UNIFONT}", allow_module_level=True)

from bvvtok.errors import BvvtokError  # noqa: E402
from bvvtok.substrate import fonts  # noqa: E402
from bvvtok.substrate.fonts import Font, coverage, font_for, fonts_for, known_fonts, open_font, resolve_chain  # noqa: E402


@pytest.fixture(autouse=True)
def no_font_env(monkeypatch):
    monkeypatch.delenv("BVVTOK_FONT", raising=False)


def one_line(error: BvvtokError) -> str:
    message = str(error)
    assert "\n" not in message
    return message


@pytest.fixture
def garbage_font(tmp_path):
    path = tmp_path / "garbage.otf"
    path.write_bytes(b"this is not an OpenType font\x00\x01\x02" * 20)
    return path


def test_default_chain_starts_with_unifont():
    chain = resolve_chain()
    assert chain[0].path.name == "unifont.otf"
    assert chain[0].path.is_file()
    if fonts.FONTS_DIR is None or not (fonts.FONTS_DIR / "unifont.otf").is_file():
        assert chain[0].path == UNIFONT
        assert chain[0].sha256 == UNIFONT_SHA256
    if UPPER.is_file():
        assert [f.path.name for f in chain] == ["unifont.otf", "unifont_upper.otf"]


def test_project_fonts_folder_comes_before_the_system(tmp_path, monkeypatch):
    (tmp_path / "unifont.otf").symlink_to(UNIFONT)
    monkeypatch.setattr(fonts, "FONTS_DIR", tmp_path)
    chain = resolve_chain()
    assert chain[0].path == tmp_path / "unifont.otf"


def test_no_unifont_anywhere_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "FONTS_DIR", tmp_path / "project-fonts")
    monkeypatch.setattr(fonts, "SYSTEM_FONT_DIRS", (tmp_path / "system",))
    with pytest.raises(BvvtokError) as error:
        resolve_chain()
    message = one_line(error.value)
    assert "unifont.otf" in message and "name a font file (font, or $BVVTOK_FONT)" in message and "fonts-unifont" in message


def test_an_installed_wheel_has_no_fonts_folder(tmp_path, monkeypatch):
    """Outside a checkout FONTS_DIR is None: the system's fonts are found, and the error names no fonts/."""
    monkeypatch.setattr(fonts, "FONTS_DIR", None)
    assert resolve_chain()[0].path.name == "unifont.otf"
    monkeypatch.setattr(fonts, "SYSTEM_FONT_DIRS", (tmp_path / "system",))
    with pytest.raises(BvvtokError) as error:
        resolve_chain()
    message = one_line(error.value)
    assert "fonts/" not in message and "the system's font folders" in message and "$BVVTOK_FONT" in message


def test_font_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope.otf"
    with pytest.raises(BvvtokError) as error:
        resolve_chain([missing])
    message = one_line(error.value)
    assert str(missing) in message and "not found" in message


def test_font_path_that_is_a_folder(tmp_path):
    with pytest.raises(BvvtokError) as error:
        resolve_chain([tmp_path])
    assert str(tmp_path) in one_line(error.value)


def test_font_file_that_is_not_a_font(garbage_font):
    with pytest.raises(BvvtokError) as error:
        resolve_chain([garbage_font])
    message = one_line(error.value)
    assert str(garbage_font) in message and "not a font" in message


def test_empty_font_file(tmp_path):
    empty = tmp_path / "empty.ttf"
    empty.write_bytes(b"")
    with pytest.raises(BvvtokError) as error:
        open_font(empty)
    assert "not a font" in one_line(error.value)


def test_explicit_paths_make_the_chain_in_order():
    chain = resolve_chain([UPPER, UNIFONT] if UPPER.is_file() else [UNIFONT])
    assert [f.path for f in chain] == ([UPPER, UNIFONT] if UPPER.is_file() else [UNIFONT])


def test_env_variable_is_honoured(monkeypatch, tmp_path):
    copy = tmp_path / "my font.otf"
    shutil.copyfile(UNIFONT, copy)
    monkeypatch.setenv("BVVTOK_FONT", f"{copy}::{UNIFONT}")  # empty entries are skipped
    assert [f.path for f in resolve_chain()] == [copy, UNIFONT]


def test_explicit_paths_win_over_the_env_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("BVVTOK_FONT", str(tmp_path / "missing.otf"))
    assert [f.path for f in resolve_chain([UNIFONT])] == [UNIFONT]


def test_env_variable_naming_a_missing_font(monkeypatch, tmp_path):
    monkeypatch.setenv("BVVTOK_FONT", str(tmp_path / "missing.otf"))
    with pytest.raises(BvvtokError) as error:
        resolve_chain()
    assert "missing.otf" in one_line(error.value)


def test_env_variable_naming_a_non_font(monkeypatch, garbage_font):
    monkeypatch.setenv("BVVTOK_FONT", str(garbage_font))
    with pytest.raises(BvvtokError, match="not a font"):
        resolve_chain()


def test_first_font_with_a_glyph_wins():
    unifont = open_font(UNIFONT)
    assert unifont.has_glyphs([ord("A"), ord("中"), 0xFFFE]).tolist() == [True, True, False]
    assert unifont.has_glyph(ord("A")) and not unifont.has_glyph(0xFFFE)
    assert font_for("A", [unifont]) == 0
    assert font_for("\ufffe", [unifont]) is None
    assert fonts_for(np.array([ord("A"), 0xFFFE, ord("中")]), [unifont]).tolist() == [0, -1, 0]
    if UPPER.is_file():
        upper = open_font(UPPER)
        assert font_for("A", [upper, unifont]) == 1  # Unifont Upper has no Latin
        assert font_for("\U0001F600", [unifont, upper]) == 1
        assert font_for("\U0001F600", [upper, unifont]) == 0
        assert fonts_for(np.array([ord("A"), 0x1F600, 0xFFFE]), [upper, unifont]).tolist() == [1, 0, -1]


def test_coverage_counts_and_lists_missing_characters():
    chain = [open_font(UNIFONT)] + ([open_font(UPPER)] if UPPER.is_file() else [])
    chars = ["A", "中", "A", "\ufffe", "\uffff", "\U0001F600", "b", "\ufffe"]
    per_font, missing = coverage(chars, chain)
    if UPPER.is_file():
        assert per_font == {0: 3, 1: 1}
        assert missing == ["\ufffe", "\uffff"]
    else:
        assert per_font == {0: 3}
        assert missing == ["\ufffe", "\uffff", "\U0001F600"]


def test_coverage_of_nothing():
    assert coverage([], [open_font(UNIFONT)]) == ({}, [])


def test_describe_debian_unifont():
    info = open_font(UNIFONT).describe()
    assert info == {"file": "unifont.otf", "sha256": UNIFONT_SHA256, "name": "GNU Unifont", "version": "15.0.01"}


def test_describe_matches_the_manifest():
    manifest = json.loads(fonts.KNOWN_FONTS.read_text(encoding="utf-8"))
    entry = {f["file"]: f for f in manifest["fonts"]}["unifont.otf"]
    assert entry["sha256"] == UNIFONT_SHA256
    assert known_fonts()[UNIFONT_SHA256]["version"] == "15.0.01"


def test_describe_unknown_font(tmp_path):
    changed = tmp_path / "unifont.otf"
    changed.write_bytes(UNIFONT.read_bytes() + b"\x00")  # same font, different bytes: not the known file
    font = open_font(changed)
    info = font.describe()
    assert set(info) == {"file", "sha256"}
    assert info["file"] == "unifont.otf"
    assert info["sha256"] != UNIFONT_SHA256 and len(info["sha256"]) == 64


def test_font_is_hashable_by_path():
    assert Font(UNIFONT) == Font(UNIFONT)
    assert len({Font(UNIFONT), Font(UNIFONT)}) == 1
