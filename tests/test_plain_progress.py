"""Progress off a terminal (`make demo > log`, a pipe): a plain line now and then, not the bar, and not nothing.

CliRunner's stderr is not a terminal. The interval (bvvtok.cli.app.PLAIN_PROGRESS_S) and the clock it is measured
on (bvvtok.cli.app.monotonic) are replaced, so no test waits or depends on how fast the machine is.
"""

import importlib
import io
import re

import pytest
from conftest import invoke
from rich.console import Console

cli_app = importlib.import_module("bvvtok.cli.app")  # the module: `bvvtok.cli.app` is also the Typer app's name

TRAIN_LINE = re.compile(r"^step [\d,]+/8 \d+% loss \d+\.\d{3} [\d,]+ tok/s", re.M)
BYTES_LINE = re.compile(r"^tokenizing \d+% [\d.]+/[\d.]+ [kM]?B", re.M)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("".join(f"the cat saw the dog {i}.\n" for i in range(300)), encoding="utf-8")
    return path


def train(substrate, corpus, out):
    return invoke("train", "--substrate", substrate, "--corpus", corpus, "--out", out, "--device", "cpu", "--d-model", "32",
                  "--n-layer", "1", "--n-head", "4", "--context", "16", "--steps", "8", "--batch-size", "4", "--eval-every", "8")  # fmt: skip


INTERVAL = cli_app.PLAIN_PROGRESS_S  # read at import, before conftest turns the lines off for each test


@pytest.fixture(autouse=True)
def interval(monkeypatch):
    """conftest turns the lines off in every test: on again, at the interval bvvtok ships with."""
    monkeypatch.setattr(cli_app, "PLAIN_PROGRESS_S", INTERVAL)


def ticking_clock(step: float):
    """A monotonic clock that moves `step` seconds each time it is read."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]

    return read


def test_train_off_a_terminal_prints_a_plain_line_each_interval(char_substrate, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_app, "monotonic", ticking_clock(INTERVAL))  # every reading: an interval on
    result = train(char_substrate, corpus, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert len(TRAIN_LINE.findall(result.stderr)) == 8, result.stderr  # a line a step: each comes an interval later
    assert BYTES_LINE.search(result.stderr), result.stderr  # the tokenizing, its share and its bytes


def test_no_line_before_the_interval_has_passed(char_substrate, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_app, "monotonic", ticking_clock(INTERVAL / 3))  # a line every 3rd reading
    result = train(char_substrate, corpus, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert 0 < len(TRAIN_LINE.findall(result.stderr)) < 8, result.stderr


def test_a_terminal_gets_the_bar_alone(char_substrate, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    terminal = io.StringIO()
    monkeypatch.setattr(cli_app, "err_console", Console(file=terminal, force_terminal=True, width=120))
    monkeypatch.setattr(cli_app, "monotonic", ticking_clock(INTERVAL))
    result = train(char_substrate, corpus, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert not TRAIN_LINE.search(result.stderr) and not BYTES_LINE.search(result.stderr), result.stderr
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # what the terminal drew, without its controls
    assert not TRAIN_LINE.search(shown) and not BYTES_LINE.search(shown), shown


def test_the_interval_is_the_users_to_set(monkeypatch):
    from bvvtok.errors import BvvtokError

    monkeypatch.setenv("BVVTOK_PROGRESS_S", "300")
    assert cli_app.plain_interval() == 300
    monkeypatch.setenv("BVVTOK_PROGRESS_S", "inf")
    assert cli_app.plain_interval() == float("inf")
    for bad in ("0", "soon", "nan"):
        monkeypatch.setenv("BVVTOK_PROGRESS_S", bad)
        with pytest.raises(BvvtokError, match=f"BVVTOK_PROGRESS_S='{bad}' is not a number of seconds above 0"):
            cli_app.plain_interval()
