"""bvvtok eval: perplexity and bits per character, multiple choice (both protocols), BLEU, the comparison table."""

import json
import math
import re
import shutil
import statistics

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_user_error, invoke

from bvvtok.errors import BvvtokError
from bvvtok.lm.evals import choice
from bvvtok.lm.evals.choice import ci95, generative, loglik, prompt, read_questions
from bvvtok.lm.evals.perplexity import perplexity
from bvvtok.lm.evals.translation import read_pairs, translate
from bvvtok.lm.generate import Sampling
from bvvtok.lm.run_folder import load_model

LAYOUTS = [
    {"question": "the cat saw the", "options": {"A": "dog", "B": "cat"}, "answer": "A"},
    {"question": "2 + 2 =", "choices": ["3", "4", "5"], "answer": 1},
    {"question": "the dog", "choices": {"label": ["A", "B"], "text": ["ran", "saw"]}, "answerKey": "B"},
    {"question": {"stem": "the", "choices": [{"label": "A", "text": "cat"}, {"label": "B", "text": "x"}]}, "answerKey": "A"},
]


@pytest.fixture(scope="module")
def loaded(char_run):
    return load_model(char_run)


def manual_loss(model, tokenizer, text):
    ids = torch.tensor([tokenizer.token_to_id("</s>")] + tokenizer.encode(text).ids)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    return F.cross_entropy(logits[0], ids[1:], reduction="sum").item()


def test_perplexity_and_bits_per_character(loaded):
    model, tokenizer = loaded
    docs = ["the cat saw the dog 7. ", "the dog ran."]
    p = perplexity(model, tokenizer, docs)
    total = sum(manual_loss(model, tokenizer, d) for d in docs)
    chars = sum(map(len, docs))
    assert p.tokens == chars  # one token per character, every one predicted
    assert p.loss == pytest.approx(total / chars, rel=1e-5)
    assert p.perplexity == pytest.approx(math.exp(total / chars), rel=1e-5)
    assert p.bits_per_char == pytest.approx(total / math.log(2) / chars, rel=1e-5)


def test_documents_longer_than_the_context_are_read_in_windows(loaded):
    model, tokenizer = loaded
    long = "the cat saw the dog. " * 5  # 105 characters, context 32
    p = perplexity(model, tokenizer, [long])
    assert p.tokens == len(long) and math.isfinite(p.loss) and p.loss < math.log(model.vocab_size)


def test_question_layouts_are_read_alike(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in LAYOUTS) + "\n", encoding="utf-8")
    questions = read_questions(path)
    assert [(q.labels, q.answer) for q in questions] == [(["A", "B"], "A"), (["A", "B", "C"], "B"), (["A", "B"], "B"), (["A", "B"], "A")]
    assert questions[1].options == ["3", "4", "5"] and questions[3].question == "the"
    assert prompt(questions[0]) == "the cat saw the\nA. dog\nB. cat\nAnswer:"


def test_malformed_lines_are_skipped_with_their_numbers_or_stop_with_strict(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [json.dumps(LAYOUTS[0]), "{not json", json.dumps({"question": "q", "options": {"1": "a", "2": "b"}, "answer": "1"}),
             json.dumps({"question": "q", "options": {"A": "a", "B": "b"}, "answer": "C"})]  # fmt: skip
    path.write_text("\n".join(lines), encoding="utf-8")
    skipped = []
    assert len(read_questions(path, on_skip=skipped.append)) == 1
    assert [m.split(":")[1] for m in skipped] == ["2", "3", "4"]
    assert "capital letters" in skipped[1] and "not one of the options" in skipped[2]
    with pytest.raises(BvvtokError, match=r"q.jsonl:2: .*drop strict=True"):
        read_questions(path, strict=True)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(BvvtokError, match="no usable question"):
        read_questions(tmp_path / "empty.jsonl")


def test_loglik_picks_the_most_likely_option(loaded, tmp_path):
    model, tokenizer = loaded
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(LAYOUTS[0]) + "\n" + json.dumps({**LAYOUTS[0], "answer": "B"}) + "\n", encoding="utf-8")
    questions = read_questions(path)
    score = loglik(model, tokenizer, questions)
    context = tokenizer.encode("the cat saw the\nAnswer:").ids
    logp = []
    for option in ("dog", "cat"):
        ids = torch.tensor(context + tokenizer.encode(f" {option}").ids)
        with torch.no_grad():
            logits, _ = model(ids[None, :-1])
        n = len(option) + 1
        logp.append(F.log_softmax(logits[0, -n:], -1).gather(1, ids[-n:, None]).sum().item())
    best = "A" if logp[0] > logp[1] else "B"
    assert score.accuracy == 50.0 and score.chance == 50.0  # the same question with both answers: one is right
    assert loglik(model, tokenizer, questions[:1]).accuracy == (100.0 if best == "A" else 0.0)


