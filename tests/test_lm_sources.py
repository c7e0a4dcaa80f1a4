"""Training on several named sources mixed by weight: parsing, the window order, per-source validation, budgets."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, invoke
from safetensors.numpy import load_file

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import resolve_config
from bvvtok.lm.metrics import read_metrics, source_rows
from bvvtok.lm.sources import Source, parse_sources
from bvvtok.lm.train import train
from bvvtok.lm.windows import MixtureOrder, WindowOrder

SMALL = dict(d_model=32, n_layer=2, n_head=4, context=32)
FAST = dict(steps=24, batch_size=8, lr=1e-2, warmup=3, eval_every=8, eval_windows=8)


@pytest.fixture(autouse=True)
def token_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Two sources a model learns at different rates: patterned English, and Chinese characters in a cycle."""
    folder = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    animals = ["cat", "dog", "hen", "fox", "owl"]
    en = [json.dumps({"text": f"the {a} saw the {b}."}) for a, b in rng.choice(animals, (300, 2))]
    zh = [json.dumps({"text": "你好世界" * (1 + i % 3) + "中文的是一不了人我在有他这"[i % 13]}) for i in range(300)]
    paths = {"en": folder / "en.jsonl", "zh": folder / "zh.jsonl"}
    for name, lines in (("en", en), ("zh", zh)):
        paths[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def config(**train):
    return resolve_config("tiny", None, dict(SMALL), {**FAST, **train})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a.txt", "b/"], [Source("", (Path("a.txt"), Path("b/")), None)]),
        (["en=a.txt@0.7", "zh=hf:org/set:cfg@3"], [Source("en", (Path("a.txt"),), 0.7), Source("zh", (Path("hf:org/set:cfg"),), 3.0)]),
        (["en=data@v2/a.txt"], [Source("en", (Path("data@v2/a.txt"),), None)]),  # an @ inside the path is the path's
    ],
)
def test_corpus_values_parse_into_sources(values, expected):
    assert parse_sources(values) == expected


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["en=a@0.7", "en=b@0.3"], "names the source en twice"),
        (["en=a@0.7", "b.txt"], "mixes named sources (en) with unnamed paths (b.txt)"),
        (["en=a@0.7", "zh=b"], "zh has no weight while en has one"),
        (["en=a@0"], "the weight '0' must be a positive number"),
        (["en=a@-1"], "must be a positive number"),
        (["en=a@nan"], "must be a positive number"),
        (["en=a@lots"], "the weight 'lots' must be a positive number"),
        (["a.txt@0.5"], "a weight goes with a named source"),
        (["e n=a"], "source name 'e n' must be letters, digits"),
    ],
)
def test_bad_corpus_values_are_refused_with_the_fix(values, fragment):
    with pytest.raises(BvvtokError) as caught:
        parse_sources(values)
    assert fragment in str(caught.value)


def test_one_source_reads_the_windows_of_the_plain_order():
    mixed = MixtureOrder([37], [0], [1.0], seed=5, size=8, steps=20)
    plain = WindowOrder(37, 5)
    for step in range(20):
        assert np.array_equal(mixed.global_batch(step), plain.global_batch(step, 8))


def test_a_mixture_splits_every_step_by_share_and_is_fixed_by_seed():
    order = MixtureOrder([50, 1000], [0, 50], [0.3, 0.7], seed=1, size=8, steps=400)
    counts = order.counts
    assert (counts.sum(axis=1) == 8).all()  # every window of every step goes to some source
    assert set(counts[:, 0]) == {2, 3}  # floor or ceil of 8 * 0.3 = 2.4
    assert abs(counts[:, 0].mean() - 2.4) < 0.1
    batch = order.global_batch(7)
    first = counts[7, 0]
    assert (batch[:first] < 50).all() and (batch[first:] >= 50).all()  # each source's windows in its own range
    assert order.windows_read(400)[0] == counts[:, 0].sum()
    again = MixtureOrder([50, 1000], [0, 50], [0.3, 0.7], seed=1, size=8, steps=400)
    other = MixtureOrder([50, 1000], [0, 50], [0.3, 0.7], seed=2, size=8, steps=400)
    assert np.array_equal(again.global_batch(7), batch)
    assert not np.array_equal(other.counts, counts)
    # source 0 runs out after about 50 / 2.4 = 21 steps: it repeats, each pass a fresh permutation
    read = np.concatenate([order.global_batch(s)[: counts[s, 0]] for s in range(400)])
    assert np.array_equal(np.sort(read[:50]), np.arange(50))
    assert not np.array_equal(read[:50], read[50:100])


