"""A decoder-only transformer on a frozen substrate, readable top to bottom.

The published facts: rotary positions, GELU, an output head
not tied to the input embedding, and an input embedding that is the substrate
itself. bvvtok's own choices where the papers are silent: pre-norm LayerNorm,
an MLP of width 4 x d_model, biases in the linear layers, no dropout.

Options (ModelConfig fields, each a table below: a new one is an entry and its class):
`norm` layernorm (default) or rmsnorm; `mlp` gelu (default) or swiglu.

The embedding is `token_embeddings.weight` [vocab_size, n_embed] whether frozen
(a buffer: no gradient, no optimizer state, never changes) or trainable (a
Parameter). A substrate narrower than the model is widened by repeating each
value `scale = d_model / n_embed` times (`repeat_interleave`), with nothing to
learn in between: a 16-bit codebook drives a 1024-wide model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # for readers and type checkers only: at run time this file imports torch alone (see GPT)
    from bvvtok.lm.config import ModelConfig

INIT_STD = 0.02
ROPE_BASE = 10_000.0
MLP_RATIO = 4  # the MLP's width, in multiples of d_model
LAYER_NORM_EPS = 1e-5  # both norms' (LayerNorm's and RMSNorm's)
SWIGLU_MULTIPLE = 8  # SwiGLU's width is rounded up to a multiple of this


class SubstrateEmbedding(nn.Module):
    def __init__(self, weight: Tensor, d_model: int, trainable: bool) -> None:
        super().__init__()
        self.scale = d_model // weight.shape[1]
        weight = weight.detach().clone().to(torch.get_default_dtype())  # bfloat16 in from_pretrained(dtype=bfloat16)
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def forward(self, ids: Tensor) -> Tensor:
        x = F.embedding(ids, self.weight)
        return x.repeat_interleave(self.scale, dim=-1) if self.scale > 1 else x


def rotary(positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """cos and sin [*positions.shape, head_dim / 2] of the rotary angles (GPT-NeoX halves layout).

    Computed in float64 from the positions on every call (a few thousand numbers), so the
    model holds no tables: nothing to rebuild when weights are loaded onto another device.
    """
    inv_freq = ROPE_BASE ** -(torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    angles = positions.to(torch.float64)[..., None] * inv_freq
    return angles.cos().float(), angles.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[..., i], x[..., i + half]) of x [batch, heads, time, head_dim] by the position's angles.

    cos and sin are [time, half] (every sequence at the same positions) or [batch, 1, time, half].
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class KVCache:
    """The keys and values of every token seen so far, per layer, so generation computes each token once.

    `padding` [batch, time] (True = padding) marks the tokens that no other token attends to, such as the left
    padding of a batch of prompts of different lengths; tokens past its end are real.
    """

    def __init__(self, n_layer: int, padding: Tensor | None = None) -> None:
        self.keys: list[Tensor | None] = [None] * n_layer
        self.values: list[Tensor | None] = [None] * n_layer
        self.padding = padding

    @property
    def length(self) -> int:
        """The number of tokens held (every layer holds as many)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys[layer] is not None:
            k, v = torch.cat((self.keys[layer], k), dim=2), torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def count_positions(padding: Tensor, length: int) -> Tensor:
    """Each token's position [batch, length]: the number of real tokens before it (padding is no token).

    For left padding this is the position the sequence would have alone: padding changes nothing.
    """
    real = ~F.pad(padding, (0, length - padding.shape[1]))
    return (real.cumsum(dim=1) - 1).clamp(min=0)


def attention_mask(padding: Tensor, start: int, t: int) -> Tensor:
    """[batch, 1, t, start + t], True = may attend: each of the tokens start .. start + t - 1 attends to itself and
    to the earlier tokens that are not padding (so a padding slot attends to itself only, and stays finite)."""
    padding = F.pad(padding, (0, start + t - padding.shape[1]))
    query = torch.arange(start, start + t, device=padding.device)[:, None]
    keys = torch.arange(start + t, device=padding.device)[None, :]
    return (((keys < query) & ~padding[:, None, :]) | (keys == query)).unsqueeze(1)


class ResidualProjection(nn.Linear):
    """A linear layer whose output is added to the residual stream (attention's and the MLP's last): its role, not
    its name, is what GPT-2's initialisation scales by 1/sqrt(2 n_layer) and what `bvvtok grow` zeroes."""


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = ResidualProjection(config.d_model, config.d_model)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:  # fmt: skip
        """Causal self-attention; with `mask` [batch, 1, time, keys] (True = may attend) instead of plain causality."""
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, MLP_RATIO * config.d_model)
        self.proj = ResidualProjection(MLP_RATIO * config.d_model, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))


