"""The experiment spec: a TOML file read into a `Spec`, every problem found at once and named by its TOML key.

    name = "ablation-tiny"
    preset = "tiny"            # model and training defaults, as `train --preset`
    seeds = [0, 1, 2]          # every arm runs once per seed (weights and data order)
    baseline = "unfrozen"      # paired differences are reported against this arm
    [vocab]                    # preset = "65k" | "131k" (built offline), or path = "DIR"
    [data]                     # corpus = [...]: what `train --corpus` takes (paths, or NAME=PATH@WEIGHT)
    [model], [train]           # overrides for every arm, as train's --config tables
    [substrates.NAME]          # method = "glyph" | "bits" | ..., and that method's `embed` settings
    [arms.NAME]                # one of the kinds in bvvtok.experiment.arms
    [eval]                     # eval task -> files, and the tasks' settings (docs/experiment.md)

Paths are relative to the current directory, as on the command line. Checking reads no corpus
and builds nothing: `check` says whether every file exists, every substrate can be built at
the width its arms need and every arm's model is valid.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bvvtok.errors import BvvtokError, library_names
from bvvtok.experiment.arms import Arm, kind_of
from bvvtok.experiment.problems import Problems
from bvvtok.inputs import read_text_file
from bvvtok.lm.config import PRESETS, ModelConfig, RunConfig, TrainConfig, check, merge_fields
from bvvtok.lm.evals import TASKS
from bvvtok.lm.sources import source_paths
from bvvtok.substrate.methods import METHODS
from bvvtok.vocab.layout import PRESETS as VOCAB_PRESETS

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
TOP_KEYS = ("name", "preset", "seeds", "baseline", "vocab", "data", "model", "train", "substrates", "arms", "eval")


@dataclass(frozen=True)
class Spec:
    path: Path
    raw: dict[str, Any]  # the TOML as read: what the experiment folder records and compares
    name: str
    preset: str
    seeds: tuple[int, ...]
    baseline: str | None
    vocab: dict[str, Any]  # {"preset": "65k"} or {"path": Path}
    corpus: tuple[str, ...]  # `train --corpus` values: paths, or named sources NAME=PATH@WEIGHT
    model: dict[str, Any]
    train: dict[str, Any]
    substrates: dict[str, dict[str, Any]]  # name -> {"method": ..., its settings}
    arms: dict[str, Arm]
    eval: dict[str, Any] = field(default_factory=dict)  # task name -> files, and task settings by name

    def arm_config(self, arm_model: dict[str, Any], arm_train: dict[str, Any], seed: int) -> RunConfig:
        """The run configuration of a cell: the preset, then [model]/[train], then the arm's, then the seed."""
        config = RunConfig(ModelConfig(), TrainConfig())
        preset = PRESETS[self.preset]
        for model, train in ((preset["model"], preset["train"]), (self.model, self.train), (arm_model, arm_train)):
            config = RunConfig(merge_fields(config.model, model, "model"), merge_fields(config.train, train, "train"))
        config = RunConfig(config.model, dataclasses.replace(config.train, seed=seed))
        check(config)
        return config


def read_spec(path: Path) -> Spec:
    """Read and check a spec; every problem in one BvvtokError, a line each, nothing built."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_text_file(path))
    except tomllib.TOMLDecodeError as e:
        raise BvvtokError(f"{path} is not valid TOML ({e}); see docs/experiment.md for the format") from None
    problems = Problems()
    spec = _parse(path, raw, problems)
    unsound = _unsound(spec, problems)
    for arm in spec.arms.values():
        if arm.name not in unsound:
            arm.check(spec, problems.under(f"arms.{arm.name}"))
    if spec.baseline is not None and spec.baseline not in spec.arms:
        problems.add("baseline", f"{spec.baseline!r} is not an arm; choose one of {', '.join(spec.arms)}")
    problems.raise_if_any(path)
    return spec


def _unsound(spec: Spec, problems: Problems) -> set[str]:
    """The arms that start from an arm that does not exist or, through others, from themselves (each a problem), and
    the arms that start from those: the arms' own checks rely on what they start from."""
    bad = set()
    for arm in spec.arms.values():
        missing = [source for source in arm.needs() if source not in spec.arms]
        for source in missing:
            problems.add(f"arms.{arm.name}", f"starts from {source!r}, which is not an arm; choose one of {', '.join(spec.arms)}")
        seen, todo = set(), [n for n in arm.needs() if n in spec.arms]
        while todo and arm.name not in seen:
            source = todo.pop()
            if source not in seen:
                seen.add(source)
                todo += [n for n in spec.arms[source].needs() if n in spec.arms]
        if arm.name in seen:
            problems.add(f"arms.{arm.name}", "starts, through other arms, from itself: arms cannot form a loop")
        if missing or arm.name in seen:
            bad.add(arm.name)
    while grown := {a.name for a in spec.arms.values() if a.name not in bad and bad & set(a.needs())}:
        bad |= grown
    return bad


