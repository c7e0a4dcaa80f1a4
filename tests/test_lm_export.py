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
    (lambda folder: (folder / "tokenizer.json").unlink(), "has no tokenizer.json; pass --substrate DIR"),
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


# --- a fine-tuned copy: save_pretrained leaves out substrate.json; --substrate proves the embedding instead ---


def fine_tune(exported, out, frozen: bool = True, lora: bool = False):
    """Two SGD steps on the loaded export (LoRA on the attention, merged; or every weight, the embedding frozen unless
    not `frozen`), saved as a user would: model and tokenizer with save_pretrained. Returns the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(exported), AutoModelForCausalLM.from_pretrained(exported)
    if frozen:
        model.get_input_embeddings().weight.requires_grad_(False)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["query_key_value"]))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = tok("the cat saw the dog 7. the cat", return_tensors="pt").input_ids
    for _ in range(2):
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    if lora:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return model.eval()


@pytest.fixture(scope="module")
def resaved(exported, tmp_path_factory):
    """The export, loaded and saved again with save_pretrained: the same weights, no substrate.json."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("resaved") / "model"
    AutoModelForCausalLM.from_pretrained(exported).save_pretrained(out)
    AutoTokenizer.from_pretrained(exported).save_pretrained(out)
    return out


def test_save_pretrained_drops_substrate_json_but_keeps_the_record(resaved, exported):
    assert not (resaved / "substrate.json").exists() and not (resaved / "bvvtok.json").exists()
    recorded = json.loads((resaved / "config.json").read_text())["bvvtok"]["substrate"]
    assert recorded == json.loads((exported / "config.json").read_text())["bvvtok"]["substrate"]


def test_import_without_substrate_json_says_to_pass_the_substrate(resaved, tmp_path):
    result = invoke("import", resaved, "--out", tmp_path / "run")
    assert_user_error(result, "has no substrate.json", "pass --substrate DIR", "the substrate folder the model was trained on")
    assert "export the run again" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_import_with_the_substrate_gives_the_run_again(resaved, exported, char_substrate, char_run, tmp_path):
    result = invoke("import", resaved, "--substrate", char_substrate, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "substrate.json").read_bytes() == (char_run / "substrate.json").read_bytes()
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == (char_run / "tokenizer.json").read_bytes()
    assert invoke("export", tmp_path / "run", "--out", tmp_path / "again").exit_code == 0
    for name in ("model.safetensors", "config.json", "substrate.json"):
        assert (tmp_path / "again" / name).read_bytes() == (exported / name).read_bytes(), name
    ours = invoke("generate", tmp_path / "run", "--prompt", "the cat", "--greedy", "--max-new-tokens", "8")
    theirs = invoke("generate", char_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "8")
    assert ours.exit_code == 0 and ours.stdout == theirs.stdout, ours.output


@pytest.mark.parametrize("lora", [False, True], ids=["full-frozen-embedding", "peft-lora-merged"])
def test_a_fine_tune_with_the_embedding_frozen_imports_with_its_substrate(exported, char_substrate, tmp_path, lora):
    if lora:
        pytest.importorskip("peft")
    model = fine_tune(exported, tmp_path / "tuned", lora=lora)
    assert (load_file(str(tmp_path / "tuned" / "model.safetensors"))["gpt_neox.layers.0.attention.query_key_value.weight"]
            != load_file(str(exported / "model.safetensors"))["gpt_neox.layers.0.attention.query_key_value.weight"]).any()
    assert_user_error(invoke("import", tmp_path / "tuned", "--out", tmp_path / "run"), "pass --substrate DIR")
    result = invoke("import", tmp_path / "tuned", "--substrate", char_substrate, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    ours, _ = load_model(tmp_path / "run")
    ids = torch.tensor([[5, 9, 13, 40, 41, 50, 60, 7]])
    with torch.no_grad():
        assert (model(ids).logits - ours(ids)[0]).abs().max().item() < 1e-4  # the fine-tuned weights, in bvvtok
    assert invoke("generate", tmp_path / "run", "--prompt", "the cat", "--max-new-tokens", "4").exit_code == 0


def test_a_fine_tune_that_moved_the_embedding_stays_refused(exported, char_substrate, tmp_path):
    fine_tune(exported, tmp_path / "tuned", frozen=False)
    assert_user_error(invoke("import", tmp_path / "tuned", "--substrate", char_substrate, "--out", tmp_path / "run"),
                      "this folder's embedding was trained or edited")  # fmt: skip
    shutil.copytree(exported, tmp_path / "edited")
    edited_embedding(tmp_path / "edited")  # both copies of a value: only the substrate's sha256 can tell
    (tmp_path / "edited" / "substrate.json").unlink()
    assert_user_error(invoke("import", tmp_path / "edited", "--substrate", char_substrate, "--out", tmp_path / "run"),
                      "embedding is not the substrate in", "trained or edited")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_import_refuses_a_substrate_the_model_was_not_trained_on(resaved, char_substrate, tmp_path):
    from bvvtok.substrate.embed import embed_bits

    shutil.copytree(char_substrate, tmp_path / "vocab")
    embed_bits(tmp_path / "vocab", n_bits=16, as_float=True, d_model=32, out=tmp_path / "other")
    assert_user_error(invoke("import", resaved, "--substrate", tmp_path / "other", "--out", tmp_path / "run"),
                      "is not the substrate this model was trained on", "manifest_sha256")  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("import", resaved, "--substrate", tmp_path / "empty", "--out", tmp_path / "run"),
                      "is not a substrate folder")  # fmt: skip
    assert_user_error(invoke("import", resaved, "--substrate", tmp_path / "none", "--out", tmp_path / "run"), "not found")
    assert not (tmp_path / "run").exists()


# --- the context: transformers' GPT-NeoX does not refuse a longer generate; the card and the docs say so ---

NEAR = "the cat saw the dog 12. the ca"  # 30 characters: 30 tokens of a context of 32


def test_stock_generate_stops_at_the_context_unless_told_otherwise(loaded, exported):
    tok, model, _ = loaded
    ids = tok(NEAR, return_tensors="pt")
    assert ids.input_ids.shape[1] == 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' advice to set max_new_tokens
        assert model.generate(**ids, do_sample=False, eos_token_id=None).shape[1] == 32  # its default: never past it
    # asked for more, transformers' GPT-NeoX goes on past the context (a log line, no error): the card says so
    assert model.generate(**ids, max_new_tokens=20, do_sample=False, eos_token_id=None).shape[1] == 50
    card = (exported / "README.md").read_text()
    assert "The model reads at most 32 tokens" in card and "goes on past the context" in card
    new = min(40, model.config.max_position_embeddings - ids.input_ids.shape[1])  # as the card's snippet does
    assert model.generate(**ids, max_new_tokens=new, do_sample=False, eos_token_id=None).shape[1] == 32


def test_max_length_in_generation_config_would_not_stop_it(exported, tmp_path):
    """Why generation_config.json has no max_length: max_new_tokens overrides it (and each such call would log that
    both are set), so it would not keep generate within the context."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert "max_length" not in json.loads((exported / "generation_config.json").read_text())
    shutil.copytree(exported, tmp_path / "hf")
    path = tmp_path / "hf" / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "max_length": 32}), encoding="utf-8")
    tok, model = AutoTokenizer.from_pretrained(tmp_path / "hf"), AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = tok(NEAR, return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=20, do_sample=False, eos_token_id=None).shape[1] == 50
