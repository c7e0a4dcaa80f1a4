"""The exported custom-code model as a first-class transformers model: the library's cache, attention
masks and position ids, labels, a clear error past the context, bf16, save/load, for a run and a mixture."""

import warnings

import pytest
import torch
from conftest import invoke

from bvvtok.lm.config import resolve_config
from bvvtok.lm.run_folder import load_model
from bvvtok.lm.train import train

transformers = pytest.importorskip("transformers")

PROMPTS = ["the cat", "a", "the dog saw th"]
NEW = 12


@pytest.fixture(scope="module")
def folders(char_run, char_substrate, tmp_path_factory) -> dict:
    """bvvtok folders and their exports: char_run, and a mixture of it with a deeper run of a longer context
    (members of different shapes: the cache offsets and the shortest context matter)."""
    root = tmp_path_factory.mktemp("hf-remote")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(char_run.parent / "cache"))
        config = resolve_config("tiny", None, dict(d_model=32, n_layer=3, n_head=4, context=48),
                                dict(steps=20, batch_size=8, lr=1e-2, warmup=3, eval_every=20, seed=1))  # fmt: skip
        train(char_substrate, [char_run.parent / "c.jsonl"], root / "deep", config, device="cpu")
    result = invoke("combine", char_run, root / "deep", "--weights", "1,3", "--out", root / "mixture")
    assert result.exit_code == 0, result.output
    found = {}
    for name, run in (("run", char_run), ("mixture", root / "mixture")):
        result = invoke("export", run, "--format", "hf-remote", "--out", root / f"{name}_hf")
        assert result.exit_code == 0, result.output
        found[name] = (run, root / f"{name}_hf")
    return found


def load(folder, **kwargs):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, **kwargs)


def tokenizer(folder):
    return transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)


def new_tokens(model, tok, prompts: list[str], **kwargs) -> list[list[int]]:
    """Each prompt's greedy continuation, the batch padded on the left; a row that ended early is cut at its end."""
    batch = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
    out = model.generate(**batch, max_new_tokens=NEW, do_sample=False, **kwargs)[:, batch.input_ids.shape[1] :]
    eos = model.generation_config.eos_token_id
    return [row[: row.index(eos) + 1] if eos in row else row for row in out.tolist()]


@pytest.mark.parametrize("name", ["run", "mixture"])
def test_greedy_is_bvvtok_generate(folders, name):
    run, folder = folders[name]
    model, tok = load(folder), tokenizer(folder)
    ids = tok("the cat", return_tensors="pt").input_ids
    ours = invoke("generate", run, "--prompt", "the cat", "--greedy", "--max-new-tokens", NEW)
    assert ours.exit_code == 0, ours.output
    for use_cache in (True, False):
        out = model.generate(ids, max_new_tokens=NEW, do_sample=False, use_cache=use_cache)
        assert tok.decode(out[0]) == ours.stdout.rstrip("\n")


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("name", ["run", "mixture"])
def test_left_padded_batch_is_each_prompt_alone(folders, name, use_cache):
    model, tok = load(folders[name][1]), tokenizer(folders[name][1])
    alone = [new_tokens(model, tok, [p], use_cache=use_cache)[0] for p in PROMPTS]
    assert new_tokens(model, tok, PROMPTS, use_cache=use_cache) == alone
    assert len({tuple(a) for a in alone}) == len(PROMPTS)  # the prompts matter


def test_generate_uses_the_library_cache_by_default(folders):
    model = load(folders["mixture"][1])
    assert type(model.config)().use_cache  # the class default, whatever an older export wrote
    seen = []

    def spy(module, args, kwargs) -> None:
        seen.append((kwargs["input_ids"].shape[1], kwargs.get("cache", kwargs.get("past_key_values"))))  # 5.x, 4.x

    model.register_forward_pre_hook(spy, with_kwargs=True)
    model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, do_sample=False)
    assert [n for n, _ in seen] == [3, 1, 1, 1]  # each new token computed once
    cache = seen[-1][1]
    assert isinstance(cache, transformers.DynamicCache) and len(cache.layers) == model.config.num_hidden_layers == 2 + 3


