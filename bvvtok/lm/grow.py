"""`bvvtok grow`: a run with N new blocks stacked on top (the "Growing Transformers" recipe).

The new blocks start as the identity: their two output projections (attention and MLP)
are zero, so each adds nothing to the residual stream and the grown model computes
exactly the old one's function (a test compares the logits). Their other weights are
initialised as usual, so the gradients reaching the projections are not zero and training
moves them at once. The folder records `trainable`: the new blocks, the final norm and the
head, which `bvvtok train --init-from` trains while the old blocks stay as they were.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file
from bvvtok.lm.config import check_seed
from bvvtok.lm.memory import available_memory
from bvvtok.lm.model import GPT, Block, ResidualProjection
from bvvtok.lm.run_folder import WEIGHTS, load_model, read_raw_config, write_model_folder
from bvvtok.output import new_output


def grow(run: Path, add_layers: int, out: Path, seed: int = 0, force: bool = False) -> Path:
    run = Path(run)
    if add_layers < 1:
        raise BvvtokError(f"{option('add_layers')} must be at least 1 (got {add_layers})")
    check_seed(seed)
    with new_output(out, force, [run], kind="run"):
        raw, state, section = _grown(run, add_layers, seed)
        write_model_folder(out, run, raw, state, section, force, [run], kind="run")
    return out


def _grown(run: Path, add_layers: int, seed: int) -> tuple[dict, dict, dict]:
    """The grown model's config, weights and manifest section."""
    model, _ = load_model(run)
    if not isinstance(model, GPT):
        raise BvvtokError(f"{run} is a mixture; grow one of its runs")
    check_memory(model, add_layers, available_memory())
    old = model.config
    config = dataclasses.replace(old, n_layer=old.n_layer + add_layers)
    torch.manual_seed(seed)
    grown = GPT(config, model.token_embeddings.weight)
    grown.load_state_dict(model.state_dict(), strict=False)  # the old blocks, embedding, final norm and head
    for block in grown.blocks[old.n_layer :]:
        for proj in (m for m in block.modules() if isinstance(m, ResidualProjection)):
            torch.nn.init.zeros_(proj.weight)
            if proj.bias is not None:
                torch.nn.init.zeros_(proj.bias)
    new = [f"blocks.{i}.*" for i in range(old.n_layer, config.n_layer)]
    raw = {"model": {**read_raw_config(run)["model"], "n_layer": config.n_layer}, "trainable": [*new, "ln_f.*", "head.*"]}
    section = {"grown": {"from": run.name, "weights_sha256": sha256_file(run / WEIGHTS), "added_layers": add_layers}}
    return raw, grown.state_dict(), section


def grown_bytes(model: GPT, add_layers: int) -> int:
    """What growing allocates besides the loaded model: the grown model (a copy of the old weights and the
    new blocks, float32) and the same again while saving it (safetensors serialises every tensor to bytes)."""
    with torch.device("meta"):  # the shape of one new block, without its memory
        block = Block(model.config)
    new = add_layers * sum(t.nbytes for t in block.state_dict().values())
    old = sum(t.nbytes for t in model.state_dict().values())
    return 2 * (old + new)


def check_memory(model: GPT, add_layers: int, available: int | None) -> None:
    """Refuse a grown model that cannot fit in `available` bytes (None: unknown, not checked)."""
    needed = grown_bytes(model, add_layers)
    if available is not None and needed > available:
        raise BvvtokError(
            f"{option('add_layers', add_layers)} needs about {needed / 2**30:,.1f} GiB of memory and "
            f"{available / 2**30:,.1f} GiB is available; add fewer layers"
        )
