"""bvvtok eval --cloze: reading passages, LAMBADA's whole-word protocol, long passages, the CLI row and its errors."""

import json

import pytest
from conftest import assert_user_error, invoke

from bvvtok.errors import BvvtokError
from bvvtok.lm.evals.cloze import Passage, cloze, first_word, read_passages
from bvvtok.lm.generate import Sampling, generate
from bvvtok.lm.run_folder import load_model

CONTEXTS = ["the cat saw the", "the dog saw the cat", "the cat saw the dog", "the", "a dog saw"]


@pytest.fixture(scope="module")
def loaded(char_run):
    return load_model(char_run)


def greedy_word(model, tokenizer, context: str) -> str | None:
    """The word the model writes after `context`, read independently of bvvtok's cloze code."""
    stop = frozenset({tokenizer.token_to_id("</s>")})
    out = generate(model, [tokenizer.encode(context).ids], Sampling(greedy=True), 12, stop)[0]
    continuation = tokenizer.decode(out, skip_special_tokens=True)
    return continuation.split()[0] if continuation[:1] == " " and continuation.split() else None


def test_passages_of_txt_and_jsonl_files(tmp_path):
    (tmp_path / "p.txt").write_text("the cat saw the dog\n\n  a dog  ran home. \n", encoding="utf-8")
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "the cat\nsaw the dog", "id": 1}) + "\n", encoding="utf-8")
    assert read_passages(tmp_path / "p.txt") == [Passage(1, "the cat saw the", "dog"), Passage(3, "  a dog  ran", "home.")]
    assert read_passages(tmp_path / "p.jsonl") == [Passage(1, "the cat\nsaw the", "dog")]
    (tmp_path / "q.jsonl").write_text(json.dumps({"text": 1, "passage": "a dog ran"}) + "\n", encoding="utf-8")
    assert read_passages(tmp_path / "q.jsonl", "passage") == [Passage(1, "a dog", "ran")]


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("empty.txt", "\n\n", "empty.txt holds no passage"),
        ("one.txt", "the cat saw\nthe\n", "one.txt:2: a passage needs at least two words"),
        ("bad.jsonl", '{"text": "a b"}\n{"passage": "a b"}\n', "bad.jsonl:2: no string field 'text'"),
        ("broken.jsonl", '\n{"text": "a b"\n', "broken.jsonl:2: not valid JSON"),
        ("p.csv", "a b\n", "p.csv is neither .txt nor .jsonl"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, name, text, fragment):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(BvvtokError, match=fragment):
        read_passages(tmp_path / name)


def test_first_word_is_a_whole_new_word_without_trailing_punctuation():
    assert first_word(" dog. the cat") == "dog"
    assert first_word("\ndog!?") == "dog"
    assert first_word(" dog's") == "dog's"  # only trailing punctuation goes
    assert first_word("dog") is None  # continues the last word of the context instead of starting one
    assert first_word("  ") is None


def test_right_exactly_when_the_greedy_word_is_the_target(loaded):
    model, tokenizer = loaded
    found = [(c, w) for c in CONTEXTS if (w := greedy_word(model, tokenizer, c))]
    assert found, "the test model starts no new word after any of CONTEXTS"
    context, word = found[0]
    passages = [Passage(1, context, word), Passage(2, context, word.rstrip(".") + "."), Passage(3, context, word + "zz")]
    result = cloze(model, tokenizer, passages)
    assert result.passages == 3 and result.accuracy == pytest.approx(200 / 3)  # the last: not the whole word
    assert result.words == (first_word(" " + word),) * 3


def test_a_passage_longer_than_the_context_keeps_its_last_tokens(loaded):
    model, tokenizer = loaded
    long = "the cat saw the dog. " * 6 + "the cat saw the"  # 141 characters, one token each; context 32
    budget = len("dog") + 2
    tail = tokenizer.decode(tokenizer.encode(long).ids[-(model.context - budget) :])
    assert cloze(model, tokenizer, [Passage(1, long, "dog")]) == cloze(model, tokenizer, [Passage(1, tail, "dog")])


def test_cli_row_table_and_limit(char_run, tmp_path):
    passages = tmp_path / "p.txt"
    passages.write_text("\n".join(f"{c} dog" for c in CONTEXTS), encoding="utf-8")
    text = tmp_path / "t.txt"
    text.write_text("the cat saw the dog.", encoding="utf-8")
    result = invoke("eval", char_run, "--cloze", passages, "--perplexity", text, "--limit", "3", "-o", tmp_path / "r.json",
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cloze %" in result.stdout
    [row] = json.loads((tmp_path / "r.json").read_text())
    assert list(row)[-2:] == ["cloze", "cloze_passages"] and list(row)[2] == "tokens"  # the option table's order
    assert row["cloze_passages"] == 3 and 0 <= row["cloze"] <= 100
    model, tokenizer = load_model(char_run)
    assert row["cloze"] == cloze(model, tokenizer, read_passages(passages)[:3]).accuracy


@pytest.mark.parametrize(
    "text, fragment",
    [("", "holds no passage"), ("the cat saw the dog\nword\n", "p.txt:2: a passage needs at least two words")],
)
def test_cli_bad_input(char_run, tmp_path, text, fragment):
    (tmp_path / "p.txt").write_text(text, encoding="utf-8")
    assert_user_error(invoke("eval", char_run, "--cloze", tmp_path / "p.txt"), fragment)
    assert_user_error(invoke("eval", char_run, "--cloze", tmp_path / "missing.txt"), "missing.txt not found")
