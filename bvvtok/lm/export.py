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

from safetensors.torch import save_file

import bvvtok.lm.model
from bvvtok import __version__
from bvvtok.files import sha256_file, umask
from bvvtok.lm.config import ModelConfig
from bvvtok.lm.mixture import Mixture
from bvvtok.lm.run_folder import WEIGHTS, load_model, member_configs, read_raw_config
from bvvtok.manifest import write_json, write_manifest
from bvvtok.output import atomic_folder, new_output
from bvvtok.vocab.tokenizer_files import ROLE_SPECIALS, TOKENIZER_FILES

HF_CODE = Path(__file__).parent / "hf"
CODE_FILES = ("configuration_bvvtok.py", "modeling_bvvtok.py")
MODEL_CODE = "bvvtok_gpt.py"
SHAPE = ("vocab_size", "n_embed", "d_model", "n_layer", "n_head", "context", "frozen")


def hf_config(configs: Sequence[ModelConfig], weights: Sequence[float], token_ids: dict[str, int]) -> dict:
    """config.json: the first member's shape at the top (what tools read), every member's in `members`."""
    shapes = [{k: getattr(c, k) for k in SHAPE} for c in configs]
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
        "use_cache": False,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def export_hf(run_dir: Path, out: Path, force: bool = False) -> Path:
    """Write the folder for a run or a mixture; the tokenizer files come from the run folder."""
    run_dir = Path(run_dir)
    with new_output(Path(out), force, [run_dir]):
        _write_export(run_dir, Path(out), force)
    return Path(out)


def _write_export(run_dir: Path, out: Path, force: bool) -> None:
    model, tokenizer = load_model(run_dir)
    configs, weights = member_configs(read_raw_config(run_dir))
    state = model.state_dict() if isinstance(model, Mixture) else {f"members.0.{k}": v for k, v in model.state_dict().items()}
    ids = {f"{role}_id": tokenizer.token_to_id(token) for role, token in ROLE_SPECIALS.items()}
    token_ids = {k: v for k, v in ids.items() if v is not None}
    with atomic_folder(Path(out), force, [run_dir]) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / WEIGHTS).chmod(0o666 & ~umask())  # safetensors creates its file private
        write_json(tmp / "config.json", hf_config(configs, weights, token_ids))
        write_json(tmp / "generation_config.json", {k: v for k, v in token_ids.items() if k in ("bos_token_id", "eos_token_id", "pad_token_id")})
        for name in CODE_FILES:
            shutil.copyfile(HF_CODE / name, tmp / name)
        shutil.copyfile(bvvtok.lm.model.__file__, tmp / MODEL_CODE)
        for name in TOKENIZER_FILES:
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, tmp / name)
        if not (tmp / "tokenizer_config.json").is_file():  # what AutoTokenizer needs besides tokenizer.json
            roles = {role: token for role, token in ROLE_SPECIALS.items() if tokenizer.token_to_id(token) is not None}
            write_json(tmp / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", **roles,
                                                       "model_max_length": min(c.context for c in configs)})  # fmt: skip
        section = {"format": "hf", "from": run_dir.name, "weights_sha256": sha256_file(run_dir / WEIGHTS)}
        write_manifest(tmp, {"bvvtok_version": __version__, "export": section})  # so that --force may replace it
