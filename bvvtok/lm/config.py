"""What a run is made of: the model's shape and the training schedule, from a preset, a TOML file and flags.

Precedence, lowest first: the preset, the `--config` file, the flags. A TOML file has
an optional top-level `preset` and the tables `[model]`, `[train]` and `[data]` (what
`--corpus` takes, used when no `--corpus` is given):

    preset = "tiny"
    [model]
    n_layer = 6
    [train]
    lr = 3e-4
    [data]
    corpus = ["en=corpus/en@0.7", "zh=corpus/zh@0.3"]
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file
from bvvtok.inputs import read_text_file


def flag(default: Any, help: str, choices: tuple[str, ...] = (), metavar: str = "", option: bool = False) -> Any:
    """A ModelConfig field that is also a `bvvtok train` flag (`--d-model` for d_model) with this help text.
    `choices`: the values `check` accepts. `option`: a part of the model chosen by name (bvvtok/lm/model.py has a
    table of each), which transformers' stock GPT-NeoX has at the default only."""
    metadata = {"help": help, "metavar": metavar or "|".join(choices) or "N", "choices": choices, "option": option}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ModelConfig:
    """The transformer, and the one list of its fields: bvvtok/lm/model.py reads them; a run folder's config.json,
    the exports' config.json and `bvvtok train`'s model flags are made from this list, never typed again.
    `vocab_size` and `n_embed` come from the substrate, the rest from the preset, the file and the flags.
    A config.json written before a field existed reads as that field's default."""

    vocab_size: int = 0  # the substrate's rows (tokens)
    n_embed: int = 0  # the substrate's width
    d_model: int = flag(256, "Model width (a multiple of the substrate's n_embed).")
    n_layer: int = flag(4, "Transformer blocks.")
    n_head: int = flag(8, "Attention heads.")
    context: int = flag(256, "Context length in tokens.")
    frozen: bool = True  # the embedding is the substrate, a buffer; False (--unfrozen): it trains too
    init: str = flag("substrate", "With --unfrozen: start the embedding from the substrate or random.",
                     choices=("substrate", "random"), metavar="FROM")  # fmt: skip
    # options: parts of the model chosen by name (bvvtok/lm/model.py's NORMS and MLPS), the first the papers' model
    norm: str = flag("layernorm", "The norms: layernorm (with biases) or rmsnorm.",
                     choices=("layernorm", "rmsnorm"), option=True)  # fmt: skip
    mlp: str = flag("gelu", "The MLP: gelu (4 x d_model wide) or swiglu (gated, 8/3 x d_model: about as many parameters).",
                    choices=("gelu", "swiglu"), option=True)  # fmt: skip

    @property
    def scale(self) -> int:
        """How many times each substrate value is repeated to fill d_model (1 when n_embed == d_model)."""
        return self.d_model // self.n_embed


def model_flag_fields() -> list[tuple[str, type, str, str]]:
    """`bvvtok train`'s model flags: (field, type, metavar, help) of each ModelConfig field that has a help text."""
    return [(f.name, type(f.default), f.metadata["metavar"], f.metadata["help"])
            for f in dataclasses.fields(ModelConfig) if "help" in f.metadata]  # fmt: skip


def changed_options(model: dict[str, Any]) -> dict[str, Any]:
    """The options (`flag(option=True)`) of a model section, as a dict, that differ from their defaults: none for
    the model of the papers."""
    return {f.name: model[f.name] for f in dataclasses.fields(ModelConfig)
            if f.metadata.get("option") and model.get(f.name, f.default) != f.default}  # fmt: skip


def with_defaults(model: dict[str, Any]) -> dict[str, Any]:
    """A model section of config.json with the fields it predates at their defaults: a run written before an option
    existed is a run with that option at its default (so that it loads, resumes, grows and combines as before)."""
    return {**model, **{f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name not in model}}


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 8  # sequences per micro-batch on each process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_windows: int = 64  # validation windows per evaluation (the same ones every time)
    checkpoint_every: int = 0  # 0: at every evaluation
    val_fraction: float = 0.01
    seed: int = 0
    tokens: int = 0  # a token budget instead of `steps` (0: none): steps = ceil(tokens / tokens per step)
    repeat_data: bool = True  # a source with fewer windows than the run reads is repeated (False: refused)


SEED_LIMIT = 2**63  # half of torch's 64-bit range: what a seed plus any per-question offset stays below

