"""`bvvtok plot-substrate`: scripts of tokens, the seeded sample, the 2-D projection, the PNG, and the errors."""

import shutil
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import CHAR_SPECIALS, CHAR_TEXT, write_char_vocab
from PIL import Image
from safetensors.numpy import save_file

from bvvtok.errors import BvvtokError
from bvvtok.substrate.folder import EMBEDDINGS
from bvvtok.substrate.plot_map import LABELS, SubstrateMap, colour_of, map_figure, map_substrate, plot_map, script_of

HAN = [ch for ch in CHAR_TEXT if ord(ch) > 127]
VOCAB_SIZE = len(CHAR_SPECIALS) + len(CHAR_TEXT)


@pytest.mark.parametrize(
    "token, script",
    [
        ("the", "Latin"), ("Ĝis", "Latin"), ("the ", "Latin"), ("при", "Cyrillic"), ("中文", "Han"),
        ("αβγ", "Greek"), ("مرحبا", "Arabic"), ("שלום", "Hebrew"), ("हिन्दी", "Devanagari"), ("ไทย", "Thai"),
        ("한국", "Hangul"), ("ひらカタ", "Kana"), ("Հայ", "Armenian"), ("বাংলা", "Bengali"),
        ("aб", "mixed"), ("中a", "mixed"), ("12", "Common"), (".,", "Common"), (" ", "Common"),
        ("<unused_57344>", "special"), ("<special_token_57367>", "special"), ("<s>", "special"), ("", "special"),
        ("ქართ", "other"), ("aქ", "mixed"),
    ],
)  # fmt: skip
def test_script_of(token, script):
    assert script_of(token) == script


def test_char_substrate_scripts(char_substrate):
    m = map_substrate(char_substrate, sample=4000)  # more than there are: every token, in id order
    assert m.ids.tolist() == list(range(VOCAB_SIZE))
    counts = Counter(m.scripts)
    assert counts["Latin"] == len(string.ascii_letters)
    assert counts["Han"] == len(HAN) > 0
    assert counts["special"] == len(CHAR_SPECIALS)
    assert counts["Common"] == len(CHAR_TEXT) - len(string.ascii_letters) - len(HAN)  # digits, punctuation, " ", "\n"
    assert sum(counts.values()) == len(m.scripts) == len(m.points) == VOCAB_SIZE
    by_text = dict(zip(CHAR_SPECIALS + tuple(CHAR_TEXT), m.scripts))
    assert (by_text["a"], by_text["中"], by_text["7"], by_text["<unk>"]) == ("Latin", "Han", "Common", "special")


def test_sample_is_seeded(char_substrate):
    a, b = map_substrate(char_substrate, sample=50, seed=3), map_substrate(char_substrate, sample=50, seed=3)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.points, b.points) and a.scripts == b.scripts
    assert len(a.ids) == len(set(a.ids.tolist())) == 50
    assert a.ids.tolist() == sorted(a.ids.tolist()) and a.ids.max() < VOCAB_SIZE
    other = map_substrate(char_substrate, sample=50, seed=4)
    assert not np.array_equal(a.ids, other.ids)


