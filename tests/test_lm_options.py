"""The model's options, `norm` (layernorm | rmsnorm) and `mlp` (gelu | swiglu): the model they build, the flags and
the file that choose them, a run that trains, resumes, grows, combines and exports with them, and the defaults that
leave every existing run and export as it was."""

import dataclasses
import json
import shutil

import pytest
import torch
from conftest import assert_user_error, invoke

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import ModelConfig, resolve_config
from bvvtok.lm.model import GPT, MLPS, NORMS, ResidualProjection, SwiGLU
from bvvtok.lm.run_folder import CONFIG, load_model, read_raw_config, write_run_manifest
from bvvtok.manifest import read_manifest

V, N_EMBED = 50, 8
OPTIONS = ("--norm", "rmsnorm", "--mlp", "swiglu")
TRAIN = ("--steps", "30", "--batch-size", "8", "--lr", "1e-2", "--warmup", "3", "--eval-every", "30", "--device", "cpu")
SHAPE = ("--d-model", "32", "--n-layer", "2", "--n-head", "4", "--context", "32")
IDS = torch.tensor([[3, 9, 27, 40, 41, 5, 60, 7]])


def small(**options) -> ModelConfig:
    return ModelConfig(vocab_size=V, n_embed=N_EMBED, d_model=32, n_layer=2, n_head=4, context=16, **options)


def substrate() -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(V, N_EMBED, generator=torch.Generator().manual_seed(1)), dim=1)


@pytest.fixture(autouse=True)
def token_cache(char_run, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(char_run.parent / "cache"))


@pytest.fixture(scope="module")
def options_run(char_run, char_substrate, tmp_path_factory):
    """char_run's shape and schedule with rmsnorm and swiglu, trained through the CLI."""
    out = tmp_path_factory.mktemp("options") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(char_run.parent / "cache"))
        result = invoke("train", "--substrate", char_substrate, "--corpus", char_run.parent / "c.jsonl", "--out", out,
                        *SHAPE, *OPTIONS, *TRAIN)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "norm rmsnorm, mlp swiglu" in result.stdout  # the start line names the options off their defaults
    return out


def test_the_tables_are_the_config_choices():
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(ModelConfig) if f.metadata.get("option")}
    assert choices == {"norm": tuple(NORMS), "mlp": tuple(MLPS)}
    assert (ModelConfig().norm, ModelConfig().mlp) == ("layernorm", "gelu")  # the papers' model, today's runs


def test_rmsnorm_and_swiglu_build_what_they_say():
    model = GPT(small(norm="rmsnorm", mlp="swiglu"), substrate())
    block = model.blocks[0]
    assert isinstance(block.ln_1, torch.nn.RMSNorm) and isinstance(model.ln_f, torch.nn.RMSNorm)
    assert isinstance(block.mlp, SwiGLU) and block.mlp.gate.out_features == block.mlp.up.out_features == 88
    names = set(model.state_dict())
    assert "blocks.0.ln_1.weight" in names and "blocks.0.ln_1.bias" not in names and "ln_f.bias" not in names
    assert {"blocks.0.mlp.gate.weight", "blocks.0.mlp.up.bias", "blocks.0.mlp.proj.weight"} <= names
    gelu = GPT(small(), substrate()).parameter_counts()["trainable"]
    assert abs(model.parameter_counts()["trainable"] / gelu - 1) < 0.05  # about the same size
    assert isinstance(GPT(small(norm="rmsnorm"), substrate()).blocks[0].mlp.fc, torch.nn.Linear)  # one at a time


def test_swiglu_is_initialised_by_role():
    """GPT-2's scheme: the down projection (into the residual stream) at 0.02 / sqrt(2 n_layer), the rest at 0.02."""
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(small(mlp="swiglu", norm="rmsnorm"), d_model=256, n_head=8, n_layer=8), substrate()[:, :8])
    mlp = model.blocks[0].mlp
    assert isinstance(mlp.proj, ResidualProjection) and not isinstance(mlp.gate, ResidualProjection)
    assert mlp.gate.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert mlp.up.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert mlp.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert not mlp.proj.bias.any() and torch.equal(model.blocks[0].ln_1.weight, torch.ones(256))


def test_options_train_the_model_causally():
    torch.manual_seed(0)
    model = GPT(small(norm="rmsnorm", mlp="swiglu"), substrate())
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % V
    with torch.no_grad():
        assert torch.allclose(model(a)[0][0, :8], model(b)[0][0, :8], atol=1e-6)
    opt = torch.optim.AdamW(model.optimizer_groups(0.1), lr=1e-2)
    ids = torch.randint(0, V, (4, 17), generator=torch.Generator().manual_seed(2))
    losses = []
    for _ in range(20):
        _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1