def _parse(path: Path, raw: dict[str, Any], problems: Problems) -> Spec:
    for key in sorted(set(raw) - set(TOP_KEYS)):
        problems.add(key, f"unknown key; the keys are {', '.join(TOP_KEYS)}")
    tables = {key: _table(raw, key, problems) for key in ("vocab", "data", "model", "train", "substrates", "arms", "eval")}
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        problems.add("name", "give the experiment a name (a string)")
    preset = raw.get("preset", "tiny")
    if preset not in PRESETS:
        problems.add("preset", f"{preset!r} is not a preset; choose {', '.join(PRESETS)}")
        preset = "tiny"
    seeds = _seeds(raw.get("seeds", [0]), problems)
    baseline = raw.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        problems.add("baseline", "give the name of an arm")
        baseline = None
    model, train = overrides(tables["model"], tables["train"], problems)
    substrates = {n: _substrate(n, table, problems) for n, table in _named(tables["substrates"], "substrates", problems)}
    if not substrates:
        problems.add("substrates", "no substrates; add a table such as [substrates.glyph] with method = \"glyph\"")
    arms: dict[str, Arm] = {}
    for arm_name, table in _named(tables["arms"], "arms", problems):
        arm = kind_of(table).parse(arm_name, table, problems.under(f"arms.{arm_name}"))
        if arm is not None:
            arms[arm_name] = arm
    if not tables["arms"]:
        problems.add("arms", "no arms; add a table such as [arms.glyph] with substrate = \"glyph\"")
    return Spec(path, raw, name if isinstance(name, str) else "", preset, seeds, baseline, _vocab(tables["vocab"], problems),
                corpus_values(tables["data"].get("corpus"), "data.corpus", problems), model, train,
                substrates, arms, _eval(tables["eval"], problems))  # fmt: skip


def _table(raw: dict[str, Any], key: str, problems: Problems) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.add(key, f"must be a table ([{key}])")
        return {}
    return value


def _named(tables: dict[str, Any], where: str, problems: Problems) -> list[tuple[str, dict[str, Any]]]:
    """The subtables of [substrates] or [arms]: a name, then its table."""
    found = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.add(f"{where}.{name}", f"must be a table ([{where}.{name}])")
        elif not NAME.fullmatch(name):
            problems.add(f"{where}.{name}", "a name is letters, digits, '_', '.' and '-' (it names folders); rename it")
        else:
            found.append((name, table))
    return found


def _seeds(value: Any, problems: Problems) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        problems.add("seeds", "give a list of whole numbers, e.g. seeds = [0, 1, 2]")
        return (0,)
    bad = [v for v in value if type(v) is not int or v < 0]
    if bad:
        problems.add("seeds", f"{', '.join(map(repr, bad))} {'is' if len(bad) == 1 else 'are'} not whole numbers >= 0")
    if len(set(value)) != len(value):
        problems.add("seeds", "a seed is listed twice; list each once")
    return tuple(v for v in dict.fromkeys(value) if type(v) is int and v >= 0) or (0,)


