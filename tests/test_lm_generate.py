"""Generation: the KV cache changes nothing but the cost, batching changes nothing, sampling is seeded."""

import pytest
import torch
from conftest import assert_user_error, invoke

from bvvtok.errors import BvvtokError
from bvvtok.lm.config import ModelConfig
from bvvtok.lm.generate import Sampling, generate, next_tokens
from bvvtok.lm.model import GPT, KVCache

V = 60


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=V, n_embed=8, d_model=32, n_layer=2, n_head=4, context=64)
    m = GPT(config, torch.nn.functional.normalize(torch.randn(V, 8), dim=1))
    with torch.no_grad():  # larger weights than at init: outputs that depend strongly on the context
        for p in m.parameters():
            p.mul_(8)
    return m.eval()


PROMPTS = [[5, 9, 13, 2, 7], [11], [3, 4, 4, 50, 1, 8, 21, 9]]


def test_cache_gives_the_logits_of_the_full_forward(model):
    ids = torch.tensor([PROMPTS[2]])
    full, _ = model(ids)
    cache = KVCache(model.config.n_layer)
    first, _ = model(ids[:, :5], cache=cache)
    rest = [model(ids[:, i : i + 1], cache=cache)[0] for i in range(5, ids.shape[1])]
    stepwise = torch.cat([first, *rest], dim=1)
    assert torch.allclose(stepwise, full, atol=1e-5)


def test_greedy_is_the_same_with_and_without_the_cache(model):
    with_cache = generate(model, PROMPTS, Sampling(greedy=True), max_new_tokens=20)
    without = generate(model, PROMPTS, Sampling(greedy=True), max_new_tokens=20, use_cache=False)
    assert with_cache == without
    assert all(len(o) == 20 for o in with_cache)
    assert len({tuple(o) for o in with_cache}) == 3  # the prompts matter


def test_batching_left_padded_prompts_changes_nothing(model):
    together = generate(model, PROMPTS, Sampling(greedy=True), max_new_tokens=12)
    alone = [generate(model, [p], Sampling(greedy=True), max_new_tokens=12)[0] for p in PROMPTS]
    assert together == alone


def test_sampling_is_reproducible_with_a_seed(model):
    a = generate(model, PROMPTS, Sampling(temperature=1.5, seed=3), max_new_tokens=15)
    b = generate(model, PROMPTS, Sampling(temperature=1.5, seed=3), max_new_tokens=15)
    c = generate(model, PROMPTS, Sampling(temperature=1.5, seed=4), max_new_tokens=15)
    assert a == b and a != c


def test_top_k_and_top_p_keep_only_the_likely_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    drawn = {next_tokens(logits, Sampling(top_k=2), gen).item() for _ in range(200)}
    assert drawn == {0, 1}
    drawn = {next_tokens(logits, Sampling(top_p=0.8), gen).item() for _ in range(200)}
    assert drawn == {0, 1}  # 0.5 + 0.3 reaches 0.8: the rest is cut
    drawn = {next_tokens(logits, Sampling(top_p=0.81), gen).item() for _ in range(300)}
    assert drawn == {0, 1, 2}


def test_stop_ids_and_callbacks_end_a_sequence(model):
    free = generate(model, [PROMPTS[0]], Sampling(greedy=True), max_new_tokens=10)[0]
    stop = free[3]
    ended = generate(model, [PROMPTS[0]], Sampling(greedy=True), max_new_tokens=10, stop_ids=frozenset({stop}))[0]
    assert ended == free[: free.index(stop) + 1]
    seen = []
    out = generate(model, [PROMPTS[0]], Sampling(greedy=True), max_new_tokens=10, on_token=lambda i, t: seen.append(t) or len(seen) == 4)
    assert out[0] == free[:4] == seen


@pytest.mark.parametrize(
    "sampling, kwargs, fragment",
    [
        (Sampling(temperature=-1), {}, "temperature must be > 0"),
        (Sampling(top_p=1.5), {}, "top_p must be in (0, 1]"),
        (Sampling(top_k=0), {}, "top_k must be at least 1"),
        (Sampling(greedy=True), {"max_new_tokens": 100}, "exceeds the model's context of 64"),
        (Sampling(greedy=True), {"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ],
)
def test_bad_settings(model, sampling, kwargs, fragment):
    with pytest.raises(BvvtokError) as e:
        generate(model, PROMPTS, sampling, **{"max_new_tokens": 5, **kwargs})
    assert fragment in str(e.value)


# --- the CLI on a trained run ---


def test_cli_greedy_prints_prompt_and_continuation_with_or_without_cache(char_run):
    a = invoke("generate", char_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "12", "--device", "cpu")
    b = invoke("generate", char_run, "--prompt", "the cat", "--greedy", "--max-new-tokens", "12", "--no-kv-cache")
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout
    assert a.stdout.startswith("the cat") and len(a.stdout.strip()) > len("the cat")


def test_cli_prompt_file_is_one_batch(char_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the dog\n\nthe cat saw\n", encoding="utf-8")
    result = invoke("generate", char_run, "--prompt-file", prompts, "--greedy", "--max-new-tokens", "5")
    assert result.exit_code == 0, result.output
    single = invoke("generate", char_run, "--prompt", "the cat saw", "--greedy", "--max-new-tokens", "5")
    blocks = result.stdout.split("\n\n")
    assert blocks[0].startswith("the dog") and single.stdout.strip() in result.stdout


def test_cli_warns_about_characters_outside_the_vocabulary(char_run):
    result = invoke("generate", char_run, "--prompt", "the ☃ cat", "--greedy", "--max-new-tokens", "3")
    assert result.exit_code == 0, result.output
    assert "not in the vocabulary" in result.stderr and "U+2603" in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--prompt", "a", "--temperature", "-1"], "--temperature must be > 0"),
        (["--prompt", "a", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--greedy"], "give one of --prompt TEXT or --prompt-file FILE"),
        (["--prompt", "a", "--max-new-tokens", "500"], "exceeds the model's context of 32"),
    ],
)
def test_cli_bad_input(char_run, args, fragment):
    assert_user_error(invoke("generate", char_run, *args), fragment)


def test_cli_refuses_a_folder_that_is_not_a_run(char_substrate):
    assert_user_error(invoke("generate", char_substrate, "--prompt", "a"), "is not a run folder")
