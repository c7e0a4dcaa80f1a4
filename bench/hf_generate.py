"""Greedy tokens/s through transformers (both export formats), with and without its cache, beside
`bvvtok generate` on the same model.

A run is made in a temporary folder (a vocabulary, its 16-bit substrate, d_model 128, 4 layers, context
256, a few training steps on a small corpus), exported as stock GPT-NeoX (`--format hf`, loaded with
`AutoModelForCausalLM.from_pretrained(DIR)`) and as bvvtok's own code (`--format hf-remote`, with
`trust_remote_code=True`, what a mixture is exported as). Each way generates 200 new tokens after a 16-token
prompt, once to warm up, then the fastest of 3; the tokens must be the same every way.

With the cache, each new token costs one position's work; without it, the whole sequence's again. The
vocabulary decides how much that shows: with the tests' ~120 characters (the default) the layers are
the work, while the offline 65k vocabulary (`--vocab 65k`) puts a 65,536 x 128 head on every token,
as costly at this width as the 4 layers over the whole sequence.

    PYTHONPATH=. .venv/bin/python bench/hf_generate.py [--vocab chars|65k] [--device cpu] [--new-tokens 200]

On a CPU that other work shares, set OMP_NUM_THREADS=1: a second thread that waits for a busy core
makes every small operation cost milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bvvtok.lm.config import resolve_config
from bvvtok.lm.export import export
from bvvtok.lm.generate import Sampling, generate
from bvvtok.lm.run_folder import load_model
from bvvtok.lm.train import train
from bvvtok.substrate.embed import embed_bits
from bvvtok.vocab.build import build_vocab, save_vocab

PROMPT = 16
SHAPE = dict(d_model=256, n_layer=4, n_head=8, context=256)  # the tiny preset's model


def make_run(root: Path, vocabulary: str) -> Path:
    """A small trained run: what matters here is its shape, not its quality."""
    vocab = root / "vocab"
    if vocabulary == "65k":
        save_vocab(build_vocab("65k"), vocab)
    else:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from conftest import write_char_vocab  # the tests' character vocabulary

        write_char_vocab(vocab)
    embed_bits(vocab, n_bits=16, d_model=SHAPE["d_model"])
    corpus = root / "corpus.jsonl"
    pairs = [("cat", "dog"), ("fox", "owl")] * 200
    texts = [f"The {a} saw the {b} near the river on day {i}." for i, (a, b) in enumerate(pairs)]
    corpus.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    config = resolve_config("tiny", None, SHAPE, dict(steps=5, batch_size=4, lr=1e-3, warmup=1, eval_every=5))
    train(vocab, [corpus], root / "run", config, device="cpu")
    return root / "run"


def timed(device: str, work: Callable[[], list[int]], repeats: int) -> tuple[list[int], float]:
    """The new tokens and the fastest of `repeats` runs' seconds, after a warm-up run (on a shared machine the
    fastest is the one least disturbed by others)."""
    work()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        tokens = work()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return tokens, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", choices=("chars", "65k"), default="chars")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    new = args.new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BVVTOK_CACHE_DIR"] = str(Path(tmp) / "cache")
        run = make_run(Path(tmp), args.vocab)
        models = {}
        for name, format in (("transformers, GPT-NeoX", "hf"), ("transformers, bvvtok code", "hf-remote")):
            export(run, Path(tmp) / format, format=format)
            loaded = AutoModelForCausalLM.from_pretrained(Path(tmp) / format, trust_remote_code=format == "hf-remote")
            models[name] = loaded.to(args.device).eval()
        ours, tokenizer = load_model(run, args.device)
    prompt = tokenizer.encode("The cat saw the dog near the river on day 7. The fox saw").ids[:PROMPT]
    ids = torch.tensor([prompt], device=args.device)

    def through_transformers(model: torch.nn.Module, use_cache: bool) -> list[int]:
        out = model.generate(ids, max_new_tokens=new, do_sample=False, use_cache=use_cache, eos_token_id=None)
        return out[0, len(prompt) :].tolist()

    def through_bvvtok(use_cache: bool) -> list[int]:
        return generate(ours, [prompt], Sampling(greedy=True), new, use_cache=use_cache)[0]

    ways = {name: partial(through_transformers, model) for name, model in models.items()} | {"bvvtok generate": through_bvvtok}
    speed, outputs = {}, {}
    where = f"{args.device}, {torch.get_num_threads()} threads" if args.device == "cpu" else args.device
    shape = f"d_model {SHAPE['d_model']}, {SHAPE['n_layer']} layers, {ours.vocab_size:,} tokens"
    title = f"greedy, {new} new tokens after {len(prompt)}; {shape}; {where}"
    table = Table("through", "KV cache", "tokens/s", "ms/token", title=title)
    for way, run_it in ways.items():
        for cache in (True, False):
            outputs[way, cache], seconds = timed(args.device, partial(run_it, cache), args.repeats)
            speed[way, cache] = len(outputs[way, cache]) / seconds
            table.add_row(way, "yes" if cache else "no", f"{speed[way, cache]:,.1f}", f"{1000 / speed[way, cache]:.2f}")
    console = Console(width=120)
    console.print(table)
    same = len({tuple(o) for o in outputs.values()}) == 1 and all(len(o) == new for o in outputs.values())
    for name in models:
        console.print(f"{name}: the cache is {speed[name, True] / speed[name, False]:.1f}x faster; with it, "
                      f"{speed[name, True] / speed['bvvtok generate', True]:.2f}x bvvtok generate's speed")  # fmt: skip
    console.print(f"the same {new} tokens every way: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
