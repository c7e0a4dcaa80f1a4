"""The run folder: everything needed to use, prove and resume a training run, and nothing else.

Mixtures (`combine`) and grown models (`grow`) are folders of the same kind, without the
training files; `config.json` then holds `members` and `mixture_weights`, or `trainable`.

    config.json          the model and training configuration (model.n_embed, d_model, scale, frozen ...)
    model.safetensors    all weights, the embedding included (`token_embeddings.weight`)
    tokenizer.json ...   the substrate's tokenizer files
    substrate.json       the substrate's manifest; its sha256 is recorded in bvvtok.json
    metrics.csv          step, train_loss, val_loss, lr, tokens_per_s, val_bpb (step 0: validation only)
    loss.png             train and validation curves
    checkpoint/          model.safetensors, optimizer.pt (optimizer, scheduler, RNG), state.json
    bvvtok.json          the manifest: the run's identity and the sha256 of every top-level file

The folder starts whole at step 0 (config, identity, manifest); each checkpoint replaces
checkpoint/, the top-level weights, the logs and the manifest together (bvvtok.commit),
so a run killed at any moment resumes from a complete checkpoint whose manifest matches.
The top-level weights are a hard link to the checkpoint's (no second copy on disk).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from bvvtok import __version__
from bvvtok.commit import Update, recover_for_reading, replace_folder
from bvvtok.errors import BvvtokError, option
from bvvtok.files import MANIFEST_NAME, load_tensors, sha256_file, umask
from bvvtok.inputs import check_input_folder
from bvvtok.lm.config import ModelConfig, TrainConfig, with_defaults
from bvvtok.lm.mixture import Mixture
from bvvtok.lm.model import GPT
from bvvtok.lm.proof import CONFIG, SUBSTRATE_MANIFEST, WEIGHTS, ModelView, prove
from bvvtok.manifest import check_files, dump_json, manifest_kind, read_manifest, write_json, write_manifest
from bvvtok.output import atomic_folder
from bvvtok.substrate.load import LoadedSubstrate
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES, load_tokenizer

LOSS_PNG = "loss.png"
CHECKPOINT = "checkpoint"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"


def is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file()


def is_started_run(folder: Path) -> bool:
    """A run `bvvtok train` started that never reached its first checkpoint: nothing in it to continue or to lose.
    Not a mixture, a grown or imported model, nor an export: they have no checkpoint either, and are not runs
    `train` started (no step in their manifest)."""
    if not is_run(folder) or has_checkpoint(folder):
        return False
    try:
        manifest = read_manifest(folder)
    except BvvtokError:
        return False
    run = manifest.get("run")
    return manifest_kind(manifest) == "run" and isinstance(run, dict) and "step" in run


def read_raw_config(folder: Path) -> dict[str, Any]:
    """config.json as written: {"model": ...} for one model, {"members": [...], "mixture_weights": [...]} for a mixture;
    a model field it predates reads as its default (config.with_defaults)."""
    try:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BvvtokError(f"cannot read {folder / CONFIG} ({e}); is {folder} a run folder written by bvvtok train?") from None
    if not isinstance(raw, dict) or not ("model" in raw or "members" in raw):
        raise BvvtokError(f"{folder / CONFIG} describes no model; is {folder} a run folder written by bvvtok train?")
    if isinstance(raw.get("model"), dict):  # the fields added since it was written, at their defaults
        raw["model"] = with_defaults(raw["model"])
    if isinstance(raw.get("members"), list):
        raw["members"] = [with_defaults(m) if isinstance(m, dict) else m for m in raw["members"]]
    return raw


def member_configs(raw: dict[str, Any]) -> tuple[list[ModelConfig], list[float]]:
    """The model configs and mixture weights of a folder's config (one member with weight 1 for a plain run)."""
    models = raw["members"] if "members" in raw else [raw["model"]]
    weights = raw.get("mixture_weights", [1.0])
    return [ModelConfig(**{k: v for k, v in m.items() if k != "scale"}) for m in models], weights


def train_config(raw: dict[str, Any]) -> TrainConfig:
    """The training configuration of a folder's config; TrainConfig's defaults where it has none (a mixture, an
    import, a grown model), and for the fields it predates."""
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    return TrainConfig(**{f.name: train[f.name] for f in fields(TrainConfig) if f.name in train})


def build_model(raw: dict[str, Any]) -> GPT | Mixture:
    """The architecture a config describes, with an all-zero substrate (the weights are loaded over it)."""
    configs, weights = member_configs(raw)
    members = [GPT(c, torch.zeros(c.vocab_size, c.n_embed)) for c in configs]
    return Mixture(members, weights) if "members" in raw else members[0]


def start_run(out: Path, config: dict[str, Any], substrate: LoadedSubstrate, run_info: dict[str, Any]) -> None:
    """A fresh run folder at step 0, swapped in whole (the caller holds `out` and decided it may be replaced)."""
    with replace_folder(out) as tmp:
        write_json(tmp / CONFIG, config)
        copy_identity(substrate.folder, tmp, substrate_manifest=MANIFEST_NAME)
        write_run_manifest(tmp, {**run_info, "step": 0})


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
                       section: dict[str, Any], force: bool, inputs: Sequence[Path], kind: str,
                       substrate_manifest: str = SUBSTRATE_MANIFEST) -> None:  # fmt: skip
    """A model folder made from others (combine, grow, import): config, weights, the source's identity files (a model
    folder's, or a substrate folder's with `substrate_manifest` its bvvtok.json), manifest. `kind`: "run" or
    "mixture" (bvvtok.output.REPLACES)."""
    with atomic_folder(out, force, inputs, kind=kind) as tmp:
        write_json(tmp / CONFIG, raw)
        save_file(_tensors(state), str(tmp / WEIGHTS))
        (tmp / WEIGHTS).chmod(0o666 & ~umask())
        copy_identity(source, tmp, substrate_manifest)
        write_run_manifest(tmp, {"substrate": {"manifest_sha256": sha256_file(tmp / SUBSTRATE_MANIFEST)}, **section})


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]  # the whole model's weights
    optimizer: dict[str, Any]  # optimizer.pt: {"scheduler": ..., "rng": ...}, and "optimizer" unless it is sharded
    state: dict[str, Any]  # JSON: step, data key, substrate hash, strategy, world size
    folder: Path | None = None  # where it was read: a sharding strategy reads its shards there


