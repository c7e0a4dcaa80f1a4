"""`bvvtok eval`: the papers' kinds of figures for one or several model folders, on local files only.

perplexity.py (token loss, perplexity, bits per character), choice.py (multiple-choice
questions: the papers' generative protocol and the log-likelihood one), translation.py (BLEU).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bvvtok.inputs import read_text_file


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) for each non-blank line of a UTF-8 text file; unreadable: one-line error."""
    lines = read_text_file(path).splitlines()
    return ((number, line) for number, line in enumerate(lines, 1) if line.strip())
