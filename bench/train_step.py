"""Tokens/s and peak memory of one training step, frozen vs unfrozen embedding.

The step is bvvtok's (bench/lm_step.py: forward, backward, clipping, fused AdamW; MFU counts the matmul
weights, see flops_per_token). Each configuration runs in its own process, so peak memory (RSS on CPU,
`torch.cuda.max_memory_allocated` on GPU) belongs to it alone. The tiny preset
runs on CPU; the paper preset runs on CUDA when there is a GPU, with bf16 autocast,
and reports MFU against the GPU's dense bf16 peak (`--peak-tflops`, default: H100 SXM).

The frozen model must save at least the embedding's gradient and two AdamW moments,
12 bytes x vocab x n_embed, against the unfrozen one: the gradient and optimizer-state bytes
(summed over the tensors after backward) and the peak memory are printed. The peak saves
less than the floor: it comes during the head's backward, before the embedding's gradient exists.

    .venv/bin/python bench/train_step.py [--steps 5] [--vocab 65536]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import torch
from rich.console import Console
from rich.table import Table

from lm_step import flops_per_token, timed_steps, trainer, unit_rows

from bvvtok.lm.config import resolve_config, with_substrate
from bvvtok.lm.train import pick_dtype


def one(preset: str, frozen: bool, device: str, steps: int, vocab: int, batch: int) -> dict:
    """Time `steps` optimizer steps after one warm-up step; report the median and peak memory."""
    base = resolve_config(preset, None, {"frozen": frozen}, {"batch_size": batch} if batch else {})
    n_embed = base.model.d_model  # a substrate as wide as the model, as published
    config = with_substrate(base, vocab, n_embed)
    dev = torch.device(device)
    run = trainer(config, unit_rows(vocab, n_embed), dev, pick_dtype("auto", dev))  # bf16 autocast on CUDA
    b, t = config.train.batch_size, config.model.context
    ids = torch.randint(0, vocab, (b, t + 1), device=dev)
    seconds = statistics.median(timed_steps(run, ids, steps + 1)[1:])
    model, optimizer = run.model, run.optimizer
    counts = model.parameter_counts()
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)  # one per trainable
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    result = {
        "preset": preset, "frozen": frozen, "device": device, "batch": b, "context": t, "vocab": vocab, "n_embed": n_embed,
        "tokens_per_s": b * t / seconds, "step_s": seconds, "trainable": counts["trainable"], "total": counts["total"],
        "optimizer_state_bytes": state, "grad_bytes": grads,
        "peak_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }  # fmt: skip
    if dev.type == "cuda":
        result["tflops"] = flops_per_token(model) * result["tokens_per_s"] / 1e12
    return result


def run(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=65_536)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
    parser.add_argument("--one", nargs=4, metavar=("PRESET", "FROZEN", "DEVICE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        preset, frozen, device, batch = args.one
        print(json.dumps(one(preset, frozen == "frozen", device, args.steps, args.vocab, int(batch))))
        return
    plans = [("tiny", "cpu", 0)] + ([("paper", "cuda", 0)] if torch.cuda.is_available() else [])  # 0: the preset's batch
    console = Console(width=150)
    if not torch.cuda.is_available():
        console.print("no CUDA device: the paper preset's GPU figures (and MFU) are skipped")
    table = Table("preset", "device", "batch", "embedding", "tokens/s", "step s", "trainable", "grads + AdamW state", "peak memory", "MFU")
    for preset, device, batch in plans:
        results = {kind: run([preset, kind, device, str(batch), "--steps", str(args.steps), "--vocab", str(args.vocab)])
                   for kind in ("frozen", "unfrozen")}  # fmt: skip
        for kind, r in results.items():
            mfu = f"{100 * r['tflops'] / args.peak_tflops:.1f}%" if "tflops" in r else "-"
            table.add_row(preset, device, f"{r['batch']} x {r['context']}", kind, f"{r['tokens_per_s']:,.0f}", f"{r['step_s']:.3f}",
                          f"{r['trainable']:,}", f"{(r['grad_bytes'] + r['optimizer_state_bytes']) / 2**20:,.0f} MiB",
                          f"{r['peak_bytes'] / 2**20:,.0f} MiB", mfu)  # fmt: skip
        f, u = results["frozen"], results["unfrozen"]
        held = {k: r["grad_bytes"] + r["optimizer_state_bytes"] for k, r in results.items()}
        floor = 12 * f["vocab"] * f["n_embed"]
        console.print(
            f"{preset} on {device}: frozen holds {(held['unfrozen'] - held['frozen']) / 2**20:,.0f} MiB less in gradients and AdamW "
            f"state (the floor, 12 x V x n_embed, is {floor / 2**20:,.0f} MiB) and peaks {(u['peak_bytes'] - f['peak_bytes']) / 2**20:,.0f} MiB "
            f"lower; speed frozen/unfrozen {f['tokens_per_s'] / u['tokens_per_s']:.2f}"
        )
    console.print(table)


if __name__ == "__main__":
    main()
