"""Binary codebooks (the BIT and FLOAT ablations) and `bvvtok embed --method bits`.

The tokenizer folders here are small WordLevel tokenizers written by the test;
a binary codebook never renders a glyph, so no font is needed.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error, invoke, write_wordlevel_vocab
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError
from bvvtok.substrate.codebook import (
    EXACT_HAMMING_LIMIT,
    GENERATOR,
    _repeats,
    build_codebook,
    id_codes,
    id_codes_of,
    min_hamming,
    random_codes,
)
from bvvtok.substrate.embed import embed_bits, scale_for
from bvvtok.substrate.projection import frozen_embeddings

SUBSTRATE_FILES = {"embeddings.safetensors", "normalized_embeddings_weights.pt", "codes.npy", "bvvtok.json"}
WORDS = ["<unk>", "<pad>", "<s>", "</s>", "the", "and", "é", "中", "\U0001f600"] + [f"w{i}" for i in range(290)]
TOKENS = WORDS + ["<|end|>"]  # the last one is an added special token
V = len(TOKENS)  # 300: needs 9 bits


# --- helpers ---


def write_word_level(folder: Path, words: list[str], special: str | None = None) -> Path:
    write_wordlevel_vocab(folder, words, added=(special,) if special is not None else ())
    (folder / "tokenizer_config.json").write_text('{"model_type": "test"}\n', encoding="utf-8")
    return folder


def unique_rows(bits: np.ndarray) -> int:
    return len(np.unique(np.packbits(bits, axis=1), axis=0))


def brute_min_hamming(bits: np.ndarray) -> int:
    """The minimum distance over all pairs: rows as integers, XOR, count the ones (in row blocks)."""
    n = bits.shape[1]
    assert n <= 64
    numbers = bits.astype(np.uint64) @ (np.uint64(1) << np.arange(n, dtype=np.uint64))
    best = n
    for start in range(0, len(numbers) - 1, 1024):
        block = numbers[start : start + 1024, None]
        d = np.bitwise_count(block ^ numbers[None, :]).astype(np.int64)
        d[np.arange(len(block)), np.arange(start, start + len(block))] = n + 1  # not a row with itself
        best = min(best, int(d.min()))
    return best


def test_brute_min_hamming_itself():
    assert brute_min_hamming(np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=np.uint8)) == 1
    assert brute_min_hamming(np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]], dtype=np.uint8)) == 2
    assert brute_min_hamming(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.uint8)) == 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_folder(folder: Path):
    weights = load_file(str(folder / "embeddings.safetensors"))
    codes = np.load(folder / "codes.npy", allow_pickle=False)
    manifest = json.loads((folder / "bvvtok.json").read_text(encoding="utf-8"))
    return weights, codes, manifest


def flat(text: str) -> str:
    """The CLI's table as one line: box drawing dropped, wrapped cells joined."""
    return " ".join(text.translate({ord(c): " " for c in "│┃┌┐└┘─┬┴┼├┤"}).split())