# Fields that may differ when a run is resumed: they change where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = frozenset({"eval_every", "checkpoint_every"})

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # minutes on 2 CPU cores, on a 256-dim substrate (`bvvtok embed --dim 256`). The 65k-wide head costs
    # about 2 ms per token there, so tokens are scarce: one sequence per step learns the most per token
    # (measured on the demo corpus: validation loss 5.28 after 64k tokens at batch 1, 5.64 at batch 2, ~5.6 at 4).
    "tiny": {
        "model": {"d_model": 256, "n_layer": 4, "n_head": 8, "context": 256},
        "train": {"steps": 800, "batch_size": 1, "lr": 2e-3, "warmup": 20, "eval_every": 100, "eval_windows": 32},
    },
    # the published models: about 335M parameters with 65k tokens, 0.5B with 131k
    "paper": {
        "model": {"d_model": 1024, "n_layer": 16, "n_head": 32, "context": 1024},
        "train": {"steps": 100_000, "batch_size": 16, "grad_accum": 4, "lr": 3e-4, "warmup": 2000,
                  "eval_every": 1000, "eval_windows": 128},
    },  # fmt: skip
    # the growth experiment (arXiv 2507.07129): "a new, larger model with d_model = 4096 and n_head = 32" on the same
    # 1024-dim substrate (repeat_interleave scale 4), grown block by block (`bvvtok grow`, `train --init-from`). Its
    # depth is not published: 16 blocks here, as the paper preset; about 3.5B parameters with 65k tokens, which
    # train on several GPUs with --strategy fsdp (train prints the memory per process before it starts).
    "paper-grow": {
        "model": {"d_model": 4096, "n_layer": 16, "n_head": 32, "context": 1024},
        "train": {"steps": 100_000, "batch_size": 8, "grad_accum": 8, "lr": 1.5e-4, "warmup": 2000,
                  "eval_every": 1000, "eval_windows": 128},
    },  # fmt: skip
}


def preset_values() -> dict[str, dict[str, Any]]:
    """Each model and train field's value under each preset, by field then preset (what `train --help` shows)."""
    values: dict[str, dict[str, Any]] = {}
    for name in PRESETS:
        config = resolve_config(name, None, {}, {})
        for field_name, value in {**dataclasses.asdict(config.model), **dataclasses.asdict(config.train)}.items():
            values.setdefault(field_name, {})[name] = value
    return values


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict[str, Any]:
        return {"model": {**dataclasses.asdict(self.model), "scale": self.model.scale}, "train": dataclasses.asdict(self.train)}


