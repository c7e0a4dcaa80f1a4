"""The loss of a model on a run's validation windows: what `bvvtok train` logs at every evaluation and
`bvvtok eval --held-out` reports, computed by one function so that the two agree.

    windows = validation_windows(validation, model.context, tokenizer, model.vocab_size, device)
    figures = validation_loss(model, windows, batch_size=8)

The loss is the mean over every predicted token, `</s>` included; bits per byte counts the text tokens only
(bvvtok.lm.text_bytes). Under torchrun each process reads its share of the windows and the sums are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from bvvtok.lm import distributed
from bvvtok.lm.distributed import World, autocast
from bvvtok.lm.text_bytes import bits_per_byte, special_ids, text_bytes
from bvvtok.lm.windows import Validation, batch


@dataclass(frozen=True)
class ValidationWindows:
    """The windows validation reads, with what bits per byte needs of them: worked out once, the same every time."""

    validation: Validation
    context: int
    special: torch.Tensor  # bool [vocab_size] on the model's device: the targets that are not text
    window_bytes: tuple[int, ...]  # the UTF-8 bytes of each window's text targets


@dataclass(frozen=True)
class ValidationLoss:
    loss: float  # mean nats per predicted token, `</s>` included
    bits_per_byte: float | None  # the text tokens' loss in bits over their bytes (None: no text)
    text_tokens: int  # the predicted tokens that are text
    text_bytes: int  # their UTF-8 bytes
    tokens: int = 0  # every predicted token


def pooled(figures: Sequence[ValidationLoss]) -> ValidationLoss:
    """Several sets of windows as one: the loss over all their tokens, bits per byte over all their text."""
    if len(figures) == 1:
        return figures[0]
    tokens, text_bytes = sum(f.tokens for f in figures), sum(f.text_bytes for f in figures)
    bits = [(f.bits_per_byte, f.text_bytes) for f in figures if f.bits_per_byte is not None]
    return ValidationLoss(sum(f.loss * f.tokens for f in figures) / tokens,
                          sum(b * n for b, n in bits) / text_bytes if bits and text_bytes else None,
                          sum(f.text_tokens for f in figures), text_bytes, tokens)  # fmt: skip


def validation_windows(validation: Validation, context: int, tokenizer: Tokenizer, vocab_size: int,
                       device: torch.device | str) -> ValidationWindows:  # fmt: skip
    nbytes = tuple(text_bytes(tokenizer, validation.split.window(int(i), context)[1:]) for i in validation.windows)
    return ValidationWindows(validation, context, special_ids(tokenizer, vocab_size).to(device), nbytes)


@torch.no_grad()
def validation_loss(net: torch.nn.Module, windows: ValidationWindows, batch_size: int,
                    dtype: torch.dtype = torch.float32, world: World | None = None,
                    on_batch: Callable[[], None] | None = None) -> ValidationLoss:  # fmt: skip
    """The loss of `net` on the windows, `batch_size` windows per forward, autocast to `dtype`; with `world`, shared
    among its processes (every process must call it). No world: one process on the model's device."""
    world = world if world is not None else World(0, 1, next(net.parameters()).device)
    validation = windows.validation
    positions = range(world.rank, len(validation.windows), world.size)
    mine = [(validation.windows[i], windows.window_bytes[i]) for i in positions]
    most = -(-len(validation.windows) // world.size)  # the windows of the rank with the most
    total, tokens, text_loss, text_tokens, nbytes = 0.0, 0.0, 0.0, 0, 0
    was_training = net.training
    net.eval()
    for start in range(0, most, batch_size):  # as many forwards on every rank: a sharded forward is collective
        part = mine[start : start + batch_size]
        chosen = np.array([w for w, _ in part] or validation.windows[:1])
        x, y = batch(validation.split, chosen, windows.context, world.device)
        with autocast(world.device, dtype):
            logits, _ = net(x)
        if part:  # a rank out of windows ran its forward for the others' sake
            losses = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
            text = ~windows.special[y.flatten()]
            total += losses.sum().item()
            tokens += y.numel()
            text_loss += losses[text].sum().item()
            text_tokens += int(text.sum().item())
            nbytes += sum(b for _, b in part)
        if on_batch:
            on_batch()
    net.train(was_training)
    sums = distributed.sum_all(world, [total, tokens, text_loss, text_tokens, nbytes])
    total, tokens, text_loss, text_tokens, nbytes = sums
    return ValidationLoss(total / tokens, bits_per_byte(text_loss, int(nbytes)), int(text_tokens), int(nbytes), int(tokens))
