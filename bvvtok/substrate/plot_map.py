"""`bvvtok plot-substrate`: a 2-D map of a sample of a substrate's token vectors, coloured by script.

A glyph substrate is built from pictures, not meaning: its neighbourhoods follow how tokens look,
so on a map tokens cluster by writing system. This draws that at a glance. The sample, the
projection (PCA or t-SNE, seeded) and the picture (matplotlib's object API on Agg, default style,
no Software tag) are deterministic: the same folder, method and seed give the same PNG bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
import regex
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file, check_output_file, check_png_path
from bvvtok.substrate.folder import EMBEDDINGS
from bvvtok.substrate.token_text import token_texts
from bvvtok.vocab.layout import NAMED_SPECIALS
from bvvtok.vocab.tokenizer_files import load_tokenizer

# Each character's script, first match wins. Common (digits, punctuation, spaces) and Inherited
# (combining marks) are neutral in an n-gram: "the " is Latin, as in Unicode's script runs.
SCRIPTS: tuple[tuple[str, regex.Pattern[str]], ...] = tuple(
    (name, regex.compile(pattern))
    for name, pattern in (
        *((s, rf"\p{{Script={s}}}") for s in ("Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic")),
        *((s, rf"\p{{Script={s}}}") for s in ("Devanagari", "Bengali", "Thai", "Hangul")),
        ("Kana", r"[\p{Script=Hiragana}\p{Script=Katakana}]"),
        ("Han", r"\p{Script=Han}"),
        ("Common", r"[\p{Script=Common}\p{Script=Inherited}]"),
    )
)
COMMON, MIXED, SPECIAL, OTHER = "Common", "mixed", "special", "other"
LABELS = (*(name for name, _ in SCRIPTS), MIXED, SPECIAL, OTHER)  # legend order
# One fixed colour per label, neighbours in the table far apart in hue; greys for what has no script.
COLOURS = dict(zip(LABELS, (
    "#1f77b4", "#17becf", "#9467bd", "#8c564b", "#bcbd22", "#2ca02c", "#ff7f0e", "#ffbb78", "#e377c2",
    "#393b79", "#f7b6d2", "#d62728", "#98df8a", "#000000", "#7f7f7f", "#c7c7c7",
), strict=True))  # fmt: skip
PLACEHOLDER = re.compile(r"<(?:unused|special_token)_\d+>")  # bvvtok's thousands of filler ids
METHODS = ("pca", "tsne")


def _char_script(ch: str) -> str:
    return next((name for name, test in SCRIPTS if test.match(ch)), OTHER)


def script_of(token: str) -> str:
    """The script a token is drawn in: its characters' one script (ignoring Common ones), else "mixed"."""
    if not token or token in NAMED_SPECIALS or PLACEHOLDER.fullmatch(token):
        return SPECIAL
    scripts = {_char_script(ch) for ch in token} - {COMMON}
    return COMMON if not scripts else scripts.pop() if len(scripts) == 1 else MIXED


@dataclass
class SubstrateMap:
    points: np.ndarray  # float32 [n, 2]
    ids: np.ndarray  # int64 [n], ascending token ids
    scripts: list[str]
    method: str


def map_substrate(folder: Path, method: str = "pca", sample: int = 4000, seed: int = 0) -> SubstrateMap:
    """Project `sample` seeded, non-placeholder token vectors of a substrate folder to 2-D."""
    folder = Path(folder)
    if method not in METHODS:
        raise BvvtokError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if sample < 2:
        raise BvvtokError(f"{option('sample')} must be at least 2 to draw a map (got {sample})")
    if not (folder / EMBEDDINGS).is_file():
        raise BvvtokError(f"{folder} is not a substrate folder (no {EMBEDDINGS}); run `bvvtok embed {folder}` first")
    tokenizer = load_tokenizer(folder)
    texts = token_texts(tokenizer)
    try:
        weight = load_file(str(folder / EMBEDDINGS))["weight"]
    except Exception as e:  # safetensors raises its own error types for a damaged file or a missing tensor
        path = folder / EMBEDDINGS
        raise BvvtokError(f"cannot read tensor 'weight' from {path} ({e}); rebuild it with bvvtok embed") from None
    if weight.ndim != 2 or weight.shape[0] < len(texts.texts) or weight.shape[1] < 2:
        want = f"[vocabulary >= {len(texts.texts)}, dim >= 2]"
        raise BvvtokError(f"{folder / EMBEDDINGS} holds {list(weight.shape)}, not {want}; rebuild it with bvvtok embed")
    available = np.array([i for i, t in enumerate(texts.texts) if t and not PLACEHOLDER.fullmatch(t)], dtype=np.int64)
    if len(available) < 2:
        raise BvvtokError(f"{folder} has {len(available)} drawable tokens; a map needs at least 2")
    if sample >= len(available):
        ids = available
    else:
        ids = np.sort(np.random.default_rng(seed).choice(available, sample, replace=False))
    specials = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    escaped = set(texts.escaped)
    scripts = [SPECIAL if i in specials else OTHER if i in escaped else script_of(texts.texts[i]) for i in ids.tolist()]
    vectors = weight[ids].astype(np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        from sklearn.manifold import TSNE

        perplexity = min(30, len(ids) - 1)
        points = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(vectors)
    return SubstrateMap(np.ascontiguousarray(points, dtype=np.float32), ids, scripts, method)


def colour_of(script: str) -> tuple[float, float, float, float]:
    """The label's fixed colour, so a script has the same colour on every map."""
    return to_rgba(COLOURS.get(script, COLOURS[OTHER]))


def check_plot_out(out: Path, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Fail on a bad output path before any work is done."""
    check_png_path(out)
    check_output_file(Path(out), force, inputs)


def map_figure(m: SubstrateMap, title: str) -> Figure:
    """The scatter: one collection per script present, in LABELS order, with counts in the legend."""
    figure = Figure(figsize=(9, 7))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    scripts = np.array(m.scripts, dtype=object)
    for label in sorted(set(m.scripts), key=lambda s: LABELS.index(s) if s in LABELS else len(LABELS)):
        mask = scripts == label
        name = f"{label} ({int(mask.sum())})"
        ax.scatter(m.points[mask, 0], m.points[mask, 1], s=4, color=colour_of(label), label=name, linewidths=0)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3, fontsize="small")
    return figure


def plot_map(m: SubstrateMap, out: Path, title: str, force: bool = False) -> None:
    """Write the map to `out` (.png), atomically; an existing file only with `force`."""
    check_plot_out(out, force)
    with matplotlib.style.context("default"):
        figure = map_figure(m, title)
        with atomic_file(Path(out), force) as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
