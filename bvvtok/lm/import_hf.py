"""`bvvtok import`: a folder that `bvvtok export` wrote as stock GPT-NeoX, back into a bvvtok run folder.

The result is a run folder like those `combine` and `grow` write (config, weights, tokenizer files, the
substrate's manifest), so `generate`, `eval`, `combine`, `grow` and `train --init-from` take it; exporting it
again gives the same weights. The substrate is proven, not taken on trust: `substrate.json` must be the
manifest the config records (its sha256), and the embedding, narrowed back from `embed_in`, must be the
one that manifest lists (the sha256 of the `embeddings.safetensors` that holds it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from bvvtok.errors import BvvtokError
from bvvtok.files import sha256_file
from bvvtok.inputs import check_input_folder
from bvvtok.lm.gpt_neox import from_neox, model_config
from bvvtok.lm.model import GPT
from bvvtok.lm.run_folder import SUBSTRATE_MANIFEST, WEIGHTS, write_model_folder
from bvvtok.output import new_output
from bvvtok.substrate.folder import EMBEDDINGS, embeddings_sha256


def import_hf(folder: Path, out: Path, force: bool = False) -> Path:
    folder = check_input_folder(folder, "pass a folder written by `bvvtok export`")
    with new_output(Path(out), force, [folder]):
        neox = _read_json(folder / "config.json")
        config = model_config(neox)
        substrate = _substrate_manifest(folder, neox)
        try:
            state = from_neox(load_file(str(folder / WEIGHTS)), config)
        except BvvtokError:
            raise
        except Exception as e:  # safetensors' own errors; a missing tensor (KeyError)
            raise BvvtokError(f"cannot read the weights in {folder / WEIGHTS} ({e!r}); is it a bvvtok export?") from None
        recorded = substrate.get("files", {}).get(EMBEDDINGS)
        if embeddings_sha256(state["token_embeddings.weight"].numpy().astype(np.float32)) != recorded:
            raise BvvtokError(f"{folder}'s embedding is not the substrate that substrate.json describes; "
                              "it was trained or edited after export: it cannot be imported as a frozen-substrate run")  # fmt: skip
        GPT(config, state["token_embeddings.weight"]).load_state_dict(state)  # every shape checked once more
        raw = {"model": {**dataclasses.asdict(config), "scale": config.scale}}
        section = {"imported": {"from": folder.name, "weights_sha256": sha256_file(folder / WEIGHTS)}}
        write_model_folder(Path(out), folder, raw, state, section, force, [folder])
    return Path(out)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BvvtokError(f"{path.parent} has no {path.name}; pass a folder written by `bvvtok export`") from None
    except (OSError, ValueError) as e:
        raise BvvtokError(f"cannot read {path} ({e}); pass a folder written by `bvvtok export`") from None
    if not isinstance(data, dict):
        raise BvvtokError(f"{path} is not a JSON object; pass a folder written by `bvvtok export`")
    return data


def _substrate_manifest(folder: Path, neox: dict) -> dict:
    """substrate.json, once its sha256 is the one the config records."""
    path = folder / SUBSTRATE_MANIFEST
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {SUBSTRATE_MANIFEST}: the substrate cannot be proven; export the run again")
    recorded = neox["bvvtok"].get("substrate", {}).get("manifest_sha256")
    if sha256_file(path) != recorded:
        raise BvvtokError(f"{path} is not the substrate manifest config.json records (sha256 {recorded}); export the run again")
    return _read_json(path)
