"""The memory a training process needs, worked out before the model is built; the paper-grow preset."""

import pytest
import torch
from conftest import assert_user_error, invoke, write_char_vocab

from bvvtok.lm import memory
from bvvtok.lm.config import resolve_config, with_substrate
from bvvtok.lm.memory import GIB, check_fits, plan
from bvvtok.lm.model import GPT

SHAPE = dict(d_model=64, n_layer=2, n_head=4, context=32)


def meta_model(frozen: bool = True, vocab: int = 100, n_embed: int = 16, **shape) -> tuple[GPT, object]:
    config = with_substrate(resolve_config("tiny", None, {**SHAPE, **shape, "frozen": frozen}, {"batch_size": 4}), vocab, n_embed)
    with torch.device("meta"):
        return GPT(config.model, torch.zeros(vocab, n_embed)), config


def test_weights_gradients_and_adamw_are_counted_from_the_trainable_part():
    model, config = meta_model()
    trainable = sum(p.numel() for p in model.parameters())
    substrate = 100 * 16  # a buffer: weights, but no gradient and no AdamW moments
    m = plan(model, config.train, processes=1, sharded=False, dtype=torch.float32, recomputed=False)
    assert (m.trainable, m.parameters) == (trainable, trainable + substrate)
    assert (m.weights, m.gradients, m.optimizer) == (4 * (trainable + substrate), 4 * trainable, 8 * trainable)
    unfrozen, _ = meta_model(frozen=False)
    assert plan(unfrozen, config.train, 1, False, torch.float32, False).optimizer == 8 * (trainable + substrate)


def test_fsdp_divides_the_state_and_recomputation_the_activations():
    model, config = meta_model()
    whole = plan(model, config.train, 4, False, torch.float32, False)
    shared = plan(model, config.train, 4, True, torch.float32, False)
    assert shared.optimizer == whole.optimizer // 4 and shared.gradients == whole.gradients // 4
    assert shared.weights < whole.weights
    recomputed = plan(model, config.train, 1, False, torch.float32, True)
    assert recomputed.activations < whole.activations
    assert plan(model, config.train, 1, False, torch.bfloat16, False).activations < whole.activations


def test_a_run_that_cannot_fit_is_refused_with_the_figures(monkeypatch):
    model, config = meta_model(d_model=4096, n_head=32, n_layer=16, vocab=65536, n_embed=1024)
    m = plan(model, config.train, 1, False, torch.float32, False)
    assert 3.3e9 < m.parameters < 3.7e9  # the growth experiment's shape: about 3.5B with 65k tokens
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * GIB)
    with pytest.raises(Exception, match="needs about .* GiB per process .* memory available has 8.0 GiB.*strategy='fsdp'"):
        check_fits(m, torch.device("cpu"))


@pytest.fixture(scope="module")
def wide_substrate(tmp_path_factory):
    """The tests' ~120-character vocabulary with a 1024-dim codebook: paper-grow's substrate width, a tiny head."""
    from bvvtok.substrate.embed import embed_bits

    folder = write_char_vocab(tmp_path_factory.mktemp("wide") / "substrate")
    embed_bits(folder, n_bits=1024, d_model=4096)
    return folder


def test_paper_grow_takes_a_step_at_one_block(wide_substrate, tmp_path, monkeypatch):
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat saw the dog. " * 400, encoding="utf-8")
    result = invoke("train", "--substrate", wide_substrate, "--corpus", corpus, "--out", tmp_path / "run", "--preset",
                    "paper-grow", "--n-layer", "1", "--context", "64", "--batch-size", "1", "--grad-accum", "1",
                    "--steps", "1", "--eval-windows", "1", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "d_model 4096, 1 layer, 32 heads, context 64" in out and "scale 4" in out
    assert "memory with --strategy ddp on 1 process (this run): about" in out and "GiB per process" in out


def test_paper_grow_whole_is_refused_where_it_cannot_fit(wide_substrate, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * GIB)
    (tmp_path / "corpus").mkdir()
    result = invoke("train", "--substrate", wide_substrate, "--corpus", tmp_path / "corpus", "--out", tmp_path / "run",
                    "--preset", "paper-grow", "--device", "cpu")  # fmt: skip
    assert_user_error(result, "needs about", "memory available has 8.0 GiB", "--activation-checkpointing")
    assert not (tmp_path / "run").exists()
