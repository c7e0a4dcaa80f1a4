"""The loss of a model on the validation windows `bvvtok train` reads from a corpus: eval and training agree.

The windows are chosen by training's own code: the corpus tokenized with the folder's tokenizer (found in the
token cache when training tokenized it already), split by `val_fraction`, and `eval_windows` windows of the
model's context planned by bvvtok.lm.windows.plan_windows; the settings are the folder's (config.json's `train`;
TrainConfig's defaults for a folder without one, such as a mixture). The loss is computed by training's own
function (bvvtok.lm.validation), so for a run trained on the corpus it is the last validation loss of its
metrics.csv. Reported: the loss per token (nats, `</s>` included), bits per byte, and the text tokens and their
UTF-8 bytes (what converts a loss per token into bits per byte).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from bvvtok.errors import BvvtokError, option
from bvvtok.lm.config import TrainConfig
from bvvtok.lm.data import corpus_tokens, is_token_folder
from bvvtok.lm.evals import Column, Start, Task, four_decimals, register
from bvvtok.lm.run_folder import read_raw_config, train_config
from bvvtok.lm.sources import parse_sources
from bvvtok.lm.validation import ValidationLoss, ValidationWindows, pooled, validation_loss, validation_windows
from bvvtok.lm.windows import plan_windows
from bvvtok.vocab.corpus import TEXT_COLUMN, corpus_files


@register
@dataclass
class HeldOutTask(Task):
    """--held-out CORPUS: loss and bits per byte on the validation windows training picks from CORPUS (a corpus
    file, a folder of them, or a folder `bvvtok prepare` wrote)."""

    name = "held_out"
    val_fraction: float | None = None  # None: each folder's own; a value puts several folders on the same windows
    eval_windows: int | None = None  # None: each folder's own
    text_column: str = TEXT_COLUMN  # where the corpus's records hold their text
    columns = (Column("held_out_bpb", "held-out bits/byte", four_decimals, lower_is_better=True),
               Column("held_out_loss", "held-out loss", four_decimals, lower_is_better=True))  # fmt: skip

    def check(self) -> None:
        if self.val_fraction is not None and not 0 < self.val_fraction <= 0.5:
            raise BvvtokError(f"{option('val_fraction', self.val_fraction)} must be in (0, 0.5]; validation needs "
                              "held-out text")
        if self.eval_windows is not None and self.eval_windows < 1:
            raise BvvtokError(f"{option('eval_windows', self.eval_windows)} must be at least 1")

    def read(self, on_skip: Callable[[str], None] | None) -> list[Path]:
        """The corpus as the one item, which --limit leaves whole: the windows are training's, not a selection."""
        if not is_token_folder(self.path):
            try:
                corpus_files(Path(self.path), self.text_column)
            except BvvtokError as e:
                raise BvvtokError(f"{option('held_out')}: {e}") from None
        return [Path(self.path)]

    def windows(self, folder: Path, corpus: Sequence[Path], context: int, vocab_size: int, tokenizer: Tokenizer,
                device: torch.device | str = "cpu") -> tuple[ValidationWindows, TrainConfig]:  # fmt: skip
        """The windows training picks from `corpus` for a model of `context` in `folder`, and the settings used."""
        forced = {"val_fraction": self.val_fraction, "eval_windows": self.eval_windows}
        t = replace(train_config(read_raw_config(folder)), **{k: v for k, v in forced.items() if v is not None})
        data = corpus_tokens(folder, corpus, t.val_fraction, text_column=self.text_column)  # the folder holds its tokenizer
        _, _, validation = plan_windows(data, context, vocab_size, t)
        return validation_windows(validation, context, tokenizer, vocab_size, device), t

    def score(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, corpus: list[Path],
              start: Start) -> dict[str, Any]:  # fmt: skip
        return _figures(self.loss(folder, model, tokenizer, corpus, start))

    def loss(self, folder: Path, model: torch.nn.Module, tokenizer: Tokenizer, corpus: Sequence[Path],
             start: Start) -> ValidationLoss:  # fmt: skip
        device = next(model.parameters()).device
        windows, t = self.windows(folder, corpus, model.context, model.vocab_size, tokenizer, device)
        validation = windows.validation
        batches = -(-len(validation.windows) // t.batch_size)
        # training's batches of windows: the same sums in the same order, so the same figure on the same device
        return validation_loss(model, windows, t.batch_size, on_batch=start("held-out", batches))


def _figures(v: ValidationLoss, tag: str = "") -> dict[str, Any]:
    keys = ("held_out_loss", "held_out_bpb", "held_out_tokens", "held_out_bytes")
    values = (v.loss, v.bits_per_byte, v.text_tokens, v.text_bytes)
    return {(f"{key}[{tag}]" if tag else key): value for key, value in zip(keys, values)}


def held_out_figures(folder: Path, corpus: Sequence[str | Path], val_fraction: float | None = None,
                     eval_windows: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The task's figures for one model folder on the held-out windows of `corpus` (what `train --corpus` takes),
    with `val_fraction` and `eval_windows` forced where given. Named sources: each one's own figures too, tagged
    `held_out_bpb[en]`, beside the figures over all of them."""
    from bvvtok.lm.run_folder import load_model

    model, tokenizer = load_model(folder)
    losses = {}
    for source in parse_sources(corpus):
        task = HeldOutTask(source.paths[0], val_fraction, eval_windows)
        task.check()
        losses[source.name] = task.loss(Path(folder), model, tokenizer, source.paths, lambda what, total: lambda: None)
    figures = _figures(pooled(list(losses.values())))
    for name, loss in losses.items():
        figures |= _figures(loss, name) if name else {}
    return figures


def held_out_text(folder: Path, corpus: Sequence[str | Path], val_fraction: float | None = None,
                  eval_windows: int | None = None) -> tuple[int, int]:  # fmt: skip
    """The text tokens of the held-out windows `held_out_figures` reads, and their UTF-8 bytes, without running the
    model: what converts a loss per token into bits per byte."""
    from bvvtok.lm.run_folder import member_configs
    from bvvtok.vocab.tokenizer_files import load_tokenizer

    model = member_configs(read_raw_config(Path(folder)))[0][0]
    tokenizer = load_tokenizer(Path(folder))
    text = nbytes = 0
    for source in parse_sources(corpus):
        task = HeldOutTask(source.paths[0], val_fraction, eval_windows)
        task.check()
        windows, _ = task.windows(Path(folder), source.paths, model.context, model.vocab_size, tokenizer)
        validation = windows.validation
        text += sum(int((~windows.special[torch.from_numpy(validation.split.window(int(i), model.context)[1:])]).sum())
                    for i in validation.windows)  # fmt: skip
        nbytes += sum(windows.window_bytes)
    return text, nbytes
