"""Library errors name a parameter as its caller gave it (issue 20, item 8): a Python caller reads `top_k`,
`force=True`, never a flag it did not type; the same problem through the CLI still names the flag.

Each case is one problem: the library call (given the case's `Places`: `{tmp}` and the read-only fixture folders
of test_bad_inputs) with a fragment of its message, and, where the CLI can make the same mistake, its command line
and that message's fragment.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import assert_user_error, invoke
from test_bad_inputs import Places

from bvvtok.errors import BvvtokError, command_line, option
from bvvtok.lm.combine import combine
from bvvtok.lm.config import resolve_config
from bvvtok.lm.distributed import pick_device
from bvvtok.lm.evals.report import evaluate_runs
from bvvtok.lm.export import export
from bvvtok.lm.generate import Sampling, generate
from bvvtok.lm.grow import grow
from bvvtok.lm.train import train
from bvvtok.substrate.embed import embed_bits, embed_glyph
from bvvtok.vocab.build import build_vocab, save_vocab
from bvvtok.vocab.corpus_stats import count_corpus
from bvvtok.vocab.tokenizer_bench import bench_tokenizers

CONFIG = resolve_config("tiny", None, {}, {})


class Case(NamedTuple):
    id: str
    call: Callable[[Places], Any]
    python: str  # a fragment of the message from Python
    argv: str = ""  # the same mistake on the command line ("": none), formatted like test_bad_inputs' argv
    cli: str = ""  # a fragment of the CLI's message


def bad_toml(places: Places) -> Path:
    (places["tmp"] / "bad.toml").write_text("[model\n", encoding="utf-8")
    return places["tmp"] / "bad.toml"


def stats(places: Places) -> Path:
    (places["tmp"] / "stats.txt").write_text(repr([{"lang": "en", "top_ngrams": {2: [("th", 3)]}}]), encoding="utf-8")
    return places["tmp"] / "stats.txt"


def a_vocab(places: Places) -> Path:
    """A bvvtok vocabulary folder in {tmp}: what an output without force must not replace."""
    save_vocab(build_vocab("65k", [stats(places)]), places["tmp"] / "vocab")
    return places["tmp"] / "vocab"


CASES = [
    Case("train-missing-substrate", lambda p: train(p["tmp"] / "nosub", [p["tmp"] / "nothere.txt"], p["tmp"] / "r", CONFIG),
         "substrate {tmp}/nosub is not a folder"),
    Case("train-missing-corpus", lambda p: train(p["substrate"], [p["tmp"] / "nothere.txt"], p["tmp"] / "r", CONFIG),
         "nothere.txt not found; check the path",
         "train --substrate {substrate} --corpus {tmp}/nothere.txt --out {tmp}/r", "nothere.txt not found; check the path"),
    Case("train-resume-and-force",
         lambda p: train(p["substrate"], [], p["tmp"] / "r", CONFIG, resume=True, force=True),
         "resume=True and force=True contradict each other",
         "train --substrate {substrate} --corpus {vocab}/../tiny-stats.txt --out {tmp}/r --resume --force", "--resume and --force contradict"),
    Case("train-only-without-init-from", lambda p: train(p["substrate"], [], p["tmp"] / "r", CONFIG, train_only=["x"]),
         "train_only goes with init_from",
         "train --substrate {substrate} --corpus {vocab}/../tiny-stats.txt --out {tmp}/r --train-only x", "--train-only goes with --init-from"),
    Case("train-unknown-tracker", lambda p: train(p["substrate"], [], p["tmp"] / "r", CONFIG, track=["mlflow"]),
         "track='mlflow': choose tensorboard or wandb",
         "train --substrate {substrate} --corpus {vocab}/../tiny-stats.txt --out {tmp}/r --track mlflow", "--track mlflow: choose"),
    Case("config-init-random", lambda p: resolve_config(None, None, {"init": "random"}, {}),
         "init='random' needs frozen=False",
         "train --substrate {substrate} --corpus {vocab}/../tiny-stats.txt --out {tmp}/r --init random", "--init random needs --unfrozen"),
    Case("config-norm", lambda p: resolve_config(None, None, {"norm": "batch"}, {}), "norm 'batch': choose",
         "train --substrate {substrate} --corpus {vocab}/../tiny-stats.txt --out {tmp}/r --norm batch", "--norm 'batch': choose"),
    Case("config-not-toml", lambda p: resolve_config(None, bad_toml(p), {}, {}), "config_file={tmp}/bad.toml is not valid TOML"),
    Case("save-vocab-onto-a-vocab", lambda p: save_vocab(build_vocab("65k", [stats(p)]), a_vocab(p)),
         "is a bvvtok folder; pass force=True to replace it"),
    Case("build-vocab-missing-stats", lambda p: build_vocab("65k", [p["tmp"] / "missing.txt"]),
         "check the ngram_files path", "build-vocab --ngrams {tmp}/missing.txt --out {tmp}/v", "check the --ngrams path"),
    Case("build-vocab-top-k", lambda p: build_vocab("65k", [stats(p)], top_k=0), "top_k must be at least 1 (got 0)",
         "build-vocab --ngrams {vocab}/../tiny-stats.txt --top-k 0 --out {tmp}/v", "--top-k must be at least 1 (got 0)"),
    Case("count-corpus-top", lambda p: count_corpus({"en": stats(p)}, top=0), "top must be at least 1",
         "ngrams --input en={vocab}/../tiny-stats.txt --top 0 --out {tmp}/s.json", "--top must be at least 1"),
    Case("count-corpus-workers", lambda p: count_corpus({"en": stats(p)}, workers=0), "workers must be at least 1 (got 0)",
         "ngrams --input en={vocab}/../tiny-stats.txt --workers 0 --out {tmp}/s.json", "--workers must be at least 1 (got 0)"),
    Case("bench-no-text", lambda p: bench_tokenizers([p["vocab"]], {}), "no text given; texts names a file per language"),
    Case("embed-glyph-dim", lambda p: embed_glyph(p["vocab"], out=p["tmp"] / "s", dim=5000),
         "dim=5000 must be between 1 and the number of bits",
         "embed {vocab} --dim 5000 --out {tmp}/s", "--dim 5000 must be between 1 and the number of bits"),
    Case("embed-bits-dim-without-float", lambda p: embed_bits(p["vocab"], 16, dim=8, out=p["tmp"] / "s"),
         "dim goes with float=True",
         "embed {vocab} --method bits --bits 16 --dim 8 --out {tmp}/s", "--dim goes with --float"),
    Case("sampling-temperature", lambda p: Sampling(temperature=0).check(),
         "temperature must be > 0 (got 0); use greedy=True",
         "generate {run} --prompt the --temperature 0", "--temperature must be > 0 (got 0.0); use --greedy"),
    Case("generate-max-new-tokens", lambda p: generate(None, [[1]], Sampling(), max_new_tokens=0),
         "max_new_tokens must be at least 1 (got 0)",
         "generate {run} --prompt the --max-new-tokens 0", "--max-new-tokens must be at least 1 (got 0)"),
    Case("combine-one-run", lambda p: combine([p["run"]], p["tmp"] / "m"), "combine needs at least two runs"),
    Case("combine-weights", lambda p: combine([p["run"], p["run"]], p["tmp"] / "m", weights=[1.0]),
         "weights has 1 values for 2 runs",
         "combine {run} {run} --weights 1 --out {tmp}/m", "--weights has 1 values for 2 runs"),
    Case("grow-add-layers", lambda p: grow(p["run"], 0, p["tmp"] / "g"), "add_layers must be at least 1",
         "grow {run} --add-layers 0 --out {tmp}/g", "--add-layers must be at least 1"),
    Case("export-format", lambda p: export(p["run"], p["tmp"] / "e", format="onnx"), "unknown format 'onnx'",
         "export {run} --out {tmp}/e --format onnx", "unknown --format 'onnx'"),
    Case("device", lambda p: pick_device("tpu"), "device 'tpu': choose auto, cpu or cuda",
         "generate {run} --prompt the --device tpu", "--device 'tpu': choose auto, cpu or cuda"),
    Case("evaluate-nothing", lambda p: evaluate_runs([p["run"]], []),
         "give a file to one of cloze, held_out, multiple_choice"),
]


@pytest.fixture
def places(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Places:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    return Places(request, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_python_caller_reads_no_flag(case: Case, places: Places) -> None:
    with pytest.raises(BvvtokError) as error:
        case.call(places)
    message = str(error.value)
    assert case.python.format_map(places) in message
    assert "--" not in message, message


@pytest.mark.parametrize("case", [c for c in CASES if c.argv], ids=[c.id for c in CASES if c.argv])
def test_the_command_line_still_names_the_flag(case: Case, places: Places) -> None:
    argv = [arg.format_map(places) for arg in shlex.split(case.argv)]
    assert_user_error(invoke(*argv), case.cli.format_map(places))


def test_the_command_lines_wording_ends_with_the_command(places: Places) -> None:
    """A program that runs the CLI in-process, then calls the library, reads Python's names again."""
    assert_user_error(invoke("build-vocab", "--ngrams", stats(places), "--top-k", "0"), "--top-k")
    with pytest.raises(BvvtokError, match="^top_k must be at least 1"):
        build_vocab("65k", [stats(places)], top_k=0)


@pytest.mark.parametrize(
    "args, python, cli",
    [
        (("top_k", 0), "top_k=0", "--top-k 0"),
        (("top_k",), "top_k", "--top-k"),
        (("force", True), "force=True", "--force"),
        (("init", "random"), "init='random'", "--init random"),
        (("frozen", False, "--unfrozen"), "frozen=False", "--unfrozen"),
        (("out", Path("a/b")), "out=a/b", "--out a/b"),
    ],
)
def test_option(args: tuple, python: str, cli: str) -> None:
    assert option(*args) == python
    with command_line():
        assert option(*args) == cli
    assert option(*args) == python

