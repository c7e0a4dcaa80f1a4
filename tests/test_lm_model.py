"""The transformer and its configuration: frozen vs trainable embedding, widening, causality, presets."""

import dataclasses

import pytest
import torch

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import (
    PRESETS,
    ModelConfig,
    RunConfig,
    TrainConfig,
    differences,
    resolve_config,
    with_substrate,
)
from bvvtok.lm.model import GPT
from bvvtok.lm.run_folder import member_configs
from bvvtok.lm.train import lr_factor

V, N_EMBED = 50, 8


def small(frozen=True, init="substrate", d_model=32) -> ModelConfig:
    return ModelConfig(vocab_size=V, n_embed=N_EMBED, d_model=d_model, n_layer=2, n_head=4, context=16, frozen=frozen, init=init)


def substrate() -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(V, N_EMBED, generator=torch.Generator().manual_seed(1)), dim=1)


def one_step(model: GPT) -> float:
    opt = torch.optim.AdamW(model.optimizer_groups(0.1), lr=1e-2)
    ids = torch.randint(0, V, (2, 17), generator=torch.Generator().manual_seed(2))
    _, loss = model(ids[:, :-1], ids[:, 1:])
    loss.backward()
    opt.step()
    return loss.item()


def test_frozen_embedding_is_a_buffer_that_never_changes():
    weight = substrate()
    model = GPT(small(), weight)
    assert "token_embeddings.weight" in dict(model.named_buffers())
    assert all(not name.startswith("token_embeddings") for name, _ in model.named_parameters())
    assert "token_embeddings.weight" in model.state_dict()
    one_step(model)
    assert torch.equal(model.token_embeddings.weight, weight)  # bit-identical


def test_unfrozen_embedding_trains_from_the_substrate_or_random():
    weight = substrate()
    model = GPT(small(frozen=False), weight)
    assert torch.equal(model.token_embeddings.weight.detach(), weight)
    one_step(model)
    assert not torch.equal(model.token_embeddings.weight.detach(), weight)
    torch.manual_seed(0)
    rand = GPT(small(frozen=False, init="random"), weight).token_embeddings.weight.detach()
    assert not torch.allclose(rand, weight)
    assert 0.5 < rand.norm(dim=1).mean() < 1.5  # rows of about unit length, like the substrate's


def test_narrow_substrate_is_widened_by_repeat_interleave():
    weight = substrate()
    model = GPT(small(d_model=32), weight)
    assert model.config.scale == 4
    ids = torch.tensor([[3, 7]])
    out = model.token_embeddings(ids)
    assert out.shape == (1, 2, 32)
    assert torch.equal(out[0, 1, :4], weight[7, 0].repeat(4))
    assert torch.equal(out[0, 0], weight[3].repeat_interleave(4))


def test_head_is_not_tied_and_counts_include_the_frozen_embedding():
    model = GPT(small(), substrate())
    assert model.head.weight.data_ptr() != model.token_embeddings.weight.data_ptr()
    counts = model.parameter_counts()
    assert counts["total"] - counts["trainable"] == V * N_EMBED
    assert GPT(small(frozen=False), substrate()).parameter_counts()["trainable"] == counts["total"]


def test_attention_is_causal():
    torch.manual_seed(0)
    model = GPT(small(), substrate()).eval()
    a = torch.randint(0, V, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % V
    la, _ = model(a)
    lb, _ = model(b)
    assert torch.allclose(la[0, :8], lb[0, :8], atol=1e-6)
    assert not torch.allclose(la[0, 8:], lb[0, 8:])


def test_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="longer than the context"):
        GPT(small(), substrate())(torch.zeros(1, 17, dtype=torch.long))


def test_no_weight_decay_on_norms_biases_and_embedding():
    model = GPT(small(frozen=False), substrate())
    decay, plain = model.optimizer_groups(0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.dim() == 2 for p in decay["params"])
    plain_names = {names[id(p)] for p in plain["params"]}
    assert "token_embeddings.weight" in plain_names and "ln_f.weight" in plain_names and "blocks.0.attn.qkv.bias" in plain_names
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("vocab, low, high", [(65_536, 330e6, 340e6), (131_072, 0.45e9, 0.5e9)])
def test_paper_preset_has_the_published_size(vocab, low, high):
    base = resolve_config("paper", None, {}, {})
    config = with_substrate(base, vocab, 1024)
    with torch.device("meta"):
        model = GPT(config.model, torch.empty(vocab, 1024))
    assert (config.model.d_model, config.model.n_layer, config.model.n_head, config.model.context) == (1024, 16, 32, 1024)
    assert low < model.parameter_counts()["total"] < high


def test_paper_preset_takes_a_step():
    config = with_substrate(resolve_config("paper", None, {}, {}), 65_536, 1024)
    torch.manual_seed(0)
    model = GPT(config.model, torch.nn.functional.normalize(torch.randn(65_536, 1024), dim=1))
    before = model.head.weight[0, :4].clone()
    opt = torch.optim.AdamW(model.optimizer_groups(0.1), lr=1e-3)
    ids = torch.randint(0, 65_536, (1, 33))
    _, loss = model(ids[:, :-1], ids[:, 1:])
    loss.backward()
    opt.step()
    assert 10.0 < loss.item() < 12.5  # about ln(65,536) = 11.09 at the start
    assert not torch.equal(model.head.weight[0, :4], before)


