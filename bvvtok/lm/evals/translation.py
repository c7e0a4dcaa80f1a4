"""Translation quality with BLEU (sacrebleu, the standard implementation) on a local TSV file.

Each line is `source<TAB>reference`. The prompt names the two languages, as the papers'
translation prompts do (`en: ...\\nzh:`), and the model's greedy continuation up to the
end of the line is the hypothesis. Chinese targets use sacrebleu's `zh` tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sacrebleu
import torch
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError
from bvvtok.lm.evals import Column, Start, Task, greedy_continuation, numbered_lines, register


@dataclass
class Translation:
    pairs: int
    bleu: float
    signature: str  # sacrebleu's, for the record


def read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in numbered_lines(path):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise BvvtokError(f"{path}:{number}: expected 'source<TAB>reference'; fix the line")
        pairs.append((parts[0].strip(), parts[1].strip()))
    if not pairs:
        raise BvvtokError(f"{path} holds no pair; write one 'source<TAB>reference' per line")
    return pairs


def translate(model: torch.nn.Module, tokenizer: Tokenizer, pairs: list[tuple[str, str]], src: str, tgt: str,
              on_pair: Callable[[], None] | None = None) -> Translation:  # fmt: skip
    hypotheses = []
    for source, _ in pairs:
        ids = tokenizer.encode(f"{src}: {source}\n{tgt}:", add_special_tokens=False).ids
        out = greedy_continuation(model, ids, 2 * len(ids) + 8, on_token=lambda i, t: "\n" in tokenizer.decode([t]))
        hypotheses.append(tokenizer.decode(out, skip_special_tokens=True).split("\n")[0].strip())
        if on_pair:
            on_pair()
    bleu = sacrebleu.BLEU(tokenize="zh" if tgt.startswith("zh") else "13a")
    score = bleu.corpus_score(hypotheses, [[reference for _, reference in pairs]])
    return Translation(len(pairs), score.score, str(bleu.get_signature()))


@register
@dataclass
class TranslationTask(Task):
    """--translation FILE.tsv: BLEU of the greedy translations from src_lang to tgt_lang."""

    name = "translation"
    src_lang: str = "en"
    tgt_lang: str = "zh"

    @property
    def columns(self) -> tuple[Column, ...]:
        title = f"BLEU {self.src_lang}-{self.tgt_lang}".replace("_", "-")
        return (Column(f"bleu_{self.src_lang}_{self.tgt_lang}", title),)

    def read(self, on_skip: Callable[[str], None] | None) -> list[tuple[str, str]]:
        return read_pairs(self.path)

    def score(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, pairs: list[tuple[str, str]],
              start: Start) -> dict[str, Any]:  # fmt: skip
        t = translate(model, tokenizer, pairs, self.src_lang, self.tgt_lang, start("translation", len(pairs)))
        return {self.columns[0].key: t.bleu, "bleu_signature": t.signature, "pairs": t.pairs}
