"""The `bvvtok` command line's application: the Typer app, its consoles, and how errors become one line.

Every command calls one library function and prints what it did. Bad input
raises `BvvtokError` in the library; `_Group` turns it into one line on stderr
and exit code 2 (typer.Exit, so it works with whichever click typer brings), and runs
the command in `command_line()`, so that the message names the flags, not Python's parameters.
"""

from __future__ import annotations

import errno
import math
import os
from time import monotonic
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TimeRemainingColumn
from rich.text import Text
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from bvvtok import __version__
from bvvtok.errors import BvvtokError, command_line

# what a corpus may be, for every flag that reads one (bvvtok.vocab.corpus.FORMATS)
CORPUS_FORMATS = ".txt, .jsonl, .parquet (.txt and .jsonl also .gz or .zst), a `datasets` save_to_disk folder, hf:NAME[:CONFIG][:SPLIT]"
TextColumnFlag = Annotated[str, typer.Option("--text-column", metavar="NAME", help="The field or column that holds the text in .jsonl, Parquet, save_to_disk and hf: corpora.")]

# No markup on stdout: paths, tokens and details are user data ("[INST]", "runs[/bold]") and print as is.
console = Console(markup=False)
err_console = Console(stderr=True)
PLAIN_PROGRESS_S = 30.0  # off a terminal: a plain progress line at most this often (seconds on the monotonic clock)
PROGRESS_ENV = "BVVTOK_PROGRESS_S"  # a user's own interval for those lines


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


class _Argument(TyperArgument):
    """An argument as click's usage line writes it: NAME, NAME... when it takes several, [NAME] when optional; its
    name is its metavar, so no type beside it."""

    @property
    def display_name_raw(self) -> str:
        return (self.metavar or (self.name or "").upper()) + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.display_name_raw if self.required else f"[{self.display_name_raw}]"]