def merge_fields(base: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f.type for f in dataclasses.fields(base)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BvvtokError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    converted = {}
    for name, value in values.items():
        expected = type(getattr(base, name))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is int and isinstance(value, float) and value.is_integer():
            value = int(value)  # tokens = 9e9
        if type(value) is not expected:
            raise BvvtokError(f"{where}: {name} = {value!r} should be of type {expected.__name__}")
        converted[name] = value
    return dataclasses.replace(base, **converted)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(read_text_file(path))
    except tomllib.TOMLDecodeError as e:
        raise BvvtokError(f"{option('config_file', path, cli='--config')} is not valid TOML ({e}); see docs/train.md for the format") from None
    extra = sorted(set(data) - {"preset", "model", "train", "data"})
    if extra:
        raise BvvtokError(f"{option('config_file', path, cli='--config')}: unknown key(s) {', '.join(extra)}; use preset, [model], [train] and [data]")
    for key in ("model", "train", "data"):
        if not isinstance(data.get(key, {}), dict):
            raise BvvtokError(f"{option('config_file', path, cli='--config')}: {key} must be a table ([{key}]); see docs/train.md for the format")
    return data


def config_corpus(path: Path) -> list[str]:
    """The `[data]` table's corpus: `--corpus` values, as on the command line (empty: the file has none)."""
    data = read_config_file(path).get("data", {})
    where = option("config_file", path, cli="--config")
    unknown = sorted(set(data) - {"corpus"})
    if unknown:
        raise BvvtokError(f"{where}: unknown key(s) {', '.join(unknown)} in [data]; it takes corpus = [...]")
    corpus = data.get("corpus", [])
    corpus = [corpus] if isinstance(corpus, str) else corpus
    if not isinstance(corpus, list) or not all(isinstance(c, str) for c in corpus):
        raise BvvtokError(f'{where}: [data] corpus must be a list of paths, e.g. corpus = ["en=corpus/en@0.7"]')
    return corpus


def write_config_file(path: Path, config: RunConfig) -> Path:
    """`config` as a file `read_config_file` reads back to the same configuration (the substrate's sizes left out:
    they come from the substrate)."""
    model = {k: v for k, v in dataclasses.asdict(config.model).items() if k not in ("vocab_size", "n_embed")}
    lines = []
    for table, values in (("model", model), ("train", dataclasses.asdict(config.train))):
        lines += [f"[{table}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items()), ""]
    with atomic_file(path, force=True, part=True) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path


def resolve_config(
    preset: str | None, config_file: Path | None, model_flags: dict[str, Any], train_flags: dict[str, Any]
) -> RunConfig:
    """Preset, then the config file, then flags (None values are flags not given)."""
    file = read_config_file(config_file) if config_file else {}
    name = preset or file.get("preset") or "tiny"
    if name not in PRESETS:
        raise BvvtokError(f"unknown preset {name!r}; choose {' or '.join(PRESETS)}")
    config = RunConfig()
    for source, tables in ((f"preset {name}", PRESETS[name]), (option("config_file", config_file, cli="--config"), file)):
        model = merge_fields(config.model, tables.get("model", {}), source)
        config = RunConfig(model, merge_fields(config.train, tables.get("train", {}), source))
    flags_model = {k: v for k, v in model_flags.items() if v is not None}
    flags_train = {k: v for k, v in train_flags.items() if v is not None}
    config = RunConfig(merge_fields(config.model, flags_model, "flags"), merge_fields(config.train, flags_train, "flags"))
    check(config)
    return config


def check(config: RunConfig) -> None:
    """Values that cannot work, refused before anything is loaded."""
    m, t = config.model, config.train
    positive = {"d_model": m.d_model, "n_layer": m.n_layer, "n_head": m.n_head, "context": m.context, "steps": t.steps,
                "batch_size": t.batch_size, "grad_accum": t.grad_accum, "eval_every": t.eval_every,
                "eval_windows": t.eval_windows}  # fmt: skip
    for name, value in positive.items():
        if value < 1:
            raise BvvtokError(f"{name} must be at least 1 (got {value})")
    if m.d_model % m.n_head or (m.d_model // m.n_head) % 2:
        raise BvvtokError(f"d_model {m.d_model} must split into {m.n_head} heads of even width (rotary embeddings)")
    for f in dataclasses.fields(m):  # the fields of a few named values: init, and the options
        value, choices = getattr(m, f.name), f.metadata.get("choices")
        if choices and value not in choices:
            raise BvvtokError(f"{option(f.name)} {value!r}: choose {' or '.join(choices)}")
    if m.frozen and m.init != "substrate":
        raise BvvtokError(f"{option('init', m.init)} needs {option('frozen', False, cli='--unfrozen')} (a frozen embedding "
                          "is the substrate itself)")  # fmt: skip
    if not t.lr > 0 or not 0 <= t.min_lr_ratio <= 1 or t.warmup < 0 or t.weight_decay < 0 or t.grad_clip < 0:
        raise BvvtokError("lr must be > 0, min_lr_ratio in [0, 1], and warmup, weight_decay, grad_clip >= 0")
    if not 0 < t.val_fraction <= 0.5:
        raise BvvtokError(f"val_fraction must be in (0, 0.5] (got {t.val_fraction}); validation needs held-out text")
    if t.checkpoint_every < 0:
        raise BvvtokError("checkpoint_every must not be negative")
    if t.tokens < 0:
        raise BvvtokError(f"{option('tokens', t.tokens)} must not be negative (0: train {option('steps')} steps)")
    check_seed(t.seed)


def check_seed(seed: int) -> None:
    """Torch takes 64-bit seeds and the evaluations add offsets to one: refuse here what would fail mid-run."""
    if not 0 <= seed < SEED_LIMIT:
        raise BvvtokError(f"seed {seed} is out of range; give a seed from 0 to {SEED_LIMIT - 1}")


def with_token_budget(config: RunConfig, tokens_per_step: int) -> RunConfig:
    """`config` with its steps derived from its token budget (unchanged without one)."""
    t = config.train
    if t.tokens == 0:
        return config
    return RunConfig(config.model, dataclasses.replace(t, steps=max(1, -(-t.tokens // tokens_per_step))))


def with_substrate(config: RunConfig, vocab_size: int, n_embed: int) -> RunConfig:
    """Fill in the substrate's size; refuse a substrate the model cannot take without a projection."""
    d_model = config.model.d_model
    if n_embed > d_model:
        raise BvvtokError(
            f"the substrate is {n_embed}-dim, wider than d_model {d_model}; the recipe has no projection: "
            f"build a narrower one by `embed` with {option('dim', d_model)} or raise {option('d_model')}"
        )
    if d_model % n_embed:
        raise BvvtokError(f"d_model {d_model} is not a multiple of the substrate's {n_embed} dims; choose {option('d_model')} accordingly")
    return RunConfig(dataclasses.replace(config.model, vocab_size=vocab_size, n_embed=n_embed), config.train)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields that differ between two config.json dicts (nested keys joined by dots), except those a resume may change."""
    found = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{k}.")
        elif a != b and k not in RESUMABLE_CHANGES:
            found.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return found
