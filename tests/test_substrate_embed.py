"""`bvvtok embed` and `bvvtok fonts` on a small Hugging Face tokenizer folder (~300 tokens).

The presets are 65k/131k ids, so the folder here is a WordLevel tokenizer written by the test,
holding tokens of every script class and shape. Needs GNU Unifont; skipped where it is absent.
"""

import ast
import errno
import hashlib
import io
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
UPPER = UNIFONT.with_name("unifont_upper.otf")
UNIFONT_SHA256 = "db1960227adcb14640063e7384fdcd2867aaf819d9ca4866bca289d4db9a9f67"

if not UNIFONT.is_file():
    pytest.skip(f"GNU Unifont not found at {UNIFONT}", allow_module_level=True)

from conftest import assert_user_error, invoke, snapshot, write_wordlevel_vocab  # noqa: E402

from bvvtok.errors import BvvtokError  # noqa: E402
from bvvtok.substrate import embed as embed_module  # noqa: E402
from bvvtok.substrate import folder as folder_module  # noqa: E402
from bvvtok.substrate.embed import default_recipe, embed_glyph  # noqa: E402
from bvvtok.substrate.fonts import font_for, resolve_chain  # noqa: E402
from bvvtok.substrate.glyph_codes import glyph_codes  # noqa: E402
from bvvtok.substrate.glyphs import fonts_per_char, open_pillow_fonts  # noqa: E402
from bvvtok.substrate.projection import frozen_embeddings  # noqa: E402
from bvvtok.substrate.recipe import RECIPES, reference_code  # noqa: E402

SUBSTRATE_FILES = {"embeddings.safetensors", "normalized_embeddings_weights.pt", "codes.npy", "bvvtok.json"}