def test_cache_continues_a_forward(folders):
    model = load(folders["mixture"][1])
    ids = torch.tensor([[5, 9, 13, 40, 41, 50, 60, 7, 8, 9]])
    cache = transformers.DynamicCache()  # the caller's own, filled by the first call and continued by the second
    first, rest = model(ids[:, :6], cache=cache).logits, model(ids[:, 6:], cache=cache).logits
    assert torch.allclose(torch.cat((first, rest), dim=1), model(ids).logits, atol=1e-5)


def test_any_mask_and_explicit_positions_are_honoured(folders):
    """A padding slot in the middle changes nothing; positions given override those counted from the mask."""
    model = load(folders["mixture"][1])
    alone = model(torch.tensor([[40, 41, 50, 60]])).logits[:, -1]
    ids, mask = torch.tensor([[40, 41, 3, 50, 60]]), torch.tensor([[1, 1, 0, 1, 1]])
    assert torch.allclose(model(ids, attention_mask=mask).logits[:, -1], alone, atol=1e-5)
    counted = torch.tensor([[0, 1, 1, 2, 3]])
    assert torch.allclose(model(ids, attention_mask=mask, position_ids=counted).logits[:, -1], alone, atol=1e-5)
    wrong = model(ids, attention_mask=mask, position_ids=torch.arange(5)[None]).logits[:, -1]
    assert not torch.allclose(wrong, alone, atol=1e-3)


@pytest.mark.parametrize("name", ["run", "mixture"])
def test_labels_give_bvvtoks_loss(folders, name):
    run, folder = folders[name]
    ours, _ = load_model(run)
    model = load(folder)
    ids = torch.tensor([[5, 9, 13, 40, 41, 50, 60, 7, 8, 9], [69, 70, 71, 72, 73, 74, 75, 76, 77, 78]])
    labels = ids.clone()
    labels[1, :4] = -100  # ignored, as in transformers
    with torch.no_grad():
        _, expected = ours(ids[:, :-1], targets=labels[:, 1:])
    assert torch.allclose(model(ids, labels=labels).loss, expected, atol=1e-6)


def test_longer_than_the_context_is_a_clear_error(folders):
    model = load(folders["mixture"][1])  # members of contexts 32 and 48: the mixture reads 32
    with pytest.raises(ValueError, match="a sequence of 33 tokens is longer than the context 32 of this model"):
        model(torch.zeros(1, 33, dtype=torch.long), labels=torch.zeros(1, 33, dtype=torch.long))
    too_many = r"20 tokens \+ 20 new tokens is longer than the context 32 of this model: lower max_new_tokens to 12"
    with pytest.raises(ValueError, match=too_many):
        model.generate(torch.zeros(1, 20, dtype=torch.long), max_new_tokens=20)
    with pytest.raises(ValueError, match="attention_mask has shape \\[1, 3\\], not \\[1, 4\\]"):
        model(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3, dtype=torch.long))


def test_save_pretrained_round_trip_gives_the_same_logits(folders, tmp_path):
    model = load(folders["mixture"][1])
    model.save_pretrained(tmp_path / "saved")
    ids = torch.tensor([[5, 9, 13, 40, 41]])
    assert torch.equal(load(tmp_path / "saved")(ids).logits, model(ids).logits)


def test_bfloat16_generates_and_the_card_snippet_holds(folders):
    model = load(folders["run"][1], dtype=torch.bfloat16)
    c, weight = model.config, model.token_embeddings.weight
    assert (c.vocab_size, c.n_embed, c.d_model, c.n_layer, c.n_head, c.scale) == (117, 16, 32, 2, 4, 2)
    assert weight.dtype == torch.bfloat16 and list(weight.shape) == [117, 16]
    assert set(weight.unique().tolist()) == {0.0, 1.0}  # a bits substrate: strictly 0/1
    out = model.generate(torch.tensor([[88, 76, 73]]), max_new_tokens=NEW, do_sample=False, eos_token_id=None)
    assert out.shape == (1, 3 + NEW)


def test_loading_and_generating_print_nothing(folders, capfd):
    transformers.utils.logging.disable_progress_bar()  # the weights' loading bar: transformers' own, not a warning
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, tok = load(folders["mixture"][1]), tokenizer(folders["mixture"][1])
            new_tokens(model, tok, PROMPTS)
    finally:
        transformers.utils.logging.enable_progress_bar()
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr().err == ""
