"""Training curves where researchers already watch them: `train(..., track=["tensorboard", "wandb"])`, `--track NAME`.

Each backend gets every row of metrics.csv at its step, under metrics.csv's names (train_loss, val_loss, lr,
tokens_per_s, val_bpb). A backend is one class in TRACKERS: `module` is what it imports (checked before any work;
its pip extra is named as the backend), and it is made when the run starts, with the run folder, its config.json and
the step it starts at. Events reach the writing process (rank 0) alone, so under torchrun only it logs.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file
from bvvtok.lm.metrics import Row, source_columns

if TYPE_CHECKING:
    from bvvtok.lm.train import Event


class Tracker(Protocol):
    module: str  # what it imports: a missing package is refused before any work

    def __init__(self, out: Path, config: dict[str, Any], start: int) -> None: ...

    def log(self, row: Row) -> None: ...

    def close(self, failed: bool) -> None: ...


def values(row: Row) -> dict[str, float]:
    """What the row logged, by metrics.csv's column names (each named source's too: val_loss_en, val_bpb_en)."""
    own = {column: value for name, pair in row.sources.items() for column, value in zip(source_columns(name), pair)}
    logged = {**dataclasses.asdict(row), **own}
    return {name: value for name, value in logged.items() if name not in ("step", "sources") and value is not None}


class TensorBoard:
    """Event files in RUN_DIR/tensorboard/. A resumed run writes there too, and hides what a killed run logged
    after its last checkpoint (purge_step), so the curve goes on from the checkpoint."""

    module = "torch.utils.tensorboard"

    def __init__(self, out: Path, config: dict[str, Any], start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # flush_secs: the curves show within seconds, not SummaryWriter's two minutes
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None, flush_secs=10)

    def log(self, row: Row) -> None:
        for name, value in values(row).items():
            self.writer.add_scalar(name, value, row.step)

    def close(self, failed: bool) -> None:
        self.writer.close()


class WandB:
    """A W&B run named after the run folder, with its config.json as config. Its id is kept in
    RUN_DIR/wandb/run_id.txt, which a resumed run continues. wandb's own settings apply (WANDB_MODE, WANDB_ENTITY
    ...); where the user set none, the project is bvvtok and wandb's local files go in RUN_DIR/wandb/."""

    module = "wandb"

    def __init__(self, out: Path, config: dict[str, Any], start: int) -> None:
        import wandb

        saved = out / "wandb" / "run_id.txt"
        run_id = saved.read_text(encoding="utf-8").strip() if saved.is_file() else None
        try:
            # read here, not left to wandb: it reads the environment once per process, not once per run
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "bvvtok",
                                  dir=os.environ.get("WANDB_DIR") or out, name=out.name, config=config, id=run_id,
                                  resume="allow")  # fmt: skip
        except wandb.errors.Error as e:
            raise BvvtokError(f"{option('track', 'wandb')}: wandb could not start the run ({e}); log in with "
                              "`wandb login`, or set WANDB_MODE=offline and `wandb sync` later") from None  # fmt: skip
        if run_id is None:
            saved.parent.mkdir(exist_ok=True)
            with atomic_file(saved, force=True, part=True) as tmp:
                tmp.write_text(self.run.id, encoding="utf-8")

    def log(self, row: Row) -> None:
        self.run.log(values(row), step=row.step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoard, "wandb": WandB}


def check(names: Sequence[str]) -> tuple[str, ...]:
    """The backends named, once each; an unknown one, or one whose package is missing, is refused before any work."""
    names = [names] if isinstance(names, str) else names  # track="wandb" means the one, not its letters
    for name in names:
        if name not in TRACKERS:
            raise BvvtokError(f"{option('track', name)}: choose {' or '.join(TRACKERS)}")
        try:
            importlib.import_module(TRACKERS[name].module)
        except ImportError:
            raise BvvtokError(f"{option('track', name)} needs the {name} package: "
                              f"pip install 'bvvtok[{name}]'") from None  # fmt: skip
    return tuple(dict.fromkeys(names))


class Tracking:
    """The run's events, passed on to `on_event` and to the backends `names`, which open when the run starts and
    close with the block (marked failed when it raised)."""

    def __init__(self, names: Sequence[str], out: Path, on_event: Event | None) -> None:
        self.names, self.out, self.on_event = names, out, on_event
        self.open: list[Tracker] = []

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if self.on_event:
            self.on_event(kind, info)
        if kind == "start":
            for name in self.names:
                self.open.append(TRACKERS[name](self.out, info["raw"], info["start_step"]))
        elif kind == "step":
            for tracker in self.open:
                tracker.log(info["row"])

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: types.TracebackType | None) -> None:  # fmt: skip
        for tracker in self.open:
            tracker.close(failed=kind is not None)
