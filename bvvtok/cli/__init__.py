"""The `bvvtok` command line: a thin Typer layer over the library, one module per pipeline stage.

Every command calls library functions and prints what they did. Bad input raises `BvvtokError` in the
library; bvvtok.cli.app turns it into one line on stderr and exit code 2.
"""

# isort: off
from bvvtok.cli.app import app
from bvvtok.cli import vocab, substrate, lm, experiment  # noqa: F401  each registers its commands, in the pipeline's order (the help's)
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="bvvtok")  # also as `python -m bvvtok`: the help names the command a user types