def test_placeholders_are_left_out(tmp_path):
    """bvvtok's `<unused_N>` and `<special_token_N>` fillers are never sampled; a named special is."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    tokens = ["<unk>", "<unused_1>", "a", "<special_token_57367>", "b", "中", "<unused_2>", "c"]
    folder = tmp_path / "vocab"
    folder.mkdir()
    Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[], unk_token="<unk>")).save(
        str(folder / "tokenizer.json")
    )
    save_file(
        {"weight": np.random.default_rng(0).standard_normal((len(tokens), 8)).astype(np.float32)},
        str(folder / EMBEDDINGS),
    )
    m = map_substrate(folder, sample=100)
    assert m.ids.tolist() == [0, 2, 4, 5, 7]
    assert m.scripts == ["special", "Latin", "Latin", "Han", "Latin"]
    assert set(map_substrate(folder, sample=3, seed=1).ids.tolist()) <= {0, 2, 4, 5, 7}


@pytest.fixture(scope="module")
def maps(char_substrate) -> dict[str, SubstrateMap]:
    """Both projections of one seeded 60-token sample (t-SNE takes seconds: made once)."""
    return {method: map_substrate(char_substrate, method=method, sample=60, seed=1) for method in ("pca", "tsne")}


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection(char_substrate, maps, method):
    m = maps[method]
    assert m.method == method
    assert m.points.shape == (60, 2) and m.points.dtype == np.float32
    assert np.isfinite(m.points).all()
    assert np.ptp(m.points, axis=0).min() > 0  # spread in both directions, not collapsed to a line or point
    assert np.array_equal(m.points, map_substrate(char_substrate, method=method, sample=60, seed=1).points)


def test_pca_and_tsne_differ(maps):
    pca, tsne = maps["pca"], maps["tsne"]
    assert np.array_equal(pca.ids, tsne.ids)
    assert not np.allclose(pca.points, tsne.points)
    assert np.var(pca.points[:, 0]) >= np.var(pca.points[:, 1])  # PCA: the first axis carries the most variance


def test_figure_draws_every_point_in_its_script_colour(char_substrate):
    m = map_substrate(char_substrate)
    figure = map_figure(m, "char substrate")
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    present = [s for s in LABELS if s in m.scripts]
    assert labels == [f"{s} ({m.scripts.count(s)})" for s in present]
    for s, collection in zip(present, ax.collections):
        mask = np.array(m.scripts) == s
        assert np.allclose(collection.get_offsets(), m.points[mask])
        assert np.allclose(collection.get_facecolors()[0], colour_of(s))
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("char substrate", "component 1", "component 2")
    assert len({colour_of(s) for s in LABELS}) == len(LABELS)  # no two scripts share a colour


def test_png_is_valid_and_reproducible(char_substrate, tmp_path):
    m = map_substrate(char_substrate, seed=2)
    first, second = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    plot_map(m, first, "PCA")
    plot_map(map_substrate(char_substrate, seed=2), second, "PCA")
    assert first.read_bytes() == second.read_bytes()
    assert b"Software" not in first.read_bytes()
    with Image.open(first) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 300
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    latin = np.round(np.array(colour_of("Latin")[:3]) * 255)
    assert (pixels == latin).all(axis=1).sum() > 20  # Latin points drawn (more than the legend marker)
    assert len(np.unique(pixels, axis=0)) > 10  # not blank
    plot_map(m, first, "another title", force=True)
    assert first.read_bytes() != second.read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "b.png", "sub"]  # no temporary left


def test_errors(char_substrate, tmp_path):
    vocab = write_char_vocab(tmp_path / "vocab")  # a tokenizer folder without a substrate
    with pytest.raises(BvvtokError, match="no embeddings.safetensors.*bvvtok embed"):
        map_substrate(vocab)
    with pytest.raises(BvvtokError, match="unknown method 'umap'.*pca, tsne"):
        map_substrate(char_substrate, method="umap")
    with pytest.raises(BvvtokError, match="at least 2"):
        map_substrate(char_substrate, sample=1)
    short = Path(shutil.copytree(char_substrate, tmp_path / "short"))
    save_file({"weight": np.zeros((10, 16), np.float32)}, str(short / EMBEDDINGS))
    with pytest.raises(BvvtokError, match=r"holds \[10, 16\].*bvvtok embed"):
        map_substrate(short)
    m = SubstrateMap(np.zeros((2, 2), np.float32), np.arange(2), ["Latin", "Han"], "pca")
    with pytest.raises(BvvtokError, match="not a .png path"):
        plot_map(m, tmp_path / "map.jpg", "x")
    out = tmp_path / "map.png"
    out.write_bytes(b"old")
    with pytest.raises(BvvtokError, match="force=True"):
        plot_map(m, out, "x")
    assert out.read_bytes() == b"old"
    assert not (tmp_path / "map.jpg").exists()
