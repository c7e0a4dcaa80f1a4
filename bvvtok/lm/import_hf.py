"""`bvvtok import`: a folder that `bvvtok export` wrote as stock GPT-NeoX, back into a bvvtok run folder.

The result is a run folder like those `combine` and `grow` write (config, weights, tokenizer files, the
substrate's manifest), so `generate`, `eval`, `combine`, `grow` and `train --init-from` take it; exporting it
again gives the same weights. The substrate is proven, not taken on trust: `substrate.json` must be the
manifest the config records (its sha256), and the embedding, narrowed back from `embed_in`, must be the
one that manifest lists (the sha256 of the `embeddings.safetensors` that holds it).

A copy saved with `save_pretrained` (a fine-tune, a merged LoRA) no longer holds `substrate.json`, but its config
still records the manifest's sha256: `substrate_dir`, the substrate folder itself, proves the embedding the same
way with its own manifest (`bvvtok.json`), and gives the run its tokenizer files and manifest, as `bvvtok train`
does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file

from bvvtok.errors import BvvtokError, option
from bvvtok.files import MANIFEST_NAME, sha256_file
from bvvtok.inputs import check_input_folder
from bvvtok.lm.gpt_neox import from_neox, model_config
from bvvtok.lm.model import GPT
from bvvtok.lm.proof import IMPORT, ModelView, prove
from bvvtok.lm.run_folder import SUBSTRATE_MANIFEST, WEIGHTS, write_model_folder
from bvvtok.output import new_output


def import_hf(folder: Path, out: Path, force: bool = False, substrate_dir: Path | None = None) -> Path:
    folder = check_input_folder(folder, "pass a folder written by `bvvtok export`")
    if substrate_dir is not None:
        wanted = f"pass the substrate folder the model was trained on as {option('substrate_dir', 'DIR', cli='--substrate')}"
        substrate_dir = check_input_folder(substrate_dir, wanted)
    inputs = [folder] if substrate_dir is None else [folder, substrate_dir]
    with new_output(Path(out), force, inputs, kind="run"):
        neox = _read_json(folder / "config.json")
        config = model_config(neox)
        recorded = neox["bvvtok"].get("substrate", {}).get("manifest_sha256")
        if substrate_dir is None:
            substrate, where = _substrate_manifest(folder, recorded), f"that {SUBSTRATE_MANIFEST} describes"
        else:
            substrate, where = _given_substrate(substrate_dir, recorded), f"in {substrate_dir}"
        try:
            state = from_neox(load_file(str(folder / WEIGHTS)), config)
        except BvvtokError:
            raise
        except Exception as e:  # safetensors' own errors; a missing tensor (KeyError)
            raise BvvtokError(f"cannot read the weights in {folder / WEIGHTS} ({e!r}); is it a bvvtok export?") from None
        raw = {"model": {**dataclasses.asdict(config), "scale": config.scale}}
        # the tokenizer it brings (or the substrate's, with --substrate), the frozen embedding, finite weights
        prove(ModelView(folder, "export", where, substrate_dir, record=substrate, raw=raw, state=state), IMPORT)
        GPT(config, state["token_embeddings.weight"]).load_state_dict(state)  # every shape checked once more
        section = {"imported": {"from": folder.name, "weights_sha256": sha256_file(folder / WEIGHTS)}}
        if substrate_dir is None:
            write_model_folder(Path(out), folder, raw, state, section, force, inputs, kind="run")
        else:  # the substrate's own tokenizer files and manifest, as `bvvtok train` copies them into a run
            write_model_folder(Path(out), substrate_dir, raw, state, section, force, inputs, kind="run",
                               substrate_manifest=MANIFEST_NAME)
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


def _substrate_manifest(folder: Path, recorded: str | None) -> dict:
    """substrate.json, once its sha256 is the one the config records."""
    path = folder / SUBSTRATE_MANIFEST
    if not path.is_file():
        raise BvvtokError(f"{folder} has no {SUBSTRATE_MANIFEST} (save_pretrained leaves it out): "
                          f"pass {option('substrate_dir', 'DIR', cli='--substrate')}, the substrate folder the model was trained on")  # fmt: skip
    if sha256_file(path) != recorded:
        raise BvvtokError(f"{path} is not the substrate manifest config.json records (sha256 {recorded}); "
                          f"pass {option('substrate_dir', 'DIR', cli='--substrate')}, the substrate folder the model was trained on")  # fmt: skip
    if not (folder / "tokenizer.json").is_file():
        raise BvvtokError(f"{folder} has no tokenizer.json; "
                          f"pass {option('substrate_dir', 'DIR', cli='--substrate')}, the substrate folder the model was trained on")  # fmt: skip
    return _read_json(path)


def _given_substrate(substrate_dir: Path, recorded: str | None) -> dict:
    """The manifest of the substrate folder given with --substrate, once its sha256 is the one the config records."""
    path = substrate_dir / MANIFEST_NAME
    if not path.is_file() or not (substrate_dir / "tokenizer.json").is_file():
        raise BvvtokError(f"{substrate_dir} is not a substrate folder (no {MANIFEST_NAME} and tokenizer.json); "
                          f"pass {option('substrate_dir', 'DIR', cli='--substrate')}, the substrate folder the model was trained on")  # fmt: skip
    found = sha256_file(path)
    if found != recorded:
        raise BvvtokError(f"{substrate_dir} is not the substrate this model was trained on: its manifest's sha256 is "
                          f"{found}, config.json's bvvtok.substrate.manifest_sha256 is {recorded}; "
                          f"pass {option('substrate_dir', 'DIR', cli='--substrate')}, the substrate folder the model was trained on")  # fmt: skip
    return _read_json(path)
