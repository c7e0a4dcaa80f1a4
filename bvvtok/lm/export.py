"""`bvvtok export`: a run (or mixture) as a Hugging Face model folder.

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)        # a run: transformers' own GPT-NeoX

Formats:
- `hf` (the default): a single run (or a grown one) as transformers' stock GPT-NeoX (bvvtok.lm.gpt_neox):
  no custom code, and everything that architecture has (KV cache, attention masks and padding, labels,
  SDPA, bf16, and the tools built on it). A mixture has no stock architecture: it is written as `hf-remote`.
- `hf-remote`: bvvtok's own layout with its modeling code (bvvtok/lm/hf/, and bvvtok/lm/model.py as
  `bvvtok_gpt.py`), loaded with `trust_remote_code=True`: `model.token_embeddings` is the substrate itself.
Both folders carry the tokenizer files (`model_max_length` = the model's context), `generation_config.json`,
the substrate's manifest as `substrate.json`, a model card (`README.md`: its snippets load the folder by its
own name; it says how to keep the embedding frozen and that stock GPT-NeoX generates past the context unless
told not to), and bvvtok's manifest. generation_config.json has no `max_length`: `max_new_tokens` overrides it,
so it would not keep `generate` within the context, only log a warning on every such call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

import bvvtok.lm.model
from bvvtok import __version__
from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file, umask
from bvvtok.lm.config import ModelConfig
from bvvtok.lm.gpt_neox import check_stock, neox_config, to_neox
from bvvtok.lm.mixture import Mixture
from bvvtok.lm.model import GPT
from bvvtok.lm.model_card import model_card
from bvvtok.lm.run_folder import SUBSTRATE_MANIFEST, WEIGHTS, load_model, member_configs, read_raw_config
from bvvtok.manifest import write_json, write_manifest
from bvvtok.output import atomic_folder, new_output
from bvvtok.vocab.tokenizer_files import ROLE_SPECIALS, TOKENIZER_FILES

FORMATS = ("hf", "hf-remote")
HF_CODE = Path(__file__).parent / "hf"
CODE_FILES = ("configuration_bvvtok.py", "modeling_bvvtok.py")
MODEL_CODE = "bvvtok_gpt.py"


def remote_config(configs: Sequence[ModelConfig], weights: Sequence[float], token_ids: dict[str, int]) -> dict:
    """config.json of the custom-code layout: every member's ModelConfig in `members` (what the model is built from),
    the first member's also at the top (what tools read)."""
    shapes = [dataclasses.asdict(c) for c in configs]
    m = configs[0]
    return {
        "architectures": ["BvvtokForCausalLM"],
        "model_type": "bvvtok",
        "auto_map": {"AutoConfig": "configuration_bvvtok.BvvtokConfig", "AutoModelForCausalLM": "modeling_bvvtok.BvvtokForCausalLM"},
        **shapes[0],
        "context": min(c.context for c in configs),
        "scale": m.scale,
        "members": shapes,
        "mixture_weights": list(weights),
        **token_ids,
        "use_cache": True,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def substrate_facts(run_dir: Path, config: ModelConfig) -> dict[str, Any]:
    """What the exported config records of the substrate: method, width, the model's repeat_interleave scale, and the
    sha256 of its manifest (which the folder carries as substrate.json)."""
    substrate = json.loads((run_dir / SUBSTRATE_MANIFEST).read_text(encoding="utf-8")).get("substrate", {})
    return {"method": substrate.get("method"), "n_embed": config.n_embed, "scale": config.scale,
            "manifest_sha256": sha256_file(run_dir / SUBSTRATE_MANIFEST)}  # fmt: skip


def export(run_dir: Path, out: Path, format: str = "hf", force: bool = False) -> str:
    """Write the folder; returns the format written (a mixture asked for `hf` is written as `hf-remote`)."""
    if format not in FORMATS:
        raise BvvtokError(f"unknown {option('format')} {format!r}; choose {' or '.join(FORMATS)}")
    run_dir = Path(run_dir)
    with new_output(Path(out), force, [run_dir], kind="hf-export"):
        model, tokenizer = load_model(run_dir)
        written = "hf" if format == "hf" and isinstance(model, GPT) else "hf-remote"
        if written == "hf":
            check_stock(model.config)
        configs, weights = member_configs(read_raw_config(run_dir))
        token_ids = {f"{role}_id": i for role, t in ROLE_SPECIALS.items() if (i := tokenizer.token_to_id(t)) is not None}
        substrate = substrate_facts(run_dir, configs[0])
        context = min(c.context for c in configs)
        with atomic_folder(Path(out), force, [run_dir], kind="hf-export") as tmp:
            if written == "hf":
                _save(to_neox(model.state_dict(), model.config), tmp)
                write_json(tmp / "config.json", neox_config(model.config, token_ids, substrate))
            else:
                _write_remote(model, configs, weights, token_ids, tmp)
            generation = {k: v for k, v in token_ids.items() if k in ("bos_token_id", "eos_token_id", "pad_token_id")}
            write_json(tmp / "generation_config.json", generation)
            _write_tokenizer(run_dir, tmp, context, token_ids)
            shutil.copyfile(run_dir / SUBSTRATE_MANIFEST, tmp / SUBSTRATE_MANIFEST)
            card = model_card(written, configs, weights, substrate, Path(os.path.abspath(out)).name, run_dir.name)
            (tmp / "README.md").write_text(card, encoding="utf-8")
            section = {"format": written, "from": run_dir.name, "weights_sha256": sha256_file(run_dir / WEIGHTS)}
            write_manifest(tmp, {"bvvtok_version": __version__, "export": section})  # so that --force may replace it
    return written


def _save(state: dict[str, torch.Tensor], folder: Path) -> None:
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / WEIGHTS).chmod(0o666 & ~umask())  # safetensors creates its file private


def _write_remote(model: GPT | Mixture, configs: Sequence[ModelConfig], weights: Sequence[float],
                  token_ids: dict[str, int], folder: Path) -> None:  # fmt: skip
    """bvvtok's own layout: member i's weights under `members.i.`, with the modeling code beside."""
    state = model.state_dict() if isinstance(model, Mixture) else {f"members.0.{k}": v for k, v in model.state_dict().items()}
    _save(state, folder)
    write_json(folder / "config.json", remote_config(configs, weights, token_ids))
    for name in CODE_FILES:
        shutil.copyfile(HF_CODE / name, folder / name)
    shutil.copyfile(bvvtok.lm.model.__file__, folder / MODEL_CODE)


def _write_tokenizer(run_dir: Path, folder: Path, context: int, token_ids: dict[str, int]) -> None:
    """The run's tokenizer files; tokenizer_config.json says the class (so that AutoTokenizer needs no model code),
    the special tokens the tokenizer has, and the model's context as `model_max_length`."""
    for name in TOKENIZER_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, folder / name)
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    roles = {role: token for role, token in ROLE_SPECIALS.items() if f"{role}_id" in token_ids}
    write_json(path, {**config, "tokenizer_class": "PreTrainedTokenizerFast", **roles, "model_max_length": context,
                      "model_input_names": ["input_ids", "attention_mask"]})  # transformers 4 would add token_type_ids
