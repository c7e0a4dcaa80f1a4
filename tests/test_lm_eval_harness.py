"""lm-evaluation-harness as a client of exported folders (skipped without `pip install lm-eval[hf]`).

Two local tasks written here, a multiple-choice one (log-likelihood) and a generate_until one, run through
lm-eval's `hf` model on an exported run (stock GPT-NeoX) and an exported mixture (bvvtok's own code): the
results at batch size 1 and 4 are identical, sample for sample, and the multiple-choice picks are those of
`bvvtok eval --protocol loglik` (the same prompt: "question\\nAnswer:" and " option").
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke

from bvvtok.lm.evals.choice import loglik, read_questions
from bvvtok.lm.run_folder import load_model

lm_eval = pytest.importorskip("lm_eval")

QUESTIONS = [("the cat saw the", ["dog", "zzz", "qqq"], 0), ("a dog saw", ["xx", "the", "kk"], 1),
             ("the dog", ["saw", "jj"], 0), ("cat", ["yy", "ww", "the"], 2), ("saw the", ["vv", "cat"], 1),
             ("the", ["cat", "dog", "saw"], 0)]  # fmt: skip
PROMPTS = ["the cat", "a dog saw the", "the", "saw", "dog 1", "the cat saw the dog"]
TASKS = {
    "bvvtok_mc": """output_type: multiple_choice
doc_to_text: "{{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
""",
    "bvvtok_gen": """output_type: generate_until
doc_to_text: "{{prompt}}"
doc_to_target: target
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
""",
}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    """The two task files and their data."""
    folder = tmp_path_factory.mktemp("tasks")
    with open(folder / "bvvtok_mc.jsonl", "w", encoding="utf-8") as f:
        for q, choices, answer in QUESTIONS:
            f.write(json.dumps({"question": q, "choices": choices, "answer": answer}) + "\n")
    with open(folder / "bvvtok_gen.jsonl", "w", encoding="utf-8") as f:
        for p in PROMPTS:
            f.write(json.dumps({"prompt": p, "target": "the"}) + "\n")
    for name, body in TASKS.items():
        data = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / name}.jsonl\ntest_split: test\n"
        (folder / f"{name}.yaml").write_text(f"task: {name}\n{data}{body}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-cache")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            mp.setenv(name, "1")
        mp.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
        yield


@pytest.fixture(scope="module")
def exports(char_run, tmp_path_factory) -> dict[str, Path]:
    """The run as stock GPT-NeoX, and a mixture of it with itself (bvvtok's code)."""
    folder = tmp_path_factory.mktemp("exports")
    assert invoke("combine", char_run, char_run, "--weights", "0.3,0.7", "--out", folder / "mix").exit_code == 0
    for name, source in (("run", char_run), ("mixture", folder / "mix")):
        result = invoke("export", source, "--out", folder / name)
        assert result.exit_code == 0, result.output
    return {"run": folder / "run", "mixture": folder / "mixture"}


def evaluate(folder: Path, tasks: Path, batch_size: int) -> dict[str, list[dict]]:
    """lm-eval's samples per task: for multiple choice the log-likelihoods, for generation the text."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    trust = json.loads((folder / "config.json").read_text())["model_type"] == "bvvtok"
    args = f"pretrained={folder},dtype=float32" + (",trust_remote_code=True" if trust else "")
    results = simple_evaluate(model="hf", model_args=args, tasks=list(TASKS), batch_size=batch_size, device="cpu",
                              task_manager=TaskManager(include_path=str(tasks)), log_samples=True)  # fmt: skip
    return {task: sorted(results["samples"][task], key=lambda s: s["doc_id"]) for task in TASKS}


def answers(samples: dict[str, list[dict]]) -> dict[str, list]:
    """What a model answered: the log-likelihood of each option, and each generated text."""
    mc = [[round(r[0][0], 4) for r in s["resps"]] for s in samples["bvvtok_mc"]]
    gen = [s["resps"][0][0] for s in samples["bvvtok_gen"]]
    return {"bvvtok_mc": mc, "bvvtok_gen": gen}


@pytest.mark.parametrize("kind", ["run", "mixture"])
def test_batch_sizes_1_and_4_agree_and_picks_are_bvvtoks(kind, exports, tasks, char_run, tmp_path):
    one, four = (answers(evaluate(exports[kind], tasks, size)) for size in (1, 4))
    assert one == four
    assert any(text.strip() for text in one["bvvtok_gen"])  # something was generated
    picks = [max(range(len(scores)), key=scores.__getitem__) for scores in one["bvvtok_mc"]]
    source = char_run if kind == "run" else exports["mixture"].parent / "mix"
    model, tokenizer = load_model(source)
    ours = loglik(model, tokenizer, read_questions(tasks / "bvvtok_mc.jsonl"))
    assert [chr(ord("A") + p) for p in picks] == list(ours.picks)


def test_the_documented_command(exports, tasks, tmp_path):
    """docs/eval.md's command line, as a user runs it."""
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={exports['run']},dtype=float32",
               "--tasks", "bvvtok_mc", "--include_path", str(tasks), "--batch_size", "4", "--device", "cpu",
               "--output_path", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bvvtok_mc" in done.stdout and "acc" in done.stdout
