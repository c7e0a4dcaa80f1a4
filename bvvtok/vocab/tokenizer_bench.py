"""Characters per token of tokenizer folders on texts of several languages, as a table and a heatmap.

Any folder with a Hugging Face `tokenizer.json` is measured the same way, so bvvtok's vocabularies
compare directly with other tokenizers. The table has the published benchmark's shape (a row per
language, a column of mean characters per token per tokenizer), then std, unknown rate and lossless share.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file, check_output_file, check_png_path, distinct_names
from bvvtok.vocab.corpus import TEXT_COLUMN, read_documents
from bvvtok.vocab.tokenizer_files import load_tokenizer

EXTRA_COLUMNS = (("std", "chars_per_token_std"), ("unknown_rate", "unknown_rate"), ("lossless", "lossless"))


@dataclass
class Cell:
    tokenizer: str  # the folder's name (with parent folders where two are equal)
    lang: str
    documents: int  # documents measured (those giving at least one token)
    characters: int
    tokens: int
    chars_per_token_mean: float  # mean over documents of chars / tokens, so long documents do not dominate
    chars_per_token_std: float  # population std over documents
    unknown_rate: float  # share of tokens that are the unk token standing for other text
    lossless: float  # share of documents with decode(encode(text)) == text


def _unknown(tokenizer: Tokenizer) -> tuple[str | None, int | None]:
    """The model's unk token and its id (BPE, WordLevel, WordPiece have one; others count no unknowns)."""
    token = getattr(tokenizer.model, "unk_token", None)
    return (token, tokenizer.token_to_id(token)) if token else (None, None)


def _cell(tokenizer: Tokenizer, name: str, lang: str, docs: list[str]) -> Cell:
    unk, unk_id = _unknown(tokenizer)
    ratios, chars, tokens, unknown, lossless = [], 0, 0, 0, 0
    for doc, enc in zip(docs, tokenizer.encode_batch(docs, add_special_tokens=False)):
        if not enc.ids:
            continue  # nothing to divide by: the document says nothing about this tokenizer's compression
        ratios.append(len(doc) / len(enc.ids))
        chars, tokens = chars + len(doc), tokens + len(enc.ids)
        # An unk id standing for the unk token's own text (a literal "<unk>") is not an unknown.
        unknown += sum(i == unk_id and doc[a:b] != unk for i, (a, b) in zip(enc.ids, enc.offsets))
        lossless += tokenizer.decode(enc.ids, skip_special_tokens=False) == doc
    if not ratios:
        raise BvvtokError(f"no {lang} document gives {name} any token; drop that language or tokenizer")
    mean, std = statistics.fmean(ratios), statistics.pstdev(ratios)
    return Cell(name, lang, len(ratios), chars, tokens, mean, std, unknown / tokens, lossless / len(ratios))


def bench_tokenizers(tokenizer_dirs: Sequence[Path], texts: dict[str, Path], limit: int | None = None,
                     text_column: str = TEXT_COLUMN) -> list[Cell]:  # fmt: skip
    """A Cell per tokenizer and language (tokenizers outer, both in the order given); `limit` documents each, read
    from each corpus (records in formats that have them take their text from `text_column`)."""
    if not tokenizer_dirs:
        raise BvvtokError("name at least one tokenizer folder to benchmark")
    if not texts:
        raise BvvtokError(f"no text given; {option('texts', cli='--text')} names a file per language (e.g. en=news-en.txt)")
    if limit is not None and limit < 1:
        raise BvvtokError(f"limit {limit} is below 1; give a positive number of documents")
    folders = [Path(d).resolve() for d in tokenizer_dirs]
    for given, folder in zip(tokenizer_dirs, folders):
        if folders.count(folder) > 1:
            raise BvvtokError(f"{given} is named twice; give each tokenizer folder once")
    tokenizers = [load_tokenizer(folder) for folder in folders]  # every folder checked before any text is read
    documents = {lang: read_documents(path, text_column, limit, "nothing to measure") for lang, path in texts.items()}
    return [
        _cell(tokenizer, name, lang, docs)
        for tokenizer, name in zip(tokenizers, distinct_names(folders))
        for lang, docs in documents.items()
    ]


def _grid(cells: Sequence[Cell], what: str) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    if not cells:
        raise BvvtokError(f"no results to write into {what}; benchmark at least one tokenizer on one text")
    tokenizers = list(dict.fromkeys(c.tokenizer for c in cells))
    return list(dict.fromkeys(c.lang for c in cells)), tokenizers, {(c.lang, c.tokenizer): c for c in cells}


def _value(grid: dict[tuple[str, str], Cell], lang: str, tokenizer: str, field: str) -> float:
    cell = grid.get((lang, tokenizer))
    return math.nan if cell is None else float(getattr(cell, field))


def write_csv(cells: Sequence[Cell], path: Path, force: bool) -> None:
    """Languages down, like the published table: `LanguageName`, a mean column per tokenizer, then the extras."""
    langs, tokenizers, grid = _grid(cells, str(path))
    columns = [(t, "chars_per_token_mean", t) for t in tokenizers]
    columns += [(t, field, f"{t} {suffix}") for suffix, field in EXTRA_COLUMNS for t in tokenizers]
    with atomic_file(Path(path), force) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["LanguageName", *(title for _, _, title in columns)])
        for lang in langs:  # a (language, tokenizer) pair missing from `cells` is written as nan
            writer.writerow([lang, *(repr(_value(grid, lang, t, field)) for t, field, _ in columns)])


def plot_heatmap(cells: Sequence[Cell], path: Path, force: bool) -> None:
    """Mean characters per token, languages down and tokenizers across (as in the table), each cell annotated."""
    check_png_path(path)
    check_output_file(Path(path), force)
    langs, tokenizers, grid = _grid(cells, str(path))
    values = np.array([[_value(grid, lang, t, "chars_per_token_mean") for t in tokenizers] for lang in langs])
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(2.5 + 1.1 * len(tokenizers), 1.5 + 0.35 * len(langs)), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        middle = np.nanmean(values)  # dark text on the light (high) end of viridis, light text on the dark end
        for (row, col), v in np.ndenumerate(values):
            colour = "black" if v > middle else "white"
            if not math.isnan(v):
                ax.text(col, row, f"{v:.2f}", ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(tokenizers)), tokenizers, rotation=45, ha="right")
        ax.set_yticks(range(len(langs)), langs)
        ax.set_title("characters per token (mean over documents)")
        figure.colorbar(image, ax=ax, label="characters per token")
        with atomic_file(Path(path), force) as tmp:
            figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
