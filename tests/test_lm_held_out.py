"""bvvtok eval --held-out: the loss on the validation windows training picks, equal to training's own figure."""

import json

import pytest
from conftest import assert_user_error, invoke, write_wordlevel_vocab

from bvvtok.errors import BvvtokError
from bvvtok.lm.combine import combine
from bvvtok.lm.config import TrainConfig
from bvvtok.lm.data import prepare_tokens
from bvvtok.lm.evals.held_out import HeldOutTask
from bvvtok.lm.evals.report import evaluate_runs
from bvvtok.lm.metrics import read_metrics
from bvvtok.lm.run_folder import read_raw_config, train_config


@pytest.fixture
def cache(char_run, monkeypatch):
    """The token cache char_run was trained with: its corpus is tokenized there already."""
    folder = char_run.parent / "cache"
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(folder))
    return folder


def token_folders(cache):
    return sorted(p.name for p in (cache / "tokens").iterdir() if p.is_dir())


def test_the_held_out_loss_is_the_last_validation_loss_of_training(char_run, char_substrate, cache, tmp_path):
    corpus = char_run.parent / "c.jsonl"
    cached = token_folders(cache)
    row = evaluate_runs([char_run], [HeldOutTask(corpus)])[0]
    last = [r for r in read_metrics(char_run / "metrics.csv") if r.val_loss is not None][-1]
    assert last.step == 30
    assert abs(row["held_out_loss"] - last.val_loss) < 1e-4 and abs(row["held_out_bpb"] - last.val_bpb) < 1e-4
    assert token_folders(cache) == cached  # training's tokens, not tokenized again
    assert row["held_out_tokens"] == row["held_out_bytes"] > 0  # one token per ASCII character

    prepared = tmp_path / "tokens"  # what `bvvtok prepare` wrote for this substrate: the same windows
    assert invoke("prepare", "--substrate", char_substrate, "--corpus", corpus, "--out", prepared).exit_code == 0
    result = invoke("eval", char_run, "--held-out", prepared, "-o", tmp_path / "r.json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "held-out loss" in result.stdout and f"{last.val_loss:.4f}" in result.stdout
    written = json.loads((tmp_path / "r.json").read_text())[0]
    assert written["held_out_loss"] == pytest.approx(row["held_out_loss"], abs=1e-6)
    assert list(written)[2:] == ["held_out_loss", "held_out_bpb", "held_out_tokens", "held_out_bytes"]


def test_a_mixture_uses_the_default_settings_or_those_given(char_run, cache, tmp_path):
    mixture = combine([char_run, char_run], tmp_path / "mix")
    assert "train" not in read_raw_config(mixture) and train_config(read_raw_config(mixture)) == TrainConfig()
    corpus = char_run.parent / "c.jsonl"
    result = invoke("eval", mixture, "--held-out", corpus, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "held-out loss" in result.stdout
    # the run's settings forced on both: the same windows, and two identical members predict as one
    run = train_config(read_raw_config(char_run))
    task = HeldOutTask(corpus, val_fraction=run.val_fraction, eval_windows=run.eval_windows)
    alone, mixed = evaluate_runs([char_run, mixture], [task])
    assert mixed["held_out_tokens"] == alone["held_out_tokens"]
    assert mixed["held_out_loss"] == pytest.approx(alone["held_out_loss"], abs=1e-5)


def test_fewer_windows_when_forced(char_run, cache):
    corpus = char_run.parent / "c.jsonl"
    one, every = (evaluate_runs([char_run], [HeldOutTask(corpus, eval_windows=n)])[0] for n in (1, None))
    assert 0 < one["held_out_tokens"] < every["held_out_tokens"]


def test_a_corpus_that_is_not_one_is_a_one_line_error(char_run, tmp_path):  # a missing path: test_bad_inputs.py
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("eval", char_run, "--held-out", tmp_path / "empty"), "--held-out", "holds no")
    (tmp_path / "notes.md").write_text("text", encoding="utf-8")
    assert_user_error(invoke("eval", char_run, "--held-out", tmp_path / "notes.md"), "--held-out",
                      "unsupported corpus file")


def test_tokens_of_another_tokenizer_are_refused(char_run, cache, tmp_path):
    other = write_wordlevel_vocab(tmp_path / "other", ["<unk>", "the", "cat"], added=("</s>",))
    prepared = prepare_tokens(other, [char_run.parent / "c.jsonl"], out=tmp_path / "tokens").folder
    assert_user_error(invoke("eval", char_run, "--held-out", prepared, "--device", "cpu"), "another tokenizer")


@pytest.mark.parametrize("settings, fragment",
                         [({"val_fraction": 0.7}, "val_fraction=0.7"), ({"eval_windows": 0}, "eval_windows=0")])
def test_bad_settings_are_refused_before_any_model_is_read(tmp_path, settings, fragment):
    with pytest.raises(BvvtokError, match=fragment):
        evaluate_runs([tmp_path / "no-run"], [HeldOutTask(tmp_path / "c.txt", **settings)])
