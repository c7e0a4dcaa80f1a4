"""The Hugging Face export: loads with transformers (trust_remote_code) and generates what bvvtok generates."""

import json

import pytest
import torch
from conftest import assert_user_error, invoke
from safetensors.numpy import load_file

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def exported(char_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "model"
    result = invoke("export", char_run, "--format", "hf", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(autouse=True)
def offline_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))


def test_config_carries_the_substrate_shape(exported):
    config = json.loads((exported / "config.json").read_text())
    assert {k: config[k] for k in ("vocab_size", "n_embed", "d_model", "n_layer", "n_head", "scale")} == {
        "vocab_size": 117, "n_embed": 16, "d_model": 32, "n_layer": 2, "n_head": 4, "scale": 2,
    }  # fmt: skip
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_bvvtok.BvvtokForCausalLM"
    for name in ("modeling_bvvtok.py", "configuration_bvvtok.py", "bvvtok_gpt.py", "tokenizer.json", "tokenizer_config.json"):
        assert (exported / name).is_file(), name


def test_transformers_generates_what_bvvtok_generates(exported, char_run, char_substrate):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    substrate = load_file(str(char_substrate / "embeddings.safetensors"))["weight"]
    assert torch.equal(model.token_embeddings.weight, torch.from_numpy(substrate))  # the published sanity check
    ids = tok("the cat", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    hf_text = tok.decode(out[0])
    ours = invoke("generate", char_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "12")
    assert ours.exit_code == 0, ours.output
    assert hf_text == ours.stdout.rstrip("\n")


def test_export_refuses_a_non_run_and_an_existing_folder(exported, char_substrate, char_run):
    assert_user_error(invoke("export", char_substrate, "--out", exported.parent / "x"), "is not a run folder")
    assert_user_error(invoke("export", char_run, "--out", exported), "pass --force")
    assert_user_error(invoke("export", char_run, "--format", "onnx", "--out", exported.parent / "y"), "unknown --format 'onnx'")