def vocabulary() -> list[str]:
    tokens = ["<unk>", "<pad>", "<s>", "</s>"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list("0123456789")
    tokens += ["the", "and", "ing", "tion", "hello", "world", " ", "\n", "\t", "  ", "\u2029", "\x85", "\ufffe", "a\ufffe"]
    tokens += ["é", "ñ", "ü", "café", "naïve", "Ω", "αβγ", "Привет", "жизнь", "Բարեւ", "ǅ", "a\u0301", "\u0301", "\u0488", "a\u0488b"]
    tokens += [chr(c) for c in range(0x4E00, 0x4E00 + 60)]
    tokens += ["中文", "日本語", "한국어", "한", "مرحبا", "ب", "שלום", "नमस्ते", "कि", "ไทย", "ก"]
    tokens += ["\U0001F600", "a\U0001F600", "<special_token_57367>", "<unused_65535>", "a中", "xयz", "ab中cd"]
    tokens += [f"w{i}" for i in range(299 - len(tokens))]
    assert len(set(tokens)) == len(tokens)
    return tokens


TOKENS = vocabulary() + ["<|end|>"]  # the last one is an added special token
V = len(TOKENS)


def write_vocab(folder: Path) -> Path:
    write_wordlevel_vocab(folder, TOKENS[:-1], added=(TOKENS[-1],))
    (folder / "tokenizer_config.json").write_text('{"model_type": "test"}\n', encoding="utf-8")
    return folder


pytestmark = pytest.mark.usefixtures("isolated_substrate_env")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The tokenizer folder (read-only for tests: copy it before embedding in place)."""
    return write_vocab(tmp_path_factory.mktemp("source") / "vocab")


@pytest.fixture
def vocab(source, tmp_path) -> Path:
    """A private copy of the tokenizer folder."""
    return Path(shutil.copytree(source, tmp_path / "vocab"))


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def load_folder(folder: Path):
    weights = load_file(str(folder / "embeddings.safetensors"))
    codes = np.load(folder / "codes.npy")
    manifest = json.loads((folder / "bvvtok.json").read_text(encoding="utf-8"))
    return weights, codes, manifest


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    """`bvvtok embed DIR --recipe bvv241-2-3 --dump-text FILE`, in place (the default --out)."""
    root = tmp_path_factory.mktemp("built")
    folder = Path(shutil.copytree(source, root / "vocab"))
    dump = root / "codes.txt"
    result = invoke("embed", folder, "--recipe", "bvv241-2-3", "--dump-text", dump)
    assert result.exit_code == 0, result.output
    return folder, dump, result


@pytest.fixture(scope="module")
def built_elsewhere(source, tmp_path_factory):
    """The same settings with --out another folder: the tokenizer folder itself stays as it was."""
    root = tmp_path_factory.mktemp("elsewhere")
    before = snapshot(source)
    out, dump = root / "substrate", root / "codes.txt"
    result = invoke("embed", source, "--recipe", "bvv241-2-3", "--out", out, "--dump-text", dump)
    assert result.exit_code == 0, result.output
    assert snapshot(source) == before
    return out, dump


@pytest.fixture(scope="module")
def chain():
    return resolve_chain()


def reference_bits(token, chain, recipe="bvv241-2-3", size=32):
    fonts = open_pillow_fonts([f.path for f in chain], size)
    per_char = fonts_per_char(token, chain, fonts)
    return reference_code(token, per_char, RECIPES[recipe], size)


# --- the folder ---


def test_embed_reports_what_it_built(built):
    _, _, result = built
    out = " ".join(result.stdout.split())
    assert "recipe bvv241-2-3" in out and "1,024 bits" in out and "PCA to 1,024" in out
    assert f"{V:,}" in out
    assert "U+FFFE" in out  # no glyph
    assert "U+2029" in out  # not renderable


def test_folder_files(built):
    folder, _, _ = built
    names = {p.name for p in folder.iterdir()}
    assert names == SUBSTRATE_FILES | {"tokenizer.json", "tokenizer_config.json"}


def test_files_are_not_private(built):
    """Written files get the usual permissions under the umask (safetensors and mkdtemp make theirs private)."""
    folder, dump, _ = built
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask
    for path in [*(folder / name for name in SUBSTRATE_FILES), dump]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def test_embeddings_safetensors(built):
    folder, _, _ = built
    weights, _, _ = load_folder(folder)
    assert set(weights) == {"weight"}
    w = weights["weight"]
    assert w.dtype == np.float32 and w.shape == (V, 1024)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(np.linalg.norm(w.astype(np.float64), axis=1), 1.0, atol=1e-5)


def test_published_weights_file_is_the_same_tensor(built):
    folder, _, _ = built
    weights, _, _ = load_folder(folder)
    tensor = torch.load(folder / "normalized_embeddings_weights.pt", weights_only=True)
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (V, 1024)
    assert np.array_equal(tensor.numpy(), weights["weight"])


def test_codes_are_the_glyph_codes_of_the_tokens(built, chain):
    folder, _, _ = built
    _, codes, _ = load_folder(folder)
    assert codes.dtype == np.uint8 and codes.shape == (V, 128)
    bits = np.unpackbits(codes, axis=1)
    expected = glyph_codes(TOKENS, chain, RECIPES["bvv241-2-3"])
    assert np.array_equal(codes, np.packbits(expected.bits, axis=1))
    for token in ["the", "中", "a\u0488b", "<unused_65535>", "\U0001F600", "\n", "<|end|>"]:
        assert np.array_equal(bits[TOKENS.index(token)], reference_bits(token, chain)), token


def test_codes_fixed_point(built):
    """the published recipe: the code of 'the' (bvv241-2-3) as packbits hex."""
    folder, _, _ = built
    _, codes, _ = load_folder(folder)
    assert codes[TOKENS.index("the")].tobytes().hex() == (
        "0004040c0e0c204803022000021000000021000000002100200c00c02d000c000008008290000400008042908000400040a0048c4044c0c100884080408840a084010100404040880000408100000000800042800000034000000010000000000000000000000000002000400000000000000800000080000000200000000000"
    )


def test_embeddings_are_the_projection_of_the_codes(built):
    folder, _, _ = built
    weights, codes, _ = load_folder(folder)
    assert np.array_equal(weights["weight"], frozen_embeddings(np.unpackbits(codes, axis=1), 1024))


def test_manifest(built, chain):
    folder, _, _ = built
    _, codes, manifest = load_folder(folder)
    sub = manifest["substrate"]
    assert (sub["method"], sub["recipe"], sub["glyph_size"], sub["bits"], sub["dim"], sub["tokens"]) == ("glyph", "bvv241-2-3", 32, 1024, 1024, V)
    assert sub["settings"] == {"method": "glyph", "recipe": "bvv241-2-3", "glyph_size": 32, "dim": 1024, "fonts": [f.sha256 for f in chain]}
    assert sub["fonts"][0] == {"file": "unifont.otf", "sha256": UNIFONT_SHA256, "name": "GNU Unifont", "version": "15.0.01"}
    assert [f["sha256"] for f in sub["fonts"]] == [f.sha256 for f in chain]
    blank = int((~np.unpackbits(codes, axis=1).any(axis=1)).sum())
    assert sub["blank_glyphs"] == blank
    assert blank >= 1  # U+2029 and U+FFFE alone draw nothing
    assert sub["missing_chars"] == {"count": 1, "first": ["\ufffe"]}
    assert sub["unrenderable_chars"]["count"] == len(sub["unrenderable_chars"]["first"])
    assert {"\n", "\u2029"} <= set(sub["unrenderable_chars"]["first"])
    assert sub["byte_level"] is False and sub["escaped_tokens"] == 0 and sub["empty_ids"] == 0
    assert "bvvtok_version" in manifest and "bvvtok_version" not in sub


def test_manifest_file_hashes(built):
    folder, _, _ = built
    _, _, manifest = load_folder(folder)
    expected = {name: digest for name, digest in digests(folder).items() if name != "bvvtok.json"}
    assert manifest["files"] == expected
    assert set(expected) == SUBSTRATE_FILES - {"bvvtok.json"} | {"tokenizer.json", "tokenizer_config.json"}


def test_dump_text(built):
    folder, dump, _ = built
    _, codes, _ = load_folder(folder)
    bits = np.unpackbits(codes, axis=1)
    lines = dump.read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == V  # tokens such as '\n' and '\u2029' stay on their own line
    for i, line in enumerate(lines):
        number, literal, digits = line.split("\t")
        assert int(number) == i
        assert ast.literal_eval(literal) == TOKENS[i]
        assert len(digits) == 1024 and set(digits) <= {"0", "1"}
        assert digits == "".join(map(str, bits[i])), i


def test_out_elsewhere_gives_the_same_bytes(built, built_elsewhere):
    """Same inputs give byte-identical files, in place or in another folder (tokenizer files copied)."""
    folder, dump, _ = built
    out, other_dump = built_elsewhere
    assert digests(out) == digests(folder)
    assert other_dump.read_bytes() == dump.read_bytes()
    assert (out / "tokenizer_config.json").read_text(encoding="utf-8") == '{"model_type": "test"}\n'


def test_rerun_with_the_same_settings_needs_no_force(built, tmp_path):
    folder, _, _ = built
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    before = digests(copy)
    result = invoke("embed", copy, "--recipe", "bvv241-2-3")
    assert result.exit_code == 0, result.output
    assert digests(copy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temporary folder left behind


def test_default_recipe_for_a_small_foreign_tokenizer(built, tmp_path):
    """Without --recipe, a tokenizer of up to 65,536 tokens gets bvv241-2-3: the same substrate as built."""
    folder, _, _ = built
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    result = invoke("embed", copy)
    assert result.exit_code == 0, result.output
    assert digests(copy) == digests(folder)


def test_a_different_recipe_needs_force(built, tmp_path):
    folder, _, _ = built
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", copy, "--recipe", "bvv241-max"), "--force")
    assert snapshot(tmp_path) == before
    result = invoke("embed", copy, "--recipe", "bvv241-max", "--force")
    assert result.exit_code == 0, result.output
    weights, codes, manifest = load_folder(copy)
    assert manifest["substrate"]["recipe"] == "bvv241-max"
    a = TOKENS.index("A")
    assert not np.array_equal(codes[a], load_folder(folder)[1][a])  # easy tokens change with the recipe
    assert manifest["files"] == {k: v for k, v in digests(copy).items() if k != "bvvtok.json"}


def test_a_different_dim_needs_force(built, tmp_path):
    folder, _, _ = built
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    assert_user_error(invoke("embed", copy, "--dim", "64"), "--force")


def test_unrelated_non_empty_out_is_never_replaced(source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", source, "--out", out), "did not write")
    assert_user_error(invoke("embed", source, "--out", out, "--force"), "notes.txt", "did not write")
    assert snapshot(tmp_path) == before


def test_out_that_is_a_file(source, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file", encoding="utf-8")
    assert_user_error(invoke("embed", source, "--out", out), "not a folder")
    assert out.read_text(encoding="utf-8") == "a file"


def test_dim_64(vocab):
    result = invoke("embed", vocab, "--dim", "64", "--workers", "1")
    assert result.exit_code == 0, result.output
    weights, codes, manifest = load_folder(vocab)
    assert weights["weight"].shape == (V, 64) and codes.shape == (V, 128)
    assert manifest["substrate"]["dim"] == 64 and manifest["substrate"]["bits"] == 1024
    np.testing.assert_allclose(np.linalg.norm(weights["weight"].astype(np.float64), axis=1), 1.0, atol=1e-5)
    assert np.array_equal(weights["weight"], frozen_embeddings(np.unpackbits(codes, axis=1), 64))


def test_glyph_size_64(vocab, chain, monkeypatch):
    """64 px: 4,096 bits and, by default, PCA to 4,096.

    The 4,096 x 4,096 eigenproblem alone takes ~15 s on two cores, so the principal axes are
    replaced here by a stand-in (the identity) that records what it was asked; test_projection
    covers the real ones.
    """
    asked = []

    def principal_axes(codes, dim, factors=()):
        asked.append((codes.shape, dim))
        return np.zeros(codes.shape[1]), np.eye(codes.shape[1])[:dim]

    monkeypatch.setattr(embed_module, "principal_axes", principal_axes)
    result = invoke("embed", vocab, "--glyph-size", "64")
    assert result.exit_code == 0, result.output
    assert asked == [((V, 4096), 4096)]
    weights, codes, manifest = load_folder(vocab)
    assert codes.shape == (V, 512) and weights["weight"].shape == (V, 4096)
    sub = manifest["substrate"]
    assert (sub["glyph_size"], sub["bits"], sub["dim"]) == (64, 4096, 4096)
    bits = np.unpackbits(codes, axis=1)
    inked = bits.any(axis=1)
    assert np.allclose(weights["weight"][inked], bits[inked] / np.linalg.norm(bits[inked], axis=1, keepdims=True))
    for token in ["A", "中", "a\u0488b", "कि"]:
        assert np.array_equal(bits[TOKENS.index(token)], reference_bits(token, chain, "bvv241-2-3", 64)), token


def test_preset_in_the_manifest_picks_the_recipe(vocab):
    """A folder whose manifest names the 131k preset gets bvv241-max; its vocab section is kept."""
    (vocab / "bvvtok.json").write_text(json.dumps({"bvvtok_version": "0.0.1", "vocab": {"preset": "131k"}}), encoding="utf-8")
    result = invoke("embed", vocab, "--dim", "8")
    assert result.exit_code == 0, result.output
    _, _, manifest = load_folder(vocab)
    assert manifest["substrate"]["recipe"] == "bvv241-max"
    assert manifest["vocab"] == {"preset": "131k"}
    assert manifest["bvvtok_version"] == "0.0.1"


def test_byte_level_tokenizer(tmp_path, chain):
    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(["the cat sat on the mat", "中文 中文", "café"], vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    trainer.save(str(folder / "tokenizer.json"))
    vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab(with_added_tokens=True)
    dump = tmp_path / "codes.txt"
    result = invoke("embed", folder, "--dim", "16", "--dump-text", dump)
    assert result.exit_code == 0, result.output
    assert "byte-level" in " ".join(result.stdout.split())
    _, codes, manifest = load_folder(folder)
    sub = manifest["substrate"]
    assert sub["byte_level"] is True
    assert sub["escaped_tokens"] >= 128  # every single byte from 0x80 up, at least
    assert codes.shape == (len(vocab), 128)
    bits = np.unpackbits(codes, axis=1)
    drawn = {" the": vocab["Ġthe"], "\\xe4": vocab["ä"], "<|endoftext|>": vocab["<|endoftext|>"], " 中文": vocab["Ġä¸Ńæĸĩ"]}
    expected = glyph_codes(list(drawn), chain, RECIPES["bvv241-2-3"])
    for k, (text, i) in enumerate(drawn.items()):
        assert np.array_equal(bits[i], expected.bits[k]), text
    lines = dump.read_text(encoding="utf-8").splitlines()
    assert lines[vocab["Ġthe"]].split("\t")[1] == repr(" the")


def test_ids_without_a_token_get_blank_codes(tmp_path):
    folder = tmp_path / "vocab"
    folder.mkdir()
    Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 2, "d": 4}, unk_token="<unk>")).save(str(folder / "tokenizer.json"))
    dump = tmp_path / "codes.txt"
    result = invoke("embed", folder, "--dim", "4", "--dump-text", dump)
    assert result.exit_code == 0, result.output
    weights, codes, manifest = load_folder(folder)
    assert codes.shape == (5, 128) and weights["weight"].shape == (5, 4)
    assert not codes[3].any() and codes[1].any()
    assert manifest["substrate"]["empty_ids"] == 1
    assert manifest["substrate"]["blank_glyphs"] == 1
    assert np.isfinite(weights["weight"]).all()
    assert dump.read_text(encoding="utf-8").splitlines()[3] == "3\t''\t" + "0" * 1024


def test_one_token_is_not_enough_and_nothing_is_written(tmp_path):
    folder = tmp_path / "vocab"
    folder.mkdir()
    Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")).save(str(folder / "tokenizer.json"))
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", folder, "--dim", "4", "--dump-text", tmp_path / "codes.txt"), "two tokens")
    assert snapshot(tmp_path) == before


def test_default_recipe_by_size(tmp_path):
    assert default_recipe(tmp_path, 65_536) == "bvv241-2-3"
    assert default_recipe(tmp_path, 65_537) == "bvv241-max"
    (tmp_path / "bvvtok.json").write_text(json.dumps({"vocab": {"preset": "65k"}}), encoding="utf-8")
    assert default_recipe(tmp_path, 131_072) == "bvv241-2-3"


def test_in_place_embed_keeps_other_files(vocab):
    (vocab / "README.md").write_text("my notes", encoding="utf-8")
    result = invoke("embed", vocab, "--dim", "8")
    assert result.exit_code == 0, result.output
    assert (vocab / "README.md").read_text(encoding="utf-8") == "my notes"
    assert (vocab / "tokenizer_config.json").is_file()


def test_in_place_embed_keeps_subfolders(vocab):
    (vocab / "onnx").mkdir()
    (vocab / "onnx" / "model.onnx").write_bytes(b"weights")
    result = invoke("embed", vocab, "--dim", "8")
    assert result.exit_code == 0, result.output
    assert (vocab / "onnx" / "model.onnx").is_file()
    assert (vocab / "onnx" / "model.onnx").read_bytes() == b"weights"


def test_embedding_file_is_byte_for_byte_what_safetensors_writes(vocab, tmp_path):
    """The projection writes straight into the file's mapped pages; the file must still be safetensors' own."""
    result = embed_glyph(vocab, tmp_path / "out", dim=24)
    save_file({"weight": np.array(result.embeddings)}, str(tmp_path / "library.safetensors"))
    assert (result.out / "embeddings.safetensors").read_bytes() == (tmp_path / "library.safetensors").read_bytes()
    assert not result.embeddings.flags.writeable  # a mapping of the file: writing to it would change the file


def test_published_copy_is_byte_for_byte_what_torch_save_writes(vocab, tmp_path, monkeypatch):
    """The tensor's data goes into the .pt file through a map, in two threads; the file must still be
    torch.save's own, and its recorded sha256 the file's."""
    monkeypatch.setattr(folder_module, "MAPPED_WRITE", 1024)  # the test vocabulary's tensor is small
    monkeypatch.setattr(folder_module, "MAPPED_PIECE", 5000)  # several pieces, none page-aligned
    result = embed_glyph(vocab, tmp_path / "out", dim=24)
    assert result.embeddings.nbytes >= 3 * 5000
    expected = io.BytesIO()
    torch.save(torch.from_numpy(np.array(result.embeddings)), expected)
    written = (result.out / "normalized_embeddings_weights.pt").read_bytes()
    assert written == expected.getvalue()
    assert result.manifest["files"]["normalized_embeddings_weights.pt"] == hashlib.sha256(written).hexdigest()


@pytest.mark.parametrize("failing", ["embedding file", "published copy", "published copy's mapped data"])
def test_full_disk_is_a_one_line_error_and_nothing_is_written(vocab, tmp_path, monkeypatch, failing):
    """Reserving the mapped file's blocks fails cleanly (not a SIGBUS later); torch.save's own wrapping
    of the failed write (a RuntimeError) is unwrapped to the disk's error."""

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "embedding file":
        monkeypatch.setattr(folder_module.os, "posix_fallocate", full)
    elif failing == "published copy":
        monkeypatch.setattr(folder_module._HashingWriter, "write", full)
    else:  # the .pt's data is copied in through a map: its blocks are reserved (the second fallocate) first
        monkeypatch.setattr(folder_module, "MAPPED_WRITE", 16)
        reserve, calls = os.posix_fallocate, []

        def second_fails(*args):
            calls.append(args)
            return full() if len(calls) == 2 else reserve(*args)

        monkeypatch.setattr(folder_module.os, "posix_fallocate", second_fails)
    before = snapshot(tmp_path)
    result = invoke("embed", vocab, "--method", "bits", "--bits", "16", "--out", tmp_path / "out")
    assert_user_error(result, f"cannot write {tmp_path / 'out'}: No space left on device", "free some space")
    assert snapshot(tmp_path) == before


def test_library_call_reports_progress(vocab, tmp_path):
    stages = {}
    result = embed_glyph(vocab, tmp_path / "out", dim=32, workers=2, progress=lambda stage, done, total: stages.setdefault(stage, []).append((done, total)))
    assert result.out == tmp_path / "out"
    assert result.embeddings.shape == (V, 32)
    assert np.array_equal(load_folder(result.out)[0]["weight"], result.embeddings)
    assert result.manifest == load_folder(result.out)[2]
    assert set(stages) == {"render", "codes", "pca"}
    assert stages["codes"][-1] == (V, V)
    assert stages["pca"] == [(0, 1), (1, 1)]
    done, total = stages["render"][-1]
    assert done == total == len({ch for t in TOKENS for ch in t})  # U+FFFE has no font: counted as done


@pytest.mark.parametrize("case", ["missing character", "id without a token"])
def test_progress_reaches_its_total(tmp_path, case):
    folder = tmp_path / "vocab"
    folder.mkdir()
    words = {"<unk>": 0, "a": 1, "b": 2, "c": 3}
    if case == "missing character":
        words["\ufffe"] = 4
    else:
        words["d"] = 5  # id 4 has no token
    Tokenizer(models.WordLevel(words, unk_token="<unk>")).save(str(folder / "tokenizer.json"))
    last = {}
    embed_glyph(folder, dim=2, progress=lambda stage, done, total: last.__setitem__(stage, (done, total)))
    assert last["render"][0] == last["render"][1]
    assert last["codes"][0] == last["codes"][1]


def test_embed_survives_a_damaged_glyph_cache(vocab, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(cache))
    assert invoke("embed", vocab, "--dim", "8", "--out", tmp_path / "first").exit_code == 0
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes()[:1000])
    result = invoke("embed", vocab, "--dim", "8", "--out", tmp_path / "second")
    assert result.exit_code == 0, result.output
    assert digests(tmp_path / "second") == digests(tmp_path / "first")


