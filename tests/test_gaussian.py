"""`bvvtok embed --method gaussian`: seeded unit normal rows, no codes; built, verified and trained on end to end."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error, invoke, write_char_vocab, write_wordlevel_vocab
from safetensors.numpy import load_file, save_file

import bvvtok.substrate.methods.gaussian as gaussian_module
from bvvtok.lm.metrics import read_metrics
from bvvtok.substrate.embed import embed, embed_bits
from bvvtok.substrate.methods.gaussian import GENERATOR, gaussian_rows
from bvvtok.substrate.verify import CHECKS, verify

WORDS = ["<unk>", *"abcdefghijklmnopqrstuvwxyz", "the", "and", "ing"]
V = len(WORDS) + 1  # and the added special token
FILES = {"tokenizer.json", "embeddings.safetensors", "normalized_embeddings_weights.pt", "bvvtok.json"}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_wordlevel_vocab(tmp_path_factory.mktemp("source") / "vocab", WORDS)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    """`bvvtok embed VOCAB --method gaussian --dim 64 --seed 5 --out OUT` (read-only: copy it before damaging it)."""
    out = tmp_path_factory.mktemp("gaussian") / "substrate"
    result = invoke("embed", source, "--method", "gaussian", "--dim", 64, "--seed", 5, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def read_weight(folder: Path) -> np.ndarray:
    return load_file(str(folder / "embeddings.safetensors"))["weight"]


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "bvvtok.json").read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_folder_holds_unit_normal_rows_and_no_codes(built):
    out, _ = built
    assert {p.name for p in out.iterdir()} == FILES
    w = read_weight(out)
    assert w.dtype == np.float32 and w.shape == (V, 64)
    np.testing.assert_allclose(np.linalg.norm(w.astype(np.float64), axis=1), 1.0, atol=1e-6)
    expected = np.random.Generator(np.random.PCG64(5)).standard_normal((V, 64))
    assert np.array_equal(w, (expected / np.linalg.norm(expected, axis=1, keepdims=True)).astype(np.float32))
    assert np.array_equal(torch.load(out / "normalized_embeddings_weights.pt", weights_only=True).numpy(), w)
    assert abs(float(w.mean())) < 0.05 and abs(float(w.std()) - 64**-0.5) < 0.02  # normal rows, not codes


def test_the_manifest(built):
    out, _ = built
    manifest = manifest_of(out)
    sub = manifest["substrate"]
    assert sub["settings"] == {"method": "gaussian", "dim": 64, "seed": 5}
    assert (sub["method"], sub["dim"], sub["n_embed"], sub["seed"], sub["generator"]) == ("gaussian", 64, 64, 5, GENERATOR)
    assert (sub["d_model"], sub["scale"], sub["tokens"]) == (1024, 16, V)
    assert "codes.npy" not in manifest["files"]


def test_embed_and_info_say_what_was_built(built):
    out, result = built
    text = " ".join(result.stdout.split())
    assert "gaussian, 64-dim, seed 5" in text and re.search(rf"tokens\W+{V}\b", text)
    assert "n_embed 64, d_model 1024, repeat_interleave scale 16" in text
    info = " ".join(invoke("info", out).stdout.split())
    assert "gaussian, 64-dim, seed 5" in info and f"[{V}, 64], scale 16 to d_model 1024" in info


def test_verify_passes_every_check_and_the_rebuild(built):
    out, _ = built
    results = verify(out, rebuild=True)
    assert [r.name for r in results] == [name for name, _ in CHECKS] + ["rebuild"]
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
    checks = {r.name: r.detail for r in results}
    assert checks["distinct rows"] == f"all {V} rows distinct"
    assert "unit L2 norm" in checks["values"]
    assert checks["codes"] == "none: a gaussian substrate is not made from codes"
    assert checks["rebuild"].startswith("rebuilt from the manifest: embeddings identical, byte for byte")
    result = invoke("verify", out, "--rebuild")
    assert result.exit_code == 0, result.output


def reseal(folder: Path) -> None:
    manifest = manifest_of(folder)
    manifest["files"] = {name: sha256(folder / name) for name in manifest["files"]}
    (folder / "bvvtok.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_row_turned_round_with_the_hashes_updated_fails_only_the_rebuild(built, tmp_path):
    """Still unit length and distinct: only drawing the rows again from the seed tells."""
    folder = Path(shutil.copytree(built[0], tmp_path / "damaged"))
    weight = read_weight(folder)
    weight[3] = -weight[3]
    save_file({"weight": weight}, str(folder / "embeddings.safetensors"))
    torch.save(torch.from_numpy(weight), folder / "normalized_embeddings_weights.pt")
    reseal(folder)
    failed = {r.name: r.detail for r in verify(folder, rebuild=True) if not r.ok}
    assert set(failed) == {"rebuild"}
    assert "differs in embeddings.safetensors, normalized_embeddings_weights.pt" in failed["rebuild"]
    assert "codes identical" not in failed["rebuild"] and "min row cosine of -1.0000000" in failed["rebuild"]


def test_another_seed_in_the_manifest_fails_the_rebuild(built, tmp_path):
    folder = Path(shutil.copytree(built[0], tmp_path / "damaged"))
    manifest = manifest_of(folder)
    manifest["substrate"]["seed"] = manifest["substrate"]["settings"]["seed"] = 6
    (folder / "bvvtok.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert all(r.ok for r in verify(folder))
    failed = {r.name: r.detail for r in verify(folder, rebuild=True) if not r.ok}
    assert set(failed) == {"rebuild"} and "differs in embeddings.safetensors" in failed["rebuild"]


def test_same_seed_same_bytes_and_the_chunks_do_not_matter(source, tmp_path, monkeypatch):
    outs = [tmp_path / name for name in ("a", "b", "c")]
    embed(source, "gaussian", out=outs[0], dim=48, seed=9)
    monkeypatch.setattr(gaussian_module, "CHUNK_ROWS", 7)  # several draws, the last one short
    embed(source, "gaussian", out=outs[1], dim=48, seed=9)
    embed(source, "gaussian", out=outs[2], dim=48, seed=10)
    for name in FILES - {"tokenizer.json"}:
        assert sha256(outs[0] / name) == sha256(outs[1] / name), name
    assert sha256(outs[0] / "embeddings.safetensors") != sha256(outs[2] / "embeddings.safetensors")


def test_the_defaults_and_the_progress(source, tmp_path):
    stages = []
    result = embed(source, "gaussian", out=tmp_path / "out", progress=lambda *stage: stages.append(stage))
    assert result.bits is None and result.embeddings.shape == (V, 1024)
    assert result.manifest["substrate"]["settings"] == {"method": "gaussian", "dim": 1024, "seed": 0}
    assert stages == [("rows", V, V)]


def test_rows_straight_from_the_library(tmp_path):
    rows = np.empty((10, 8), dtype=np.float32)
    gaussian_rows(10, 8, 0, rows)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--dim", 0], ["--dim must be at least 1 (got 0)"]),
        (["--seed", -1], ["--seed must be at least 0 (got -1)"]),
        (["--d-model", 0], ["--d-model must be at least 1 (got 0)"]),
        (["--bits", 16], ["--bits goes with --method bits", "--method gaussian takes --dim, --seed, --d-model"]),
        (["--recipe", "bvv241-2-3"], ["--recipe goes with --method glyph"]),
        (["--dump-text", "codes.txt"], ["--dump-text writes the codes, and a gaussian substrate has none"]),
    ],
)
def test_refusals(source, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_user_error(invoke("embed", source, "--method", "gaussian", *args, "--out", out), *fragments)
    assert not out.exists()


def test_in_place_over_a_bits_substrate_its_codes_go(source, tmp_path):
    folder = Path(shutil.copytree(source, tmp_path / "vocab"))
    embed_bits(folder, 16)
    assert_user_error(invoke("embed", folder, "--method", "gaussian", "--dim", 16), "--force")
    result = invoke("embed", folder, "--method", "gaussian", "--dim", 16, "--force")
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.iterdir()} == FILES
    assert all(r.ok for r in verify(folder))


def test_a_model_trains_on_it(tmp_path, monkeypatch):
    """bvvtok embed --method gaussian, then bvvtok train: the frozen rows are the model's embedding."""
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    vocab = write_char_vocab(tmp_path / "substrate")
    assert invoke("embed", vocab, "--method", "gaussian", "--dim", 16, "--d-model", 32).exit_code == 0
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the cat saw the dog {i}. "}) + "\n" for i in range(300)), encoding="utf-8")
    model = dict(d_model=32, n_layer=2, n_head=4, context=32, steps=30, batch_size=8, lr=0.01, warmup=3, eval_every=10)
    result = invoke("train", "--substrate", vocab, "--corpus", corpus, "--out", tmp_path / "run", "--device", "cpu",
                    *[f"--{k.replace('_', '-')}={v}" for k, v in model.items()])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "frozen 16-dim gaussian substrate (scale 2)" in result.stdout
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    losses = [r.val_loss for r in rows if r.val_loss is not None]
    assert len(losses) == 4 and losses[-1] < losses[0]  # steps 0 (before training), 10, 20, 30
    substrate = read_weight(vocab)
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))["token_embeddings.weight"]
    assert np.array_equal(trained, substrate)  # frozen: bit-identical after training
