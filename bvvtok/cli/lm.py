"""The model stage's commands: prepare, train, generate, export, import, combine, grow, eval, compare (bvvtok/lm/)."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from bvvtok.cli.app import CORPUS_FORMATS, DataTable, TextColumnFlag, app, console, err_console, example, print_table, progress_bar, summary
from bvvtok.difference import plural
from bvvtok.errors import BvvtokError
from bvvtok.lm.config import changed_options, model_flag_fields, preset_values
from bvvtok.lm.metrics import Row, mean_tokens_per_s, source_names, source_rows
from bvvtok.vocab.layout import EOS, PAD

Repeat = Annotated[Optional[list[Path]], typer.Option("--corpus", metavar="PATH", help=f"Text: {CORPUS_FORMATS}, a folder of files, or a `bvvtok prepare` folder. Repeatable.")]


def _byte_bar(description: str) -> Progress:
    columns = (TextColumn(description), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    return progress_bar(*columns)


@app.command("prepare", epilog=example("bvvtok prepare --substrate artifacts/vocab-65k-256 --corpus artifacts/corpus --out artifacts/tokens"))
def prepare_command(
    substrate_dir: Annotated[Path, typer.Option("--substrate", metavar="DIR", help="The substrate (or any tokenizer) folder whose tokenizer to use.")],
    corpus: Repeat = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Where to write the shards. Default: the cache that `train` looks in.")] = None,
    val_fraction: Annotated[float, typer.Option(metavar="F", help="Share of the text held out for validation (by content hash), above 0.")] = 0.01,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    text_column: TextColumnFlag = "text",
) -> None:
    """Tokenize a corpus once into memory-mapped token shards (train does this itself; this is for large corpora)."""
    from bvvtok.lm.data import prepare_tokens
    from bvvtok.lm.sources import parse_sources

    if not corpus:
        raise BvvtokError("give the text with --corpus PATH (repeatable)")
    if val_fraction == 0:  # the folder is for train, which validates on held-out text (its own --val-fraction > 0)
        raise BvvtokError("--val-fraction 0 holds out no text, and train validates on held-out text; give a share above 0, e.g. --val-fraction 0.01")
    named = [s.name for s in parse_sources(corpus) if s.name]
    if named:
        raise BvvtokError(f"prepare tokenizes one corpus, not the named source {named[0]}: prepare each source into a "
                          f"folder of its own (--corpus PATH --out tokens-{named[0]}) and name the folders in train "
                          f"(--corpus {named[0]}=tokens-{named[0]}@WEIGHT)")  # fmt: skip
    with _byte_bar("tokenizing") as bar:
        task = bar.add_task("tokenizing", total=None)
        data = prepare_tokens(substrate_dir, corpus, out, val_fraction, force, lambda done, total: bar.update(task, completed=done, total=total),
                              text_column)  # fmt: skip
    info = data.manifest["tokens"]
    tokens = info["train_tokens"] + info["val_tokens"]
    took = (f"tokenized in {data.tokenized_s:.1f} s, {tokens / data.tokenized_s:,.0f} tokens/s" if data.tokenized_s
            else "already there (the same tokenizer and corpus)")  # fmt: skip
    console.print(f"{data.folder}: {info['train_tokens']:,} train + {info['val_tokens']:,} validation tokens ({info['dtype']}), "
                  f"{plural(info['documents'], 'document')}; {took}")  # fmt: skip


def _with_config_flags(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with a flag for each ModelConfig field that has a help text (bvvtok.lm.config.model_flag_fields), placed
    before --unfrozen and passed as keyword arguments: a field added to ModelConfig is a flag with no line here. Every
    flag of a model or train field shows its default: the presets' values (bvvtok.lm.config.PRESETS)."""
    signature = inspect.signature(command, eval_str=True)
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [p.replace(kind=keyword) for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    flags = [
        inspect.Parameter(name, keyword, default=None, annotation=Annotated[
            Optional[kind], typer.Option(f"--{name.replace('_', '-')}", metavar=metavar, help=help)])
        for name, kind, metavar, help in model_flag_fields()
    ]  # fmt: skip
    at = [p.name for p in params].index("unfrozen")
    params = [*params[:at], *flags, *params[at:]]
    presets = preset_values()
    for param in params:
        option = param.annotation.__metadata__[0] if param.name in presets else None
        if option is not None and "Default:" not in (option.help or ""):
            option.help = f"{option.help} {_preset_default(presets[param.name])}"
    command.__signature__ = signature.replace(parameters=params)  # type: ignore
    return command


def _preset_default(values: dict[str, Any]) -> str:
    """`Default (by --preset): tiny 256, paper 1,024, paper-grow 4,096.`, or the one value every preset has."""
    shown = {name: f"{v:g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for name, v in values.items()}
    if len(set(shown.values())) == 1:
        return f"Default: {next(iter(shown.values()))}."
    return "Default (by --preset): " + ", ".join(f"{name} {v}" for name, v in shown.items()) + "."


@app.command("train", epilog=example("bvvtok train --substrate artifacts/vocab-65k-256 --corpus artifacts/corpus --out artifacts/run-tiny --preset tiny"))
@_with_config_flags
def train_command(
    substrate_dir: Annotated[Path, typer.Option("--substrate", metavar="DIR", help="A substrate folder written by `bvvtok embed`.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="RUN_DIR", help="The run folder to write.")],
    corpus: Annotated[Optional[list[str]], typer.Option("--corpus", metavar="PATH|NAME=PATH@W", help="Text as prepare's --corpus takes it (repeatable: one corpus), or named sources mixed by share of the training tokens: --corpus en=PATH@0.7 --corpus zh=PATH@0.3 (validation is reported per source). Default: the --config file's [data] corpus.")] = None,
    preset: Annotated[Optional[str], typer.Option(metavar="NAME", help="tiny (minutes on 2 CPU cores), paper (the published 1024 x 16 model) or paper-grow (the growth experiment's 4096-wide model). Default: tiny.")] = None,
    config: Annotated[Optional[Path], typer.Option(metavar="FILE", help="A TOML file: preset, [model] and [train] tables (see docs/train.md).")] = None,
    unfrozen: Annotated[bool, typer.Option("--unfrozen", help="Train the embedding too (the papers' baseline).")] = False,
    steps: Annotated[Optional[int], typer.Option(metavar="N", help="Optimizer steps.")] = None,
    tokens: Annotated[Optional[float], typer.Option(metavar="N", help="A token budget instead of --steps (e.g. 9e9): the steps are derived from the tokens each step reads and printed.")] = None,
    repeat_data: Annotated[Optional[bool], typer.Option("--repeat-data/--no-repeat-data", help="When a corpus or source has fewer training windows than the run reads: repeat it (the default; epochs are reported) or refuse to start.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(metavar="B", help="Sequences per micro-batch and process.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(metavar="K", help="Micro-batches per optimizer step.")] = None,
    lr: Annotated[Optional[float], typer.Option(metavar="X", help="Peak learning rate.")] = None,
    min_lr_ratio: Annotated[Optional[float], typer.Option(metavar="R", help="The cosine decays to lr * R.")] = None,
    warmup: Annotated[Optional[int], typer.Option(metavar="N", help="Linear warmup steps.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(metavar="X", help="AdamW weight decay (not on norms, biases or the embedding).")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(metavar="X", help="Gradient norm clip (0: off).")] = None,
    eval_every: Annotated[Optional[int], typer.Option(metavar="N", help="Validate every N steps (and at the end).")] = None,
    eval_windows: Annotated[Optional[int], typer.Option(metavar="N", help="Validation windows per evaluation.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(metavar="N", help="Checkpoint every N steps. Default: at every evaluation.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(metavar="F", help="Share of the text held out for validation.")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="S", help="Seed of the initial weights and the data order.")] = None,
    device: Annotated[str, typer.Option(metavar="NAME", help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(metavar="NAME", help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    strategy: Annotated[str, typer.Option(metavar="NAME", help="Under torchrun: ddp (whole model per process) or fsdp (parameters, gradients and optimizer state sharded).")] = "ddp",
    activation_checkpointing: Annotated[bool, typer.Option("--activation-checkpointing", help="Recompute each block's activations in backward: less memory, more time.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN_DIR from its last checkpoint.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing RUN_DIR.")] = False,
    init_from: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Start from a run, grown run or mixture (its architecture and weights).")] = None,
    train_only: Annotated[Optional[list[str]], typer.Option(metavar="PATTERN", help="With --init-from: train only parameters whose names match (fnmatch, e.g. 'members.*.head.*'). Repeatable.")] = None,
    # not --log: torchrun's own parser refuses it, after the script's name too, as short for its --log-dir
    track: Annotated[Optional[list[str]], typer.Option(metavar="NAME", help="Also send the curves to tensorboard (RUN_DIR/tensorboard) or wandb (Weights & Biases; WANDB_MODE and the rest apply). Repeatable.")] = None,
    text_column: TextColumnFlag = "text",
    **model_values: Any,  # --d-model, --n-layer ...: one flag per ModelConfig field (see _with_config_flags)
) -> None:
    """Train a language model on a frozen substrate (or, with --unfrozen, the same model with a trainable embedding)."""
    from bvvtok.lm.config import config_corpus, resolve_config
    from bvvtok.lm.train import train

    corpus = corpus or (config_corpus(config) if config else [])
    if not corpus:
        raise BvvtokError("give the training text with --corpus PATH (repeatable), or a [data] corpus in the --config file")
    if tokens is not None and steps is not None:
        raise BvvtokError("give --steps or --tokens, not both")
    if tokens is not None and not (tokens >= 1 and float(tokens).is_integer()):
        raise BvvtokError(f"--tokens {tokens:g} must be a whole number of tokens, at least 1 (e.g. 9e9)")
    model_flags = {**model_values, "frozen": False if unfrozen else None}
    train_flags = dict(steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr_ratio=min_lr_ratio, warmup=warmup,
                       weight_decay=weight_decay, grad_clip=grad_clip, eval_every=eval_every, eval_windows=eval_windows,
                       checkpoint_every=checkpoint_every, val_fraction=val_fraction, seed=seed,
                       tokens=None if tokens is None else int(tokens), repeat_data=repeat_data)  # fmt: skip
    if init_from is not None:
        given = [f"--{k.replace('_', '-')}" for k, v in model_flags.items() if v is not None]
        if given:
            raise BvvtokError(f"--init-from takes the model from {init_from}; drop {', '.join(given)}")
    run_config = resolve_config(preset, config, model_flags, train_flags)
    started = time.perf_counter()
    columns = (
        TextColumn("step {task.completed:,.0f}/{task.total:,.0f}"), BarColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[speed]} tok/s"), TimeRemainingColumn(),
    )  # fmt: skip
    show = os.environ.get("RANK", "0") == "0"
    # transient: gone at the end, where the summary says the same (its tokens/s: the mean the line showed last)
    with _byte_bar("tokenizing") as data_bar, progress_bar(*columns, hidden=not show) as bar:
        data_task = data_bar.add_task("tokenizing", total=None)
        task = bar.add_task("train", total=run_config.train.steps, loss="-", speed="-", visible=False)
        info: dict = {}
        rows: list[Row] = []

        def on_event(kind: str, event: dict) -> None:
            if kind == "start":
                data_bar.stop()
                info.update(event)
                console.print(_run_start(event), soft_wrap=True)
                bar.update(task, completed=event["start_step"], total=event["config"].train.steps, visible=True)
            elif kind == "step":
                row = event["row"]
                rows.append(row)
                if row.train_loss is not None:
                    bar.update(task, completed=row.step, loss=f"{row.train_loss:.3f}", speed=f"{mean_tokens_per_s(rows):,.0f}")
                if row.val_loss is not None:
                    train_loss = "before training" if row.train_loss is None else f"train loss {row.train_loss:.4f}"
                    bits = f", {row.val_bpb:.4f} bits per byte" if row.val_bpb is not None else ""
                    bar.console.print(f"step {row.step:,}: {train_loss}, validation loss {row.val_loss:.4f}{bits}"
                                      + _per_source(row), soft_wrap=True)  # one line per evaluation, also in a log

        result = train(substrate_dir, corpus, out, run_config, device, dtype, compile, resume, force, on_event,
                       lambda done, total: data_bar.update(data_task, completed=done, total=total), init_from, train_only or (),
                       strategy, activation_checkpointing, track or (), text_column)  # fmt: skip
    if show:
        console.print(_run_end(result, out, time.perf_counter() - started))


def _per_source(row: Row) -> str:
    """The named sources' own bits per byte, for a train line: " (en 1.2345, zh 2.3456 bits per byte)"."""
    parts = [f"{name} {bpb:.4f}" for name, (_, bpb) in row.sources.items() if bpb is not None]
    return f" ({', '.join(parts)} bits per byte)" if parts else ""


def _data_lines(event: dict, processes: str) -> list[str]:
    """The train start's account of its data: the tokens, per source when named, and the steps a budget gives."""
    data, train = event["data"], event["config"].train
    sources = data["sources"]
    place = f"device {event['device']}, {event['dtype']}, {processes}"
    if len(sources) == 1 and sources[0]["name"] == "corpus":
        lines = [f"data: {data['train_tokens']:,} train + {data['val_tokens']:,} held-out tokens "
                 f"(validation reads {data['validation']}); {place}"]  # fmt: skip
    else:
        lines = [f"data: {plural(len(sources), 'source')}, each validated on its own held-out text; {place}"]
        lines += [f"  {s['name']}: {s['share']:.0%} of the training tokens, {s['train_tokens']:,} train + "
                  f"{s['val_tokens']:,} held-out tokens, read {s['epochs']:.2f} times" for s in sources]  # fmt: skip
    if train.tokens:
        tokens_per_step = train.batch_size * train.grad_accum * event["world_size"] * event["context"]
        lines.append(f"steps: {train.steps:,}, from the budget of {train.tokens:,} tokens at {tokens_per_step:,} per step")
    return lines


def _run_start(event: dict) -> str:
    raw, p = event["raw"], event["parameters"]
    models = raw["members"] if "members" in raw else [raw["model"]]
    shapes = "; ".join(f"d_model {m['d_model']}, {plural(m['n_layer'], 'layer')}, {plural(m['n_head'], 'head')}, context {m['context']}"
                       + "".join(f", {k} {v}" for k, v in changed_options(m).items()) for m in models)  # fmt: skip
    kind = "frozen" if event["frozen"] else "trainable"
    processes = plural(event["world_size"], "process", "processes")
    what = f"mixture of {len(models)} ({shapes})" if "members" in raw else shapes
    lines = [
        f"model: {what}, {kind} {event['substrate']['n_embed']}-dim {event['substrate']['method']} substrate "
        f"(scale {models[0]['d_model'] // event['substrate']['n_embed']}); {p['total']:,} parameters, {p['trainable']:,} trainable",
        *_data_lines(event, processes),
    ]
    for name, needed in event["memory"].items():
        chosen = " (this run)" if name == event["strategy"] else ""
        lines.append(f"memory with --strategy {name} on {processes}{chosen}: about {needed.describe()}, "
                     f"batch {event['config'].train.batch_size} (an estimate)")
    if "init_from" in raw:
        lines.append(f"from {raw['init_from']['folder']}, training {', '.join(raw['trainable'])}")
    if event["start_step"]:
        lines.append(f"resuming at step {event['start_step']:,}")
    return "\n".join(lines)


def _run_end(result, out: Path, seconds: float) -> Table:
    rows = result.rows
    val = [r for r in rows if r.val_loss is not None]
    trained = [r for r in rows if r.train_loss is not None]
    table = summary(str(out))  # the folder as the user named it
    table.add_row("steps", f"{rows[-1].step:,}" if rows else "0")
    table.add_row("train loss", f"{trained[-1].train_loss:.4f}" if trained else "-")
    first = f" (step {val[0].step:,}: {val[0].val_loss:.4f})" if len(val) > 1 else ""
    table.add_row("validation loss", f"{val[-1].val_loss:.4f}{first}" if val else "-")
    bits = [r.val_bpb for r in rows if r.val_bpb is not None]
    table.add_row("bits per byte", f"{bits[-1]:.4f} of validation text (comparable across tokenizers)" if bits else "-")
    for name in source_names(rows):
        own = [r for r in source_rows(rows, name) if r.val_bpb is not None]
        table.add_row(f"bits per byte, {name}", f"{own[-1].val_bpb:.4f}" if own else "-")
    if len(result.tokens_seen) > 1:
        table.add_row("tokens read", ", ".join(f"{name} {n:,}" for name, n in result.tokens_seen.items()))
    table.add_row("unigram entropy", f"{result.unigram_entropy:.4f} nats/token (the loss of a model without context)")
    speed = mean_tokens_per_s(rows)
    table.add_row("tokens/s", "-" if speed is None else f"{speed:,.0f} (mean over steps)")
    table.add_row("parameters", f"{result.parameters['total']:,} ({result.parameters['trainable']:,} trainable)")
    table.add_row("time", f"{seconds:.0f} s")
    return table


@app.command("generate", epilog=example("bvvtok generate artifacts/run-tiny --prompt \"The meaning of life is\" --max-new-tokens 60 --top-k 40"))
def generate_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder written by `bvvtok train`.")],
    prompt: Annotated[Optional[str], typer.Option(metavar="TEXT", help="The text to continue.")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option(metavar="FILE", help="One prompt per line, generated as one batch.")] = None,
    max_new_tokens: Annotated[int, typer.Option(metavar="N", help="Tokens to add at most (prompt + N must fit the context).")] = 100,
    temperature: Annotated[float, typer.Option(metavar="T", help="Sampling temperature (> 0).")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(metavar="K", help="Sample among the K most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option(metavar="P", help="Sample among the most likely tokens that make up mass P, in (0, 1].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Always take the most likely token (deterministic).")] = False,
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the sampling.")] = 0,
    stop: Annotated[Optional[str], typer.Option(metavar="TEXT", help="Also stop once the continuation contains TEXT (</s> always stops).")] = None,
    device: Annotated[str, typer.Option(metavar="NAME", help="auto, cpu or cuda.")] = "auto",
    no_kv_cache: Annotated[bool, typer.Option("--no-kv-cache", help="Recompute the whole sequence for every token (slow; for checking).")] = False,
) -> None:
    """Continue a prompt with a trained run; prints the prompt and the continuation, token by token."""
    from bvvtok.lm.distributed import pick_device
    from bvvtok.lm.generate import Sampling, generate
    from bvvtok.lm.run_folder import load_model
    from bvvtok.vocab.encode import encode_with

    if (prompt is None) == (prompt_file is None):
        raise BvvtokError("give one of --prompt TEXT or --prompt-file FILE")
    if prompt_file is not None:
        try:
            texts = [line for line in prompt_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise BvvtokError(f"cannot read --prompt-file {prompt_file}: {e}") from None
        if not texts:
            raise BvvtokError(f"--prompt-file {prompt_file} holds no prompt; write one per line")
    else:
        texts = [prompt]
    sampling = Sampling(greedy, temperature, top_k, top_p, seed)
    sampling.check()
    model, tokenizer = load_model(run_dir, pick_device(device))
    encoded = [encode_with(tokenizer, text) for text in texts]
    unknown = list(dict.fromkeys(ch for e in encoded for ch in e.unknown))
    if unknown:
        listed = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in unknown)
        err_console.print(f"warning: {plural(len(unknown), 'character')} not in the vocabulary become <unk>: {escape(listed)}", highlight=False)
    stop_ids = frozenset(i for i in (tokenizer.token_to_id(EOS),) if i is not None)
    outputs: list[list[int]] = [[] for _ in texts]
    shown = [""] * len(texts)

    def on_token(index: int, token: int) -> bool:
        outputs[index].append(token)
        text = tokenizer.decode(outputs[index], skip_special_tokens=False)
        if len(texts) == 1:  # stream a single prompt to the terminal, itself first (once generation is under way)
            console.out((texts[0] if len(outputs[0]) == 1 else "") + text[len(shown[index]) :], end="", highlight=False)
        shown[index] = text
        return stop is not None and stop in text

    generate(model, [e.ids for e in encoded], sampling, max_new_tokens, stop_ids, not no_kv_cache, on_token, tokenizer.token_to_id(PAD) or 0)
    if len(texts) == 1:
        console.out("")
    else:
        for text, continuation in zip(texts, shown):
            console.out(text + continuation + "\n", highlight=False)  # a blank line between samples


@app.command("export", epilog=example("bvvtok export artifacts/run-tiny --out artifacts/run-tiny-hf"))
def export_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run, grown run or mixture folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="The folder to write.")],
    format: Annotated[str, typer.Option(metavar="NAME", help="hf: transformers' own GPT-NeoX, no custom code (a mixture: hf-remote); hf-remote: bvvtok's layout and code (trust_remote_code).")] = "hf",
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if bvvtok wrote it.")] = False,
) -> None:
    """Write a run as a Hugging Face model folder: AutoModelForCausalLM.from_pretrained(DIR)."""
    from bvvtok.lm.export import export

    with console.status(Text(f"writing {out}")):
        written = export(run_dir, out, format, force)
    how = "no custom code" if written == "hf" else "bvvtok's own code; load it with trust_remote_code=True"
    console.print(f"wrote {out} ({written}: {how})")


@app.command("import", epilog=example("bvvtok import artifacts/run-tiny-hf --out artifacts/run-tiny-again"))
def import_command(
    hf_dir: Annotated[Path, typer.Argument(metavar="HF_DIR", help="A folder `bvvtok export` wrote (format hf).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="RUN_DIR", help="The run folder to write.")],
    substrate: Annotated[Optional[Path], typer.Option("--substrate", metavar="DIR", help="The substrate folder the model was trained on: proves the embedding of a copy saved with save_pretrained (a fine-tune), which has no substrate.json.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace RUN_DIR if bvvtok wrote it.")] = False,
) -> None:
    """Make a run folder of an exported model again, its substrate proven (generate, eval, combine, grow, train --init-from)."""
    from bvvtok.lm.import_hf import import_hf

    with console.status(Text(f"importing {hf_dir}")):
        import_hf(hf_dir, out, force, substrate)
    console.print(f"wrote {out}")


@app.command("combine", epilog=example("bvvtok combine artifacts/run-tiny artifacts/run-tiny-unfrozen --out artifacts/mix"))
def combine_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Two or more runs on the same substrate and tokenizer.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="The mixture folder to write.")],
    weights: Annotated[Optional[str], typer.Option(metavar="W1,W2,...", help="One weight per run (normalised to sum 1). Default: equal.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists.")] = False,
) -> None:
    """Join runs into a mixture whose next-token logits are the weighted mean of theirs."""
    from bvvtok.lm.combine import combine

    values = None
    if weights is not None:
        try:
            values = [float(w) for w in weights.split(",")]
        except ValueError:
            raise BvvtokError(f"--weights {weights!r} is not a list of numbers; write e.g. --weights 0.5,0.5") from None
    with console.status(Text(f"combining {len(runs)} runs")):
        combine(runs, out, values, force)
    console.print(f"wrote {out}: a mixture of {len(runs)} runs")


@app.command("grow", epilog=example("bvvtok grow artifacts/run-tiny --add-layers 2 --out artifacts/run-tiny-grown"))
def grow_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder written by `bvvtok train`.")],
    add_layers: Annotated[int, typer.Option(metavar="N", help="Blocks to stack on top (they start as the identity).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="The grown model's folder.")],
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the new blocks' weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists.")] = False,
) -> None:
    """Stack N new blocks on a run; `train --init-from DIR` then trains only the new blocks and the head."""
    from bvvtok.lm.grow import grow

    with console.status(Text(f"growing {run_dir}")):
        grow(run_dir, add_layers, out, seed, force)
    console.print(f"wrote {out}: train it with bvvtok train --init-from {out}")


@app.command("eval", epilog=example("bvvtok eval artifacts/run-tiny artifacts/run-tiny-unfrozen --perplexity docs/examples/held-out.txt --results artifacts/eval.csv"))
def eval_command(
    ctx: typer.Context,
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Run, mixture or grown folders.")],
    # the tasks: each option of a file is the task of that name in bvvtok/lm/evals/, the options after it its settings
    perplexity: Annotated[Optional[Path], typer.Option(metavar="CORPUS", help="Documents (a record each; in .txt, separated by blank lines), a corpus as train --corpus takes it: loss, perplexity, bits per character.")] = None,
    held_out: Annotated[Optional[Path], typer.Option(metavar="CORPUS", help="A corpus path as train --corpus takes it (one source of a mixture: that source's path): loss and bits per byte on the validation windows training picks from it, with each run's own settings.")] = None,
    multiple_choice: Annotated[Optional[Path], typer.Option(metavar="FILE.jsonl", help="Questions with lettered options (MMLU / ARC / CommonsenseQA layouts, see docs/eval.md).")] = None,
    protocol: Annotated[str, typer.Option(metavar="NAME", help="Multiple choice: generative (the papers'), loglik (lm-eval-harness's) or both.")] = "both",
    runs: Annotated[int, typer.Option("--runs", metavar="N", help="Generative protocol: sampled runs, reported as mean +- 95% CI.")] = 10,
    temperature: Annotated[float, typer.Option(metavar="T", help="Generative protocol: sampling temperature.")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Generative protocol: greedy answers (one run).")] = False,
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the first sampled run.")] = 0,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at a malformed question line instead of skipping it.")] = False,
    translation: Annotated[Optional[Path], typer.Option(metavar="FILE.tsv", help="source<TAB>reference per line: BLEU with sacrebleu.")] = None,
    src_lang: Annotated[str, typer.Option(metavar="LANG", help="Translation: the source language's name in the prompt.")] = "en",
    tgt_lang: Annotated[str, typer.Option(metavar="LANG", help="Translation: the target language (zh uses sacrebleu's zh tokenizer).")] = "zh",
    cloze: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Passages, one per line (.txt, or .jsonl with text): last-word accuracy, LAMBADA's protocol.")] = None,
    text_column: TextColumnFlag = "text",
    # for every task
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Use only the first N items of each file (documents, questions, pairs, ...).")] = None,
    device: Annotated[str, typer.Option(metavar="NAME", help="auto, cpu or cuda.")] = "auto",
    results: Annotated[Optional[list[Path]], typer.Option("--results", "-o", metavar="FILE", help="Also write the table to FILE.csv or FILE.json. Repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --results files.")] = False,
) -> None:
    """Perplexity, held-out loss, multiple-choice and cloze accuracy, and BLEU of one or several runs, as one table."""
    from bvvtok.lm.distributed import pick_device
    from bvvtok.lm.evals import requested_tasks
    from bvvtok.lm.evals.report import check_results_path, evaluate_runs, write_results

    tasks = requested_tasks({p.name: ctx.params[p.name] for p in ctx.command.params})  # in this table's order
    for path in results or []:
        check_results_path(path, force, [*run_dirs, *(task.path for task in tasks)])
    chosen = pick_device(device)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with progress_bar(*columns) as bar:
        current: list[int] = []

        def progress(task: str, total: int) -> None:
            if task:
                current[:] = [bar.add_task(task, total=total)]
            else:
                bar.advance(current[0])

        on_skip = lambda message: bar.console.print(f"skipped {message}", highlight=False)  # noqa: E731
        rows = evaluate_runs(run_dirs, tasks, limit, chosen, progress, on_skip)
    print_table(_eval_table(rows, [column for task in tasks for column in task.columns]))
    if (perplexity or held_out) and len({r["tokenizer_sha256"] for r in rows}) > 1:
        console.print("note: the runs have different tokenizers; compare bits per character or byte "
                      "(losses and perplexity are per token)")
    for path in results or []:
        write_results(rows, path, force)
        console.print(f"wrote {path}")


def _eval_table(rows: list[dict], columns: list) -> DataTable:
    """A row per run, a column per figure the tasks show."""
    table = DataTable("run", *[c.title for c in columns])
    for r in rows:
        table.add_row(r["run"], *["-" if r.get(c.key) is None else c.text(r[c.key], r) for c in columns])
    return table


@app.command("compare", epilog=example("bvvtok compare artifacts/run-tiny artifacts/run-tiny-unfrozen --out artifacts/curves.png"))
def compare_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Run folders written by `bvvtok train`.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="FILE.png", help="Write the validation-loss curves here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """Validation curves of several runs (loss and bits per byte) in one picture, and a table of their substrates and final
    figures."""
    from bvvtok.lm.plots import compare_runs

    summaries = compare_runs(runs, out, force)
    names = list(dict.fromkeys(name for s in summaries for name in s.sources))  # named sources: a column each
    table = DataTable("run", "substrate", "embedding", "steps", "train\nloss", "val\nloss", "best\nval", "bits/\nbyte",
                      *(f"bits/byte\n{name}" for name in names), keys=3, box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for s in summaries:
        fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        table.add_row(s.name, s.substrate, "frozen" if s.frozen else f"unfrozen ({s.init})",
                      f"{s.steps_done:,}/{s.steps_planned:,}", fmt(s.final_train_loss), fmt(s.final_val_loss),
                      fmt(s.best_val_loss), fmt(s.final_val_bpb), *(fmt(s.sources.get(name)) for name in names))  # fmt: skip
    print_table(table)
    if out is not None:
        console.print(f"wrote {out}")
