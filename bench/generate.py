"""Generation speed with and without the KV cache, at 64 and 512 new tokens.

With the cache, each new token costs one position's work whatever came before, so
tokens/s stays level from 64 to 512 new tokens; without it, every token recomputes
the whole sequence and tokens/s falls as the sequence grows. A run folder
(`--run`) is measured as it is; without one, a random model of the tiny preset's
shape with a 1,024-token context and a 65,536-token vocabulary.

    .venv/bin/python bench/generate.py [--run artifacts/run-tiny] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bvvtok.lm.config import resolve_config, with_substrate
from bvvtok.lm.generate import Sampling, generate
from bvvtok.lm.model import GPT
from bvvtok.lm.run_folder import load_model

PROMPT = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run folder (its context must hold 16 + 512 tokens)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.run:
        model, _ = load_model(args.run, args.device)
    else:
        config = with_substrate(resolve_config("tiny", None, {"context": 1024}, {}), 65_536, 256)
        torch.manual_seed(0)
        model = GPT(config.model, torch.nn.functional.normalize(torch.randn(65_536, 256), dim=1)).to(args.device)
    prompt = torch.randint(0, model.config.vocab_size, (PROMPT,), generator=torch.Generator().manual_seed(0)).tolist()
    console = Console(width=120)
    table = Table("new tokens", "KV cache", "tokens/s", "ms/token", title=f"greedy generation, {args.device}, prompt {PROMPT} tokens")
    speed = {}
    for new in (64, 512):
        for cache in (True, False):
            generate(model, [prompt], Sampling(greedy=True), 4, use_cache=cache)  # warm-up
            if args.device == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
            out = generate(model, [prompt], Sampling(greedy=True), new, use_cache=cache)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - began
            speed[new, cache] = len(out[0]) / seconds
            table.add_row(str(new), "yes" if cache else "no", f"{speed[new, cache]:,.1f}", f"{1000 / speed[new, cache]:.2f}")
    console.print(table)
    console.print(
        f"tokens/s at 512 / at 64 new tokens: {speed[512, True] / speed[64, True]:.2f} with the cache, "
        f"{speed[512, False] / speed[64, False]:.2f} without; the cache is {speed[512, True] / speed[512, False]:.1f}x faster at 512"
    )


if __name__ == "__main__":
    main()
