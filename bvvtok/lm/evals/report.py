"""Several model folders through the same evaluations: one row of figures per folder.

    rows = evaluate_runs([Path("artifacts/run-tiny"), Path("artifacts/run-tiny-unfrozen")],
                         EvalRequest(perplexity=Path("held-out.txt")))
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bvvtok.errors import BvvtokError
from bvvtok.files import atomic_file, sha256_file
from bvvtok.lm.evals.choice import generative, loglik, read_questions
from bvvtok.lm.evals.perplexity import perplexity
from bvvtok.lm.evals.translation import read_pairs, translate
from bvvtok.lm.generate import Sampling
from bvvtok.lm.run_folder import load_model
from bvvtok.vocab.corpus import read_documents

PROTOCOLS = ("generative", "loglik", "both")


@dataclass
class EvalRequest:
    perplexity: Path | None = None
    multiple_choice: Path | None = None
    protocol: str = "both"
    runs: int = 10  # repeated sampled runs of the generative protocol
    sampling: Sampling = Sampling(temperature=1.0)
    translation: Path | None = None
    src_lang: str = "en"
    tgt_lang: str = "zh"
    limit: int | None = None
    strict: bool = False

    def check(self) -> None:
        if not (self.perplexity or self.multiple_choice or self.translation):
            raise BvvtokError("nothing to evaluate: give --perplexity FILE, --multiple-choice FILE.jsonl or --translation FILE.tsv")
        if self.protocol not in PROTOCOLS:
            raise BvvtokError(f"--protocol {self.protocol!r}: choose {', '.join(PROTOCOLS)}")
        if self.runs < 1 or (self.limit is not None and self.limit < 1):
            raise BvvtokError("--runs and --limit must be at least 1")
        self.sampling.check()


Progress = Callable[[str, int], None]  # (task, total) when a task starts; then ("", 0) per item done


def evaluate_runs(runs: Sequence[Path], request: EvalRequest, device: torch.device | str = "cpu", progress: Progress | None = None,
                  on_skip: Callable[[str], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """One dict of figures per run (keys in a fixed order), the inputs read once and limited to `limit` items."""
    request.check()
    tick = (lambda: progress("", 0)) if progress else None
    limit = slice(None, request.limit)
    documents = read_documents(request.perplexity)[limit] if request.perplexity else None
    questions = read_questions(request.multiple_choice, request.strict, on_skip)[limit] if request.multiple_choice else None
    pairs = read_pairs(request.translation)[limit] if request.translation else None
    rows = []
    for run in runs:
        model, tokenizer = load_model(run, device)
        row: dict[str, Any] = {"run": Path(run).name, "tokenizer_sha256": sha256_file(Path(run) / "tokenizer.json")[:12]}
        if documents is not None:
            if progress:
                progress(f"{Path(run).name}: perplexity", len(documents))
            p = perplexity(model, tokenizer, documents, tick)
            row |= {"tokens": p.tokens, "loss": p.loss, "perplexity": p.perplexity, "bits_per_char": p.bits_per_char}
        if questions is not None:
            row["chance"] = None
            if request.protocol in ("generative", "both"):
                runs_done = 1 if request.sampling.greedy else request.runs
                if progress:
                    progress(f"{Path(run).name}: multiple choice, generative", len(questions) * runs_done)
                g = generative(model, tokenizer, questions, request.sampling, request.runs, tick)
                row |= {"mc_generative": g.accuracy, "mc_generative_ci95": g.ci95, "mc_runs": g.runs, "chance": g.chance}
            if request.protocol in ("loglik", "both"):
                if progress:
                    progress(f"{Path(run).name}: multiple choice, loglik", len(questions))
                s = loglik(model, tokenizer, questions, tick)
                row |= {"mc_loglik": s.accuracy, "chance": s.chance}
            row["questions"] = len(questions)
        if pairs is not None:
            if progress:
                progress(f"{Path(run).name}: translation", len(pairs))
            t = translate(model, tokenizer, pairs, request.src_lang, request.tgt_lang, tick)
            row |= {f"bleu_{request.src_lang}_{request.tgt_lang}": t.bleu, "bleu_signature": t.signature, "pairs": t.pairs}
        rows.append(row)
    return rows


def write_results(rows: list[dict[str, Any]], path: Path, force: bool = False) -> None:
    """`.json`: the rows as a list; `.csv`: one line per run, columns in first-seen order."""
    if path.suffix not in (".csv", ".json"):
        raise BvvtokError(f"{path}: results are written as .csv or .json; choose one of those suffixes")
    with atomic_file(path, force) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.suffix == ".json":
            f.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        else:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(f, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
