"""Proving a model folder: a run (`train`, `combine`, `grow`, `import`) or an export (`export`), against the record
of the substrate it carries (`substrate.json`, the substrate's manifest).

Each check is a function of a `ModelView` (each part read once, on first use) that returns what it found or raises
ValueError, as `verify`'s checks of a substrate do. `verify` runs them all; every reader of a run folder (through
`load_model`: generate, eval, export, combine, grow, train --init-from) runs `LOAD` before using it, `train --resume`
the same on its checkpoint, and `import` `IMPORT` on an export: a hand edit is refused even when the file list of
`bvvtok.json` was updated to match. The chain of records:

- `substrate.json` has the sha256 the run's manifest (`run.substrate.manifest_sha256`; the checkpoint's state too)
  or the export's config.json (`bvvtok.substrate.manifest_sha256`) records;
- the tokenizer files are the ones `substrate.json` lists, and behave as its vocabulary's id table says
  (bvvtok.vocab.proof: the one tokenizer proof);
- the frozen embedding is the substrate's: the sha256 of the `embeddings.safetensors` that would hold it is the one
  `substrate.json` lists;
- every weight is finite;
- config.json is the one the run's manifest records (`run.config_sha256`; older runs have none) and the weights fit it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, sha256_file
from bvvtok.manifest import file_problems, read_manifest
from bvvtok.substrate.folder import EMBEDDINGS, embeddings_sha256
from bvvtok.substrate.view import Failed, attempt
from bvvtok.vocab.proof import MODEL_FOLDER_FILES, prove_tokenizer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SUBSTRATE_MANIFEST = "substrate.json"
STATE = "checkpoint/state.json"
EMBEDDING = "token_embeddings.weight"


class ModelView:
    """A run or export folder's parts; a part given to the constructor (what the caller read already) is used as is."""

    def __init__(self, path: Path, kind: str | None = None, record_where: str = f"that {SUBSTRATE_MANIFEST} describes",
                 tokenizer_folder: Path | None = None, **known: Any) -> None:  # fmt: skip
        self.path = Path(path)
        self.record_where = record_where  # where the substrate's manifest is, in a message
        self.tokenizer_folder = Path(tokenizer_folder or path)
        self.__dict__.update(known)  # a cached_property's value, read already
        self.kind = kind or model_folder_kind(self.path) or "run"

    @cached_property
    def manifest(self) -> dict[str, Any] | Failed:
        return attempt(lambda: read_manifest(self.path))

    @cached_property
    def config(self) -> dict[str, Any] | Failed:
        """config.json as written."""
        return attempt(lambda: _json(self.path / CONFIG))

    @cached_property
    def record(self) -> dict[str, Any] | Failed:
        """The substrate's manifest the folder carries."""
        return attempt(lambda: _json(self.path / SUBSTRATE_MANIFEST))

    @cached_property
    def record_sha256(self) -> str | Failed:
        return attempt(lambda: sha256_file(self.path / SUBSTRATE_MANIFEST))

    @cached_property
    def raw(self) -> dict[str, Any] | Failed:
        """The model's configuration as a run folder's config.json says it ({"model": ...} or {"members": ...})."""
        from bvvtok.lm.run_folder import read_raw_config

        def read() -> dict[str, Any]:
            if self.kind == "run":
                return read_raw_config(self.path)
            config = self.need(self.config)
            if config.get("model_type") == "bvvtok":  # hf-remote: the members as the run folder has them
                return {"members": config["members"], "mixture_weights": config["mixture_weights"]}
            from bvvtok.lm.gpt_neox import model_config

            model = model_config(config)
            return {"model": {**dataclasses.asdict(model), "scale": model.scale}}

        return attempt(read)

    @cached_property
    def state(self) -> dict[str, torch.Tensor] | Failed:
        """The weights under bvvtok's names."""

        def read() -> dict[str, torch.Tensor]:
            weights = load_file(str(self.path / WEIGHTS))
            config = self.need(self.config)
            if self.kind == "run" or config.get("model_type") == "bvvtok":
                return weights
            from bvvtok.lm.gpt_neox import from_neox, model_config

            return from_neox(weights, model_config(config))

        return attempt(read)

    def need(self, part: Any) -> Any:
        if isinstance(part, Failed):
            raise ValueError(part.reason)
        return part

    def members(self) -> list[dict[str, Any]]:
        raw = self.need(self.raw)
        return raw["members"] if "members" in raw else [raw["model"]]


