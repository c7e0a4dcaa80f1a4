"""The run folder: everything needed to use, prove and resume a training run, and nothing else.

    config.json          the model and training configuration (model.n_embed, d_model, scale, frozen ...)
    model.safetensors    all weights, the embedding included (`token_embeddings.weight`)
    tokenizer.json ...   the substrate's tokenizer files
    substrate.json       the substrate's manifest; its sha256 is recorded in bvvtok.json
    metrics.csv          step, train_loss, val_loss, lr, tokens_per_s
    loss.png             train and validation curves
    checkpoint/          model.safetensors, optimizer.pt (optimizer, scheduler, RNG), state.json
    bvvtok.json          the manifest: the run's identity and the sha256 of every top-level file

Every file is replaced atomically; the checkpoint folder is swapped in whole, so a
run killed at any moment resumes from a complete checkpoint. The top-level
weights are a hard link to the checkpoint's (no second copy on disk).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from bvvtok import __version__
from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, atomic_file, atomic_folder, check_output_folder, umask
from bvvtok.lm.config import RunConfig, config_from_dict
from bvvtok.lm.model import GPT
from bvvtok.manifest import write_json, write_manifest
from bvvtok.substrate.load import LoadedSubstrate
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES, load_tokenizer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SUBSTRATE_MANIFEST = "substrate.json"
LOSS_PNG = "loss.png"
CHECKPOINT = "checkpoint"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"


def is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file()


def read_config(folder: Path) -> RunConfig:
    try:
        return config_from_dict(json.loads((folder / CONFIG).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BvvtokError(f"cannot read {folder / CONFIG} ({e}); is {folder} a run folder written by bvvtok train?") from None


def start_run(out: Path, config: RunConfig, substrate: LoadedSubstrate, force: bool) -> None:
    """A fresh run folder: refuses an existing non-empty folder without force (then replaces it)."""
    check_output_folder(out, force)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_json(out / CONFIG, config.as_dict())
    for name in TOKENIZER_FILES:
        if (substrate.folder / name).is_file():
            shutil.copyfile(substrate.folder / name, out / name)
    shutil.copyfile(substrate.folder / MANIFEST_NAME, out / SUBSTRATE_MANIFEST)


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # {"optimizer": ..., "scheduler": ..., "rng": ...}
    state: dict[str, Any]  # JSON: step, data key, substrate hash


def save_checkpoint(out: Path, checkpoint: Checkpoint, run_info: dict[str, Any]) -> None:
    """Swap in a new checkpoint/, link its weights to the top level, and rewrite the manifest."""
    with atomic_folder(out / CHECKPOINT, force=True) as tmp:
        save_file(_tensors(checkpoint.model), str(tmp / WEIGHTS))
        (tmp / WEIGHTS).chmod(0o666 & ~umask())  # safetensors creates its file private
        torch.save(checkpoint.optimizer, tmp / OPTIMIZER)
        write_json(tmp / STATE, checkpoint.state)
    with atomic_file(out / WEIGHTS, force=True) as tmp:
        tmp.unlink()
        try:
            os.link(out / CHECKPOINT / WEIGHTS, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(out / CHECKPOINT / WEIGHTS, tmp)
    write_run_manifest(out, run_info)


def load_checkpoint(out: Path) -> Checkpoint:
    folder = out / CHECKPOINT
    if not (folder / STATE).is_file():
        raise BvvtokError(f"{out} has no checkpoint to resume from; start it again without --resume (with --force)")
    try:
        return Checkpoint(
            load_file(str(folder / WEIGHTS)),
            torch.load(folder / OPTIMIZER, weights_only=True, map_location="cpu"),
            json.loads((folder / STATE).read_text(encoding="utf-8")),
        )
    except Exception as e:  # a damaged checkpoint, whatever the library raised
        raise BvvtokError(f"cannot read the checkpoint in {folder} ({e}); start the run again with --force") from None


def write_run_manifest(out: Path, run_info: dict[str, Any]) -> None:
    """bvvtok.json: the run section and the sha256 of every top-level file (the checkpoint is not hashed)."""
    write_manifest(out, {"bvvtok_version": __version__, "run": run_info})


def load_model(folder: Path, device: torch.device | str = "cpu") -> tuple[GPT, Tokenizer]:
    """The trained model of a run folder (in eval mode) and its tokenizer."""
    folder = Path(folder)
    if not folder.is_dir() or not is_run(folder):
        raise BvvtokError(f"{folder} is not a run folder (no {CONFIG}); pass a folder written by bvvtok train")
    config = read_config(folder)
    path = folder / WEIGHTS
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {WEIGHTS} yet: the run has not reached its first checkpoint")
    try:
        weights = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on damaged files
        raise BvvtokError(f"cannot read {path} ({e}); the run folder is damaged") from None
    model = GPT(config.model, torch.zeros(config.model.vocab_size, config.model.n_embed))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise BvvtokError(f"{path} does not fit {folder / CONFIG}: {str(e).splitlines()[0]}") from None
    tokenizer = load_tokenizer(folder)
    if tokenizer.get_vocab_size(with_added_tokens=True) != config.model.vocab_size:
        raise BvvtokError(f"{folder}: the tokenizer has {tokenizer.get_vocab_size():,} tokens, the model {config.model.vocab_size:,}; the run folder is damaged")
    return model.to(device).eval(), tokenizer

