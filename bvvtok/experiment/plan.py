"""The plan of an experiment: its cells (arm x seed) in the order they can run, the substrates at the width their
arms need, and what each cell trains; everything that cannot work is refused here, before anything is built.

    plan = make_plan(read_spec(Path("experiments/ablation-tiny.toml")))
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bvvtok.errors import BvvtokError, library_names
from bvvtok.experiment.arms import Arm
from bvvtok.experiment.problems import Problems
from bvvtok.experiment.spec import Spec
from bvvtok.lm.config import RunConfig, with_substrate, with_token_budget
from bvvtok.substrate.methods import METHODS, configure
from bvvtok.vocab.layout import get_preset
from bvvtok.vocab.tokenizer_files import load_tokenizer


@dataclass(frozen=True)
class SubstratePlan:
    name: str
    method: str
    settings: dict[str, Any]  # `embed`'s settings, the width included
    width: int  # n_embed


@dataclass(frozen=True)
class CellPlan:
    name: str  # ARM-sSEED
    arm: Arm
    seed: int
    config: RunConfig | None  # with the substrate's size; None for a kind that trains nothing
    substrate: SubstratePlan
    wave: int  # 0: starts from nothing; n: from cells of wave n - 1 at most
    parameters: dict[str, int] | None


@dataclass(frozen=True)
class Plan:
    spec: Spec
    vocab_size: int
    substrates: dict[str, SubstratePlan]
    cells: list[CellPlan]  # wave by wave, then in the spec's order of arms, then by seed

    def label(self, arm: Arm) -> str:
        """What an arm is, for legends beside its name: its substrate's method and width, and how it trains."""
        sub = self.substrates[arm.substrate(self.spec)]
        return f"{sub.method} {sub.width}-dim, {arm.describe(self.spec)}"


def make_plan(spec: Spec) -> Plan:
    """The plan of a checked spec; every problem in one BvvtokError, named by its TOML key."""
    problems = Problems()
    vocab_size = _vocab_size(spec)
    configs: dict[str, RunConfig | None] = {}
    for arm in spec.arms.values():
        try:
            configs[arm.name] = arm.config(spec, spec.seeds[0])
        except BvvtokError as e:
            problems.add(f"arms.{arm.name}", str(e))
    substrates = _substrates(spec, configs, problems)
    for arm in spec.arms.values():
        config, sub = configs.get(arm.name), substrates.get(arm.substrate(spec))
        if config is not None and sub is not None:
            try:
                with_substrate(config, vocab_size, sub.width)
            except BvvtokError as e:
                problems.add(f"arms.{arm.name}", str(e))
    problems.raise_if_any(spec.path)
    waves = _waves(spec)
    cells = []
    for wave in range(max(waves.values(), default=0) + 1):
        for arm in (a for a in spec.arms.values() if waves[a.name] == wave):
            sub = substrates[arm.substrate(spec)]
            for seed in spec.seeds:
                config = arm.config(spec, seed)
                config = with_substrate(config, vocab_size, sub.width) if config is not None else None
                cells.append(CellPlan(f"{arm.name}-s{seed}", arm, seed, config, sub, wave, _parameters(config)))
    return Plan(spec, vocab_size, substrates, cells)


def _vocab_size(spec: Spec) -> int:
    if "path" in spec.vocab:
        return load_tokenizer(spec.vocab["path"]).get_vocab_size(with_added_tokens=True)
    return get_preset(spec.vocab["preset"]).vocab_size


def _substrates(spec: Spec, configs: dict[str, RunConfig | None], problems: Problems) -> dict[str, SubstratePlan]:
    """Each substrate's settings at the width its arms need (`Method.fitted`); one width per substrate."""
    planned = {}
    for name, table in spec.substrates.items():
        method, settings = table.get("method"), {k: v for k, v in table.items() if k != "method"}
        widths = {configs[a.name].model.d_model for a in spec.arms.values()  # type: ignore[union-attr]
                  if configs.get(a.name) is not None and a.substrate(spec) == name}  # fmt: skip
        if not widths:
            continue  # a substrate no arm trains on is not built
        try:
            with library_names():  # a method's messages name its settings as the spec's keys, not as flags
                fitted = [METHODS[method].fitted(dict(settings), d) for d in sorted(widths)]
                if any(f != fitted[0] for f in fitted):
                    raise ValueError(f"its arms have d_model {', '.join(map(str, sorted(widths)))}, which need "
                                     "different widths: give dim, or one substrate per width")  # fmt: skip
                built = configure(method, fitted[0])
        except (BvvtokError, ValueError) as e:
            problems.add(f"substrates.{name}", str(e))
            continue
        planned[name] = SubstratePlan(name, method, fitted[0], int(built.dim))  # type: ignore[attr-defined]
    return planned


def _waves(spec: Spec) -> dict[str, int]:
    """Each arm's wave: one more than the latest of the arms it starts from (the spec has no loops)."""
    waves: dict[str, int] = {}

    def wave(name: str) -> int:
        if name not in waves:
            waves[name] = 1 + max((wave(s) for s in spec.arms[name].needs()), default=-1)
        return waves[name]

    for name in spec.arms:
        wave(name)
    return waves


def _parameters(config: RunConfig | None) -> dict[str, int] | None:
    from bvvtok.lm.model import GPT

    if config is None:
        return None
    with torch.device("meta"):
        m = config.model
        return GPT(m, torch.empty(m.vocab_size, m.n_embed)).parameter_counts()


MEASURED_TOKENS = 128  # a step is measured on this many tokens and scaled up: the 335M paper model in seconds on a CPU


def measure_step(config: RunConfig, repeats: int = 2) -> float:
    """Seconds of one optimizer step of this model here (on the GPU if there is one): a step on one short window,
    after a warm-up step, scaled to the tokens a step reads (batch_size x grad_accum windows of the context)."""
    from bvvtok.lm.distributed import pick_device
    from bvvtok.lm.model import GPT

    m, t = config.model, config.train
    device = pick_device("auto")
    torch.manual_seed(0)
    model = GPT(m, torch.nn.functional.normalize(torch.randn(m.vocab_size, m.n_embed), dim=1)).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], fused=True)
    tokens = min(m.context, MEASURED_TOKENS)
    ids = torch.randint(0, m.vocab_size, (1, tokens + 1), device=device)
    took = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        took.append(time.perf_counter() - began)
    return min(took[1:]) * t.batch_size * t.grad_accum * m.context / tokens


def estimate_seconds(plan: Plan, cells: list[CellPlan]) -> float:
    """The time the cells' training takes here: each distinct model's step measured once, times its steps, plus its
    evaluations (a forward is about a third of a step's work)."""
    measured: dict[Any, float] = {}
    total = 0.0
    for cell in cells:
        if cell.config is None:
            continue
        key = dataclasses.replace(cell.config.train, seed=0, steps=0), cell.config.model
        if key not in measured:
            measured[key] = measure_step(cell.config)
        t = cell.config.train
        t = with_token_budget(cell.config, t.batch_size * t.grad_accum * cell.config.model.context).train  # one process
        evals = t.steps // t.eval_every + 2  # step 0, every eval_every, the end, the final held-out evaluation
        eval_steps = evals * t.eval_windows / max(1, t.batch_size * t.grad_accum) / 3
        total += measured[key] * (t.steps + eval_steps)
    return total


def cell_folder(out: Path, cell: CellPlan) -> Path:
    return Path(out) / "cells" / cell.name