def model_folder_kind(folder: Path) -> str | None:
    """"export" (a folder `bvvtok export` wrote), "run" (train, combine, grow, import), or None."""
    manifest = attempt(lambda: read_manifest(folder))
    sections = manifest if isinstance(manifest, dict) else {}
    if "export" in sections:
        return "export"
    if "run" in sections:
        return "run"
    if not (folder / CONFIG).is_file():
        return None
    config = attempt(lambda: _json(folder / CONFIG))
    if isinstance(config, dict) and "bvvtok" in config:
        return "export"
    return "run" if (folder / SUBSTRATE_MANIFEST).is_file() else None


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def _recorded_substrate(view: ModelView) -> str | None:
    if view.kind == "export":
        config = view.need(view.config)
        if config.get("model_type") == "bvvtok" and "bvvtok" not in config:  # hf-remote records it in the file list only
            manifest = view.need(view.manifest)
            return (manifest.get("files") or {}).get(SUBSTRATE_MANIFEST) if "export" in manifest else None
        return ((config.get("bvvtok") or {}).get("substrate") or {}).get("manifest_sha256")
    return ((view.need(view.manifest).get("run") or {}).get("substrate") or {}).get("manifest_sha256")


def check_manifest(view: ModelView) -> str:
    manifest, config = view.need(view.manifest), view.need(view.config)
    if view.kind == "run":
        if not manifest:
            raise ValueError(f"no {MANIFEST_NAME}: not a folder bvvtok wrote; train, combine, grow or import it again")
        if not isinstance(manifest.get("run"), dict):
            raise ValueError(f"{MANIFEST_NAME} has no run section; train, combine, grow or import it again")
    elif not isinstance(config.get("bvvtok"), dict) and not (config.get("model_type") == "bvvtok" and "export" in manifest):
        raise ValueError(f"{CONFIG} has no bvvtok section: not a folder bvvtok export wrote; export the run again")
    if not _recorded_substrate(view):
        raise ValueError(f"no sha256 of the substrate's manifest is recorded; {_again(view)}")
    members = view.members()
    kind = "export" if view.kind == "export" else "mixture" if len(members) > 1 else "run"
    return f"{kind} of {len(members)} model{'s' * (len(members) > 1)}; the substrate's manifest sha256 recorded"


def check_files(view: ModelView) -> str:
    manifest = view.need(view.manifest)
    if not manifest:
        return f"no {MANIFEST_NAME} (a copy saved with save_pretrained): the checks below prove the files"
    files = manifest.get("files") or {}
    problems = file_problems(view.path, manifest, files)
    if problems:
        raise ValueError("; ".join(problems))
    return f"{len(files)} files match their sha256"


def check_record(view: ModelView) -> str:
    """substrate.json is the substrate manifest the folder's own records name."""
    found, recorded = view.need(view.record_sha256), _recorded_substrate(view)
    where = f"{MANIFEST_NAME}'s run.substrate" if view.kind == "run" else f"{CONFIG}'s bvvtok.substrate"
    if view.kind == "export" and "bvvtok" not in view.need(view.config):
        where = f"{MANIFEST_NAME}'s file list"
    if found != recorded:
        raise ValueError(f"{SUBSTRATE_MANIFEST} has sha256 {found[:12]}…, {where} records {str(recorded)[:12]}…; "
                         f"it was edited: {_again(view)}")  # fmt: skip
    state = attempt(lambda: _json(view.path / STATE)) if (view.path / STATE).is_file() else None
    if isinstance(state, dict) and state.get("substrate_sha256") not in (None, found):
        raise ValueError(f"{SUBSTRATE_MANIFEST} is not the substrate manifest {STATE} records; it was edited: {_again(view)}")
    record = view.need(view.record)
    if not isinstance(record.get("files"), dict) or not isinstance(record.get("substrate"), dict):
        raise ValueError(f"{SUBSTRATE_MANIFEST} is not a substrate's manifest (no substrate section or file list); {_again(view)}")
    return f"{SUBSTRATE_MANIFEST} is the substrate manifest the folder records ({record['substrate'].get('method')} substrate)"


def check_tokenizer(view: ModelView) -> str:
    """The tokenizer proof of bvvtok.vocab.proof against the substrate's manifest (less tokenizer_config.json,
    which export rewrites)."""
    try:
        return prove_tokenizer(view.tokenizer_folder, view.need(view.record), MODEL_FOLDER_FILES)
    except ValueError as e:
        raise ValueError(f"{e}; the tokenizer is not the substrate's: {_again(view)}") from None


