"""Characters per token, unknown rate and round trips of tokenizer folders; the table and the heatmap."""

import json

import numpy as np
import pytest
from conftest import write_char_vocab, write_wordlevel_vocab
from PIL import Image

from bvvtok.errors import BvvtokError
from bvvtok.vocab.corpus import read_documents
from bvvtok.vocab.tokenizer_bench import Cell, bench_tokenizers, plot_heatmap, write_csv

WORDS = ["<unk>", "hello", "world", "the", "cat", "sat", "."]
VIRIDIS_LOW, VIRIDIS_HIGH = (0x44, 0x01, 0x54), (0xFD, 0xE7, 0x25)  # the two ends of the colour map


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def english(tmp_path):
    # "hello world" (11 characters) and "the cat sat.\nhello" (18, the newline included): all in the char vocabulary.
    return write(tmp_path / "en.txt", "hello world\n\n\nthe cat sat.\nhello\n")


@pytest.fixture
def char_dir(tmp_path):
    return write_char_vocab(tmp_path / "char")


@pytest.fixture
def word_dir(tmp_path):
    return write_wordlevel_vocab(tmp_path / "word", WORDS)


def one(cells, tokenizer, lang):
    [cell] = [c for c in cells if c.tokenizer == tokenizer and c.lang == lang]
    return cell


# reading documents


def test_read_txt_documents_split_on_blank_lines(tmp_path):
    path = write(tmp_path / "a.txt", "\n  \nfirst line\nsecond\fline\u2028\n \t \nthird\r\n\r\n\r\n")
    # Whitespace-only lines separate too; a form feed or U+2028 is text, not a line break.
    assert read_documents(path) == ["first line\nsecond\fline\u2028", "third"]


def test_read_jsonl_documents(tmp_path):
    lines = [json.dumps({"text": "a\n\nb", "id": 1}), "", json.dumps({"text": "ç\u2028d"}, ensure_ascii=False)]
    assert read_documents(write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")) == ["a\n\nb", "ç\u2028d"]


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("empty.txt", "", "empty.txt holds no documents"),
        ("blank.txt", "\n \n\n", "blank.txt holds no documents"),
        ("empty.jsonl", "\n", "empty.jsonl holds no documents"),
        ("bad.jsonl", '{"text": "ok"}\n\n{"text": \n', "bad.jsonl:3: not valid JSON"),
        ("notext.jsonl", '{"body": "x"}\n', "notext.jsonl:1: no string field 'text'"),
        ("number.jsonl", '{"text": 5}\n', "number.jsonl:1"),
        ("list.jsonl", '["text"]\n', "list.jsonl:1"),
        ("doc.md", "hello\n", "doc.md: unsupported corpus file"),
    ],
)
def test_read_documents_errors(tmp_path, name, content, fragment):
    with pytest.raises(BvvtokError, match="; ") as e:
        read_documents(write(tmp_path / name, content))
    assert fragment in str(e.value)