def test_generative_runs_and_confidence_interval(loaded, tmp_path, monkeypatch):
    """What the model writes is scripted per run and question (each gets its own seed): the accuracy is the share of
    answers whose first letter after the spaces is right, averaged over runs, with Student's t interval over them."""
    model, tokenizer = loaded
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in LAYOUTS), encoding="utf-8")
    questions = read_questions(path)  # answers A, B, B, A
    written = {True: ["ABAA"], False: ["ABBA", "ABAB", "BAAA"]}  # greedy: 3 of 4 right; sampled: 4, 2 and 1 of 4

    def scripted(model, prompts, sampling, max_new_tokens, *args, **kwargs):
        run, i = divmod(sampling.seed - (0 if sampling.greedy else 1), len(questions))
        assert prompt(questions[i]).endswith(tokenizer.decode(prompts[0]))  # its last tokens: the context is 32
        return [tokenizer.encode(f" \n{written[sampling.greedy][run][i]}. the").ids]

    monkeypatch.setattr(choice, "generate", scripted)
    greedy = generative(model, tokenizer, questions, Sampling(greedy=True), runs=10)
    assert (greedy.runs, greedy.accuracy, greedy.ci95) == (1, 75.0, 0.0)
    assert greedy.chance == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 2 + 1 / 2) / 4)
    sampled = generative(model, tokenizer, questions, Sampling(temperature=2.0, seed=1), runs=3)
    per_run = [100.0, 50.0, 25.0]
    assert sampled.runs == 3 and sampled.accuracy == pytest.approx(175 / 3)
    assert sampled.ci95 == pytest.approx(4.303 * statistics.stdev(per_run) / math.sqrt(3), rel=1e-3)  # t(0.975, 2 df)


def test_sampled_generative_runs_repeat_with_their_seed(loaded, tmp_path):
    model, tokenizer = loaded
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in LAYOUTS), encoding="utf-8")
    questions = read_questions(path)
    sampled = generative(model, tokenizer, questions, Sampling(temperature=2.0, seed=1), runs=3)
    assert sampled == generative(model, tokenizer, questions, Sampling(temperature=2.0, seed=1), runs=3)


@pytest.mark.parametrize("n, t", [(2, 12.706), (10, 2.262), (11, 2.228), (20, 2.093), (100, 1.984)])
def test_confidence_interval_uses_students_t_for_any_number_of_runs(n, t):
    """Beyond 10 runs the interval was 1.96 standard errors, too narrow; the table's quantiles, to 3 decimals."""
    per_run = [float(i % 4) for i in range(n)]
    se = statistics.stdev(per_run) / math.sqrt(n)
    assert ci95(per_run) / se == pytest.approx(t, abs=5e-4)
    assert ci95([42.0]) == 0.0


def test_translation_bleu(loaded, tmp_path):
    model, tokenizer = loaded
    path = tmp_path / "t.tsv"
    path.write_text("the cat\tthe dog\nthe dog\tthe cat ran\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs == [("the cat", "the dog"), ("the dog", "the cat ran")]
    result = translate(model, tokenizer, pairs, "en", "en")
    assert result.pairs == 2 and 0 <= result.bleu <= 100 and "tok:13a" in result.signature
    assert "tok:zh" in translate(model, tokenizer, pairs[:1], "en", "zh").signature
    path.write_text("only a source\n", encoding="utf-8")
    with pytest.raises(BvvtokError, match=r"t.tsv:1: expected 'source<TAB>reference'"):
        read_pairs(path)


def test_cli_compares_runs_in_one_table_and_writes_files(char_run, tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text("the cat saw the dog 3.\n\nthe dog ran.\n", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in LAYOUTS), encoding="utf-8")
    result = invoke("eval", char_run, char_run, "--perplexity", text, "--multiple-choice", questions, "--runs", "2",
                    "-o", tmp_path / "r.csv", "-o", tmp_path / "r.json", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.count("bits/char") == 1  # one table for both runs (at 80 columns, a column per run)
    rows = json.loads((tmp_path / "r.json").read_text())
    assert len(rows) == 2 and rows[0]["bits_per_char"] == rows[1]["bits_per_char"] and rows[0]["mc_runs"] == 2
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("run,tokenizer_sha256,tokens,loss")


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "nothing to evaluate"),
        (["--multiple-choice", "{q}", "--protocol", "vote"], "--protocol 'vote'"),
        (["--perplexity", "{empty}"], "empty.txt"),
        (["--multiple-choice", "{q}", "--temperature", "0"], "--temperature must be > 0"),
        (["--perplexity", "{text}", "-o", "{out}"], "as .csv or .json"),
    ],
)
def test_cli_bad_input(char_run, tmp_path, args, fragment):
    files = {"q": tmp_path / "q.jsonl", "empty": tmp_path / "empty.txt", "text": tmp_path / "t.txt", "out": tmp_path / "r.txt"}
    files["q"].write_text(json.dumps(LAYOUTS[0]), encoding="utf-8")
    files["empty"].write_text("")
    files["text"].write_text("the cat", encoding="utf-8")
    assert_user_error(invoke("eval", char_run, *[a.format(**files) for a in args]), fragment)


def test_the_table_never_cuts_a_run_name_at_80_columns(char_run, tmp_path):
    """Two runs whose names share a prefix stay told apart in a narrow terminal (issue 20, item 10)."""
    from typer.testing import CliRunner

    from bvvtok.cli import app

    runs = [shutil.copytree(char_run, tmp_path / name) for name in ("run-tiny", "run-tiny-unfrozen")]
    text = tmp_path / "held-out.txt"
    text.write_text("the cat saw the dog 3.\n\nthe dog ran.\n", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in LAYOUTS), encoding="utf-8")
    args = ["eval", *runs, "--perplexity", text, "--multiple-choice", questions, "--runs", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert any("run-tiny " in line for line in lines) and any("run-tiny-unfrozen" in line for line in lines), result.stdout
    wide = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"}).stdout
    figures = re.findall(r"\d+\.\d+", wide)
    assert len(figures) >= 8 and sorted(re.findall(r"\d+\.\d+", result.stdout)) == sorted(figures)  # none folded
