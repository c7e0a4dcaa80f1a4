"""`bvvtok verify` and `bvvtok info` on small substrates, clean and damaged.

The substrates are built once per module from a ~300-token WordLevel tokenizer written
here (bits need no font; the glyph ones need GNU Unifont and are skipped without it).
Every damage test works on a private copy and checks that the right check fails, with
a detail naming the problem, that the undamaged parts still pass, and that the command
line exits 1 without a traceback.
"""

import hashlib
import json
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import Payload, assert_user_error, invoke, write_wordlevel_vocab
from safetensors.numpy import load_file, save_file

from bvvtok.errors import BvvtokError
from bvvtok.substrate import verify as verify_module
from bvvtok.substrate.embed import embed_bits, embed_glyph
from bvvtok.substrate.load import load_substrate
from bvvtok.substrate.verify import as_json, verify

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
UNIFONT_SHA256 = hashlib.sha256(UNIFONT.read_bytes()).hexdigest() if UNIFONT.is_file() else ""
needs_unifont = pytest.mark.skipif(not UNIFONT.is_file(), reason=f"GNU Unifont not found at {UNIFONT}")

EMBEDDINGS = "embeddings.safetensors"
PT = "normalized_embeddings_weights.pt"
CODES = "codes.npy"
MANIFEST = "bvvtok.json"
CHECKS = [
    "manifest", "settings", "file hashes", "folder contents", "tokenizer", "layout", "tokenizer behaviour",
    "embeddings", "distinct rows", "values", ".pt copy", "codes",
]  # fmt: skip
VOCABULARY_CHECKS = ["manifest", "file hashes", "folder contents", "tokenizer", "layout", "tokenizer behaviour"]
WEIGHT_READERS = ["distinct rows", "values", ".pt copy", "codes"]  # the checks that need embeddings.safetensors


def vocabulary() -> list[str]:
    tokens = ["<unk>", "<pad>", "<s>", "</s>"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    tokens += list("0123456789") + ["the", "and", "ing", "hello", "world", " ", "\u2029", "A\u0391", "\u0391A", "é", "Ω", "Привет", "中文", "한"]
    tokens += [chr(c) for c in range(0x4E00, 0x4E00 + 40)] + ["\U0001F600", "a\u0301"]
    tokens += [f"w{i}" for i in range(299 - len(tokens))]
    assert len(set(tokens)) == len(tokens) == 299
    return tokens


V = 300  # 299 words and one added special token


def write_vocab(folder: Path) -> Path:
    return write_wordlevel_vocab(folder, vocabulary())


pytestmark = pytest.mark.usefixtures("isolated_substrate_env")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_vocab(tmp_path_factory.mktemp("source") / "vocab")


@pytest.fixture(scope="module")
def bits64(source, tmp_path_factory) -> Path:
    """A random 64-bit codebook (read-only: copy it before damaging it)."""
    out = tmp_path_factory.mktemp("bits64") / "substrate"
    embed_bits(source, n_bits=64, seed=7, out=out)
    return out


@pytest.fixture(scope="module")
def bits16(source, tmp_path_factory) -> Path:
    """The 16-bit codebook: each row is its token id in binary."""
    out = tmp_path_factory.mktemp("bits16") / "substrate"
    embed_bits(source, n_bits=16, seed=0, out=out)
    return out


@pytest.fixture(scope="module")
def bits_float(source, tmp_path_factory) -> Path:
    """The FLOAT ablation: PCA of a 64-bit codebook to 16, unit rows."""
    out = tmp_path_factory.mktemp("bits-float") / "substrate"
    embed_bits(source, n_bits=64, seed=3, as_float=True, dim=16, out=out)
    return out


@pytest.fixture(scope="module")
def glyph(source, tmp_path_factory) -> Path:
    if not UNIFONT.is_file():
        pytest.skip(f"GNU Unifont not found at {UNIFONT}")
    out = tmp_path_factory.mktemp("glyph") / "substrate"
    embed_glyph(source, out=out, dim=16)
    return out


@pytest.fixture
def copy(tmp_path):
    """copy(clean) -> a private copy of a clean substrate, to damage."""

    def make(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / "damaged"))

    return make


# --- helpers ---


def by_name(results) -> dict:
    return {r.name: r for r in results}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_weight(folder: Path) -> np.ndarray:
    return load_file(str(folder / EMBEDDINGS))["weight"]


