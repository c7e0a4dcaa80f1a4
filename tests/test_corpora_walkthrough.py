"""docs/corpora.md's walkthrough on small local Parquet shards: a bilingual vocabulary from the corpora's own
statistics, each source prepared, a 70/30 run with English and Chinese validated apart, and eval on one source."""

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import invoke

from bvvtok.lm.metrics import read_metrics

DOC = Path(__file__).resolve().parent.parent / "docs" / "corpora.md"
WORDS = "the of and model frozen embedding glyph language corpus shard token".split()
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"


def write_shards(folder: Path, texts: list[str], shards: int) -> Path:
    """`texts` as Parquet shards in `folder`, row groups of 50 rows, the text in column `text` (and an id beside it)."""
    folder.mkdir(parents=True)
    for i in range(shards):
        part = texts[i::shards]
        table = pa.table({"id": list(range(len(part))), "text": part})
        pq.write_table(table, folder / f"train-{i:05d}-of-{shards:05d}.parquet", row_group_size=50)
    return folder


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("data")
    en = [" ".join(rng.choice(WORDS, 12)) + "." for _ in range(400)]
    zh = ["".join(rng.choice(list(HANZI), 20)) + "。" for _ in range(400)]
    return {"en": write_shards(folder / "fineweb-edu" / "sample" / "10BT", en, 2),
            "zh": write_shards(folder / "wikipedia" / "20231101.zh", zh, 1)}  # fmt: skip


def test_the_documented_commands_and_flags():
    """The page's commands use the flags these tests run (a renamed flag fails here, not in a user's shell)."""
    text = DOC.read_text(encoding="utf-8")
    for fragment in ("build-vocab --preset 65k --corpus en=", "prepare --substrate", "--corpus en=artifacts/tokens-en@0.7",
                     "--corpus zh=artifacts/tokens-zh@0.3", "--tokens 2e6", "--held-out artifacts/tokens-zh"):  # fmt: skip
        assert fragment in text.replace("\\\n    ", ""), fragment


def test_a_bilingual_mixture_from_parquet_shards(shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    steps = [
        ("build-vocab", "--preset", "65k", "--corpus", f"en={shards['en']}", "--corpus", f"zh={shards['zh']}",
         "--orders", "2,3", "--out", "vocab-enzh"),
        ("embed", "vocab-enzh", "--method", "bits", "--bits", "16", "--out", "vocab-enzh-16"),
        ("prepare", "--substrate", "vocab-enzh-16", "--corpus", shards["en"], "--out", "tokens-en"),
        ("prepare", "--substrate", "vocab-enzh-16", "--corpus", shards["zh"], "--out", "tokens-zh"),
        ("train", "--substrate", "vocab-enzh-16", "--corpus", "en=tokens-en@0.7", "--corpus", "zh=tokens-zh@0.3",
         "--tokens", "4096", "--d-model", "32", "--n-layer", "1", "--n-head", "4", "--context", "32", "--batch-size", "8",
         "--eval-every", "8", "--eval-windows", "4", "--device", "cpu", "--out", "run-enzh"),
    ]  # fmt: skip
    outputs = []
    for argv in steps:
        result = invoke(*argv)
        assert result.exit_code == 0, (argv, result.output)
        outputs.append(result.output)

    vocab = json.loads(Path("vocab-enzh/bvvtok.json").read_text(encoding="utf-8"))
    assert "的" in json.loads(Path("vocab-enzh/tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert "corpus" in json.dumps(vocab)  # the statistics' corpus is on record
    assert "steps: 16, from the budget of 4,096 tokens at 256 per step" in outputs[-1]
    assert re.search(r"en: 70% of the training tokens, [\d,]+ train \+ [\d,]+ held-out tokens", outputs[-1])

    rows = read_metrics(Path("run-enzh/metrics.csv"))
    last = rows[-1]
    assert last.step == 16 and set(last.sources) == {"en", "zh"}
    assert last.sources["en"][1] != last.sources["zh"][1]

    # one source's figure through eval: the windows training validated that source on
    result = invoke("eval", "run-enzh", "--held-out", "tokens-zh", "--results", "zh.csv")
    assert result.exit_code == 0, result.output
    header, values = Path("zh.csv").read_text(encoding="utf-8").splitlines()[:2]
    figure = float(values.split(",")[header.split(",").index("held_out_bpb")])
    assert figure == pytest.approx(last.sources["zh"][1], abs=1e-5)
