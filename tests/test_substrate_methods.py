"""The method registry (bvvtok.substrate.methods): `embed`, `verify` and `info` find a method by its name.

Proven with a method the test defines and registers (row i = the unit vector of id i + offset): a
method without codes and with a verify check of its own, which no code outside this file names.
"""

import json
import pkgutil
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import assert_user_error, invoke, write_wordlevel_vocab

import bvvtok.substrate.methods as methods
from bvvtok.errors import BvvtokError
from bvvtok.substrate.embed import embed, embed_bits
from bvvtok.substrate.methods import METHODS, Built, Method, configure, flag
from bvvtok.substrate.verify import CHECKS, verify

WORDS = ["<unk>", *"abcdefghij", "the", "and"]
V = len(WORDS) + 1  # and the added special token


def one_hot(view) -> str:
    weight = view.need_weight()
    if not ((weight == 0) | (weight == 1)).all() or not (weight.sum(axis=1) == 1).all():
        raise ValueError("a row is not a unit vector")
    return "every row is a unit vector"


@dataclass
class OneHot(Method):
    name: ClassVar[str] = "one-hot"
    about: ClassVar[str] = "row i is the unit vector of id i + offset (a test method)"
    required: ClassVar[tuple[str, ...]] = ("offset",)
    settings_fields: ClassVar[tuple[str, ...]] = ("offset",)
    checks: ClassVar = {**Method.checks, "one-hot": one_hot}

    offset: int = flag(0, "where row 0 has its 1.", minimum=0)

    def build(self, texts, settings, progress) -> Built:
        v = len(texts.texts)

        def fill(embeddings: np.ndarray) -> None:
            embeddings[:] = 0
            embeddings[np.arange(v), (np.arange(v) + self.offset) % v] = 1

        return Built({"method": self.name, "offset": self.offset, "dim": v, "n_embed": v}, fill)

    @classmethod
    def summary(cls, section: dict[str, Any]) -> str:
        return f"one-hot, offset {section['offset']}"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(METHODS, OneHot.name, OneHot)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_wordlevel_vocab(tmp_path_factory.mktemp("source") / "vocab", WORDS)


def test_each_module_of_the_package_is_a_registered_method():
    assert {m.name for m in pkgutil.iter_modules(methods.__path__)} == set(METHODS)
    assert {"glyph", "bits"} <= set(METHODS)


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(BvvtokError, match="unknown substrate method 'nope'; choose .*bits.*glyph"):
        configure("nope", {})


def test_a_setting_of_no_method_is_refused():
    with pytest.raises(BvvtokError, match="^bit goes with no method; method='bits' takes bits, seed, float, dim, d_model$"):
        configure("bits", {"bit": 16})


def test_a_method_without_codes_builds_verifies_and_rebuilds(registered, source, tmp_path):
    out = tmp_path / "out"
    result = embed(source, "one-hot", out=out, offset=3)
    assert result.bits is None and not (out / "codes.npy").exists()
    assert np.array_equal(result.embeddings, np.roll(np.eye(V, dtype=np.float32), 3, axis=1))
    sub = result.manifest["substrate"]
    assert sub["settings"] == {"method": "one-hot", "offset": 3}
    assert "codes.npy" not in result.manifest["files"]
    results = verify(out, rebuild=True)
    assert [r.name for r in results] == [name for name, _ in CHECKS] + ["one-hot", "rebuild"]
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    checks = {r.name: r.detail for r in results}
    assert checks["codes"] == "none: a one-hot substrate is not made from codes"
    assert checks["rebuild"].startswith("rebuilt from the manifest: embeddings identical, byte for byte")
    assert "one-hot, offset 3" in invoke("info", out).stdout


def test_the_command_line_takes_a_registered_method(registered, source, tmp_path):
    result = invoke("embed", source, "--method", "one-hot", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "one-hot, offset 0" in result.stdout
    assert "one-hot: row i is the unit vector" in " ".join(invoke("embed", "--help").stdout.split())
    assert_user_error(invoke("embed", source, "--method", "one-hot", "--recipe", "bvv241-2-3", "--out", tmp_path / "x"),
                      "--recipe goes with --method glyph", "--method one-hot takes --offset")  # fmt: skip
    assert_user_error(invoke("embed", source, "--method", "one-hot", "--dump-text", tmp_path / "t", "--out", tmp_path / "x"),
                      "--dump-text writes the codes, and a one-hot substrate has none")  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_the_methods_minimum(registered, source, tmp_path):
    with pytest.raises(BvvtokError, match=r"^offset must be at least 0 \(got -1\)$"):
        embed(source, "one-hot", out=tmp_path / "out", offset=-1)


def test_codes_beside_a_method_without_codes_fail_its_codes_check(registered, source, tmp_path):
    out = tmp_path / "out"
    embed(source, "one-hot", out=out)
    np.save(out / "codes.npy", np.zeros((V, 1), dtype=np.uint8))
    manifest = json.loads((out / "bvvtok.json").read_text(encoding="utf-8"))
    manifest["files"]["codes.npy"] = "0" * 64
    (out / "bvvtok.json").write_text(json.dumps(manifest), encoding="utf-8")
    failed = {r.name: r.detail for r in verify(out) if not r.ok}
    assert set(failed) == {"file hashes", "codes"}
    assert "codes.npy is here, but a one-hot substrate is not made from codes" in failed["codes"]


def test_in_place_over_a_substrate_with_codes_the_codes_go(registered, source, tmp_path):
    folder = Path(shutil.copytree(source, tmp_path / "vocab"))
    embed_bits(folder, 16)
    assert (folder / "codes.npy").exists()
    with pytest.raises(BvvtokError, match="force=True"):
        embed(folder, "one-hot")
    result = embed(folder, "one-hot", force=True)
    assert not (folder / "codes.npy").exists()
    assert set(result.manifest["files"]) == {"tokenizer.json", "embeddings.safetensors", "normalized_embeddings_weights.pt"}
    assert all(r.ok for r in verify(folder)), [(r.name, r.detail) for r in verify(folder) if not r.ok]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*result.manifest["files"], "bvvtok.json"])