def write_weight(folder: Path, weight: np.ndarray) -> None:
    save_file({"weight": np.ascontiguousarray(weight)}, str(folder / EMBEDDINGS))


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def expect_failures(folder: Path, failing: dict[str, tuple[str, ...]], rebuild: bool = False) -> dict:
    """Exactly the checks in `failing` fail, each detail holding its fragments; the CLI agrees and exits 1."""
    results = verify(folder, rebuild)
    names = [r.name for r in results]
    assert names == CHECKS + (["rebuild"] if rebuild else [])
    checks = by_name(results)
    assert {r.name for r in results if not r.ok} == set(failing), [(r.name, r.detail) for r in results if not r.ok]
    for name, fragments in failing.items():
        for fragment in fragments:
            assert fragment in checks[name].detail, (name, checks[name].detail)
    args = ("verify", folder, *(["--rebuild"] if rebuild else []))
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
    assert "Traceback" not in result.output
    assert "FAIL" in result.stdout
    result = invoke(*args, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [(r.name, r.ok) for r in results]
    return checks


# --- clean substrates ---


def test_a_clean_bits_substrate_passes_every_check(bits64):
    results = verify(bits64)
    assert [r.name for r in results] == CHECKS
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    checks = by_name(results)
    assert "bits" in checks["manifest"].detail and f"{V:,} tokens" in checks["manifest"].detail
    assert "4 files" in checks["file hashes"].detail  # tokenizer.json and the three substrate files
    assert f"0..{V - 1}" in checks["tokenizer"].detail
    assert "not applicable" in checks["layout"].detail
    assert f"[{V}, 64]" in checks["embeddings"].detail
    assert f"all {V:,} rows distinct" in checks["distinct rows"].detail
    assert checks["values"].detail == "strictly 0/1"
    assert "equals" in checks[".pt copy"].detail
    assert "the embedding is the codes" in checks["codes"].detail


def test_the_16_bit_and_float_bits_substrates_pass(bits16, bits_float):
    assert all(r.ok for r in verify(bits16)), verify(bits16)
    results = verify(bits_float)
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    checks = by_name(results)
    assert "unit L2 norm" in checks["values"].detail  # FLOAT rows are normalised, not 0/1
    assert "PCA of the codes" in checks["codes"].detail


def test_verify_command_exits_0_on_a_clean_substrate(bits64):
    result = invoke("verify", bits64)
    assert result.exit_code == 0, result.output
    assert "pass" in result.stdout and "FAIL" not in result.stdout
    for name in CHECKS:
        assert name in result.stdout


def test_verify_json(bits64):
    result = invoke("verify", bits64, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert all(c["ok"] is True and c["detail"] for c in report["checks"])
    assert json.loads(as_json(verify(bits64))) == report


@pytest.mark.parametrize("fixture", ["bits64", "bits16", "bits_float"])
def test_rebuild_passes_for_bits(fixture, request):
    folder = request.getfixturevalue(fixture)
    results = verify(folder, rebuild=True)
    assert [r.name for r in results] == CHECKS + ["rebuild"]
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    assert "identical" in results[-1].detail


def test_rebuild_from_the_command_line(bits64):
    result = invoke("verify", bits64, "--rebuild", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checks"][-1]["name"] == "rebuild" and report["checks"][-1]["ok"] is True


def test_verify_leaves_the_folder_as_it_was(bits64):
    before = {p.name: p.read_bytes() for p in bits64.iterdir()}
    verify(bits64, rebuild=True)
    assert {p.name: p.read_bytes() for p in bits64.iterdir()} == before


@needs_unifont
def test_a_clean_glyph_substrate_passes(glyph):
    results = verify(glyph, rebuild=True)
    assert [r.name for r in results] == CHECKS + ["rebuild"]
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    checks = by_name(results)
    assert "glyph" in checks["manifest"].detail
    assert "share their picture" in checks["distinct rows"].detail
    assert "unit L2 norm" in checks["values"].detail
    assert "PCA of the codes gives the embedding" in checks["codes"].detail
    assert "identical" in checks["rebuild"].detail


@needs_unifont
def test_glyph_rows_sharing_a_picture_are_counted(glyph):
    """Homoglyph tokens ('A' + Greek Alpha, and the reverse) draw the same picture: reported, not failed."""
    detail = by_name(verify(glyph))["distinct rows"].detail
    weight = read_weight(glyph)
    _, inverse, counts = np.unique(weight, axis=0, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse.ravel()] > 1)
    tokens = vocabulary()
    assert {tokens.index("A\u0391"), tokens.index("\u0391A")} <= set(shared.tolist())
    assert detail.startswith(f"{len(shared):,} rows share their picture")


@needs_unifont
def test_glyph_row_edited_is_caught_by_codes(glyph, copy):
    folder = copy(glyph)
    weight = read_weight(folder)
    weight[3] = -weight[3]  # still unit length: only the codes can tell
    write_weight(folder, weight)
    expect_failures(folder, {"file hashes": (EMBEDDINGS,), ".pt copy": (), "codes": ("rows 3 ",)})


@needs_unifont
def test_glyph_row_not_unit_length(glyph, copy):
    folder = copy(glyph)
    weight = read_weight(folder)
    weight[4] *= 2
    write_weight(folder, weight)
    checks = expect_failures(folder, {"file hashes": (EMBEDDINGS,), ".pt copy": (), "values": ("1 rows are not unit length", "ids 4")})
    assert checks["codes"].ok  # the direction is right; the length is the values check's business


# --- damaged embeddings ---


def test_edited_row(bits64, copy):
    folder = copy(bits64)
    weight = read_weight(folder)
    weight[3, 0] = 1 - weight[3, 0]  # still 0/1, still distinct (the codes are >= 14 bits apart)
    write_weight(folder, weight)
    expect_failures(folder, {"file hashes": (f"changed: {EMBEDDINGS}",), ".pt copy": (), "codes": ("differ in rows 3",)})


def test_edited_row_with_the_manifest_hash_fixed(bits64, copy):
    """A hand-edited manifest hides the edit from the hashes, not from the codes."""
    folder = copy(bits64)
    weight = read_weight(folder)
    weight[3, 0] = 1 - weight[3, 0]
    write_weight(folder, weight)
    manifest = read_manifest(folder)
    manifest["files"][EMBEDDINGS] = sha256(folder / EMBEDDINGS)
    write_manifest(folder, manifest)
    checks = expect_failures(folder, {".pt copy": (), "codes": ("differ in rows 3",)})
    assert checks["file hashes"].ok


def test_duplicated_row(bits16, copy):
    folder = copy(bits16)
    weight = read_weight(folder)
    weight[5] = weight[6]
    write_weight(folder, weight)
    expect_failures(folder, {"file hashes": (EMBEDDINGS,), "distinct rows": ("2 rows collide", "ids 5, 6"), ".pt copy": (), "codes": ("rows 5",)})


def test_nan(bits64, copy):
    folder = copy(bits64)
    weight = read_weight(folder)
    weight[4, 2] = np.nan
    write_weight(folder, weight)
    expect_failures(
        folder,
        {"file hashes": (EMBEDDINGS,), "embeddings": ("non-finite", "rows 4"), "values": ("1 entries",), ".pt copy": (), "codes": ("rows 4",)},
    )


def test_dropped_row(bits64, copy):
    folder = copy(bits64)
    write_weight(folder, read_weight(folder)[:-1])
    not_read = ("could not be read",)
    checks = expect_failures(
        folder,
        {"file hashes": (EMBEDDINGS,), "embeddings": (f"[{V - 1}, 64]", f"expected float32 [{V}, 64]"), **{n: not_read for n in WEIGHT_READERS}},
    )
    assert checks["tokenizer"].ok


def test_wrong_dtype(bits64, copy):
    folder = copy(bits64)
    write_weight(folder, read_weight(folder).astype(np.float64))
    expect_failures(
        folder, {"file hashes": (EMBEDDINGS,), "embeddings": ("float64", "expected float32"), **{n: ("could not be read",) for n in WEIGHT_READERS}}
    )


def test_truncated_embeddings(bits64, copy):
    folder = copy(bits64)
    path = folder / EMBEDDINGS
    path.write_bytes(path.read_bytes()[:100])
    checks = expect_failures(folder, {"file hashes": (EMBEDDINGS,), "embeddings": (), **{n: ("could not be read",) for n in WEIGHT_READERS}})
    assert checks["embeddings"].detail  # the library's message, not an empty string


def test_no_weight_tensor(bits64, copy):
    folder = copy(bits64)
    save_file({"embedding": read_weight(folder)}, str(folder / EMBEDDINGS))
    expect_failures(folder, {"file hashes": (EMBEDDINGS,), "embeddings": ("no tensor 'weight'",), **{n: ("could not be read",) for n in WEIGHT_READERS}})


def test_non_binary_value(bits64, copy):
    folder = copy(bits64)
    weight = read_weight(folder)
    weight[2, 0] = 0.5
    write_weight(folder, weight)
    checks = expect_failures(folder, {"file hashes": (EMBEDDINGS,), "values": ("not 0 or 1",), ".pt copy": (), "codes": ("rows 2",)})
    assert checks["values"].detail.startswith("1 ")  # one entry, counted


# --- the .pt copy ---


def test_pt_holds_another_tensor(bits64, copy):
    folder = copy(bits64)
    torch.save(torch.zeros(V, 64), folder / PT)
    expect_failures(folder, {"file hashes": (PT,), ".pt copy": ("does not hold the same tensor",)})


def test_pt_is_not_a_torch_file(bits64, copy):
    folder = copy(bits64)
    (folder / PT).write_bytes(b"\x00garbage, not a torch file\xff" * 10)
    checks = expect_failures(folder, {"file hashes": (PT,), ".pt copy": ()})
    assert checks[".pt copy"].detail


def test_pt_missing(bits64, copy):
    folder = copy(bits64)
    (folder / PT).unlink()
    expect_failures(folder, {"file hashes": (f"missing: {PT}",), ".pt copy": ()})


# --- codes ---


def test_codes_bit_flipped(bits64, copy):
    folder = copy(bits64)
    packed = np.load(folder / CODES)
    packed[7, 0] ^= 0x80
    np.save(folder / CODES, packed)
    expect_failures(folder, {"file hashes": (f"changed: {CODES}",), "codes": ("differ in rows 7",)})


def test_codes_deleted(bits64, copy):
    folder = copy(bits64)
    (folder / CODES).unlink()
    expect_failures(folder, {"file hashes": (f"missing: {CODES}",), "codes": ()})


def test_codes_wrong_shape(bits64, copy):
    folder = copy(bits64)
    np.save(folder / CODES, np.load(folder / CODES)[:, :4])
    expect_failures(folder, {"file hashes": (CODES,), "codes": (f"uint8 [{V}, 4], expected uint8 [{V}, 8]",)})


# --- tokenizer ---


def test_tokenizer_with_a_gap(bits64, copy):
    folder = copy(bits64)
    config = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    gap = config["model"]["vocab"].pop("w100")
    (folder / "tokenizer.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    expect_failures(folder, {"file hashes": ("tokenizer.json",), "tokenizer": ("not exactly 0..V-1", f"missing {gap}"), "tokenizer behaviour": ("not checked",)})


def test_tokenizer_not_json(bits64, copy):
    folder = copy(bits64)
    (folder / "tokenizer.json").write_text("not json", encoding="utf-8")
    expect_failures(folder, {"file hashes": ("tokenizer.json",), "tokenizer": (), "tokenizer behaviour": ("not checked",)})


def test_tokenizer_with_a_duplicate_key(bits64, copy):
    folder = copy(bits64)
    text = (folder / "tokenizer.json").read_text(encoding="utf-8")
    text = text.replace('"w100": ', '"w99": 999, "w100": ', 1)  # "w99" is listed again, further on
    assert text.count('"w99"') == 2
    (folder / "tokenizer.json").write_text(text, encoding="utf-8")
    expect_failures(folder, {"file hashes": ("tokenizer.json",), "tokenizer": ("'w99' twice",), "tokenizer behaviour": ("not checked",)})


def test_tokenizer_size_differs_from_the_manifest(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["substrate"]["tokens"] = V + 1
    write_manifest(folder, manifest)
    checks = expect_failures(
        folder, {"tokenizer": (f"{V} tokens, the manifest says {V + 1}",), "tokenizer behaviour": ("not checked",), "embeddings": (f"expected float32 [{V + 1}, 64]",), **{n: () for n in WEIGHT_READERS}}
    )
    assert checks["file hashes"].ok  # the manifest does not list itself


# --- manifest ---


def test_manifest_hash_changed(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["files"][CODES] = "0" * 64
    write_manifest(folder, manifest)
    expect_failures(folder, {"file hashes": (f"changed: {CODES}",)})


def test_manifest_lists_a_file_that_is_not_there(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["files"]["extra.bin"] = "0" * 64
    write_manifest(folder, manifest)
    not_ours = ("not part of a substrate folder: extra.bin",)
    expect_failures(folder, {"file hashes": ("missing: extra.bin",), "folder contents": not_ours})


def test_manifest_from_a_newer_bvvtok(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["manifest_version"] = 99
    write_manifest(folder, manifest)
    checks = expect_failures(folder, {name: () for name in CHECKS})
    assert "newer" in checks["manifest"].detail and "99" in checks["manifest"].detail
    for name in CHECKS[1:]:
        assert "not checked" in checks[name].detail, (name, checks[name].detail)


def test_manifest_deleted(bits64, copy):
    folder = copy(bits64)
    (folder / MANIFEST).unlink()
    checks = expect_failures(folder, {name: () for name in CHECKS})
    assert "no bvvtok.json" in checks["manifest"].detail
    assert all("not checked" in checks[name].detail for name in CHECKS[1:])


def test_manifest_not_json(bits64, copy):
    folder = copy(bits64)
    (folder / MANIFEST).write_text("{not json", encoding="utf-8")
    checks = expect_failures(folder, {name: () for name in CHECKS})
    assert "bvvtok.json" in checks["manifest"].detail


@pytest.mark.parametrize("key", ["seed", "n_embed", "generator"])
def test_manifest_lacking_a_setting(bits64, copy, key):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    del manifest["substrate"][key]
    write_manifest(folder, manifest)
    checks = expect_failures(folder, {name: () for name in CHECKS})
    assert f"lacks {key}" in checks["manifest"].detail


def test_manifest_without_a_substrate(source, tmp_path):
    """A tokenizer folder with a manifest and no substrate section is proven as a vocabulary; a consumer that needs
    a substrate (the trainer's quick checks) still finds none."""
    folder = tmp_path / "vocab"
    shutil.copytree(source, folder)
    write_manifest(folder, {"manifest_version": 1, "files": {"tokenizer.json": sha256(folder / "tokenizer.json")}})
    results = verify(folder)
    assert [r.name for r in results] == VOCABULARY_CHECKS
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    quick = verify(folder, quick=True)
    assert not quick[0].ok and "no substrate" in quick[0].detail


def test_rebuild_catches_a_changed_seed(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["substrate"]["seed"] = manifest["substrate"]["settings"]["seed"] = 8
    write_manifest(folder, manifest)  # the files and their hashes are left alone
    assert all(r.ok for r in verify(folder))  # without --rebuild nothing tells
    checks = expect_failures(folder, {"rebuild": ("differs in", CODES, EMBEDDINGS, PT)}, rebuild=True)
    assert checks["file hashes"].ok


def test_rebuild_with_embeddings_one_rounding_apart_says_how_close(bits_float, monkeypatch):
    """Same codes, embedding bytes that differ by float rounding (another bvvtok version's arithmetic):
    the rebuild check fails, as its bytes differ, and says the codes agree and how close the rows are."""
    real = verify_module.embed

    def rounded_differently(*args, **kwargs):
        result = real(*args, **kwargs)
        out = kwargs["out"]
        weight = load_file(out / EMBEDDINGS)["weight"]
        weight[0, 0] = np.nextafter(weight[0, 0], np.float32(2))  # one ulp
        save_file({"weight": weight}, out / EMBEDDINGS)
        return result

    monkeypatch.setattr(verify_module, "embed", rounded_differently)
    checks = expect_failures(bits_float, {"rebuild": ("differs in", EMBEDDINGS, "codes identical", "min row cosine of 1.0000000")}, rebuild=True)
    assert PT not in checks["rebuild"].detail and CODES not in checks["rebuild"].detail


def test_rebuild_of_a_damaged_folder_fails_without_a_crash(bits64, copy):
    folder = copy(bits64)
    manifest = read_manifest(folder)
    manifest["substrate"]["bits"] = 0  # no codebook has 0 bits
    write_manifest(folder, manifest)
    results = by_name(verify(folder, rebuild=True))
    assert not results["rebuild"].ok and results["rebuild"].detail


# --- a real bvvtok vocabulary: the layout check ---


@pytest.fixture(scope="module")
def bits_65k(tiny_vocab_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bits65k") / "substrate"
    embed_bits(tiny_vocab_dir, n_bits=16, seed=0, out=out)
    return out


def test_layout_of_a_bvvtok_vocabulary(bits_65k):
    results = verify(bits_65k)
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    detail = by_name(results)["layout"].detail
    assert "preset 65k" in detail and "'A' -> 65" in detail


def test_layout_with_two_code_points_swapped(bits_65k, copy):
    folder = copy(bits_65k)
    config = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = config["model"]["vocab"]
    vocab["A"], vocab["B"] = vocab["B"], vocab["A"]
    (folder / "tokenizer.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    expect_failures(
        folder,
        {
            "file hashes": ("tokenizer.json",),
            "layout": ("ids out of place: 65, 66",),
            "tokenizer behaviour": ("tokenizer.json: 2 ids differ from bvvtok's layout (ids 65, 66)",),
        },
    )


def test_layout_with_two_ngrams_out_of_order(bits_65k, copy):
    # 'the' (3 characters) must come before the 2-grams: swapping it with 'th' keeps every id in a slot
    folder = copy(bits_65k)
    config = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = config["model"]["vocab"]
    vocab["the"], vocab["th"] = vocab["th"], vocab["the"]
    (folder / "tokenizer.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    expect_failures(
        folder,
        {
            "file hashes": ("tokenizer.json",),
            "layout": ("not in (longest first, code point) order",),
            "tokenizer behaviour": ("2 ids differ from bvvtok's layout", "the probe text encodes differently"),
        },
    )


# --- edits that keep the manifest's sha256 true: what the files say, not only that they are unchanged ---


def reseal(folder: Path) -> None:
    """Re-write the manifest's sha256 of every listed file that is there, as a careful hand-editor would."""
    manifest = read_manifest(folder)
    manifest["files"] = {name: sha256(folder / name) for name in manifest["files"] if (folder / name).is_file()}
    write_manifest(folder, manifest)


def edit_json(name: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    """An edit of one JSON file of the folder: change(data) changes the parsed file in place."""

    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        change(data)
        (folder / name).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    return edit


in_tokenizer_json = partial(edit_json, "tokenizer.json")
in_manifest = partial(edit_json, MANIFEST)
FAKE_SHA256 = "0" * 64


def added_token(config: dict, content: str) -> dict:
    return next(t for t in config["added_tokens"] if t["content"] == content)


def swap(mapping: dict, a: str, b: str) -> None:
    mapping[a], mapping[b] = mapping[b], mapping[a]


def set_font_sha256(*where: str) -> Callable[[Path], None]:
    """Edit the first font's sha256 in the manifest: in `fonts`, in `settings`, or both."""

    def change(m: dict) -> None:
        substrate = m["substrate"]
        if "fonts" in where:
            substrate["fonts"][0]["sha256"] = FAKE_SHA256
        if "settings" in where:
            substrate["settings"]["fonts"][0] = FAKE_SHA256

    return in_manifest(change)


def add_file(name: str, listed: bool) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_text("my notes", encoding="utf-8")
        if listed:
            in_manifest(lambda m: m["files"].update({name: FAKE_SHA256}))(folder)

    return edit


def add_subfolder(folder: Path) -> None:
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"weights")


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        for one in edits:
            one(folder)

    return edit


LOWERCASE = in_tokenizer_json(lambda c: c.update(normalizer={"type": "Lowercase"}))
NO_VOCAB_SECTION = in_manifest(lambda m: m.pop("vocab"))

# 'th' and 'he' in the tiny 65k vocabulary: the n-gram slots hold llo, the, he, in, ll, th from 0xD800 = 55296
HE, TH = 55298, 55301

# (what is edited, the substrate edited, the edit, the one check that must fail, a fragment of its detail).
# The test re-writes the manifest's sha256 after each edit: "file hashes" passes, and only the named check fails.
CORRUPTIONS = [
    ("a merge deleted", "bits_65k", in_tokenizer_json(lambda c: c["model"]["merges"].remove(["t", "h"])),
     "tokenizer behaviour", "tokenizer.json: 1 merge missing (t + h)"),
    ("a Lowercase normalizer added", "bits_65k", in_tokenizer_json(lambda c: c.update(normalizer={"type": "Lowercase"})),
     "tokenizer behaviour", "tokenizer.json: normalizer is Lowercase, bvvtok writes none"),
    ("</s> not special", "bits_65k", in_tokenizer_json(lambda c: added_token(c, "</s>").update(special=False)),
     "tokenizer behaviour", "tokenizer.json: added token '</s>': special is False, bvvtok writes True"),
    ("</s> normalized", "bits_65k", in_tokenizer_json(lambda c: added_token(c, "</s>").update(normalized=True)),
     "tokenizer behaviour", "tokenizer.json: added token '</s>': normalized is True, bvvtok writes False"),
    ("two ids swapped in vocab.json", "bits_65k", edit_json("vocab.json", lambda v: swap(v, "th", "he")),
     "tokenizer behaviour", f"vocab.json: 2 ids differ from tokenizer.json (ids {HE}, {TH})"),
    ("eos_token changed", "bits_65k", edit_json("special_tokens_map.json", lambda m: m.update(eos_token="[EOT]")),
     "tokenizer behaviour", "special_tokens_map.json: eos_token is '[EOT]', bvvtok writes '</s>'"),
    ("merges.txt deleted", "bits_65k", lambda folder: (folder / "merges.txt").unlink(),
     "tokenizer behaviour", "merges.txt: missing, bvvtok writes it"),
    ("an unknown file listed in the manifest", "bits_65k", add_file("notes.txt", listed=True),
     "folder contents", "not part of a substrate folder: notes.txt"),
    ("an unknown file not listed", "bits64", add_file("notes.txt", listed=False),
     "folder contents", "not part of a substrate folder: notes.txt"),
    ("a known file not listed", "bits_65k", in_manifest(lambda m: m["files"].pop("vocab.json")),
     "folder contents", "not in the manifest: vocab.json"),
    ("an unknown subfolder", "bits64", add_subfolder, "folder contents", "not part of a substrate folder: onnx/"),
    ("a font sha256 edited in fonts only", "glyph", set_font_sha256("fonts"),
     "settings", f"settings: fonts[0] is '{UNIFONT_SHA256}', the substrate section records '{FAKE_SHA256}'"),
    ("a font sha256 edited in settings only", "glyph", set_font_sha256("settings"),
     "settings", f"settings: fonts[0] is '{FAKE_SHA256}', the substrate section records '{UNIFONT_SHA256}'"),
    ("a font sha256 edited in both places", "glyph", set_font_sha256("fonts", "settings"),
     "rebuild", f"font 1 of the chain (GNU Unifont): sha256 is '{FAKE_SHA256}', the rebuild found '{UNIFONT_SHA256}'"),
    (".pt copy a pickled object", "bits64", lambda folder: torch.save({"weight": Path("x")}, folder / PT),
     ".pt copy", "holds something other than tensors (a pickled Python object), and bvvtok will not unpickle it"),
    ("the vocab section deleted", "bits_65k", NO_VOCAB_SECTION,
     "tokenizer behaviour", "tokenizer.json has bvvtok's 65k layout but the manifest has no vocab section"),
    ("the vocab section deleted and a Lowercase normalizer added", "bits_65k", both(NO_VOCAB_SECTION, LOWERCASE),
     "tokenizer behaviour", "tokenizer.json: normalizer is Lowercase, bvvtok writes none"),
    ("two ids swapped in a foreign tokenizer", "bits64", in_tokenizer_json(lambda c: swap(c["model"]["vocab"], "w1", "w2")),
     "tokenizer behaviour", "tokenizer.json: sha256 is "),
    ("a Lowercase normalizer in a foreign tokenizer", "bits64", LOWERCASE,
     "tokenizer behaviour", "its substrate section records"),
    ("a bits seed edited in settings only", "bits64", in_manifest(lambda m: m["substrate"]["settings"].update(seed=8)),
     "settings", "settings: seed is 8, the substrate section records 7"),
]  # fmt: skip


@pytest.mark.parametrize("what, fixture, edit, check, fragment", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_an_edit_with_its_hash_updated_fails_its_check(what, fixture, edit, check, fragment, request, copy):
    folder = copy(request.getfixturevalue(fixture))
    edit(folder)
    reseal(folder)
    expect_failures(folder, {check: (fragment,)}, rebuild=check == "rebuild")


# A vocabulary folder before any substrate is embedded: the checks that apply to it, and the same edits.
VOCABULARY_CORRUPTIONS = [
    ("a Lowercase normalizer", LOWERCASE, "tokenizer behaviour", "tokenizer.json: normalizer is Lowercase, bvvtok writes none"),
    ("</s> not special", in_tokenizer_json(lambda c: added_token(c, "</s>").update(special=False)),
     "tokenizer behaviour", "tokenizer.json: added token '</s>': special is False, bvvtok writes True"),
    ("the vocab section deleted", NO_VOCAB_SECTION, "tokenizer behaviour", "has bvvtok's 65k layout but the manifest has no vocab section"),
    ("an unknown file listed", add_file("notes.txt", listed=True), "folder contents", "not part of a substrate folder: notes.txt"),
]  # fmt: skip


def test_a_clean_vocabulary_folder_passes_the_checks_that_apply(tiny_vocab_dir):
    results = verify(tiny_vocab_dir)
    assert [r.name for r in results] == VOCABULARY_CHECKS
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    assert "vocabulary, preset 65k" in results[0].detail
    assert invoke("verify", tiny_vocab_dir).exit_code == 0


@pytest.mark.parametrize("what, edit, check, fragment", VOCABULARY_CORRUPTIONS, ids=[c[0] for c in VOCABULARY_CORRUPTIONS])
def test_an_edited_vocabulary_fails_its_check(what, edit, check, fragment, tiny_vocab_dir, copy):
    folder = copy(tiny_vocab_dir)
    edit(folder)
    reseal(folder)
    results = verify(folder)
    assert [r.name for r in results] == VOCABULARY_CHECKS
    failed = {r.name: r.detail for r in results if not r.ok}
    assert set(failed) == {check}, failed
    assert fragment in failed[check], failed[check]
    assert invoke("verify", folder).exit_code == 1


def test_a_foreign_tokenizer_folder_may_keep_its_own_listed_files(bits64, copy):
    """A Hugging Face tokenizer folder given to embed as it is keeps its README; a bvvtok vocabulary may not."""
    folder = copy(bits64)
    add_file("README.md", listed=True)(folder)
    reseal(folder)
    detail = by_name(verify(folder))["folder contents"].detail
    assert "1 other file of the tokenizer folder, listed: README.md" in detail


def test_a_clean_bvvtok_vocabulary_behaves_as_its_id_table_says(bits_65k):
    detail = by_name(verify(bits_65k))["tokenizer behaviour"].detail
    assert detail.startswith("rebuilt from the id table: the 5 files agree; probe text (11 scripts, ")
    assert detail.endswith(" tokens) encodes identically")


def test_a_changed_encoding_is_shown_on_the_probe_text(bits_65k, copy):
    folder = copy(bits_65k)
    in_tokenizer_json(lambda c: c.update(normalizer={"type": "Lowercase"}))(folder)
    reseal(folder)
    detail = by_name(verify(folder))["tokenizer behaviour"].detail
    # token 1 is <s>; then "The" lowercased is the n-gram 'the'
    assert "the probe text encodes differently from token 2 on ('the' = 55297 here, 'T' = 84 in bvvtok's)" in detail


def test_behaviour_is_not_checked_when_tokenizer_json_is_unreadable(bits_65k, copy):
    folder = copy(bits_65k)
    (folder / "tokenizer.json").write_text("not json", encoding="utf-8")
    reseal(folder)
    failing = {"tokenizer": (), "layout": ("could not be read",), "tokenizer behaviour": ("not checked",)}
    checks = expect_failures(folder, failing)
    assert "tokenizer.json failed its check" in checks["tokenizer behaviour"].detail


def test_leftover_temporaries_do_not_fail_the_folder(bits64, copy):
    folder = copy(bits64)
    (folder / f".{EMBEDDINGS}.tmp-x1y2").write_bytes(b"half written")
    (folder / ".substrate.old-a1b2").mkdir()
    checks = by_name(verify(folder))
    assert checks["folder contents"].ok, checks["folder contents"].detail
    assert "2 hidden temporaries of an interrupted bvvtok command, removed by the next one" in checks["folder contents"].detail


def test_the_rebuild_compares_the_manifest_but_not_the_renderer_versions(glyph, copy):
    folder = copy(glyph)
    in_manifest(lambda m: m["substrate"]["renderer"].update(pillow="0.0"))(folder)
    checks = by_name(verify(folder, rebuild=True))
    assert all(c.ok for c in checks.values()), [(c.name, c.detail) for c in checks.values() if not c.ok]
    in_manifest(lambda m: m["substrate"].update(blank_glyphs=12345))(folder)
    checks = by_name(verify(folder, rebuild=True))
    assert not checks["rebuild"].ok
    assert "manifest: blank_glyphs is 12345, the rebuild gives " in checks["rebuild"].detail


# --- train's loader: the quick checks ---


def test_the_loader_refuses_a_truncated_pt_copy(bits_65k, copy):
    folder = copy(bits_65k)
    (folder / PT).write_bytes((folder / PT).read_bytes()[:1000])
    reseal(folder)
    with pytest.raises(BvvtokError, match=r"fails verify \(\.pt copy: "):
        load_substrate(folder)


def test_the_loader_refuses_an_edited_tokenizer(bits_65k, copy):
    folder = copy(bits_65k)
    in_tokenizer_json(lambda c: c.update(normalizer={"type": "Lowercase"}))(folder)
    reseal(folder)
    with pytest.raises(BvvtokError) as refused:
        load_substrate(folder)
    assert "fails verify (tokenizer behaviour: tokenizer.json: normalizer is Lowercase" in str(refused.value)


def test_the_loader_opens_a_clean_substrate(bits_65k):
    assert load_substrate(bits_65k).weight.shape == (65_536, 16)


# --- the command line around it ---


def test_verify_a_path_that_is_not_a_folder(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("hello", encoding="utf-8")
    assert_user_error(invoke("verify", file), "is not a folder")
    assert_user_error(invoke("verify", tmp_path / "absent"), "is not a folder")
    with pytest.raises(BvvtokError, match="not a folder"):
        verify(file)


def test_info_on_a_bits_substrate(bits64):
    result = invoke("info", bits64)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "bits, 64 per token, seed 7" in out
    assert f"[{V}, 64]" in out
    assert "scale 16 to d_model 1024" in out
    assert "4 listed" in out


def test_info_says_when_the_files_are_not_the_manifests(bits64, copy):
    folder = copy(bits64)
    (folder / "codes.npy").unlink()
    with open(folder / "embeddings.safetensors", "ab") as f:
        f.write(b"more")
    result = invoke("info", folder)
    assert result.exit_code == 1, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert "the files are not as the manifest says: codes.npy is missing; embeddings.safetensors has another size" in last


def test_info_on_a_folder_without_a_manifest(source):
    assert_user_error(invoke("info", source), "no bvvtok.json")


def test_info_on_a_file(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("hello", encoding="utf-8")
    assert_user_error(invoke("info", file), "is not a folder")


# --- no pickles ---


def test_verify_reads_tensors_with_weights_only(bits64, monkeypatch):
    calls = []
    original_torch_load, original_np_load = torch.load, np.load

    def torch_load(*args, **kwargs):
        calls.append(("torch", kwargs.get("weights_only")))
        return original_torch_load(*args, **kwargs)

    def np_load(*args, **kwargs):
        calls.append(("numpy", kwargs.get("allow_pickle")))
        return original_np_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", torch_load)
    monkeypatch.setattr(np, "load", np_load)
    assert all(r.ok for r in verify(bits64, rebuild=True))
    assert ("torch", True) in calls and ("numpy", False) in calls
    assert all(c in {("torch", True), ("numpy", False)} for c in calls), calls


def test_a_pickle_in_the_pt_file_is_not_run(bits64, copy, tmp_path):
    folder = copy(bits64)
    marker = tmp_path / "pt-ran"
    torch.save(Payload(marker), folder / PT)
    expect_failures(folder, {"file hashes": (PT,), ".pt copy": ()})
    assert not marker.exists()
    torch.load(folder / PT, weights_only=False)  # the file does run code when unpickled
    assert marker.is_dir()


def test_a_pickle_in_codes_npy_is_not_run(bits64, copy, tmp_path):
    folder = copy(bits64)
    marker = tmp_path / "npy-ran"
    np.save(folder / CODES, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    expect_failures(folder, {"file hashes": (CODES,), "codes": ()})
    assert not marker.exists()
    np.load(folder / CODES, allow_pickle=True)  # the file does run code when unpickled
    assert marker.is_dir()


# --- bugs found while writing these tests ---


def test_pt_copy_in_another_dtype(bits64, copy):
    folder = copy(bits64)
    torch.save(torch.from_numpy(read_weight(folder)).double(), folder / PT)
    checks = by_name(verify(folder))
    assert not checks[".pt copy"].ok


@pytest.mark.parametrize("command", ["verify", "info"])
@pytest.mark.parametrize("name", ["exp[v2]", "runs[/bold]"])
def test_a_folder_name_with_brackets(bits64, tmp_path, command, name):
    folder = Path(shutil.copytree(bits64, tmp_path / name))
    result = invoke(command, folder)
    assert not isinstance(result.exception, Exception), repr(result.exception)  # 'runs[/bold]': MarkupError
    assert result.exit_code == 0, result.output
    assert name in "".join(result.stdout.split())  # 'exp[v2]': the title shows only 'exp'


@pytest.mark.parametrize("damage", ["lacks seed", "not an object"])
def test_info_on_a_damaged_manifest(bits64, tmp_path, damage):
    folder = Path(shutil.copytree(bits64, tmp_path / "substrate"))
    manifest = read_manifest(folder)
    if damage == "lacks seed":
        del manifest["substrate"]["seed"]
    else:
        manifest = [manifest]
    write_manifest(folder, manifest)
    result = invoke("info", folder)
    assert not isinstance(result.exception, Exception), repr(result.exception)  # KeyError / AttributeError today
    assert "Traceback" not in result.output
