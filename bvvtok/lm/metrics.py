"""`metrics.csv`, the training log of a run folder: one row per logged step.

A plain CSV so that it can be read by anything (a spreadsheet, pandas, `column -s,`);
losses are natural-log cross-entropy in nats/token, `val_loss` is empty on steps
without validation. A fresh run's first row is step 0, the validation of the model it
starts from, before any training (its train loss, lr and speed are empty). A run on named sources
(`--corpus en=...`) has two more columns per source after these, `val_loss_en` and `val_bpb_en`: that
source's own validation (`val_loss` and `val_bpb` are over every source's windows). It is rewritten
whole and atomically, so a killed run leaves a complete file with the rows logged so far, never a
half-written line.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file

METRICS = "metrics.csv"
FIELDS = ("step", "train_loss", "val_loss", "lr", "tokens_per_s", "val_bpb")
FIELDS_0_1 = FIELDS[:5]  # bvvtok 0.1's files, before validation bits per byte: still read


@dataclass
class Row:
    step: int
    train_loss: float | None  # None at step 0 (validation only), as lr and tokens_per_s
    val_loss: float | None
    lr: float | None
    tokens_per_s: float | None
    val_bpb: float | None = None  # validation bits per byte of text (bvvtok.lm.text_bytes)
    sources: dict[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)
    # ^ each named source's own (val_loss, val_bpb); empty for one unnamed corpus


def source_names(rows: Sequence[Row]) -> list[str]:
    """The named sources the rows have figures for, in their order."""
    return list(dict.fromkeys(name for r in rows for name in r.sources))


def source_rows(rows: Sequence[Row], name: str) -> list[Row]:
    """The rows with source `name`'s validation as their val_loss and val_bpb (those without it left out): what a
    plot or a table of the whole reads, read for one source."""
    return [dataclasses.replace(r, val_loss=r.sources[name][0], val_bpb=r.sources[name][1], sources={})
            for r in rows if name in r.sources]  # fmt: skip


def source_columns(name: str) -> tuple[str, str]:
    return f"val_loss_{name}", f"val_bpb_{name}"


def mean_tokens_per_s(rows: Sequence[Row]) -> float | None:
    """A run's speed: the mean over its steps, the first left out (it carries the start: allocation, compilation),
    as train's progress line and its summary both show it."""
    trained = [r.tokens_per_s for r in rows if r.tokens_per_s is not None]  # step 0 trains nothing
    speeds = trained[1:] or trained
    return sum(speeds) / len(speeds) if speeds else None


def write_metrics(path: Path, rows: Sequence[Row]) -> None:
    """Replace `path` with `rows` (atomic: readers see the old file or the new one)."""
    names = source_names(rows)
    with atomic_file(Path(path), force=True, part=True) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow([*FIELDS, *(column for name in names for column in source_columns(name))])
            for r in rows:
                own = [_cell(value, ".6f") for name in names for value in r.sources.get(name, (None, None))]
                writer.writerow([r.step, _cell(r.train_loss, ".6f"), _cell(r.val_loss, ".6f"), _cell(r.lr, ".6g"),
                                 _cell(r.tokens_per_s, ".6g"), _cell(r.val_bpb, ".6f"), *own])  # fmt: skip


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _number(text: str, field: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise BvvtokError(f"{where}: {field} {text!r} is not a number; fix or delete that line") from None


def _row(fields: list[str], where: str, header: tuple[str, ...], names: list[str]) -> Row:
    if len(fields) != len(header):
        expected = f"expected {len(header)} ({','.join(header)})"
        raise BvvtokError(f"{where}: {len(fields)} fields, {expected}; fix or delete that line")
    step, train, val, lr, speed, *rest = (f.strip() for f in fields[: len(FIELDS)])
    own = [_number(f.strip(), column, where) for f, column in zip(fields[len(FIELDS) :], header[len(FIELDS) :])]
    sources = {name: (own[2 * i], own[2 * i + 1]) for i, name in enumerate(names)
               if own[2 * i] is not None or own[2 * i + 1] is not None}  # fmt: skip
    try:
        step_number = int(step)
    except ValueError:
        raise BvvtokError(f"{where}: step {step!r} is not a whole number; fix or delete that line") from None
    val_loss, bpb = _number(val, "val_loss", where), _number(rest[0] if rest else "", "val_bpb", where)
    numbers = [_number(x, name, where) for x, name in zip((train, lr, speed), ("train_loss", "lr", "tokens_per_s"))]
    return Row(step_number, numbers[0], val_loss, numbers[1], numbers[2], bpb, sources)


def _sources(header: tuple[str, ...]) -> list[str] | None:
    """The source names of a header with per-source columns after FIELDS (None: not such a header)."""
    extra = header[len(FIELDS) :]
    if header[: len(FIELDS)] != FIELDS or not extra or len(extra) % 2:
        return None
    names = [column.removeprefix("val_loss_") for column in extra[::2]]
    return names if all(source_columns(n) == pair for n, pair in zip(names, zip(extra[::2], extra[1::2]))) else None


def read_metrics(path: Path) -> list[Row]:
    """The rows of a metrics file; a BvvtokError naming the file and line if it is not one."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            names = tuple(h.strip() for h in header or [])
            sources = _sources(names)
            if names not in (FIELDS, FIELDS_0_1) and sources is None:
                raise BvvtokError(
                    f"{path} line 1: header is {','.join(header or []) or 'missing'}, expected {','.join(FIELDS)}; "
                    "is it a metrics file written by bvvtok train?"
                )
            return [_row(fields, f"{path} line {reader.line_num}", names, sources or []) for fields in reader if fields]
    except FileNotFoundError:
        raise BvvtokError(f"{path.parent} has no {path.name}; is it a run folder written by bvvtok train?") from None
    except UnicodeDecodeError:
        raise BvvtokError(f"{path} is not UTF-8 text; is it a metrics file written by bvvtok train?") from None
    except csv.Error as e:
        raise BvvtokError(f"{path} line {reader.line_num}: {e}; fix or delete that line") from None
    except OSError as e:
        raise BvvtokError(f"cannot read {path}: {e.strerror}; give the metrics.csv of a run folder") from None
