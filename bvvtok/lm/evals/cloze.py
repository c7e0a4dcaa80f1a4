"""LAMBADA-style cloze: the last word of each passage, predicted from the rest (accuracy over passages).

Passages come one per line (.txt) or one JSON object with a `text` per line (.jsonl, LAMBADA's own
layout; --text-column names another field). The target is the passage's last whitespace-separated
word. The model greedily continues the passage without it (the context ends before the space) and is
right when its continuation starts a new word (whitespace first) that is the target: LAMBADA's exact
whole-word match, except that trailing punctuation is stripped from both ("door." matches "door";
"doors" does not). A passage longer than the context keeps its last tokens, as many as fit beside the
generated ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import torch
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError
from bvvtok.inputs import check_input_file
from bvvtok.lm.evals import Column, Start, Task, greedy_continuation, numbered_lines, register
from bvvtok.lm.evals.perplexity import SEPARATOR
from bvvtok.vocab.corpus import TEXT_COLUMN, CorpusFile, jsonl_text

TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")


@dataclass
class Passage:
    line: int
    context: str  # the passage without its last word and the whitespace before it
    target: str


@dataclass
class Cloze:
    passages: int
    accuracy: float  # percent
    words: tuple[str | None, ...]  # each continuation's first word, trailing punctuation stripped (None: no new word)


def read_passages(path: Path, text_column: str = TEXT_COLUMN) -> list[Passage]:
    """The passages of a .txt (one per line) or .jsonl file (a record per line, its text in `text_column`, read as
    a corpus's records are); any bad line is an error that names it."""
    path = check_input_file(path)
    if path.suffix not in (".txt", ".jsonl"):
        raise BvvtokError(f"{path} is neither .txt nor .jsonl; give passages as a .txt or .jsonl file")
    records = CorpusFile(path, path.name, path.suffix, text_column)
    passages = []
    for number, line in numbered_lines(path):
        text = jsonl_text(line, records, number) if path.suffix == ".jsonl" else line
        words = text.split()
        if len(words) < 2:
            raise BvvtokError(f"{path}:{number}: a passage needs at least two words (the last is predicted); fix the line")
        passages.append(Passage(number, text.rstrip()[: -len(words[-1])].rstrip(), words[-1]))
    if not passages:
        raise BvvtokError(f"{path} holds no passage; write one per line (.txt) or one `text` per line (.jsonl)")
    return passages


def bare(word: str) -> str:
    return TRAILING_PUNCTUATION.sub("", word)


def first_word(continuation: str) -> str | None:
    """The word a continuation starts, trailing punctuation stripped; None when it does not start a new word."""
    words = continuation.split()
    return bare(words[0]) if continuation[:1].isspace() and words else None


def cloze(model: torch.nn.Module, tokenizer: Tokenizer, passages: list[Passage],
          on_passage: Callable[[], None] | None = None) -> Cloze:  # fmt: skip
    stop = frozenset(i for i in (tokenizer.token_to_id(SEPARATOR),) if i is not None)
    words = []
    for p in passages:
        ids = tokenizer.encode(p.context, add_special_tokens=False).ids
        # a space, the word and one character more, to see whether the word ends: a token spells one or more
        out = greedy_continuation(model, ids, len(p.target) + 2, stop)
        words.append(first_word(tokenizer.decode(out, skip_special_tokens=True)))
        if on_passage:
            on_passage()
    right = sum(word is not None and word == bare(p.target) for word, p in zip(words, passages))
    return Cloze(len(passages), 100 * right / len(passages), tuple(words))


@register
@dataclass
class ClozeTask(Task):
    """--cloze FILE: last-word accuracy on passages of a .txt or .jsonl file."""

    name = "cloze"
    columns = (Column("cloze", "cloze %"),)
    text_column: str = TEXT_COLUMN  # where a .jsonl record holds its passage

    def read(self, on_skip: Callable[[str], None] | None) -> list[Passage]:
        return read_passages(self.path, self.text_column)

    def score(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, passages: list[Passage],
              start: Start) -> dict[str, Any]:  # fmt: skip
        c = cloze(model, tokenizer, passages, start("cloze", len(passages)))
        return {"cloze": c.accuracy, "cloze_passages": c.passages}