def overrides(model: Any, train: Any, problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
    """[model] and [train] tables, each field checked against train's: unknown fields and wrong types are problems;
    `seed` is the experiment's (its `seeds`)."""
    checked = []
    for key, table, base in (("model", model, ModelConfig()), ("train", train, TrainConfig())):
        name = key
        if not isinstance(table, dict):
            problems.add(name, "must be a table")
            checked.append({})
            continue
        if key == "model" and {"frozen", "vocab_size", "n_embed"} & set(table):
            problems.add(name, "vocab_size, n_embed and frozen come from the substrate and the arm; leave them out")
            table = {k: v for k, v in table.items() if k not in ("frozen", "vocab_size", "n_embed")}
        if key == "train" and "seed" in table:
            problems.add("train.seed", "the seeds are the experiment's: list them in seeds = [...]")
            table = {k: v for k, v in table.items() if k != "seed"}
        try:
            merge_fields(base, table, name)
            checked.append(table)
        except BvvtokError as e:
            problems.add(name, str(e).removeprefix(f"{name}: "))
            checked.append({})
    return checked[0], checked[1]


def _substrate(name: str, table: dict[str, Any], problems: Problems) -> dict[str, Any]:
    where = f"substrates.{name}"
    method = table.get("method")
    if method not in METHODS:
        problems.add(f"{where}.method", f"{method!r} is not a substrate method; choose {', '.join(METHODS)}")
        return table
    takes = METHODS[method].flags()
    for key in sorted(set(table) - {"method"} - set(takes)):
        problems.add(f"{where}.{key}", f"not a setting of method {method!r}; it takes {', '.join(takes) or 'none'}")
    return table


def _vocab(table: dict[str, Any], problems: Problems) -> dict[str, Any]:
    keys = set(table)
    if keys - {"preset", "path", "ngrams"}:
        problems.add("vocab", f"unknown key(s) {', '.join(sorted(keys - {'preset', 'path', 'ngrams'}))}; use preset or path")
    if "path" in table:
        if keys & {"preset", "ngrams"}:
            problems.add("vocab", "give preset (built here) or path (a vocabulary folder), not both")
        given = paths(table["path"], "vocab.path", problems, folder=True)
        return {"path": given[0]} if given else {"preset": "65k"}
    preset = table.get("preset", "65k")
    if preset not in VOCAB_PRESETS:
        problems.add("vocab.preset", f"{preset!r} is not a vocabulary preset; choose {', '.join(VOCAB_PRESETS)}")
        preset = "65k"
    return {"preset": preset, "ngrams": paths(table.get("ngrams", []), "vocab.ngrams", problems)}


def corpus_values(value: Any, where: str, problems: Problems) -> tuple[str, ...]:
    """What `train --corpus` takes: paths that must exist, or named sources (NAME=PATH@WEIGHT) whose paths must."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        problems.add(where, 'give a path or a list of them, or named sources such as ["en=corpus/en@0.7", "zh=corpus/zh@0.3"]')
        return ()
    try:
        paths([str(p) for p in source_paths(values)], where, problems)
    except BvvtokError as e:
        problems.add(where, str(e))
    return tuple(values)


def paths(value: Any, where: str, problems: Problems, required: bool = False, folder: bool = False) -> list[Path]:
    """A path or a list of paths that must exist."""
    if value is None and not required:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or (required and not values):
        problems.add(where, "give a path or a list of paths (strings)")
        return []
    paths = [Path(v) for v in values]
    for path in paths:
        if not path.exists():
            problems.add(where, f"{path} not found; check the path (paths are relative to the current directory)")
        elif folder and not path.is_dir():
            problems.add(where, f"{path} is not a folder")
    return paths


def _eval(table: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """Each task named by `bvvtok eval`'s option (multiple_choice, perplexity, held_out, ...) with its files; other
    keys are the tasks' settings (protocol, runs, ...)."""
    settings = {f.name for task in TASKS.values() for f in dataclasses.fields(task)} - {"path"}
    checked: dict[str, Any] = {}
    for key, value in table.items():
        if key in TASKS:
            checked[key] = paths(value, f"eval.{key}", problems, required=True)
        elif key in settings:
            checked[key] = value
        else:
            problems.add(f"eval.{key}", f"not an eval task or setting; tasks: {', '.join(TASKS)}")
    for name, files in checked.items():  # each task with the settings it takes, checked as eval checks them
        if name in TASKS and files:
            task = TASKS[name]
            settings = {f.name: checked[f.name] for f in dataclasses.fields(task) if f.name in checked and f.name != "path"}
            try:
                with library_names():
                    task(files[0], **settings).check()
            except (BvvtokError, TypeError, ValueError) as e:
                problems.add(f"eval.{name}", str(e))
    return checked
