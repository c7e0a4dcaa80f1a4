"""The run folder: everything needed to use, prove and resume a training run, and nothing else.

Mixtures (`combine`) and grown models (`grow`) are folders of the same kind, without the
training files; `config.json` then holds `members` and `mixture_weights`, or `trainable`.

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
from bvvtok.files import MANIFEST_NAME, atomic_file, atomic_folder, check_output_folder, sha256_file, umask
from bvvtok.inputs import check_input_folder
from bvvtok.lm.config import ModelConfig
from bvvtok.lm.mixture import Mixture
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


def read_raw_config(folder: Path) -> dict[str, Any]:
    """config.json as written: {"model": ...} for one model, {"members": [...], "mixture_weights": [...]} for a mixture."""
    try:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BvvtokError(f"cannot read {folder / CONFIG} ({e}); is {folder} a run folder written by bvvtok train?") from None
    if not isinstance(raw, dict) or not ("model" in raw or "members" in raw):
        raise BvvtokError(f"{folder / CONFIG} describes no model; is {folder} a run folder written by bvvtok train?")
    return raw


def member_configs(raw: dict[str, Any]) -> tuple[list[ModelConfig], list[float]]:
    """The model configs and mixture weights of a folder's config (one member with weight 1 for a plain run)."""
    models = raw["members"] if "members" in raw else [raw["model"]]
    weights = raw.get("mixture_weights", [1.0])
    return [ModelConfig(**{k: v for k, v in m.items() if k != "scale"}) for m in models], weights


def build_model(raw: dict[str, Any]) -> GPT | Mixture:
    """The architecture a config describes, with an all-zero substrate (the weights are loaded over it)."""
    configs, weights = member_configs(raw)
    members = [GPT(c, torch.zeros(c.vocab_size, c.n_embed)) for c in configs]
    return Mixture(members, weights) if "members" in raw else members[0]


def start_run(out: Path, config: dict[str, Any], substrate: LoadedSubstrate, force: bool) -> None:
    """A fresh run folder: refuses an existing non-empty folder without force (then replaces it)."""
    check_output_folder(out, force)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_json(out / CONFIG, config)
    copy_identity(substrate.folder, out, substrate_manifest=MANIFEST_NAME)


def copy_identity(source: Path, out: Path, substrate_manifest: str = SUBSTRATE_MANIFEST) -> None:
    """The tokenizer files and the substrate's manifest: what makes a model folder's ids and embedding provable."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    shutil.copyfile(source / substrate_manifest, out / SUBSTRATE_MANIFEST)


def substrate_of(folder: Path) -> str:
    """The sha256 of the substrate manifest a model folder was trained on (its identity)."""
    path = folder / SUBSTRATE_MANIFEST
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {SUBSTRATE_MANIFEST}; is it a folder written by bvvtok train?")
    return sha256_file(path)


def write_model_folder(out: Path, source: Path, raw: dict[str, Any], state: dict[str, torch.Tensor],
                       section: dict[str, Any], force: bool) -> None:  # fmt: skip
    """A model folder made from others (combine, grow): config, weights, the source's identity files, manifest."""
    with atomic_folder(out, force) as tmp:
        write_json(tmp / CONFIG, raw)
        save_file(_tensors(state), str(tmp / WEIGHTS))
        (tmp / WEIGHTS).chmod(0o666 & ~umask())
        copy_identity(source, tmp)
        write_run_manifest(tmp, {"substrate": {"manifest_sha256": sha256_file(tmp / SUBSTRATE_MANIFEST)}, **section})


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


def load_model(folder: Path, device: torch.device | str = "cpu") -> tuple[GPT | Mixture, Tokenizer]:
    """The model of a run or mixture folder (in eval mode) and its tokenizer."""
    folder = check_input_folder(folder, "pass a folder written by bvvtok train")
    if not is_run(folder):
        raise BvvtokError(f"{folder} is not a run folder (no {CONFIG}); pass a folder written by bvvtok train")
    try:
        model = build_model(read_raw_config(folder))
    except (KeyError, TypeError, ValueError) as e:
        raise BvvtokError(f"cannot read {folder / CONFIG} ({e}); is {folder} a run folder written by bvvtok train?") from None
    path = folder / WEIGHTS
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {WEIGHTS} yet: the run has not reached its first checkpoint")
    try:
        weights = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on damaged files
        raise BvvtokError(f"cannot read {path} ({e}); the run folder is damaged") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise BvvtokError(f"{path} does not fit {folder / CONFIG}: {str(e).splitlines()[0]}") from None
    tokenizer = load_tokenizer(folder)
    if tokenizer.get_vocab_size(with_added_tokens=True) != model.vocab_size:
        raise BvvtokError(f"{folder}: the tokenizer has {tokenizer.get_vocab_size():,} tokens, the model {model.vocab_size:,}; the run folder is damaged")
    return model.to(device).eval(), tokenizer
