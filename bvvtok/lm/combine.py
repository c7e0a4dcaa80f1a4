"""`bvvtok combine`: runs on one frozen substrate joined into a mixture.

The mixture's next-token logits are the weighted mean of its members' (arXiv 2507.07129:
`(logits_a + logits_b) / 2`, no router). Refused unless every member has the same tokenizer
and the same substrate (the sha256 of tokenizer.json and of the substrate manifest), since
that shared substrate is what makes the average meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file
from bvvtok.lm.model import GPT
from bvvtok.lm.run_folder import WEIGHTS, load_model, read_raw_config, write_model_folder
from bvvtok.output import new_output


def combine(runs: Sequence[Path], out: Path, weights: Sequence[float] | None = None, force: bool = False) -> Path:
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise BvvtokError("combine needs at least two runs")
    weights = list(weights) if weights is not None else [1.0] * len(runs)
    if len(weights) != len(runs):
        raise BvvtokError(f"{option('weights')} has {len(weights)} values for {len(runs)} runs; give one weight per run")
    if any(not w > 0 for w in weights):
        raise BvvtokError(f"{option('weights')} must all be positive (got {', '.join(map(str, weights))})")
    with new_output(out, force, runs, kind="mixture"):
        raw, state, section = _mixture(runs, weights)
        write_model_folder(out, runs[0], raw, state, section, force, runs, kind="mixture")
    return out


def _mixture(runs: list[Path], weights: list[float]) -> tuple[dict, dict, dict]:
    """The mixture's config, weights and manifest section; refused unless the runs share tokenizer and substrate."""
    first = runs[0]
    members, state = [], {}
    for i, run in enumerate(runs):
        model, _ = load_model(run)  # a clear error for anything that is not a run
        if not isinstance(model, GPT):
            raise BvvtokError(f"{run} is already a mixture; combine the runs it was made of")
        for what, name in (("tokenizer", "tokenizer.json"), ("substrate", "substrate.json")):
            if sha256_file(run / name) != sha256_file(first / name):
                raise BvvtokError(f"{run} has another {what} than {first} ({name} differs): a mixture needs one tokenizer and one frozen substrate")
        members.append(read_raw_config(run)["model"])
        state.update({f"members.{i}.{k}": v for k, v in model.state_dict().items()})
    raw = {"members": members, "mixture_weights": weights}
    section = {"mixture": {"members": [{"folder": r.name, "weights_sha256": sha256_file(r / WEIGHTS)} for r in runs], "weights": weights}}
    return raw, state, section
