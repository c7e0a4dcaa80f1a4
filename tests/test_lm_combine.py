"""Mixtures (combine), growth (grow) and continued training (train --init-from --train-only)."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_user_error, invoke, write_char_vocab
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import ModelConfig, resolve_config
from bvvtok.lm.grow import available_memory, check_memory, grown_bytes
from bvvtok.lm.mixture import Mixture
from bvvtok.lm.model import GPT
from bvvtok.lm.run_folder import load_model
from bvvtok.lm.train import train
from bvvtok.substrate.embed import embed_bits

SHAPE = dict(d_model=32, n_layer=2, n_head=4, context=32)
TRAIN = dict(steps=30, batch_size=8, lr=1e-2, warmup=3, eval_every=30)
IDS = torch.tensor([[3, 9, 27, 40, 41, 5, 60, 7]])


@pytest.fixture(autouse=True)
def token_cache(char_run, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(char_run.parent / "cache"))


def corpus_of(char_run):
    return char_run.parent / "c.jsonl"


@pytest.fixture(scope="module")
def second_run(char_substrate, char_run, tmp_path_factory):
    """A run like char_run with another seed: same substrate and tokenizer, different weights."""
    out = tmp_path_factory.mktemp("second") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(char_run.parent / "cache"))
        train(char_substrate, [corpus_of(char_run)], out, resolve_config("tiny", None, SHAPE, {**TRAIN, "seed": 1}), device="cpu")
    return out


@pytest.fixture(scope="module")
def mixture(char_run, second_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("mix") / "mixture"
    result = invoke("combine", char_run, second_run, "--weights", "1,3", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_mixture_logits_are_the_weighted_mean_of_the_members():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, n_embed=8, d_model=16, n_layer=1, n_head=2, context=16)
    a, b = GPT(config, torch.randn(64, 8)), GPT(config, torch.randn(64, 8))
    mixed, _ = Mixture([a, b], [1, 3])(IDS)
    assert torch.allclose(mixed, 0.25 * a(IDS)[0] + 0.75 * b(IDS)[0], atol=1e-6)


def test_combined_folder_averages_the_runs_it_was_made_of(mixture, char_run, second_run):
    model, _ = load_model(mixture)
    a, _ = load_model(char_run)
    b, _ = load_model(second_run)
    assert isinstance(model, Mixture) and model.weights == [0.25, 0.75]
    with torch.no_grad():
        assert torch.allclose(model(IDS)[0], 0.25 * a(IDS)[0] + 0.75 * b(IDS)[0], atol=1e-6)
    manifest = json.loads((mixture / "bvvtok.json").read_text())
    assert [m["folder"] for m in manifest["run"]["mixture"]["members"]] == ["run", "run"]


def test_mixture_generates_with_and_without_the_cache(mixture):
    a = invoke("generate", mixture, "--prompt", "the cat", "--greedy", "--max-new-tokens", "10")
    b = invoke("generate", mixture, "--prompt", "the cat", "--greedy", "--max-new-tokens", "10", "--no-kv-cache")
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout and a.stdout.startswith("the cat")


def test_mixture_exports_and_transformers_agrees(mixture, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    assert invoke("export", mixture, "--out", tmp_path / "hf").exit_code == 0
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf", trust_remote_code=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", trust_remote_code=True)
    ids = tok("the cat", return_tensors="pt").input_ids
    hf_text = tok.decode(model.generate(ids, max_new_tokens=10, do_sample=False)[0])
    ours = invoke("generate", mixture, "--prompt", "the cat", "--greedy", "--max-new-tokens", "10")
    assert hf_text == ours.stdout.rstrip("\n")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["mixture_weights"] == [1.0, 3.0]


def test_train_only_the_heads_of_a_mixture(mixture, char_substrate, char_run, tmp_path):
    out = tmp_path / "tuned"
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus_of(char_run), "--out", out, "--init-from", mixture,
                    "--train-only", "members.*.head.*", "--steps", "3", "--batch-size", "4", "--eval-every", "3", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = load_file(str(mixture / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    assert moved == {"members.0.head.weight", "members.1.head.weight"}
    assert json.loads((out / "config.json").read_text())["trainable"] == ["members.*.head.*"]


def test_grown_model_starts_as_the_old_one_and_trains_only_its_new_blocks(char_run, char_substrate, tmp_path):
    grown = tmp_path / "grown"
    result = invoke("grow", char_run, "--add-layers", "2", "--out", grown)
    assert result.exit_code == 0, result.output
    old, _ = load_model(char_run)
    new, _ = load_model(grown)
    assert new.config.n_layer == 4
    with torch.no_grad():
        assert torch.equal(new(IDS)[0], old(IDS)[0])  # the new blocks add exactly nothing at first

    out = tmp_path / "trained"
    assert invoke("train", "--substrate", char_substrate, "--corpus", corpus_of(char_run), "--out", out, "--init-from", grown,
                  "--steps", "3", "--batch-size", "4", "--eval-every", "3", "--device", "cpu").exit_code == 0  # fmt: skip
    before, after = load_file(str(grown / "model.safetensors")), load_file(str(out / "model.safetensors"))
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    assert moved and all(k.startswith(("blocks.2.", "blocks.3.", "ln_f.", "head.")) for k in moved)
    assert "head.weight" in moved and "blocks.2.attn.proj.weight" in moved
    assert np.array_equal(after["token_embeddings.weight"], before["token_embeddings.weight"])


def test_grow_counts_the_grown_model_twice_and_refuses_what_does_not_fit(char_run):
    model, _ = load_model(char_run)
    grown = GPT(dataclasses.replace(model.config, n_layer=model.config.n_layer + 3), model.token_embeddings.weight)
    assert grown_bytes(model, 3) == 2 * sum(t.nbytes for t in grown.state_dict().values())  # model + saved copy
    needed = grown_bytes(model, 100_000)
    check_memory(model, 100_000, needed)
    check_memory(model, 100_000, None)  # unknown: not checked
    message = r"^add_layers=100000 needs about 9\.\d GiB of memory and 8\.0 GiB is available; add fewer layers$"
    with pytest.raises(BvvtokError, match=message):
        check_memory(model, 100_000, 8 * 2**30)
    assert available_memory() > 0


def test_combine_refuses_another_substrate(char_run, tmp_path):
    other = write_char_vocab(tmp_path / "other")
    embed_bits(other, n_bits=32, seed=5)
    run = tmp_path / "other-run"
    train(other, [corpus_of(char_run)], run, resolve_config("tiny", None, SHAPE, {**TRAIN, "steps": 2}), device="cpu")
    assert_user_error(invoke("combine", char_run, run, "--out", tmp_path / "mix"), "another substrate", "one frozen substrate")


def test_bad_combine_grow_and_init_from(char_run, second_run, char_substrate, tmp_path):
    assert_user_error(invoke("combine", char_run, second_run, "--weights", "1,2,3", "--out", tmp_path / "m"), "3 values for 2 runs")
    assert_user_error(invoke("combine", char_run, second_run, "--weights", "1,x", "--out", tmp_path / "m"), "not a list of numbers")
    assert_user_error(invoke("combine", char_run, "--out", tmp_path / "m"), "at least two runs")
    assert_user_error(invoke("combine", char_run, char_substrate, "--out", tmp_path / "m"), "is not a run folder")
    assert_user_error(invoke("grow", char_run, "--add-layers", "0", "--out", tmp_path / "g"), "--add-layers must be at least 1")
    common = ["train", "--substrate", char_substrate, "--corpus", corpus_of(char_run), "--out", tmp_path / "t", "--device", "cpu"]
    assert_user_error(invoke(*common, "--init-from", char_run, "--train-only", "nothing.*"), "matches no parameter")
    assert_user_error(invoke(*common, "--train-only", "head.*"), "--train-only goes with --init-from")
    assert_user_error(invoke(*common, "--init-from", char_run, "--d-model", "64"), "drop --d-model")
    other = write_char_vocab(tmp_path / "other")
    embed_bits(other, n_bits=16, seed=0, d_model=64)  # same codes, another manifest: another substrate
    shutil.rmtree(tmp_path / "t", ignore_errors=True)
    assert_user_error(invoke("train", "--substrate", other, "--corpus", corpus_of(char_run), "--out", tmp_path / "t",
                             "--init-from", char_run), "trained on another substrate")  # fmt: skip