def test_config_precedence_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "tiny"\n[model]\nn_layer = 6\ncontext = 128\n[train]\nlr = 1\nsteps = 40\n')
    config = resolve_config(None, path, {"context": 64}, {"steps": None})
    assert config.model.n_layer == 6 and config.model.context == 64 and config.model.d_model == PRESETS["tiny"]["model"]["d_model"]
    assert config.train.lr == 1.0 and config.train.steps == 40


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[model]\nwidth = 3\n", "unknown field(s) width"),
        ("[train]\nsteps = 'many'\n", "steps = 'many' should be of type int"),
        ("[optimizer]\n", "unknown key(s) optimizer"),
        ("[model\n", "not valid TOML"),
        ('preset = "huge"\n', "unknown preset 'huge'"),
    ],
)
def test_bad_config_files(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BvvtokError) as e:
        resolve_config(None, path, {}, {})
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    "model, train, fragment",
    [
        ({"d_model": 30}, {}, "heads of even width"),
        ({"init": "random"}, {}, "init='random' needs frozen=False"),
        ({"frozen": False, "init": "zeros"}, {}, "choose substrate or random"),
        ({}, {"steps": 0}, "steps must be at least 1"),
        ({}, {"val_fraction": 0.0}, "val_fraction must be in (0, 0.5]"),
    ],
)
def test_bad_values_are_refused(model, train, fragment):
    with pytest.raises(BvvtokError) as e:
        resolve_config("tiny", None, model, train)
    assert fragment in str(e.value)


def test_substrate_wider_than_the_model_points_to_embed_dim():
    with pytest.raises(BvvtokError, match=r"`embed` with dim=256 or raise d_model$"):
        with_substrate(resolve_config("tiny", None, {}, {}), 65_536, 1024)
    with pytest.raises(BvvtokError, match="not a multiple"):
        with_substrate(resolve_config("tiny", None, {}, {}), 65_536, 48)


def test_config_round_trips_and_differences_name_the_fields():
    config = with_substrate(resolve_config("tiny", None, {}, {}), 100, 16)
    assert member_configs({"model": config.as_dict()["model"]}) == ([config.model], [1.0])  # how run folders are read back
    other = RunConfig(dataclasses.replace(config.model, n_layer=5), dataclasses.replace(config.train, lr=0.5, eval_every=7))
    assert differences(config.as_dict(), other.as_dict()) == ["model.n_layer: 4 -> 5", f"train.lr: {config.train.lr!r} -> 0.5"]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factor = lr_factor(TrainConfig(steps=100, warmup=10, min_lr_ratio=0.1))
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.55)
    assert factor(100) == pytest.approx(0.1)
    assert all(factor(s) >= factor(s + 1) for s in range(10, 100))


def _init_by_name_suffix(model: GPT) -> None:
    """The initialisation as it was written before it went by module role (frozen here, to prove nothing moved)."""
    import math

    for name, p in model.named_parameters():
        if name.startswith("token_embeddings"):
            if model.config.init == "random":
                torch.nn.init.normal_(p, std=1 / math.sqrt(model.config.n_embed))
        elif p.dim() == 1:
            torch.nn.init.zeros_(p) if name.endswith("bias") else torch.nn.init.ones_(p)
        else:
            residual = name.endswith("proj.weight")
            torch.nn.init.normal_(p, std=0.02 / math.sqrt(2 * model.config.n_layer) if residual else 0.02)


@pytest.mark.parametrize("config", [small(), small(frozen=False), small(frozen=False, init="random"),
                                    dataclasses.replace(small(d_model=64), n_layer=3, n_head=8)])  # fmt: skip
def test_initialisation_by_role_is_the_one_by_name(config, monkeypatch):
    """The same seed gives the same weights, bit for bit, as the rule that read the names' suffix `proj.weight`."""
    torch.manual_seed(3)
    by_role = GPT(config, substrate()).state_dict()
    monkeypatch.setattr(GPT, "_init_weights", _init_by_name_suffix)
    torch.manual_seed(3)
    by_name = GPT(config, substrate()).state_dict()
    assert by_role.keys() == by_name.keys()
    assert all(torch.equal(by_role[k], by_name[k]) for k in by_role)


def test_model_config_is_the_one_list_of_fields(tmp_path):
    """The flags of `bvvtok train`, a run folder's config.json and the hf-remote export's members are all made from
    ModelConfig's fields; a config.json written before a field existed reads as its default."""
    import json

    import typer

    from bvvtok.cli import app
    from bvvtok.lm.config import model_flag_fields, with_defaults
    from bvvtok.lm.export import remote_config
    from bvvtok.lm.run_folder import read_raw_config

    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    train = typer.main.get_command(app).commands["train"]
    params = {p.name for p in train.params}
    assert {name for name, *_ in model_flag_fields()} == set(fields) - {"vocab_size", "n_embed", "frozen"} <= params
    assert "unfrozen" in params  # frozen's flag, the inverse
    config = with_substrate(resolve_config("tiny", None, {}, {}), 100, 16)
    assert list(config.as_dict()["model"]) == [*fields, "scale"]
    member = remote_config([config.model], [1.0], {})["members"][0]
    assert ModelConfig(**member) == config.model
    old = {k: v for k, v in config.as_dict()["model"].items() if k != "init"}  # as if written before `init` existed
    (tmp_path / "config.json").write_text(json.dumps({"model": old, "train": config.as_dict()["train"]}))
    raw = read_raw_config(tmp_path)
    assert raw["model"]["init"] == "substrate" and with_defaults(raw["model"]) == raw["model"]
    assert differences(raw, config.as_dict()) == []  # so --resume takes it