class _Option(TyperOption):
    """An option shown by its metavar; a flag takes no value, so none."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


def _plain_help(params: list[Any]) -> None:
    """Help texts are plain text ("[model] and [train] tables" are words, not Rich markup), and parameters shown
    as `_Argument` and `_Option` say."""
    for param in params:
        param.help = param.help and escape(param.help)
        param.__class__ = _Argument if isinstance(param, TyperArgument) else _Option


class _Help:
    """What every bvvtok command's and the group's help shares: see `_plain_help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help, self.epilog = (text and escape(text) for text in (self.help, self.epilog))  # type: ignore[attr-defined]
        _plain_help(self.params)  # type: ignore[attr-defined]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and not isinstance(option, _Option):
            _plain_help([option])
        return option


class Command(_Help, TyperCommand):
    """A bvvtok command (every `app.command` is one): the help of `_Help`."""


def example(command_line: str) -> str:
    """A command's epilog: one example of it, shown at the end of its --help."""
    return f"Example:\n{command_line}"


class DataTable(Table):
    """A table whose first `keys` columns name the row (a run, a tokenizer, a check): they are never wrapped or cut;
    the others wrap at spaces, and fold a word too long for them rather than cut it."""

    def __init__(self, *headers: str, keys: int = 1, **kwargs: Any) -> None:
        super().__init__(*headers, **kwargs)
        self.keys = keys
        for i, column in enumerate(self.columns):
            column.no_wrap, column.overflow = i < keys, "fold"

    def turned(self) -> DataTable:
        """The same figures a column per row (headed by its names) and a row per figure."""
        names = list(zip(*(column.cells for column in self.columns[: self.keys])))
        turned = DataTable("", *("\n".join(map(str, n)) for n in names), box=self.box, title=self.title,
                           title_justify=self.title_justify)  # fmt: skip
        for column in self.columns[self.keys :]:
            turned.add_row(str(column.header), *column.cells)
        return turned


class _Progress(Progress):
    """Rich's progress bar; off a terminal (a log file, a pipe), where a bar would leave blank lines, a plain line
    instead, at most every PLAIN_PROGRESS_S: `step 1,200/8,000 15% loss 4.123 12,345 tok/s 0:09:12 left`,
    `tokenizing 45% 1.2/2.7 GB 10.5 MB/s 0:02:10 left`. The line is the bar's columns as text, the bar a percentage."""

    def __init__(self, *columns: ProgressColumn, plain: bool, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.plain, self.last_line, self.every = plain, monotonic(), plain_interval() if plain else math.inf

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._plain_line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._plain_line(task_id)

    def _plain_line(self, task_id: TaskID) -> None:
        if not self.plain:
            return
        now = monotonic()
        task = self._tasks.get(task_id)
        if task is None or not task.visible or not task.completed or now - self.last_line < self.every:
            return  # nothing done yet says nothing the command's first line does not
        self.last_line = now
        parts = []
        for column in self.columns:
            if isinstance(column, BarColumn):
                text = f"{task.percentage:.0f}%" if task.total else ""
            else:
                shown = column.format(task=task) if isinstance(column, str) else column(task)
                text = shown.plain if isinstance(shown, Text) else str(shown) if isinstance(shown, str) else ""
                if isinstance(column, TimeRemainingColumn):
                    text = f"{text} left" if any(c.isdigit() for c in text) and not task.finished else ""
            parts.append("" if text == "?" else text)  # "?": a speed not measured yet
        self.console.print(" ".join(" ".join(parts).split()), markup=False, highlight=False, soft_wrap=True)


def plain_interval() -> float:
    """Seconds between plain progress lines: PLAIN_PROGRESS_S, or $BVVTOK_PROGRESS_S (`inf`: none at all)."""
    given = os.environ.get(PROGRESS_ENV)
    if given is None:
        return PLAIN_PROGRESS_S
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:
        raise BvvtokError(f"{PROGRESS_ENV}={given!r} is not a number of seconds above 0; give e.g. 300, or inf for no progress lines")
    return seconds


def progress_bar(*columns: ProgressColumn, hidden: bool = False) -> Progress:
    """A progress display on stderr, gone when done; on a terminal a bar, elsewhere a plain line every
    PLAIN_PROGRESS_S (a bar in a log would leave blank lines, and nothing at all says nothing for hours)."""
    terminal = err_console.is_terminal
    return _Progress(*columns, console=err_console, transient=True, disable=hidden or not terminal,
                     plain=not hidden and not terminal)


def print_table(table: DataTable) -> None:
    """`table`, or turned if this terminal is too narrow to show its words whole: nine figures of three runs fit 80
    columns as rows, not as columns, and a number folded over two lines is misread."""
    unbounded = console.options.update_width(1_000_000)  # console.measure clamps at the terminal's width
    console.print(table if Measurement.get(console, unbounded, table).minimum <= console.width else table.turned())


def summary(title: str) -> Table:
    """A two-column table of what a command made: a label, then its value."""
    return DataTable("", "", title=title, show_header=False, title_justify="left")


class _Group(_Help, TyperGroup):
    def invoke(self, ctx: typer.Context):
        try:
            with command_line():  # the library's messages name the flags the user typed
                return super().invoke(ctx)
        except BvvtokError as e:
            raise _fail(str(e)) from None
        except OSError as e:  # a read or write the library did not anticipate
            if e.errno == errno.EPIPE:
                raise  # whoever read our output stopped (`bvvtok ... | head`): click exits quietly, as Unix tools do
            raise _fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None


class _App(typer.Typer):
    def command(self, *args: Any, cls: type[TyperCommand] = Command, **kwargs: Any) -> Any:
        """A command whose help is `Command`'s unless it says otherwise (a subclass of it)."""
        return super().command(*args, cls=cls, **kwargs)


app = _App(
    cls=_Group,
    help="Frozen embedding substrates: bvv241-compatible Unicode + n-gram tokenizers, their frozen embeddings, "
    "and language models trained, sampled, combined, grown, exported and evaluated on top of them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def command_group(name: str, help: str) -> typer.Typer:
    """Commands under `bvvtok NAME` (`bvvtok experiment run`), with the errors and help of every other command."""
    group = _App(cls=_Group, help=help, no_args_is_help=True, add_completion=False)
    app.add_typer(group, name=name)
    return group


def _version(value: bool) -> None:
    if value:
        console.print(f"bvvtok {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Frozen embedding substrates: bvv241-compatible tokenizers, glyph and binary embeddings, and models trained on them."""