class SwiGLU(nn.Module):
    """LLaMA's gated MLP, proj(silu(gate(x)) * up(x)). Three matrices instead of two, so its width is 2/3 of the
    GELU MLP's, rounded up to a multiple of SWIGLU_MULTIPLE: about the same parameters (688 for d_model 256,
    2,736 for 1024). Biased, like every linear layer here."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = 2 * MLP_RATIO * config.d_model // 3  # rounded as LLaMA does
        width = SWIGLU_MULTIPLE * ((width + SWIGLU_MULTIPLE - 1) // SWIGLU_MULTIPLE)
        self.gate = nn.Linear(config.d_model, width)
        self.up = nn.Linear(config.d_model, width)
        self.proj = ResidualProjection(width, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.silu(self.gate(x)) * self.up(x))


# The options: each ModelConfig option's values (config.py lists the same names, a test checks) and what they build
NORMS = {"layernorm": partial(nn.LayerNorm, eps=LAYER_NORM_EPS), "rmsnorm": partial(nn.RMSNorm, eps=LAYER_NORM_EPS)}
MLPS = {"gelu": MLP, "swiglu": SwiGLU}


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = NORMS[config.norm](config.d_model)
        self.attn = Attention(config)
        self.ln_2 = NORMS[config.norm](config.d_model)
        self.mlp = MLPS[config.mlp](config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:  # fmt: skip
        x = x + self.attn(self.ln_1(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, substrate: Tensor) -> None:
        """`substrate` [vocab_size, n_embed]: the frozen embedding, or the trainable one's start (`init`).

        `config`: bvvtok.lm.config.ModelConfig, the one list of the fields read here, or any object with them (an
        exported Hugging Face folder runs this file as it is, on its config.json's members, which are those fields).
        """
        super().__init__()
        self.config = config
        if tuple(substrate.shape) != (config.vocab_size, config.n_embed):
            raise ValueError(f"substrate {list(substrate.shape)} != [{config.vocab_size}, {config.n_embed}]")
        self.token_embeddings = SubstrateEmbedding(substrate, config.d_model, trainable=not config.frozen)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = NORMS[config.norm](config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's, by each module's role: linear layers normal(0.02) with zero biases, the projections into the
        residual stream (ResidualProjection) scaled by 1/sqrt(2 n_layer); a trainable embedding keeps the substrate's
        values or, `init` random, gets rows of about unit length. Norms keep the identity they are built as."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                residual = isinstance(module, ResidualProjection)
                nn.init.normal_(module.weight, std=INIT_STD / math.sqrt(2 * self.config.n_layer) if residual else INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, SubstrateEmbedding) and isinstance(module.weight, nn.Parameter):
                if self.config.init == "random":  # rows of about unit length, like the substrate's
                    nn.init.normal_(module.weight, std=1 / math.sqrt(self.config.n_embed))

    def forward(self, ids: Tensor, targets: Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False, positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Logits [batch, time, vocab]; with targets, also the mean cross-entropy (nats per token).

        With a `cache`, `ids` continue the sequences the cache holds (generation), and no token attends to
        its `padding`. Each token's position is the number of real tokens before it, unless `positions`
        [batch, time] say otherwise. `last_only` computes the logits of the last position only (the head is
        the costliest layer).
        """
        start = cache.length if cache is not None else 0
        b, t = ids.shape
        context = self.config.context
        if start + t > context:
            held = f" ({start} of them in the cache)" if start else ""
            raise ValueError(
                f"a sequence of {start + t} tokens{held} is longer than the context {context} of this model: "
                f"give at most {context} tokens (read a longer text in windows of {context})"
            )
        padding = cache.padding if cache is not None else None
        if positions is None and padding is not None:
            positions = count_positions(padding, start + t)[:, start:]
        elif positions is None:
            positions = torch.arange(start, start + t, device=ids.device)
        cos, sin = rotary(positions, self.config.d_model // self.config.n_head)
        if positions.dim() == 2:  # each sequence its own: [batch, 1 (every head), time, half]
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None
        if padding is not None or (start > 0 and t > 1):  # not plain causality
            mask = attention_mask(padding if padding is not None else ids.new_zeros(b, 0, dtype=torch.bool), start, t)
        x = self.token_embeddings(ids)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, cache, i)
        logits = self.head(self.ln_f(x[:, -1:] if last_only else x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))

    @property
    def context(self) -> int:
        return self.config.context

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def new_cache(self, padding: Tensor | None = None) -> KVCache:
        return KVCache(self.config.n_layer, padding)

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts(self)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        return optimizer_groups(self, weight_decay)


def mean_logits(logits: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """A mixture's logits: the weighted mean of its members' (arXiv 2507.07129), the weights scaled to sum to 1.

    Written once for bvvtok's Mixture and the exported model, so that both give the very same numbers.
    """
    if len(logits) == 1:  # a single model: its own logits, without the arithmetic
        return logits[0]
    total = float(sum(weights))
    scaled = torch.tensor([float(w) / total for w in weights], dtype=logits[0].dtype, device=logits[0].device)
    return torch.einsum("m,m...->...", scaled, torch.stack(list(logits)))


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters, and all weights including a frozen embedding (the papers count it)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    fixed += sum(b.numel() for name, b in model.named_buffers() if name.endswith("token_embeddings.weight"))
    return {"trainable": trainable, "total": trainable + fixed}


def optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: decay on matrices, none on norms, biases, or an embedding.

    The embedding is not decayed so that frozen and unfrozen runs differ only in
    whether the embedding moves, not in a pull of its rows towards zero.
    """
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 and "token_embeddings" not in name else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