# --- errors: exit 2, one line, nothing written ---


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--dim", "2000"], "--dim"),
        (["--dim", "0"], "--dim"),
        (["--glyph-size", "48"], "--glyph-size"),
        (["--glyph-size", "64", "--dim", "5000"], "--dim"),
        (["--recipe", "nope"], "nope"),
        (["--method", "bits"], "bits"),
        (["--font", "{tmp}/missing.otf"], "missing.otf"),
        (["--font", "{tmp}/garbage.otf"], "garbage.otf"),
        (["--dump-text", "{tmp}/existing.txt"], "existing.txt"),
        (["--out", "{tmp}/new", "--dump-text", "{tmp}/existing.txt"], "existing.txt"),
    ],
)
def test_bad_options(vocab, tmp_path, args, fragment):
    (tmp_path / "garbage.otf").write_bytes(b"\x00\x01not a font" * 50)
    (tmp_path / "existing.txt").write_text("keep me", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", vocab, *(a.format(tmp=tmp_path) for a in args)), fragment)
    assert snapshot(tmp_path) == before


def test_font_env_variable_naming_a_non_font(vocab, tmp_path, monkeypatch):
    (tmp_path / "garbage.otf").write_bytes(b"not a font")
    monkeypatch.setenv("BVVTOK_FONT", str(tmp_path / "garbage.otf"))
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", vocab), "garbage.otf")
    assert snapshot(tmp_path) == before


def test_folder_without_a_tokenizer(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "vocab.json").write_text("{}", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", folder), "tokenizer.json")
    assert snapshot(tmp_path) == before


def test_missing_folder(tmp_path):
    assert_user_error(invoke("embed", tmp_path / "nope"), "tokenizer.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ['{"version": "1.0", "model": ', "not json at all", '{"model": {"type": "Nope"}}'])
def test_corrupt_tokenizer(vocab, tmp_path, content):
    (vocab / "tokenizer.json").write_text(content, encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(invoke("embed", vocab, "--out", tmp_path / "out"), "tokenizer.json")
    assert snapshot(tmp_path) == before


def test_library_errors_are_bvvtok_errors(vocab):
    with pytest.raises(BvvtokError, match="^glyph_size must be 32 or 64"):
        embed_glyph(vocab, glyph_size=16)
    with pytest.raises(BvvtokError, match="^dim=1025 must be between 1"):
        embed_glyph(vocab, dim=1025)


# --- bvvtok fonts ---


def test_fonts_command_with_a_vocabulary(source, chain):
    result = invoke("fonts", source)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "15.0.01" in out
    assert UNIFONT_SHA256[:16] in out
    distinct = {ch for t in TOKENS for ch in t}
    per_font = {}
    for ch in distinct - {"\ufffe"}:
        i = font_for(ch, chain)
        per_font[i] = per_font.get(i, 0) + 1
    assert per_font[0] == len(distinct) - 1 - (1 if len(chain) > 1 else 0)
    rows = [line for line in result.stdout.splitlines() if UNIFONT_SHA256[:16] in line]
    assert len(rows) == 1 and f" {per_font[0]:,} " in rows[0]
    assert f"no glyph in the chain for 1 character of {source}: U+FFFE" in out


def test_fonts_command_without_a_vocabulary():
    result = invoke("fonts")
    assert result.exit_code == 0, result.output
    assert UNIFONT_SHA256[:16] in result.stdout
    assert "have no glyph" not in result.stdout
    assert "characters drawn" not in result.stdout


def test_fonts_command_with_a_non_font(tmp_path):
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"nope")
    assert_user_error(invoke("fonts", "--font", bad), "bad.ttf")


def test_fonts_command_with_an_explicit_chain(source):
    result = invoke("fonts", source, "--font", UNIFONT)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    # without Unifont Upper the emoji has no glyph either
    assert "2 characters of" in out and "U+FFFE" in out and "U+1F600" in out
