"""Multiple-choice questions (MMLU, ARC, CommonsenseQA and the like) from a local JSONL file.

One question per line, in any of these layouts (letters A, B, C, ... label the options):

    {"question": "...", "options": {"A": "...", "B": "..."}, "answer": "B"}              bvvtok's own
    {"question": "...", "choices": ["...", "..."], "answer": 1}                          MMLU (answer: index or letter)
    {"question": "...", "choices": {"label": ["A", "B"], "text": ["...", "..."]}, "answerKey": "B"}   ARC, CommonsenseQA
    {"question": {"stem": "...", "choices": [{"label": "A", "text": "..."}]}, "answerKey": "B"}       CommonsenseQA original

Two protocols. `generative`, the papers': the prompt lists the options and ends with
"Answer:", the model generates, and the first non-space character must be the right
letter; sampled runs are repeated and reported as mean +- 95% CI. `loglik`, the usual
lm-eval-harness one: the option whose text has the highest log-likelihood after the
question wins (deterministic).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from scipy.stats import t as student_t
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.evals import Column, Start, Task, numbered_lines, register
from bvvtok.lm.generate import Sampling, generate

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PROTOCOLS = ("generative", "loglik", "both")


@dataclass
class Question:
    line: int
    question: str
    labels: list[str]
    options: list[str]
    answer: str


@dataclass
class ChoiceScore:
    protocol: str
    questions: int
    accuracy: float  # percent; the mean over runs for sampled generative runs
    ci95: float  # half-width of the 95% confidence interval over runs (0 for one run)
    chance: float  # percent: the mean of 1 / options
    runs: int
    picks: tuple[str, ...] = ()  # loglik: the label each question's highest-scoring option has


def _question(record: Any) -> Question:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    q = record.get("question")
    choices = record.get("options", record.get("choices"))
    if isinstance(q, dict):  # CommonsenseQA's original layout
        choices = {"label": [c["label"] for c in q["choices"]], "text": [c["text"] for c in q["choices"]]}
        q = q["stem"]
    if isinstance(choices, dict) and "text" in choices:
        labels, options = list(choices["label"]), list(choices["text"])
    elif isinstance(choices, dict):
        labels, options = list(choices), list(choices.values())
    elif isinstance(choices, list):
        labels, options = list(LETTERS[: len(choices)]), list(choices)
    else:
        raise ValueError("no options: give 'options' {letter: text} or 'choices'")
    answer = record.get("answer", record.get("answerKey"))
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(labels):
        answer = labels[answer]
    bad = [label for label in labels if not (isinstance(label, str) and len(label) == 1 and label in LETTERS)]
    if bad:
        raise ValueError(f"options must be labelled with capital letters, not {bad[0]!r}")
    if not isinstance(q, str) or not all(isinstance(o, str) for o in options) or len(options) < 2:
        raise ValueError("a question needs a text and at least two text options")
    if answer not in labels:
        raise ValueError(f"the answer {answer!r} is not one of the options {', '.join(labels)}")
    return Question(0, q, labels, options, answer)


def read_questions(path: Path, strict: bool = False, on_skip: Callable[[str], None] | None = None) -> list[Question]:
    """The questions of a JSONL file; a malformed line stops (strict) or is skipped and reported."""
    questions = []
    for number, line in numbered_lines(path):
        try:
            question = _question(json.loads(line))
        except (ValueError, KeyError, TypeError) as e:
            message = f"{path}:{number}: {e}"
            if strict:
                raise BvvtokError(f"{message}; fix the line or drop {option('strict', True)} to skip it") from None
            if on_skip:
                on_skip(message)
            continue
        question.line = number
        questions.append(question)
    if not questions:
        raise BvvtokError(f"{path} holds no usable question; see docs/eval.md for the layouts")
    return questions


def prompt(q: Question) -> str:
    return f"{q.question}\n" + "".join(f"{label}. {text}\n" for label, text in zip(q.labels, q.options)) + "Answer:"


def ci95(per_run: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean over runs (0 for one run).

    Student's t with n - 1 degrees of freedom for any n: the normal 1.96 is too narrow for a few runs
    (t is 2.262 for 10 runs, 2.093 for 20).
    """
    n = len(per_run)
    return float(student_t.ppf(0.975, n - 1)) * statistics.stdev(per_run) / math.sqrt(n) if n > 1 else 0.0


def _score(protocol: str, per_run: list[float], questions: list[Question], picks: tuple[str, ...] = ()) -> ChoiceScore:
    chance = 100 * statistics.fmean(1 / len(q.options) for q in questions)
    return ChoiceScore(protocol, len(questions), statistics.fmean(per_run), ci95(per_run), chance, len(per_run), picks)


