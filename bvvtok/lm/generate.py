"""`bvvtok generate` as a library call: a run folder and prompts in, continuations out.

    model, tokenizer = load_model(Path("artifacts/run-tiny"))
    outputs = generate(model, [tokenizer.encode("Once").ids], Sampling(greedy=True), max_new_tokens=40)

With the KV cache (the default) each new token costs one position's worth of work,
whatever has been generated before it; `use_cache=False` recomputes the whole sequence
at every step (the reference the cache is tested against: greedy outputs are identical).
Prompts of different lengths are batched by padding them on the left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import check_seed
from bvvtok.lm.mixture import Mixture
from bvvtok.lm.model import GPT


@dataclass(frozen=True)
class Sampling:
    greedy: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def check(self) -> None:
        if not self.temperature > 0:
            raise BvvtokError(f"{option('temperature')} must be > 0 (got {self.temperature}); use {option('greedy', True)} "
                              "for the most likely tokens")  # fmt: skip
        if self.top_k is not None and self.top_k < 1:
            raise BvvtokError(f"{option('top_k')} must be at least 1 (got {self.top_k})")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise BvvtokError(f"{option('top_p')} must be in (0, 1] (got {self.top_p})")
        check_seed(self.seed)


def next_tokens(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of logits [batch, vocab]: argmax, or a draw after temperature, top-k and top-p."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)  # mass of the tokens ranked higher
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before >= sampling.top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


@torch.no_grad()
def generate(
    model: GPT | Mixture,
    prompts: list[list[int]],
    sampling: Sampling,
    max_new_tokens: int,
    stop_ids: frozenset[int] = frozenset(),
    use_cache: bool = True,
    on_token: Callable[[int, int], bool] | None = None,
    pad_id: int = 0,
) -> list[list[int]]:
    """The new tokens of each prompt (a stop id ends a sequence and is kept).

    `on_token(index, token)` is called as tokens come; returning True ends that sequence
    (e.g. a stop text appeared).
    """
    sampling.check()
    if max_new_tokens < 1:
        raise BvvtokError(f"{option('max_new_tokens')} must be at least 1 (got {max_new_tokens})")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise BvvtokError("a prompt is empty after tokenization; give some text")
    context = model.context
    longest = max(map(len, prompts))
    if longest + max_new_tokens > context:
        raise BvvtokError(
            f"a prompt of {longest} tokens + {option('max_new_tokens', max_new_tokens)} exceeds the model's context of "
            f"{context}; lower {option('max_new_tokens')} to {max(0, context - longest)} or shorten the prompt"
        )
    device = next(model.parameters()).device
    model.eval()
    ids = torch.tensor([[pad_id] * (longest - len(p)) + p for p in prompts], device=device)
    padding = torch.tensor([[True] * (longest - len(p)) + [False] * len(p) for p in prompts], device=device)
    padding = padding if padding.any() else None
    generator = None if sampling.greedy else torch.Generator().manual_seed(sampling.seed)
    outputs: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    cache = model.new_cache(padding)
    logits, _ = model(ids, cache=cache, last_only=True)
    for _ in range(max_new_tokens):
        chosen = next_tokens(logits[:, -1], sampling, generator)
        for i, token in enumerate(chosen.tolist()):
            if done[i]:
                continue
            outputs[i].append(token)
            stop = on_token(i, token) if on_token else False
            done[i] = token in stop_ids or bool(stop)
        if all(done):
            break
        ids = torch.cat((ids, chosen[:, None]), dim=1)
        if use_cache:
            logits, _ = model(chosen[:, None], cache=cache, last_only=True)
        else:  # the whole sequence again, through a fresh cache that only carries the padding
            logits, _ = model(ids, cache=model.new_cache(padding), last_only=True)
    return outputs