# --- fixtures ---


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A 300-id tokenizer folder (read-only: every test writes with --out elsewhere)."""
    return write_word_level(tmp_path_factory.mktemp("source") / "vocab", WORDS, "<|end|>")


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """70,000 ids: more than 2^16."""
    return write_word_level(tmp_path_factory.mktemp("big") / "vocab", ["<unk>"] + [f"w{i}" for i in range(69_999)])


@pytest.fixture(scope="module")
def bits16(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("bits16") / "out"
    result = invoke("embed", source, "--method", "bits", "--bits", 16, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def bits24(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("bits24") / "out"
    result = invoke("embed", source, "--method", "bits", "--bits", 24, "--seed", 5, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def float8(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("float8") / "out"
    result = invoke("embed", source, "--method", "bits", "--bits", 64, "--float", "--dim", 8, "--seed", 3, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


# --- id codes ---


def test_id_codes_most_significant_bit_first():
    codes = id_codes(66, 16)
    assert codes.dtype == np.uint8 and codes.shape == (66, 16)
    assert codes[0].tolist() == [0] * 16
    assert codes[1].tolist() == [0] * 15 + [1]
    assert "".join(map(str, codes[65])) == "0000000001000001"  # 'A'
    assert "".join(map(str, id_codes_of(np.array([0xBEEF]), 16)[0])) == "1011111011101111"


def test_id_codes_16_bits_cover_every_id_once():
    codes = id_codes(65_536, 16)
    assert codes.shape == (65_536, 16)
    assert set(np.unique(codes).tolist()) == {0, 1}
    packed = np.packbits(codes, axis=1).astype(np.int64)
    assert np.array_equal(packed[:, 0] * 256 + packed[:, 1], np.arange(65_536))  # row i is i
    assert unique_rows(codes) == 65_536


def test_build_codebook_16_bits_is_the_ids_whatever_the_seed():
    a, b = build_codebook(1000, 16, 0), build_codebook(1000, 16, 12345)
    assert np.array_equal(a.bits, id_codes(1000, 16))
    assert np.array_equal(b.bits, a.bits)
    assert (a.redraws, a.min_hamming, a.min_hamming_exact) == (0, 1, True)
    assert min_hamming(a.bits) == (1, True)  # the claimed distance is the real one


def test_build_codebook_16_bits_full_range():
    codebook = build_codebook(65_536, 16, 0)
    assert codebook.bits.shape == (65_536, 16) and unique_rows(codebook.bits) == 65_536
    assert (codebook.min_hamming, codebook.min_hamming_exact) == (1, True)


# --- refusals ---


@pytest.mark.parametrize(
    "vocab_size, n_bits, fragment",
    [
        (65_537, 16, "17 bits"),
        (300, 8, "9 bits"),
        (257, 8, "9 bits"),
        (3, 1, "2 bits"),
        (10, 0, "^bits must be positive"),
        (10, -4, "^bits must be positive"),
    ],
)
def test_build_codebook_refuses_too_few_bits(vocab_size, n_bits, fragment):
    with pytest.raises(BvvtokError, match=fragment):
        build_codebook(vocab_size, n_bits, 0)


@pytest.mark.parametrize("vocab_size, n_bits", [(256, 8), (2, 1), (1, 1), (65_536, 16), (4096, 12)])
def test_build_codebook_exact_powers_of_two_fit(vocab_size, n_bits):
    codebook = build_codebook(vocab_size, n_bits, 0)
    assert codebook.bits.shape == (vocab_size, n_bits)
    assert unique_rows(codebook.bits) == vocab_size


# --- random codes ---


def test_repeats_names_later_copies_only():
    rows = np.array([[0, 1], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1]], dtype=np.uint8)
    assert _repeats(rows).tolist() == [2, 4, 5]
    assert _repeats(np.eye(4, dtype=np.uint8)).tolist() == []


def test_random_codes_unique_binary_and_seeded():
    bits, redraws = random_codes(1000, 64, 0)
    assert bits.dtype == np.uint8 and bits.shape == (1000, 64)
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert unique_rows(bits) == 1000
    assert redraws == 0  # 1,000 rows in 2^64: no collision
    again, _ = random_codes(1000, 64, 0)
    assert np.array_equal(again, bits)
    other, _ = random_codes(1000, 64, 1)
    assert not np.array_equal(other, bits)
    assert (other != bits).mean() > 0.4  # an independent draw, not a small change


def test_random_codes_without_collisions_are_the_plain_draw():
    """Seed -> codebook is documented: PCG64(seed).integers(0, 2, (V, N)) when nothing collides."""
    bits, redraws = random_codes(500, 40, 11)
    expected = np.random.Generator(np.random.PCG64(11)).integers(0, 2, size=(500, 40), dtype=np.uint8)
    assert redraws == 0 and np.array_equal(bits, expected)


def test_random_codes_redraw_collisions():
    """4,096 rows of 14 bits: ~500 collisions expected (V*4 == 2^14, so not the dense path)."""
    bits, redraws = random_codes(4096, 14, 0)
    assert 200 < redraws < 2000
    assert bits.shape == (4096, 14) and set(np.unique(bits).tolist()) == {0, 1}
    assert unique_rows(bits) == 4096
    # only rows that repeat an earlier row are drawn again: the first draw survives almost whole
    # (a row unique in the first draw is drawn again when an earlier row's redraw lands on it)
    first = np.random.Generator(np.random.PCG64(0)).integers(0, 2, size=(4096, 14), dtype=np.uint8)
    repeated = _repeats(first)
    assert 0 < len(repeated) <= redraws
    changed = np.flatnonzero((bits != first).any(axis=1))
    assert len(changed) <= redraws
    kept = np.setdiff1d(np.arange(4096), repeated)
    assert (bits[kept] == first[kept]).all(axis=1).mean() > 0.95
    again, again_redraws = random_codes(4096, 14, 0)
    assert again_redraws == redraws and np.array_equal(again, bits)


def test_random_codes_dense_draws_without_replacement():
    bits, redraws = random_codes(3000, 12, 0)  # 3,000 * 4 > 4,096
    assert redraws == 0
    assert bits.dtype == np.uint8 and bits.shape == (3000, 12)
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert unique_rows(bits) == 3000
    again, _ = random_codes(3000, 12, 0)
    assert np.array_equal(again, bits)
    assert not np.array_equal(random_codes(3000, 12, 1)[0], bits)
    assert not np.array_equal(bits, id_codes(3000, 12))  # random, not the ids


def test_random_codes_dense_full_space_is_a_permutation():
    bits, redraws = random_codes(4096, 12, 5)
    assert redraws == 0
    packed = np.packbits(bits, axis=1).astype(np.int64)
    numbers = packed[:, 0] * 16 + (packed[:, 1] >> 4)
    assert sorted(numbers.tolist()) == list(range(4096))


def test_build_codebook_random():
    codebook = build_codebook(300, 64, 7)
    bits, redraws = random_codes(300, 64, 7)
    assert np.array_equal(codebook.bits, bits) and codebook.redraws == redraws
    assert codebook.min_hamming == brute_min_hamming(bits) and codebook.min_hamming_exact


# --- minimum Hamming distance ---


@pytest.mark.parametrize("vocab_size, n_bits, seed", [(200, 24, 0), (300, 13, 1), (64, 7, 2)])
def test_min_hamming_exact_matches_brute_force(vocab_size, n_bits, seed):
    bits = np.random.Generator(np.random.PCG64(seed)).integers(0, 2, size=(vocab_size, n_bits), dtype=np.uint8)
    assert min_hamming(bits) == (brute_min_hamming(bits), True)


def test_min_hamming_planted_pairs():
    bits = np.random.Generator(np.random.PCG64(4)).integers(0, 2, size=(150, 64), dtype=np.uint8)
    assert min_hamming(bits)[0] > 1
    bits[97] = bits[10]
    bits[97, 33] ^= 1
    assert min_hamming(bits) == (1, True)
    bits[149] = bits[0]
    assert min_hamming(bits) == (0, True)


def test_min_hamming_trivial_sizes():
    assert min_hamming(np.zeros((0, 8), dtype=np.uint8)) == (0, True)
    assert min_hamming(np.zeros((1, 8), dtype=np.uint8)) == (0, True)
    assert min_hamming(np.array([[0, 0, 0], [1, 1, 1]], dtype=np.uint8)) == (3, True)


def test_min_hamming_exact_up_to_the_limit():
    bits, _ = random_codes(EXACT_HAMMING_LIMIT, 32, 0)
    value, exact = min_hamming(bits)
    assert exact and value == brute_min_hamming(bits)


def test_min_hamming_estimated_above_the_limit():
    bits, _ = random_codes(EXACT_HAMMING_LIMIT + 904, 32, 0)  # 5,000 rows
    value, exact = min_hamming(bits, seed=0)
    assert not exact
    assert brute_min_hamming(bits) <= value <= 32  # a sample can only overestimate
    assert min_hamming(bits, seed=0) == (value, exact)  # seeded: reproducible


# --- scale ---


@pytest.mark.parametrize("d_model, n_embed, scale", [(1024, 16, 64), (1024, 24, None), (1024, 1024, 1), (48, 24, 2), (1024, 2048, None)])
def test_scale_for(d_model, n_embed, scale):
    assert scale_for(d_model, n_embed) == scale


# --- `bvvtok embed --method bits` ---


def test_bits16_folder(bits16):
    out, _ = bits16
    assert {p.name for p in out.iterdir()} == SUBSTRATE_FILES | {"tokenizer.json", "tokenizer_config.json"}
    weights, codes, manifest = load_folder(out)
    assert set(weights) == {"weight"}
    w = weights["weight"]
    assert w.dtype == np.float32 and w.shape == (V, 16)
    assert set(np.unique(w).tolist()) == {0.0, 1.0}
    assert codes.dtype == np.uint8 and codes.shape == (V, 2)
    bits = np.unpackbits(codes, axis=1)[:, :16]
    assert np.array_equal(w, bits.astype(np.float32))
    assert np.array_equal(bits, id_codes(V, 16))  # row i is token id i
    tensor = torch.load(out / "normalized_embeddings_weights.pt", weights_only=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    assert np.array_equal(tensor.numpy(), w)
    assert manifest["files"] == {p.name: sha256(p) for p in out.iterdir() if p.name != "bvvtok.json"}


def test_bits16_manifest(bits16):
    out, _ = bits16
    sub = load_folder(out)[2]["substrate"]
    assert sub["method"] == "bits" and sub["bits"] == 16 and sub["seed"] == 0
    assert sub["generator"] == GENERATOR
    assert sub["redraws"] == 0
    assert sub["min_hamming"] == {"value": 1, "exact": True}
    assert (sub["float"], sub["dim"], sub["n_embed"], sub["d_model"], sub["scale"]) == (False, 16, 16, 1024, 64)
    assert sub["tokens"] == V
    assert sub["settings"] == {"method": "bits", "bits": 16, "seed": 0, "float": False, "dim": 16}
    assert "pca" not in sub


def test_bits16_table(bits16):
    _, result = bits16
    text = flat(result.stdout)
    assert "min Hamming" in text and "1 (exact)" in text
    assert "bits, 16 per token" in text and "0/1 values" in text
    assert f"{V:,}, all codes distinct (0 redrawn)" in text
    assert "repeat_interleave scale 64" in text


def test_bits24_random_codes(bits24):
    out, result = bits24
    weights, codes, manifest = load_folder(out)
    w = weights["weight"]
    assert w.dtype == np.float32 and w.shape == (V, 24)
    assert codes.shape == (V, 3)
    bits = np.unpackbits(codes, axis=1)[:, :24]
    assert np.array_equal(w, bits.astype(np.float32))
    assert set(np.unique(w).tolist()) == {0.0, 1.0}
    assert unique_rows(bits) == V
    expected, redraws = random_codes(V, 24, 5)
    assert np.array_equal(bits, expected)
    assert np.array_equal(torch.load(out / "normalized_embeddings_weights.pt", weights_only=True).numpy(), w)
    sub = manifest["substrate"]
    assert (sub["method"], sub["bits"], sub["seed"], sub["generator"]) == ("bits", 24, 5, GENERATOR)
    assert sub["redraws"] == redraws
    assert sub["min_hamming"] == {"value": brute_min_hamming(bits), "exact": True}
    assert (sub["n_embed"], sub["d_model"], sub["scale"]) == (24, 1024, None)  # 1024 % 24 != 0
    text = flat(result.stdout)
    assert "min Hamming" in text and f"{brute_min_hamming(bits)} (exact)" in text
    assert "repeat_interleave scale None" in text


def test_bits_padding_is_zero(source, tmp_path):
    """20 bits pack into 3 bytes; the 4 pad bits are zero."""
    result = embed_bits(source, 20, seed=2, out=tmp_path / "out")
    codes = np.load(tmp_path / "out" / "codes.npy", allow_pickle=False)
    assert codes.shape == (V, 3)
    assert not np.unpackbits(codes, axis=1)[:, 20:].any()
    assert np.array_equal(np.unpackbits(codes, axis=1)[:, :20], result.bits)
    assert result.manifest["substrate"]["scale"] is None


def test_bits_d_model(source, tmp_path):
    result = invoke("embed", source, "--method", "bits", "--bits", 24, "--d-model", 48, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    sub = load_folder(tmp_path / "out")[2]["substrate"]
    assert (sub["d_model"], sub["scale"]) == (48, 2)
    assert "d_model 48" in flat(result.stdout)


def test_float_ablation(float8):
    out, result = float8
    weights, codes, manifest = load_folder(out)
    w = weights["weight"]
    assert w.dtype == np.float32 and w.shape == (V, 8)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(np.linalg.norm(w.astype(np.float64), axis=1), 1.0, atol=1e-5)
    assert codes.shape == (V, 8)
    bits = np.unpackbits(codes, axis=1)[:, :64]
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert unique_rows(bits) == V
    assert np.array_equal(bits, random_codes(V, 64, 3)[0])
    assert np.array_equal(w, frozen_embeddings(bits, 8))
    assert np.array_equal(torch.load(out / "normalized_embeddings_weights.pt", weights_only=True).numpy(), w)
    sub = manifest["substrate"]
    assert (sub["float"], sub["bits"], sub["dim"], sub["n_embed"], sub["scale"]) == (True, 64, 8, 8, 128)
    assert "pca" in sub
    assert "FLOAT: PCA to 8" in flat(result.stdout)


def test_same_seed_same_bytes(source, tmp_path):
    outs = [tmp_path / name for name in ("a", "b", "c")]
    for out, seed in zip(outs, (9, 9, 10)):
        result = invoke("embed", source, "--method", "bits", "--bits", 32, "--seed", seed, "--out", out)
        assert result.exit_code == 0, result.output
    a, b, c = outs
    for name in ("embeddings.safetensors", "codes.npy", "bvvtok.json"):
        assert sha256(a / name) == sha256(b / name), name
    assert sha256(a / "codes.npy") != sha256(c / "codes.npy")
    assert sha256(a / "embeddings.safetensors") != sha256(c / "embeddings.safetensors")


def test_different_settings_into_the_same_folder_need_force(source, tmp_path):
    out = tmp_path / "out"
    assert invoke("embed", source, "--method", "bits", "--bits", 32, "--out", out).exit_code == 0
    before = sha256(out / "codes.npy")
    assert_user_error(invoke("embed", source, "--method", "bits", "--bits", 32, "--seed", 1, "--out", out), "--force")
    assert sha256(out / "codes.npy") == before
    result = invoke("embed", source, "--method", "bits", "--bits", 32, "--seed", 1, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert sha256(out / "codes.npy") != before


# --- CLI refusals ---


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--method", "bits"], ["--bits"]),
        (["--method", "bits", "--bits", 16, "--dim", 8], ["--dim", "--float"]),
        (["--method", "bits", "--bits", 64, "--float", "--dim", 65], ["--dim 65", "64"]),
        (["--method", "bits", "--bits", 64, "--float", "--dim", 0], ["--dim 0"]),
        (["--method", "bits", "--bits", 0], ["--bits must be positive"]),
        (["--method", "bits", "--bits", 8], ["9 bits"]),
        (["--method", "bits", "--bits", 16, "--d-model", 0], ["--d-model"]),
        (["--method", "glyph", "--bits", 16], ["--bits", "--method bits"]),
        (["--bits", 16], ["--bits", "--method bits"]),
        (["--method", "glyph", "--float"], ["--float", "--method bits"]),
        (["--method", "bytes"], ["bytes"]),
    ],
)
def test_embed_bits_refusals(source, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_user_error(invoke("embed", source, *args, "--out", out), *fragments)
    assert not out.exists()


def test_more_ids_than_16_bits_hold(big_source, tmp_path):
    out = tmp_path / "out"
    assert_user_error(invoke("embed", big_source, "--method", "bits", "--bits", 16, "--out", out), "17 bits", "70,000")
    assert not out.exists()


def test_large_vocabulary_hamming_is_estimated(big_source, tmp_path):
    out = tmp_path / "out"
    result = invoke("embed", big_source, "--method", "bits", "--bits", 17, "--out", out)
    assert result.exit_code == 0, result.output
    weights, codes, manifest = load_folder(out)
    assert weights["weight"].shape == (70_000, 17)
    bits = np.unpackbits(codes, axis=1)[:, :17]
    assert unique_rows(bits) == 70_000
    sub = manifest["substrate"]
    assert sub["redraws"] == 0  # dense: drawn without replacement
    assert sub["min_hamming"]["exact"] is False
    assert 1 <= sub["min_hamming"]["value"] <= 17
    text = flat(result.stdout)
    assert "min Hamming" in text and "estimated" in text and "(exact)" not in text


# --- known bugs ---


def test_negative_seed_is_a_user_error(source, tmp_path):
    out = tmp_path / "out"
    assert_user_error(invoke("embed", source, "--method", "bits", "--bits", 32, "--seed", -1, "--out", out), "--seed")
    assert not out.exists()


def test_build_codebook_negative_seed_raises_bvvtok_error():
    with pytest.raises(BvvtokError, match="seed"):
        build_codebook(300, 32, -1)
