"""The `bvvtok` command line's application: the Typer app, its consoles, and how errors become one line.

Every command calls one library function and prints what it did. Bad input
raises `BvvtokError` in the library; `_Group` turns it into one line on stderr
and exit code 2 (typer.Exit, so it works with whichever click typer brings).
"""

from __future__ import annotations

import errno
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from bvvtok import __version__
from bvvtok.errors import BvvtokError

# No markup on stdout: paths, tokens and details are user data ("[INST]", "runs[/bold]") and print as is.
console = Console(markup=False)
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


class _Group(TyperGroup):
    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BvvtokError as e:
            raise _fail(str(e)) from None
        except OSError as e:  # a read or write the library did not anticipate
            if e.errno == errno.EPIPE:
                raise  # whoever read our output stopped (`bvvtok ... | head`): click exits quietly, as Unix tools do
            raise _fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None


app = typer.Typer(
    cls=_Group,
    help="Frozen embedding substrates: bvv241-compatible Unicode + n-gram tokenizers, their frozen embeddings, "
    "and language models trained, sampled, combined, grown, exported and evaluated on top of them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


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
