"""`bvvtok eval`: the papers' kinds of figures for one or several model folders, on local files only.

Each kind of figure is a task, one module here that registers itself (perplexity.py: token loss,
perplexity and bits per character; choice.py: multiple-choice questions; and so on). A task is a
dataclass: its file, then the settings it takes, each named as `bvvtok eval`'s option for it
(`multiple_choice` is `--multiple-choice FILE.jsonl`, `runs` is `--runs N`); it reads its file once,
scores one model and returns its named figures, and says which of them the printed table shows.
report.py runs the requested tasks on each model. A new task is a module here, its option in
`bvvtok eval`'s table (bvvtok/cli/lm.py), docs and tests: every module of this package is imported
below.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch

from bvvtok.inputs import read_text_file
from bvvtok.lm.generate import Sampling, generate

Start = Callable[[str, int], Callable[[], None]]  # (what, total) as a task starts; returns the call per item done


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) for each non-blank line of a UTF-8 text file; unreadable: one-line error."""
    lines = read_text_file(path).splitlines()
    return ((number, line) for number, line in enumerate(lines, 1) if line.strip())


def greedy_continuation(model: torch.nn.Module, ids: list[int], wanted: int, stop_ids: frozenset[int] = frozenset(),
                        on_token: Callable[[int, int], bool] | None = None) -> list[int]:  # fmt: skip
    """The model's greedy continuation of a prompt: up to `wanted` tokens, at most half the context; a prompt too
    long keeps its last tokens, as many as fit beside them. `stop_ids` and `on_token` end it as in `generate`."""
    budget = min(wanted, model.context // 2)
    prompt = ids[-(model.context - budget) :]
    return generate(model, [prompt], Sampling(greedy=True), budget, stop_ids, on_token=on_token)[0]


def two_decimals(value: Any, row: Mapping[str, Any]) -> str:
    return f"{value:.2f}"


def four_decimals(value: Any, row: Mapping[str, Any]) -> str:
    return f"{value:.4f}"


@dataclass(frozen=True)
class Column:
    """A figure the printed table shows: its key in a row, its title, and how a value reads (None reads "-")."""

    key: str
    title: str
    text: Callable[[Any, Mapping[str, Any]], str] = two_decimals
    lower_is_better: bool = False  # a loss (True), or a score such as accuracy (False): which way a difference points


@dataclass
class Task(ABC):
    """One kind of evaluation: the file it reads (the option `name`), and in subclasses the settings it takes."""

    name: ClassVar[str]  # the `bvvtok eval` parameter of its file: multiple_choice for --multiple-choice
    path: Path

    def check(self) -> None:
        """Refuse bad settings (one-line BvvtokError) before any file is read."""

    @abstractmethod
    def read(self, on_skip: Callable[[str], None] | None) -> list[Any]:
        """The items of the file, read once for all models (a task that skips bad items reports them to on_skip)."""

    @abstractmethod
    def score(self, folder: Path, model: Any, tokenizer: Any, items: list[Any], start: Start) -> dict[str, Any]:
        """The named figures of one model (loaded from `folder`, which holds its configuration) on the items, in the
        order rows (and CSV columns) have them."""

    @property
    @abstractmethod
    def columns(self) -> tuple[Column, ...]:
        """The figures the printed table shows, in its order."""


TASKS: dict[str, type[Task]] = {}


def register(task: type[Task]) -> type[Task]:
    """A class decorator: the task becomes available under its name."""
    TASKS[task.name] = task
    return task


def requested_tasks(options: Mapping[str, Any]) -> list[Task]:
    """The tasks whose file `options` gives, in the options' order, each with the settings it takes from `options`.

    `options` maps `bvvtok eval`'s parameter names to values; settings it lacks keep their defaults.
    """
    tasks = []
    for name, path in options.items():
        if name in TASKS and path is not None:
            task = TASKS[name]
            settings = {f.name: options[f.name] for f in fields(task) if f.name != "path" and f.name in options}
            tasks.append(task(path, **settings))
    return tasks


for _module in pkgutil.iter_modules(__path__):  # the tasks register themselves as they are imported
    importlib.import_module(f"{__name__}.{_module.name}")