def check_embedding(view: ModelView) -> str:
    """The frozen embedding of every member is the substrate's (the sha256 of the embeddings.safetensors holding it)."""
    state, listed = view.need(view.state), view.need(view.record).get("files", {}).get(EMBEDDINGS)
    keys = sorted(k for k in state if k.endswith(EMBEDDING))
    if not keys:
        raise ValueError(f"the weights hold no {EMBEDDING}; {_again(view)}")
    members = view.members()
    frozen = [k for k in keys if members[_member(k) if len(members) > 1 else 0].get("frozen", True)]
    differ = [k for k in frozen if embeddings_sha256(state[k].detach().cpu().float().numpy()) != listed]
    if differ:
        who = "its" if len(keys) == 1 else f"{', '.join(differ)}:"
        raise ValueError(f"{view.path}'s embedding is not the substrate {view.record_where} ({who} sha256 is not the "
                         f"{EMBEDDINGS} sha256 it lists); it was trained or edited: {_again(view)}")  # fmt: skip
    if not frozen:
        return "the embedding trained with the model (--unfrozen): not compared with the substrate"
    return f"{len(frozen)} frozen embedding{'s' * (len(frozen) > 1)} equal to the substrate's ({EMBEDDINGS} sha256)"


def _member(key: str) -> int:
    """The member a mixture's weight belongs to: `members.3.token_embeddings.weight` -> 3."""
    parts = key.split(".")
    return int(parts[1]) if parts[0] == "members" and parts[1].isdigit() else 0


def check_finite(view: ModelView) -> str:
    state = view.need(view.state)
    bad = [k for k, t in state.items() if t.is_floating_point() and not _finite(t)]
    if bad:
        raise ValueError(f"non-finite values (NaN or inf) in {', '.join(bad[:3])}{' and more' * (len(bad) > 3)}; "
                         f"the weights are damaged: {_again(view)}")  # fmt: skip
    return f"{len(state)} tensors, all finite"


def _finite(t: torch.Tensor) -> bool:
    if t.dtype in (torch.float16, torch.float32, torch.float64):  # numpy's test is ~20x faster than torch's on a CPU
        return bool(np.isfinite(t.detach().cpu().numpy()).all())
    return bool(torch.isfinite(t).all())


def check_config(view: ModelView) -> str:
    """config.json is the one the run's manifest records (runs written since bvvtok records it)."""
    if view.kind == "export":
        return f"{CONFIG} records the model exported (the shapes check compares it with the weights)"
    recorded = (view.need(view.manifest).get("run") or {}).get("config_sha256")
    if recorded is None:
        return f"no sha256 of {CONFIG} recorded (a run written before bvvtok recorded it)"
    if sha256_file(view.path / CONFIG) != recorded:
        raise ValueError(f"{CONFIG} is not the one {MANIFEST_NAME}'s run.config_sha256 records: it was edited "
                         f"after bvvtok wrote it (the model is as it was trained): {_again(view)}")  # fmt: skip
    return f"{CONFIG} is the one the run recorded"


def check_shapes(view: ModelView) -> str:
    from bvvtok.lm.run_folder import build_model

    model = build_model(view.need(view.raw))
    try:
        model.load_state_dict(view.need(view.state))
    except RuntimeError as e:
        raise ValueError(f"the weights do not fit {CONFIG}: {str(e).splitlines()[0]}") from None
    return f"the weights fit {CONFIG} ({sum(t.numel() for t in model.state_dict().values()):,} numbers)"


def _again(view: ModelView) -> str:
    if view.kind == "export":
        return "export the run again"
    return "train, combine, grow or import it again"


Checker = Callable[[ModelView], str]
CHECKS: list[tuple[str, Checker]] = [
    ("manifest", check_manifest),
    ("file hashes", check_files),
    ("substrate record", check_record),
    ("tokenizer", check_tokenizer),
    ("embedding", check_embedding),
    ("finite weights", check_finite),
    ("config", check_config),
    ("shapes", check_shapes),
]
# What every reader proves on load (it checked the file list and fits the weights itself)
LOAD = ("substrate record", "tokenizer", "embedding", "finite weights", "config")
IMPORT = ("tokenizer", "embedding", "finite weights")  # import proves the record itself, with its own advice


def prove(view: ModelView, names: Iterable[str] = LOAD) -> None:
    """Run the checks `names`; raise a one-line BvvtokError at the first that fails."""
    wanted = set(names)
    for name, check in CHECKS:
        if name in wanted:
            try:
                check(view)
            except Exception as e:  # a damaged folder fails its check, whatever the library raised
                raise BvvtokError(f"{view.path} fails its proof ({name}: {str(e) or type(e).__name__})") from None