def has_checkpoint(out: Path) -> bool:
    return (out / CHECKPOINT / STATE).is_file()


def save_checkpoint(out: Path, checkpoint: Checkpoint, run_info: dict[str, Any],
                    logs: Callable[[Callable[[str], Path]], None], shards: Callable[[Path], None]) -> None:  # fmt: skip
    """A new checkpoint/, its weights linked to the top level, the logs (`logs(place)` writes each file where
    `place(name)` says) and the manifest, all replaced together: a killed run keeps the old set or the new.
    `shards(folder)` writes what every process writes into the new checkpoint folder (it tells the others where)."""
    update = Update(out)
    try:
        folder = update.new(CHECKPOINT, folder=True)
        shards(folder)
        save_file(_tensors(checkpoint.model), str(folder / WEIGHTS))
        (folder / WEIGHTS).chmod(0o666 & ~umask())  # safetensors creates its file private
        torch.save(checkpoint.optimizer, folder / OPTIMIZER)
        dump_json(folder / STATE, checkpoint.state)
        try:
            os.link(folder / WEIGHTS, update.new(WEIGHTS))
        except OSError:  # a file system without hard links
            shutil.copyfile(folder / WEIGHTS, update.new(WEIGHTS))
        logs(update.new)
        update.commit({"bvvtok_version": __version__, "run": with_config_sha256(out, run_info)})
    finally:
        update.discard()


def load_checkpoint(out: Path) -> Checkpoint:
    folder = out / CHECKPOINT
    if not has_checkpoint(out):
        raise BvvtokError(f"{out} has no checkpoint to resume from; start it again without {option('resume', True)} (with {option('force', True)})")
    fix = f"restore the checkpoint from a copy, or start the run again with {option('force', True)}"
    try:
        checkpoint = Checkpoint(
            load_file(str(folder / WEIGHTS)),
            load_tensors(folder / OPTIMIZER, fix),
            json.loads((folder / STATE).read_text(encoding="utf-8")),
            folder,
        )
    except BvvtokError:
        raise
    except Exception as e:  # a damaged checkpoint, whatever the library raised
        raise BvvtokError(f"cannot read the checkpoint in {folder} ({e}); start the run again with {option('force', True)}") from None
    logged = read_manifest(out).get("run", {}).get("step")
    if checkpoint.state.get("step") != logged:
        raise BvvtokError(f"the checkpoint in {folder} is for step {checkpoint.state.get('step')}, the manifest says {logged}; "
                          f"the run folder is damaged: start it again with {option('force', True)}")  # fmt: skip
    return checkpoint


def write_run_manifest(out: Path, run_info: dict[str, Any]) -> None:
    """bvvtok.json: the run section and the sha256 of every top-level file (the checkpoint is not hashed)."""
    write_manifest(out, {"bvvtok_version": __version__, "run": with_config_sha256(out, run_info)})


def with_config_sha256(out: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """The run section with the sha256 of config.json: what proves the config is the one the weights were made with
    (the file list alone is re-written by anyone who edits a file and its hash)."""
    return {**run_info, "config_sha256": sha256_file(out / CONFIG)}


def load_model(folder: Path, device: torch.device | str = "cpu") -> tuple[GPT | Mixture, Tokenizer]:
    """The model of a run or mixture folder (in eval mode) and its tokenizer."""
    folder = check_input_folder(folder, "pass a folder written by bvvtok train")
    if not is_run(folder):
        raise BvvtokError(f"{folder} is not a run folder (no {CONFIG}); pass a folder written by bvvtok train")
    recover_for_reading(folder)
    try:
        model = build_model(raw := read_raw_config(folder))
    except (KeyError, TypeError, ValueError) as e:
        raise BvvtokError(f"cannot read {folder / CONFIG} ({e}); is {folder} a run folder written by bvvtok train?") from None
    path = folder / WEIGHTS
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {WEIGHTS} yet: the run has not reached its first checkpoint")
    check_files(folder, read_manifest(folder), (CONFIG, WEIGHTS, "tokenizer.json", SUBSTRATE_MANIFEST),
                "its files were changed after bvvtok wrote them: train, combine, grow or import it again")  # fmt: skip
    try:
        weights = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on damaged files
        raise BvvtokError(f"cannot read {path} ({e}); the run folder is damaged") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise BvvtokError(f"{path} does not fit {folder / CONFIG}: {str(e).splitlines()[0]}") from None
    prove(ModelView(folder, "run", state=weights, raw=raw))  # what the files hold, against the substrate's record
    tokenizer = load_tokenizer(folder)
    if tokenizer.get_vocab_size(with_added_tokens=True) != model.vocab_size:
        raise BvvtokError(f"{folder}: the tokenizer has {tokenizer.get_vocab_size():,} tokens, the model {model.vocab_size:,}; the run folder is damaged")
    return model.to(device).eval(), tokenizer
