"""The one exception type the library raises for bad input, and how its messages name a parameter.

The CLI turns it into a one-line message and exit code 2; library users catch it
like any other exception. The message names the problem and, where there is one,
the fix. A parameter is named as the caller gave it (`option`): `--top-k 0` to
someone who typed the flag, `top_k=0` to a Python caller, who never saw one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_command_line: ContextVar[bool] = ContextVar("bvvtok_command_line", default=False)


class BvvtokError(Exception):
    """Bad input or an environment problem the user can fix."""


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Within the block, `option` names parameters as the CLI's flags: bvvtok.cli runs every command in it."""
    token = _command_line.set(True)
    try:
        yield
    finally:
        _command_line.reset(token)


@contextlib.contextmanager
def library_names() -> Iterator[None]:
    """Within the block, `option` names parameters as Python does, even under the CLI: for messages about a file
    whose keys are the parameters' names (an experiment spec's `dim = 300`), not flags."""
    token = _command_line.set(False)
    try:
        yield
    finally:
        _command_line.reset(token)


def cli_flag(name: str, value: object = None, cli: str | None = None) -> str:
    """The command-line rendering of `option`: `--top-k 0`; a bool is the flag alone (`--force`, `--unfrozen`)."""
    shown = cli or "--" + name.replace("_", "-")
    return shown if value is None or isinstance(value, bool) else f"{shown} {value}"


def option(name: str, value: object = None, cli: str | None = None) -> str:
    """Parameter `name` (with the `value` given, if any) as the caller knows it: the flag on the command line
    (`cli`, when the flag is not `name` with `-` for `_`), else Python's `name=value` (`force=True`, `top_k=0`)."""
    if _command_line.get():
        return cli_flag(name, value, cli)
    if value is None:
        return name
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