def test_the_file_and_the_flags_choose_them(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nnorm = "rmsnorm"\n')
    config = resolve_config(None, path, {"mlp": "swiglu"}, {})
    assert (config.model.norm, config.model.mlp) == ("rmsnorm", "swiglu")
    assert dataclasses.asdict(config.model)["norm"] == "rmsnorm"
    with pytest.raises(BvvtokError, match=r"^norm 'batchnorm': choose layernorm or rmsnorm$"):
        resolve_config(None, None, {"norm": "batchnorm"}, {})
    with pytest.raises(BvvtokError, match=r"^mlp 'relu': choose gelu or swiglu$"):
        resolve_config(None, None, {"mlp": "relu"}, {})


def test_a_run_with_options_records_resumes_and_refuses_another(options_run, char_run, char_substrate):
    assert {k: read_raw_config(options_run)["model"][k] for k in ("norm", "mlp")} == {"norm": "rmsnorm", "mlp": "swiglu"}
    model, _ = load_model(options_run)
    assert isinstance(model.blocks[0].mlp, SwiGLU) and isinstance(model.ln_f, torch.nn.RMSNorm)
    corpus = ("--substrate", char_substrate, "--corpus", char_run.parent / "c.jsonl", "--out", options_run)
    result = invoke("train", *corpus, *SHAPE, "--norm", "rmsnorm", *TRAIN, "--resume")
    assert_user_error(result, "--resume with a different configuration", "model.mlp: 'swiglu' -> 'gelu'")
    assert_user_error(invoke("train", *corpus, *SHAPE, "--norm", "groupnorm", *TRAIN), "--norm 'groupnorm': choose layernorm or rmsnorm")


def test_the_stock_export_refuses_options_and_the_remote_one_is_bvvtok_generate(options_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    assert_user_error(invoke("export", options_run, "--out", tmp_path / "hf"),
                      "GPT-NeoX has no norm = rmsnorm, mlp = swiglu", "--format hf-remote")  # fmt: skip
    assert not (tmp_path / "hf").exists()
    out = tmp_path / "remote"
    assert invoke("export", options_run, "--format", "hf-remote", "--out", out).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["norm"], config["members"][0]["mlp"]) == ("rmsnorm", "swiglu")
    assert "norm rmsnorm, mlp swiglu" in (out / "README.md").read_text()
    model = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    tok = transformers.AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    ours = invoke("generate", options_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "12")
    assert ours.exit_code == 0, ours.output
    for use_cache in (True, False):
        ids = tok("the cat", return_tensors="pt").input_ids
        out_ids = model.generate(ids, max_new_tokens=12, do_sample=False, use_cache=use_cache)
        assert tok.decode(out_ids[0]) == ours.stdout.rstrip("\n")
    bvvtok_model, _ = load_model(options_run)
    with torch.no_grad():
        assert torch.allclose(model(IDS).logits, bvvtok_model(IDS)[0], atol=1e-5)


def test_grow_and_combine_keep_the_options(options_run, char_run, tmp_path):
    grown = tmp_path / "grown"
    assert invoke("grow", options_run, "--add-layers", "1", "--out", grown).exit_code == 0
    old, _ = load_model(options_run)
    new, _ = load_model(grown)
    assert (new.config.norm, new.config.mlp, new.config.n_layer) == ("rmsnorm", "swiglu", 3)
    with torch.no_grad():
        assert torch.equal(new(IDS)[0], old(IDS)[0])  # the new block's projections are zero: the same function
    mixture = tmp_path / "mixture"
    assert invoke("combine", char_run, options_run, "--out", mixture).exit_code == 0  # members of different options
    mixed, _ = load_model(mixture)
    assert [m.config.mlp for m in mixed.members] == ["gelu", "swiglu"]
    assert invoke("export", mixture, "--format", "hf-remote", "--out", tmp_path / "mixture-hf").exit_code == 0


def test_a_run_folder_written_before_the_options_loads_as_it_was(char_run, tmp_path):
    """A config.json without `norm` and `mlp` (every run before them) is the default model: loads, generates the same."""
    old = tmp_path / "old"
    shutil.copytree(char_run, old)
    raw = json.loads((old / CONFIG).read_text())
    raw["model"] = {k: v for k, v in raw["model"].items() if k not in ("norm", "mlp")}
    (old / CONFIG).write_text(json.dumps(raw, indent=2))
    write_run_manifest(old, read_manifest(old)["run"])  # as that older bvvtok wrote it
    before, _ = load_model(char_run)
    after, _ = load_model(old)
    assert (after.config.norm, after.config.mlp) == ("layernorm", "gelu")
    with torch.no_grad():
        assert torch.equal(after(IDS)[0], before(IDS)[0])
    same = [invoke("generate", run, "--prompt", "the", "--greedy", "--max-new-tokens", "8").stdout for run in (char_run, old)]
    assert same[0] == same[1]
    assert invoke("export", old, "--out", tmp_path / "hf").exit_code == 0  # the stock export, as before