def test_read_documents_unreadable(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(BvvtokError, match=r"latin1\.txt is not valid UTF-8 \(.* at byte 3\); convert"):
        read_documents(tmp_path / "latin1.txt")
    with pytest.raises(BvvtokError, match=r"missing\.txt not found; check the path"):
        read_documents(tmp_path / "missing.txt")


# the figures


def test_char_tokenizer_is_one_char_per_token(char_dir, english):
    [cell] = bench_tokenizers([char_dir], {"en": english})
    assert cell == Cell("char", "en", 2, 11 + 18, 11 + 18, 1.0, 0.0, 0.0, 1.0)


def test_wordlevel_mean_std_and_lossy_round_trip(word_dir, english):
    [cell] = bench_tokenizers([word_dir], {"English": english})
    # "hello world": 11 chars / 2 tokens = 5.5; "the cat sat.\nhello": 18 chars / 5 tokens = 3.6.
    assert (cell.documents, cell.characters, cell.tokens) == (2, 29, 7)
    assert cell.chars_per_token_mean == pytest.approx((5.5 + 3.6) / 2)
    assert cell.chars_per_token_std == pytest.approx(0.95)  # population std: half the difference
    assert cell.unknown_rate == 0.0
    assert cell.lossless == 0.5  # decoding joins words with spaces: "cat ." and the newline are lost


def test_unknown_rate_counts_unknown_text_not_a_literal_unk(char_dir, word_dir, tmp_path):
    text = write(tmp_path / "fr.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in ["héllo", "<unk>"]))
    cells = bench_tokenizers([char_dir, word_dir], {"fr": text})
    char = one(cells, "char", "fr")
    # "héllo": 5 tokens, é unknown, decodes to "h<unk>llo"; "<unk>" is the special token itself: 1 token, exact.
    assert (char.tokens, char.unknown_rate, char.lossless) == (6, 1 / 6, 0.5)
    assert char.chars_per_token_mean == pytest.approx((1.0 + 5.0) / 2)
    assert char.chars_per_token_std == pytest.approx(2.0)
    word = one(cells, "word", "fr")
    # "héllo" is one unknown word; "<unk>" is split by the pre-tokenizer into "<", "unk", ">", all unknown.
    assert (word.tokens, word.unknown_rate, word.lossless) == (4, 1.0, 0.0)


def test_documents_without_tokens_are_skipped(word_dir, tmp_path):
    text = write(tmp_path / "x.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in ["   ", "the cat", "", "cat"]))
    [cell] = bench_tokenizers([word_dir], {"x": text})
    assert (cell.documents, cell.characters, cell.tokens) == (2, 10, 3)  # the blank documents count nowhere
    assert cell.chars_per_token_mean == pytest.approx((3.5 + 3.0) / 2)
    assert cell.lossless == 1.0
    only_blank = write(tmp_path / "blank.jsonl", json.dumps({"text": " \n "}) + "\n")
    with pytest.raises(BvvtokError, match="blank.jsonl holds too little text"):  # refused before any tokenizer reads it
        bench_tokenizers([word_dir], {"blank": only_blank})
    from tokenizers import Tokenizer

    from bvvtok.vocab.tokenizer_bench import _cell

    with pytest.raises(BvvtokError, match="no blank document gives word any token; drop"):
        _cell(Tokenizer.from_file(str(word_dir / "tokenizer.json")), "word", "blank", [" \n ", "\t"])


def test_bvvtok_vocabulary(tiny_vocab_dir, tmp_path):
    # The tiny vocabulary merges "he" and "llo" and "the": he|llo| |the| |t|e|s|t; the emoji is <unk>.
    text = write(tmp_path / "mix.txt", "hello the test\n\nhi 🙂\n")
    [cell] = bench_tokenizers([tiny_vocab_dir], {"mix": text})
    assert (cell.tokenizer, cell.documents, cell.characters, cell.tokens) == ("vocab", 2, 18, 13)
    assert cell.chars_per_token_mean == pytest.approx((14 / 9 + 1.0) / 2)
    assert cell.unknown_rate == pytest.approx(1 / 13)
    assert cell.lossless == 0.5  # "hi 🙂" decodes to "hi <unk>"


def test_order_limit_and_names(tmp_path, english):
    first = write_char_vocab(tmp_path / "a" / "tok")
    second = write_wordlevel_vocab(tmp_path / "b" / "tok", WORDS)
    zh = write(tmp_path / "zh.txt", "你好世界\n\n中文\n\n我在")
    cells = bench_tokenizers([first, second], {"zh": zh, "en": english}, limit=1)
    assert [(c.tokenizer, c.lang) for c in cells] == [(t, lang) for t in ("a/tok", "b/tok") for lang in ("zh", "en")]
    assert [c.documents for c in cells] == [1, 1, 1, 1]  # only the first document of each file
    assert one(cells, "a/tok", "en").characters == 11
    assert one(cells, "b/tok", "zh").unknown_rate == 1.0  # "你好世界" is one word the vocabulary lacks


def test_bench_errors(tmp_path, char_dir, english):
    with pytest.raises(BvvtokError, match="at least one tokenizer folder"):
        bench_tokenizers([], {"en": english})
    with pytest.raises(BvvtokError, match="no text given; texts names a file per language"):
        bench_tokenizers([char_dir], {})
    with pytest.raises(BvvtokError, match="limit 0 is below 1"):
        bench_tokenizers([char_dir], {"en": english}, limit=0)
    with pytest.raises(BvvtokError, match="is named twice; give each tokenizer folder once"):
        bench_tokenizers([char_dir, tmp_path / "." / "char"], {"en": english})
    (tmp_path / "plain").mkdir()
    with pytest.raises(BvvtokError, match="plain has no tokenizer.json; pass a folder"):
        bench_tokenizers([char_dir, tmp_path / "plain"], {"en": english})
    with pytest.raises(BvvtokError, match="empty.txt holds no documents"):
        bench_tokenizers([char_dir], {"en": english, "de": write(tmp_path / "empty.txt", "")})


# the table and the heatmap


CELLS = [
    Cell("gpt", "English", 2, 40, 10, 4.0, 0.5, 0.0, 1.0),
    Cell("gpt", "Chinese", 1, 3, 6, 0.5, 0.0, 0.25, 0.0),
    Cell("bvv", "English", 2, 40, 20, 2.0, 0.0, 0.0, 1.0),
    Cell("bvv", "Chinese", 1, 3, 3, 1.0, 0.0, 0.0, 1.0),
]


def test_csv_has_the_published_shape(tmp_path):
    path = tmp_path / "out" / "bench.csv"
    write_csv(CELLS, path, force=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [
        "LanguageName,gpt,bvv,gpt std,bvv std,gpt unknown_rate,bvv unknown_rate,gpt lossless,bvv lossless",
        "English,4.0,2.0,0.5,0.0,0.0,0.0,1.0,1.0",
        "Chinese,0.5,1.0,0.0,0.0,0.25,0.0,0.0,1.0",
    ]
    with pytest.raises(BvvtokError, match="exists; pass force=True"):
        write_csv(CELLS[:1], path, force=False)
    write_csv(CELLS[2:], path, force=True)
    assert path.read_text(encoding="utf-8").splitlines()[1] == "English,2.0,0.0,0.0,1.0"
    assert sorted(p.name for p in path.parent.iterdir()) == ["bench.csv"]  # no temporary left behind


def test_csv_from_a_bench_and_missing_pairs(tmp_path, char_dir, english):
    cells = bench_tokenizers([char_dir], {"en": english})
    write_csv(cells, tmp_path / "b.csv", force=False)
    assert (tmp_path / "b.csv").read_text(encoding="utf-8").splitlines()[1] == "en,1.0,0.0,0.0,1.0"
    write_csv(CELLS[:3], tmp_path / "partial.csv", force=False)  # bvv was not run on Chinese
    assert (tmp_path / "partial.csv").read_text(encoding="utf-8").splitlines()[2].startswith("Chinese,0.5,nan,")
    with pytest.raises(BvvtokError, match="no results to write"):
        write_csv([], tmp_path / "none.csv", force=False)
    assert not (tmp_path / "none.csv").exists()


def pixels(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=int)


def near(image, colour, tolerance=8):
    return int((np.abs(image - np.array(colour)) <= tolerance).all(axis=-1).sum())


def text_pixels(image, colour, dark):
    """Dark (or light) text pixels in the box of the cell of `colour` (the colour bar, at the right, left out)."""
    left = image[:, : image.shape[1] * 2 // 3]
    rows, cols = np.nonzero((np.abs(left - np.array(colour)) <= 8).all(axis=-1))
    box = left[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return int(((box < 80) if dark else (box > 200)).all(axis=-1).sum())


def test_heatmap_is_a_reproducible_png(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plot_heatmap(CELLS, first, force=False)
    plot_heatmap(CELLS, second, force=False)
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert b"Software" not in data
    image = pixels(first)
    assert near(image, VIRIDIS_LOW) > 500 and near(image, VIRIDIS_HIGH) > 500  # the 0.5 and the 4.0 cells
    # The values are written on the cells: dark on the light cell, light on the dark one.
    assert text_pixels(image, VIRIDIS_HIGH, dark=True) > 10 and text_pixels(image, VIRIDIS_LOW, dark=False) > 10
    plot_heatmap(CELLS[2:], second, force=True)  # other figures, other picture
    assert second.read_bytes() != data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_heatmap_errors(tmp_path):
    with pytest.raises(BvvtokError, match=r"heat\.svg is not a \.png path; give a \.png path"):
        plot_heatmap(CELLS, tmp_path / "heat.svg", force=False)
    (tmp_path / "heat.png").write_bytes(b"old")
    with pytest.raises(BvvtokError, match="heat.png exists; pass force=True"):
        plot_heatmap(CELLS, tmp_path / "heat.png", force=False)
    assert (tmp_path / "heat.png").read_bytes() == b"old"
    with pytest.raises(BvvtokError, match="no results to write"):
        plot_heatmap([], tmp_path / "none.png", force=False)
    assert not (tmp_path / "none.png").exists()
