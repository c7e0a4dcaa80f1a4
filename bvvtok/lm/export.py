"""`bvvtok export --format hf`: a run folder as a Hugging Face model folder.

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

The folder holds `config.json` (with `auto_map`), `model.safetensors` (member i's weights
under `members.i.`), the modeling code (bvvtok/lm/hf/ and bvvtok/lm/model.py as
`bvvtok_gpt.py`) and the tokenizer files.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

import bvvtok.lm.model
from bvvtok.files import atomic_folder, umask
from bvvtok.lm.config import RunConfig
from bvvtok.lm.run_folder import WEIGHTS, load_model, read_config
from bvvtok.manifest import write_json
from bvvtok.vocab.tokenizer_files import ROLE_SPECIALS, TOKENIZER_FILES

HF_CODE = Path(__file__).parent / "hf"
CODE_FILES = ("configuration_bvvtok.py", "modeling_bvvtok.py")
MODEL_CODE = "bvvtok_gpt.py"


def hf_config(config: RunConfig, weights: Sequence[float], token_ids: dict[str, int]) -> dict:
    m = config.model
    return {
        "architectures": ["BvvtokForCausalLM"],
        "model_type": "bvvtok",
        "auto_map": {"AutoConfig": "configuration_bvvtok.BvvtokConfig", "AutoModelForCausalLM": "modeling_bvvtok.BvvtokForCausalLM"},
        "vocab_size": m.vocab_size, "n_embed": m.n_embed, "d_model": m.d_model, "n_layer": m.n_layer,
        "n_head": m.n_head, "context": m.context, "scale": m.scale, "frozen": m.frozen,
        "mixture_weights": list(weights),
        **token_ids,
        "use_cache": False,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }  # fmt: skip


def write_hf_folder(source: Path, tokenizer: Tokenizer, out: Path, config: RunConfig,
                    members: Sequence[dict[str, torch.Tensor]], weights: Sequence[float], force: bool = False) -> Path:  # fmt: skip
    """Write the folder: `source` holds the tokenizer files; `members` are the weights of each model."""
    ids = {f"{role}_id": tokenizer.token_to_id(token) for role, token in ROLE_SPECIALS.items()}
    token_ids = {k: v for k, v in ids.items() if v is not None}
    with atomic_folder(out, force) as tmp:
        tensors = {f"members.{i}.{k}": v.contiguous() for i, member in enumerate(members) for k, v in member.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / WEIGHTS).chmod(0o666 & ~umask())  # safetensors creates its file private
        write_json(tmp / "config.json", hf_config(config, weights, token_ids))
        write_json(tmp / "generation_config.json", {k: v for k, v in token_ids.items() if k in ("bos_token_id", "eos_token_id", "pad_token_id")})
        for name in CODE_FILES:
            shutil.copyfile(HF_CODE / name, tmp / name)
        shutil.copyfile(bvvtok.lm.model.__file__, tmp / MODEL_CODE)
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        if not (tmp / "tokenizer_config.json").is_file():  # what AutoTokenizer needs besides tokenizer.json
            roles = {role: token for role, token in ROLE_SPECIALS.items() if tokenizer.token_to_id(token) is not None}
            write_json(tmp / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", **roles,
                                                       "model_max_length": config.model.context})  # fmt: skip
    return out


def export_hf(run_dir: Path, out: Path, force: bool = False) -> Path:
    run_dir = Path(run_dir)
    model, tokenizer = load_model(run_dir)
    return write_hf_folder(run_dir, tokenizer, Path(out), read_config(run_dir), [model.state_dict()], [1.0], force)
