"""bvvtok's GPT as transformers' stock GPT-NeoX, and back: the same function under another name.

bvvtok's model is, layer for layer, a GPT-NeoX with a sequential residual (`use_parallel_residual`
false), rotary positions on the whole head (GPT-NeoX's halves layout, theta 10,000), exact GELU, an
MLP of 4 x d_model, LayerNorm (eps 1e-5) with biases, biased linear layers and an untied head: with
every option (config.ModelConfig) at its default; a model with another is refused (check_stock). Two
things differ only in layout:
- QKV: bvvtok's rows are all queries, then all keys, then all values (each head after head);
  GPT-NeoX's are head after head, each its query, key and value.
- The embedding: bvvtok keeps the substrate [vocab, n_embed] and widens it on the fly by
  repeat_interleave(scale); GPT-NeoX's `embed_in` is [vocab, d_model], so the export stores the
  widened rows, and the import takes every scale-th column back (after checking the repetition).
Nothing here imports transformers: the config is written as the JSON transformers reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import ModelConfig, changed_options
from bvvtok.lm.model import INIT_STD, LAYER_NORM_EPS, MLP_RATIO, ROPE_BASE

# bvvtok's block parts and GPT-NeoX's names for them (weight and bias each), QKV aside
BLOCK_NAMES = {
    "ln_1": "input_layernorm",
    "attn.proj": "attention.dense",
    "ln_2": "post_attention_layernorm",
    "mlp.fc": "mlp.dense_h_to_4h",
    "mlp.proj": "mlp.dense_4h_to_h",
}
TOP_NAMES = {"ln_f.weight": "gpt_neox.final_layer_norm.weight", "ln_f.bias": "gpt_neox.final_layer_norm.bias",
             "head.weight": "embed_out.weight"}  # fmt: skip
# The GPT-NeoX settings that make it bvvtok's model; an import refuses a folder that differs.
FIXED = {
    "model_type": "gpt_neox",
    "hidden_act": "gelu",
    "use_parallel_residual": False,
    "attention_bias": True,
    "tie_word_embeddings": False,
    "layer_norm_eps": LAYER_NORM_EPS,
    "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_BASE, "partial_rotary_factor": 1.0},
    "rotary_pct": 1.0,  # the same two facts under the names of transformers 4
    "rotary_emb_base": ROPE_BASE,
    "attention_dropout": 0.0,
    "hidden_dropout": 0.0,
}


def check_stock(config: ModelConfig) -> None:
    """Refuse a model that transformers' GPT-NeoX cannot be: bvvtok's model is GPT-NeoX with every option
    (config.flag(option=True)) at its default, so an option chosen otherwise is refused until this file maps it."""
    shown = ", ".join(f"{k} = {v}" for k, v in changed_options(dataclasses.asdict(config)).items())
    if shown:
        raise BvvtokError(f"transformers' stock GPT-NeoX has no {shown}: export this model with {option('format', 'hf-remote')} (bvvtok's own code)")


def _heads_interleaved(t: Tensor, n_head: int) -> Tensor:
    """QKV rows [q heads; k heads; v heads] -> [head 0: q k v; head 1: q k v; ...] (bias or weight)."""
    q, k, v = t.chunk(3, dim=0)
    shape = (n_head, -1, *t.shape[1:])
    return torch.stack([q.reshape(shape), k.reshape(shape), v.reshape(shape)], dim=1).reshape(t.shape)


def _heads_grouped(t: Tensor, n_head: int) -> Tensor:
    """The inverse of `_heads_interleaved`."""
    per_head = t.reshape(n_head, 3, -1, *t.shape[1:])
    return torch.cat([per_head[:, i].reshape(-1, *t.shape[1:]) for i in range(3)], dim=0)


def names(config: ModelConfig) -> dict[str, str]:
    """bvvtok's name -> GPT-NeoX's, for every weight but the embedding."""
    found = {}
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        for part, name in {**BLOCK_NAMES, "attn.qkv": "attention.query_key_value"}.items():
            found |= {f"{ours}{part}.{kind}": f"{theirs}{name}.{kind}" for kind in ("weight", "bias")}
    return found | TOP_NAMES


def to_neox(state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """GPT-NeoX's weights for a bvvtok GPT's state dict."""
    out = {theirs: state[ours] for ours, theirs in names(config).items()}
    for key in (k for k in out if ".query_key_value." in k):
        out[key] = _heads_interleaved(out[key], config.n_head)
    out["gpt_neox.embed_in.weight"] = state["token_embeddings.weight"].repeat_interleave(config.scale, dim=1)
    return {k: v.detach().to("cpu").contiguous() for k, v in out.items()}


def from_neox(state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """A bvvtok GPT's state dict from GPT-NeoX's weights (`to_neox` undone, bit for bit)."""
    widened = state["gpt_neox.embed_in.weight"]
    substrate = widened[:, :: config.scale]
    if not torch.equal(substrate.repeat_interleave(config.scale, dim=1), widened):
        raise BvvtokError(f"embed_in is not a {config.n_embed}-dim substrate repeated {config.scale} times; "
                          "this folder's embedding was trained or edited: it cannot be a bvvtok run")  # fmt: skip
    out = {ours: state[theirs] for ours, theirs in names(config).items()}
    for key in (k for k in out if k.endswith(("attn.qkv.weight", "attn.qkv.bias"))):
        out[key] = _heads_grouped(out[key], config.n_head)
    out["token_embeddings.weight"] = substrate
    return {k: v.contiguous() for k, v in out.items()}


def neox_config(config: ModelConfig, token_ids: dict[str, int], substrate: dict[str, Any]) -> dict[str, Any]:
    """config.json for transformers' GPTNeoXForCausalLM, with bvvtok's facts beside (transformers keeps unknown keys
    as attributes: `config.n_embed`, `config.scale` as the published model cards read them, and `config.bvvtok`)."""
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        **FIXED,
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "intermediate_size": MLP_RATIO * config.d_model,
        "max_position_embeddings": config.context,
        "initializer_range": INIT_STD,
        "use_cache": True,
        "dtype": "float32",
        **token_ids,
        "n_embed": config.n_embed,
        "scale": config.scale,
        "bvvtok": {"model": dataclasses.asdict(config), "substrate": substrate},
    }


def model_config(neox: dict[str, Any]) -> ModelConfig:
    """The bvvtok model a GPT-NeoX config.json describes; refused unless it is bvvtok's shape exactly."""
    recorded = neox.get("bvvtok", {}).get("model") if isinstance(neox.get("bvvtok"), dict) else None
    if neox.get("model_type") != "gpt_neox" or not isinstance(recorded, dict):
        raise BvvtokError("config.json is not a GPT-NeoX model exported by bvvtok (no `bvvtok.model` section)")
    try:
        config = ModelConfig(**recorded)
    except TypeError as e:
        raise BvvtokError(f"config.json's bvvtok.model section does not describe a bvvtok model ({e})") from None
    options = ", ".join(f"{k} = {v}" for k, v in changed_options(recorded).items())
    if options:
        raise BvvtokError(f"config.json's bvvtok.model section has {options}, which GPT-NeoX has not; bvvtok did not export this folder")
    expected = neox_config(config, {}, {})
    differ = [k for k in (*FIXED, "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                          "intermediate_size", "max_position_embeddings") if k in neox and neox[k] != expected[k]]  # fmt: skip
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads") if k not in neox]
    if differ or missing:
        shown = ", ".join(f"{k} {neox.get(k)!r} (bvvtok's: {expected[k]!r})" for k in differ + missing)
        raise BvvtokError(f"config.json is not bvvtok's shape of GPT-NeoX: {shown}")
    return config
