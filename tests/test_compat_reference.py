"""Rebuilding the published bvv241 tokenizers from the published statistics (the published recipe).

Needs ../shared/reference (not part of the project); skipped where it is absent.
"""

from pathlib import Path

import pytest
from typer.testing import CliRunner

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ngrams"
NGRAMS_23 = REFERENCE / "ngrams-2-3.txt"
NGRAMS_2345 = REFERENCE / "ngrams-2-3-4-5.txt"
INTERSECTION = REFERENCE / "intersection.txt"

if not all(p.is_file() for p in (NGRAMS_23, NGRAMS_2345, INTERSECTION)):
    pytest.skip(f"reference statistics not found under {REFERENCE}", allow_module_level=True)

from bvvtok.cli import app  # noqa: E402
from bvvtok.vocab.build import build_vocab, save_vocab  # noqa: E402


@pytest.fixture(scope="module")
def bvv241_2_3():
    return build_vocab("65k", [NGRAMS_23])


@pytest.fixture(scope="module")
def bvv241_max():
    return build_vocab("131k", [NGRAMS_2345], extra_tokens=INTERSECTION)


def test_bvv241_2_3_fixed_point(bvv241_2_3):
    assert bvv241_2_3.tokenizer.encode("hello the test").ids == [104, 56035, 111, 32, 57811, 32, 116, 56117]
    assert bvv241_2_3.tokenizer.encode("A").ids == [65]


def test_bvv241_max_fixed_point(bvv241_max):
    assert bvv241_max.tokenizer.encode("hello the test").ids == [70960, 32, 113757, 32, 99060]
    assert bvv241_max.tokenizer.encode("A").ids == [65]


def test_bvv241_2_3_places_every_candidate(bvv241_2_3):
    counts = bvv241_2_3.manifest["vocab"]["ngrams"]
    assert (counts["candidates"], counts["placed"], counts["dropped"]) == (8177, 8177, 0)
    assert len(bvv241_2_3.layout.placed) == 8177
    assert bvv241_2_3.manifest["vocab"]["selection"] == {"rule": "top-k", "top_k": 338}
    assert bvv241_2_3.layout.vocab["<unused_65535>"] == 0xFFFF


def test_bvv241_max_fills_every_slot_and_drops_41(bvv241_max):
    counts = bvv241_max.manifest["vocab"]["ngrams"]
    assert (counts["placed"], counts["dropped"]) == (73_727, 41)
    assert len(bvv241_max.layout.dropped) == 41
    assert bvv241_max.manifest["vocab"]["selection"] == {"rule": "top-k", "top_k": 906}
    vocab = bvv241_max.layout.vocab
    assert vocab["<unused_131071>"] == 0x1FFFF
    assert len(vocab) == 131_072
    assert sorted(vocab.values()) == list(range(131_072))


def test_cli_gives_the_library_bytes(bvv241_2_3, tmp_path):
    library = tmp_path / "library"
    save_vocab(bvv241_2_3, library)
    cli = tmp_path / "cli"
    result = CliRunner().invoke(app, ["build-vocab", "--preset", "bvv241-2-3", "--ngrams", str(NGRAMS_23), "--out", str(cli)])
    assert result.exit_code == 0, result.output
    assert (cli / "tokenizer.json").read_bytes() == (library / "tokenizer.json").read_bytes()