def test_a_weighted_two_source_run_reports_each_source_and_is_reproducible(char_substrate, corpora, tmp_path):
    corpus = [f"en={corpora['en']}@0.7", f"zh={corpora['zh']}@0.3"]
    runs = [tmp_path / "a", tmp_path / "b"]
    results = [train(char_substrate, corpus, run, config(), device="cpu") for run in runs]

    rows = read_metrics(runs[0] / "metrics.csv")
    header = (runs[0] / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith(",val_bpb,val_loss_en,val_bpb_en,val_loss_zh,val_bpb_zh")
    validated = [r for r in rows if r.val_loss is not None]
    assert [r.step for r in validated] == [0, 8, 16, 24]
    for row in validated:
        (en_loss, en_bpb), (zh_loss, zh_bpb) = row.sources["en"], row.sources["zh"]
        assert min(en_loss, zh_loss) <= row.val_loss <= max(en_loss, zh_loss)  # the whole pools both
        assert min(en_bpb, zh_bpb) <= row.val_bpb <= max(en_bpb, zh_bpb)
    assert len(source_rows(rows, "en")) == 4 and all(not r.sources for r in rows if r.val_loss is None)
    last = validated[-1].sources
    assert last["en"][1] != last["zh"][1]  # two different texts, two different figures

    manifest = json.loads((runs[0] / "bvvtok.json").read_text())["run"]
    sources = manifest["data"]["sources"]
    assert [(s["name"], s["weight"], s["share"]) for s in sources] == [("en", 0.7, 0.7), ("zh", 0.3, 0.3)]
    seen = manifest["tokens_seen"]
    assert seen["en"] + seen["zh"] == 24 * 8 * 32  # steps x batch x context
    assert abs(seen["en"] / (seen["en"] + seen["zh"]) - 0.7) < 0.05
    assert results[0].tokens_seen == seen

    # same seed, same figures and weights (tokens/s aside)
    timeless = [[dataclasses.replace(r, tokens_per_s=None) for r in read_metrics(run / "metrics.csv")] for run in runs]
    assert timeless[0] == timeless[1]
    a, b = (load_file(str(run / "model.safetensors")) for run in runs)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_no_repeat_refuses_a_source_too_small_for_the_run_before_training(char_substrate, corpora, tmp_path):
    corpus = [f"en={corpora['en']}@0.5", f"zh={corpora['zh']}@0.5"]
    with pytest.raises(BvvtokError, match=r"^30 steps would read zh 1\.\d\d times, and repeating text is off") as caught:
        train(char_substrate, corpus, tmp_path / "run", config(steps=30, repeat_data=False), device="cpu")
    assert "en" not in str(caught.value).split(",")[0]  # en has enough windows for its half
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_token_budget_sets_the_steps(char_substrate, corpora, tmp_path):
    result = train(char_substrate, [corpora["en"]], tmp_path / "run", config(tokens=2000, eval_every=100), device="cpu")
    assert result.rows[-1].step == 8  # ceil(2000 / (8 x 32))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["tokens"], saved["steps"]) == (2000, 8)
    assert result.tokens_seen == {"corpus": 8 * 8 * 32}


def test_the_cli_takes_sources_from_flags_or_the_config_file_and_compare_shows_them(char_substrate, corpora, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        "[model]\nd_model = 32\nn_layer = 2\nn_head = 4\ncontext = 32\n"
        "[train]\nsteps = 8\nbatch_size = 8\neval_every = 4\neval_windows = 4\ntokens = 1.024e3\n"
        f'[data]\ncorpus = ["en={corpora["en"]}@2", "zh={corpora["zh"]}@1"]\n', encoding="utf-8")  # fmt: skip
    result = invoke("train", "--substrate", char_substrate, "--out", tmp_path / "run", "--config", toml, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "data: 2 sources, each validated on its own held-out text" in result.output
    assert "en: 67% of the training tokens" in result.output and "zh: 33% of the training tokens" in result.output
    assert "steps: 4, from the budget of 1,024 tokens at 256 per step" in result.output
    assert "bits per byte)" in result.output and "bits per byte, zh" in result.output

    compared = invoke("compare", tmp_path / "run", "--out", tmp_path / "c.png")
    assert compared.exit_code == 0, compared.output
    assert "bits/byte" in compared.output and " en " in compared.output.replace("\n", " ")
    assert (tmp_path / "c.png").stat().st_size > 0

    assert_user_error(invoke("train", "--substrate", char_substrate, "--out", tmp_path / "r2", "--corpus",
                             f"en={corpora['en']}@0.7", "--corpus", corpora["zh"]), "mixes named sources")  # fmt: skip
    assert_user_error(invoke("train", "--substrate", char_substrate, "--out", tmp_path / "r3", "--corpus",
                             corpora["en"], "--steps", "4", "--tokens", "9e9"), "give --steps or --tokens, not both")  # fmt: skip
    assert_user_error(invoke("train", "--substrate", char_substrate, "--out", tmp_path / "r4", "--corpus",
                             corpora["en"], "--tokens", "0.5"), "--tokens 0.5 must be a whole number")  # fmt: skip


def test_loss_png_draws_a_curve_per_source(monkeypatch, tmp_path):
    from bvvtok.lm import plots
    from bvvtok.lm.metrics import Row

    drawn = []
    monkeypatch.setattr(plots, "_draw", lambda out, force, title, panels, **_: drawn.append(panels))
    rows = [Row(0, None, 5.0, None, None, 7.0, {"en": (5.5, 8.0), "zh": (4.5, 6.0)}),
            Row(1, 4.0, None, 1e-3, 100.0),
            Row(2, 3.0, 3.5, 1e-3, 100.0, 4.0, {"en": (3.8, 4.5), "zh": (3.2, 3.5)})]  # fmt: skip
    plots.plot_losses(rows, tmp_path / "loss.png", "run")
    (_, losses, _), (_, bits, _) = drawn[0]
    labels = {label: [getattr(r, field) for r in curve] for label, curve, field, _ in bits}
    assert labels == {"validation, all sources": [7.0, 4.0], "validation, en": [8.0, 4.5], "validation, zh": [6.0, 3.5]}
    assert [label for label, *_ in losses][-2:] == ["validation, en", "validation, zh"]