def generative(model: torch.nn.Module, tokenizer: Tokenizer, questions: list[Question], sampling: Sampling, runs: int,
               on_question: Callable[[], None] | None = None) -> ChoiceScore:  # fmt: skip
    """The papers' protocol: the first non-space generated character must be the answer's letter."""
    per_run = []
    for run in range(runs if not sampling.greedy else 1):
        right = 0
        for i, q in enumerate(questions):
            ids = tokenizer.encode(prompt(q), add_special_tokens=False).ids[-(model.context - 4) :]
            seeded = Sampling(sampling.greedy, sampling.temperature, sampling.top_k, sampling.top_p, sampling.seed + run * len(questions) + i)
            out = generate(model, [ids], seeded, max_new_tokens=4)[0]
            text = tokenizer.decode(out, skip_special_tokens=True).lstrip()
            right += text[:1] == q.answer
            if on_question:
                on_question()
        per_run.append(100 * right / len(questions))
    return _score("generative", per_run, questions)


@torch.no_grad()
def loglik(model: torch.nn.Module, tokenizer: Tokenizer, questions: list[Question],
           on_question: Callable[[], None] | None = None) -> ChoiceScore:  # fmt: skip
    """lm-eval-harness's protocol: the option with the highest log-likelihood as the continuation of the question."""
    device = next(model.parameters()).device
    picks = []
    for q in questions:
        context = tokenizer.encode(f"{q.question}\nAnswer:", add_special_tokens=False).ids
        scores = []
        for answer in q.options:
            ending = tokenizer.encode(f" {answer}", add_special_tokens=False).ids
            ids = (context + ending)[-(model.context + 1) :]
            n = min(len(ending), len(ids) - 1)
            seq = torch.tensor(ids, device=device)
            logits, _ = model(seq[None, :-1])
            logp = F.log_softmax(logits[0, -n:].float(), dim=-1).gather(1, seq[-n:, None]).sum().item()
            scores.append(logp)
        picks.append(q.labels[max(range(len(scores)), key=scores.__getitem__)])
        if on_question:
            on_question()
    right = sum(pick == q.answer for pick, q in zip(picks, questions))
    return _score("loglik", [100 * right / len(questions)], questions, tuple(picks))


def _with_ci(accuracy: float, row: Mapping[str, Any]) -> str:
    return f"{accuracy:.2f}" + (f" ± {row['mc_generative_ci95']:.2f}" if row["mc_runs"] > 1 else "")


@register
@dataclass
class MultipleChoiceTask(Task):
    """--multiple-choice FILE.jsonl: accuracy under the generative protocol, the loglik one or both."""

    name = "multiple_choice"
    protocol: str = "both"
    runs: int = 10  # repeated sampled runs of the generative protocol
    temperature: float = 1.0
    greedy: bool = False
    seed: int = 0
    strict: bool = False

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.greedy, self.temperature, seed=self.seed)

    @property
    def protocols(self) -> tuple[str, ...]:
        return PROTOCOLS[:2] if self.protocol == "both" else (self.protocol,)

    @property
    def columns(self) -> tuple[Column, ...]:
        shown = {"generative": Column("mc_generative", "MC generative %", _with_ci),
                 "loglik": Column("mc_loglik", "MC loglik %")}  # fmt: skip
        return (*(shown[p] for p in self.protocols), Column("chance", "chance %"))

    def check(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise BvvtokError(f"{option('protocol')} {self.protocol!r}: choose {', '.join(PROTOCOLS)}")
        if self.runs < 1:
            raise BvvtokError(f"{option('runs')} must be at least 1 (got {self.runs})")
        self.sampling.check()

    def read(self, on_skip: Callable[[str], None] | None) -> list[Question]:
        return read_questions(self.path, self.strict, on_skip)

    def score(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, questions: list[Question],
              start: Start) -> dict[str, Any]:  # fmt: skip
        row: dict[str, Any] = {"chance": None}  # the first of its figures in rows, filled in by either protocol
        if "generative" in self.protocols:
            runs_done = 1 if self.greedy else self.runs
            tick = start("multiple choice, generative", len(questions) * runs_done)
            g = generative(model, tokenizer, questions, self.sampling, self.runs, tick)
            row |= {"mc_generative": g.accuracy, "mc_generative_ci95": g.ci95, "mc_runs": g.runs, "chance": g.chance}
        if "loglik" in self.protocols:
            s = loglik(model, tokenizer, questions, start("multiple choice, loglik", len(questions)))
            row |= {"mc_loglik": s.accuracy, "chance": s.chance}
        return row | {"questions": len(questions)}
