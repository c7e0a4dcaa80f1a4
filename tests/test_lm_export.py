"""The stock Hugging Face export: transformers' own GPT-NeoX, no custom code, the same function as bvvtok's model;
and `bvvtok import` back, with the substrate proven."""

import json
import logging
import shutil
import warnings

import pytest
import torch
from conftest import assert_user_error, invoke
from safetensors.torch import load_file, save_file

from bvvtok.lm.run_folder import load_model

transformers = pytest.importorskip("transformers")

PROMPTS = ["the cat", "a dog saw the", "the"]


@pytest.fixture(scope="module")
def exported(char_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "model"
    result = invoke("export", char_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert "(hf: no custom code)" in result.stdout
    return out


@pytest.fixture(scope="module")
def loaded(exported):
    """Tokenizer and model as transformers loads them, and what it logged or warned while loading."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tok = AutoTokenizer.from_pretrained(exported)
            model = AutoModelForCausalLM.from_pretrained(exported)
    finally:
        logger.removeHandler(handler)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    return tok, model.eval(), said


def test_the_folder_is_stock_gpt_neox_and_records_the_substrate(exported, char_run):
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "gpt_neox" and "auto_map" not in config
    assert not list(exported.glob("*.py"))
    assert (config["use_parallel_residual"], config["rope_parameters"]["partial_rotary_factor"]) == (False, 1.0)
    assert (config["n_embed"], config["scale"], config["max_position_embeddings"]) == (16, 2, 32)
    substrate = config["bvvtok"]["substrate"]
    assert substrate["method"] == "bits" and substrate["n_embed"] == 16 and substrate["scale"] == 2
    assert (exported / "substrate.json").read_bytes() == (char_run / "substrate.json").read_bytes()
    card = (exported / "README.md").read_text()
    assert "requires_grad_(False)" in card and "weight[:, ::2]" in card


def test_loads_with_no_custom_code_prompt_or_warning(loaded):
    tok, model, said = loaded
    assert type(model).__name__ == "GPTNeoXForCausalLM"
    assert said == []
    assert tok.model_max_length == 32
    assert (tok.eos_token, tok.pad_token, tok.bos_token, tok.unk_token) == ("</s>", "<pad>", "<s>", "<unk>")


def test_the_plain_fast_tokenizer_loads_too(exported):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(exported)
    assert tok.model_max_length == 32 and tok.eos_token == "</s>"


def test_logits_equal_bvvtoks(loaded, char_run):
    tok, model, _ = loaded
    ours, _ = load_model(char_run)
    ids = tok("the cat saw the dog 12. the cat", return_tensors="pt").input_ids
    with torch.no_grad():
        difference = (model(ids).logits - ours(ids)[0]).abs().max().item()
    assert difference < 1e-4


def test_greedy_generation_is_bvvtoks(loaded, char_run):
    tok, model, _ = loaded
    ids = tok("the cat", return_tensors="pt")
    hf_text = tok.decode(model.generate(**ids, max_new_tokens=12, do_sample=False)[0])
    ours = invoke("generate", char_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "12")
    assert ours.exit_code == 0, ours.output
    assert hf_text == ours.stdout.rstrip("\n")


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_left_padded_batch_is_each_prompt_alone(loaded, use_cache):
    tok, model, _ = loaded
    tok.padding_side = "left"
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    together = model.generate(**batch, max_new_tokens=8, do_sample=False, use_cache=use_cache)
    width = batch.input_ids.shape[1]
    for i, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok([prompt], return_tensors="pt"), max_new_tokens=8, do_sample=False, use_cache=use_cache)
        n = alone.shape[1] - len(tok(prompt).input_ids)
        assert together[i, width : width + n].tolist() == alone[0, -n:].tolist(), prompt


def test_labels_give_bvvtoks_loss(loaded, char_run):
    tok, model, _ = loaded
    ours, _ = load_model(char_run)
    ids = tok("the cat saw the dog", return_tensors="pt").input_ids
    with torch.no_grad():
        assert model(ids, labels=ids).loss.item() == pytest.approx(ours(ids[:, :-1], ids[:, 1:])[1].item(), abs=1e-5)


def test_bf16_generates(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.bfloat16)
    out = model.generate(**tok("the cat", return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert out.shape[1] > 2 and model.dtype == torch.bfloat16


def test_export_import_export_gives_the_same_weights(exported, tmp_path):
    assert invoke("import", exported, "--out", tmp_path / "run").exit_code == 0
    assert invoke("export", tmp_path / "run", "--out", tmp_path / "again").exit_code == 0
    for name in ("model.safetensors", "config.json", "substrate.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (exported / name).read_bytes(), name
    result = invoke("generate", tmp_path / "run", "--prompt", "the cat", "--greedy", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output


def test_an_imported_run_grows_and_combines(exported, tmp_path):
    assert invoke("import", exported, "--out", tmp_path / "run").exit_code == 0
    assert invoke("grow", tmp_path / "run", "--add-layers", "1", "--out", tmp_path / "grown").exit_code == 0
    assert invoke("combine", tmp_path / "run", tmp_path / "grown", "--out", tmp_path / "mix").exit_code == 0


def test_a_mixture_is_written_with_its_own_code(char_run, tmp_path):
    assert invoke("combine", char_run, char_run, "--out", tmp_path / "mix").exit_code == 0
    result = invoke("export", tmp_path / "mix", "--out", tmp_path / "hf")
    assert result.exit_code == 0, result.output
    assert "(hf-remote: bvvtok's own code; load it with trust_remote_code=True)" in " ".join(result.stdout.split())
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "bvvtok"


# --- refused ---


def test_export_refuses_a_non_run_an_unknown_format_and_an_existing_folder(exported, char_substrate, char_run):
    assert_user_error(invoke("export", char_substrate, "--out", exported.parent / "x"), "is not a run folder")
    assert_user_error(invoke("export", char_run, "--out", exported), "pass --force")
    assert_user_error(invoke("export", char_run, "--format", "onnx", "--out", exported.parent / "y"), "unknown --format 'onnx'")


def edited_embedding(folder):
    state = load_file(str(folder / "model.safetensors"))
    state["gpt_neox.embed_in.weight"][5] += 0.5  # both copies of a value: the repetition still holds
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def other_substrate_manifest(folder):
    (folder / "substrate.json").write_text("{}", encoding="utf-8")


def other_architecture(folder):
    config = json.loads((folder / "config.json").read_text())
    config["use_parallel_residual"] = True
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def broken_repetition(folder):
    state = load_file(str(folder / "model.safetensors"))
    state["gpt_neox.embed_in.weight"][5, 1] += 0.5  # one copy only
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("damage, fragment", [
    (edited_embedding, "embedding is not the substrate that substrate.json describes"),
    (other_substrate_manifest, "is not the substrate manifest config.json records"),
    (other_architecture, "use_parallel_residual True (bvvtok's: False)"),
    (broken_repetition, "is not a 16-dim substrate repeated 2 times"),
    (lambda folder: (folder / "model.safetensors").write_bytes(b"junk"), "cannot read the weights"),
])  # fmt: skip
def test_import_refuses_what_is_not_a_bvvtok_export(exported, tmp_path, damage, fragment):
    folder = tmp_path / "hf"
    shutil.copytree(exported, folder)
    damage(folder)
    assert_user_error(invoke("import", folder, "--out", tmp_path / "run"), fragment)
    assert not (tmp_path / "run").exists()


def test_import_refuses_a_folder_that_is_no_export(char_run, tmp_path):
    assert_user_error(invoke("import", char_run, "--out", tmp_path / "run"), "is not a GPT-NeoX model exported by bvvtok")
    assert_user_error(invoke("import", tmp_path / "none", "--out", tmp_path / "run"), "not found")
