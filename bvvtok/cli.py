"""The `bvvtok` command line: a thin Typer layer over the library.

Every command calls one library function and prints what it did. Bad input
raises `BvvtokError` in the library; `_Group` turns it into one line on stderr
and exit code 2 (typer.Exit, so it works with whichever click typer brings).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from bvvtok import __version__
from bvvtok.errors import BvvtokError
from bvvtok.files import check_output_file, check_png_path
from bvvtok.output import new_output

# No markup on stdout: paths, tokens and details are user data ("[INST]", "runs[/bold]") and print as is.
console = Console(markup=False)
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


class _Group(TyperGroup):
    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BvvtokError as e:
            raise _fail(str(e)) from None
        except OSError as e:  # a read or write the library did not anticipate
            if e.errno == errno.EPIPE:
                raise  # whoever read our output stopped (`bvvtok ... | head`): click exits quietly, as Unix tools do
            raise _fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None


app = typer.Typer(
    cls=_Group,
    help="Frozen embedding substrates: bvv241-compatible Unicode + n-gram tokenizers, their frozen embeddings, "
    "and language models trained, sampled, combined, grown, exported and evaluated on top of them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"bvvtok {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Frozen embedding substrates: bvv241-compatible tokenizers, glyph and binary embeddings, and models trained on them."""


@app.command("build-vocab")
def build_vocab_command(
    preset: Annotated[str, typer.Option(metavar="NAME", help="65k (= bvv241-2-3) or 131k (= bvv241-max).")] = "65k",
    ngrams: Annotated[
        Optional[list[Path]],
        typer.Option(metavar="FILE", help="N-gram statistics (published Python-literal or bvvtok JSON); repeatable. Omit to build offline from wordfreq."),
    ] = None,
    extra_tokens: Annotated[
        Optional[Path], typer.Option(metavar="FILE", help="Whole tokens to add, one per line (the 131k recipe's intersection.txt).")
    ] = None,
    top_k: Annotated[
        Optional[int],
        typer.Option(metavar="N", help="Use the recipe's rule: the first N grams per language and order. Default: the preset's (338 / 906) for published statistics, the balanced rule otherwise."),
    ] = None,
    langs: Annotated[
        Optional[str],
        typer.Option(metavar="CODES", help="Comma-separated language codes to keep. Default: every language of the --ngrams files; offline, the 32 bvv241 languages wordfreq has."),
    ] = None,
    out: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Output folder. Default: artifacts/vocab-PRESET.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Build a Unicode + n-gram tokenizer folder, id-for-id compatible with the bvv241 recipe."""
    from bvvtok.vocab.build import build_vocab, save_vocab
    from bvvtok.vocab.languages import parse_langs
    from bvvtok.vocab.layout import get_preset

    chosen = get_preset(preset)
    out = out or Path("artifacts") / f"vocab-{chosen.name}"
    source = "the given statistics" if ngrams else "wordfreq (offline)"
    started = time.perf_counter()
    sources = [*(ngrams or ()), *([extra_tokens] if extra_tokens else [])]
    with new_output(out, force, sources), console.status(f"building the {chosen.name} ({chosen.alias}) vocabulary from {source}"):
        build = build_vocab(chosen, ngrams or (), extra_tokens, top_k, parse_langs(langs))
        manifest = save_vocab(build, out, force)
    elapsed = time.perf_counter() - started
    info = manifest["vocab"]
    table = Table(title=f"{out}", show_header=False, title_justify="left")
    table.add_row("preset", f"{chosen.name} ({chosen.alias}), {chosen.vocab_size:,} ids")
    table.add_row("statistics", source)
    table.add_row("languages", f"{len(info['languages'])}: {', '.join(info['languages'])}")
    if info["skipped_languages"]:
        table.add_row("skipped", f"{', '.join(info['skipped_languages'])} (no statistics for them)")
    selection = info["selection"]
    table.add_row("selection", f"top-k {selection['top_k']}" if "top_k" in selection else selection["rule"])
    counts = info["ngrams"]
    table.add_row("n-grams", f"{counts['placed']:,} placed of {chosen.slot_count:,} slots, {counts['dropped']:,} dropped")
    table.add_row("merges", f"{counts['merges']:,}")
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)


@app.command("ngrams")
def ngrams_command(
    input: Annotated[list[str], typer.Option("--input", metavar="LANG=PATH", help="LANG=PATH: a .txt/.jsonl/.gz file or a folder of them; repeatable.")],
    out: Annotated[Path, typer.Option(metavar="FILE", help="Where to write the statistics (bvvtok JSON).")],
    rule: Annotated[str, typer.Option(metavar="NAME", help="default (every script) or bvv241 (the original regex and CJK rule).")] = "default",
    orders: Annotated[str, typer.Option(metavar="N,N,...", help="Comma-separated n-gram orders.")] = "2,3,4,5",
    top: Annotated[int, typer.Option(metavar="N", help="Grams kept per order and language.")] = 1000,
    max_entries: Annotated[int, typer.Option(metavar="N", help="Distinct grams held per order before the rarest are forgotten (bounds memory).")] = 2_000_000,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Count n-gram statistics from your own corpus, per language, for `build-vocab --ngrams`."""
    from bvvtok.vocab.corpus_stats import corpus_size, count_corpus
    from bvvtok.vocab.stats import save_stats

    inputs = _parse_inputs(input)
    order_list = _parse_orders(orders)
    check_output_file(out, force, inputs.values())
    total = corpus_size(inputs)  # also checks every path before the progress bar starts
    started = time.perf_counter()
    columns = (TextColumn("counting"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("count", total=total)
        stats = count_corpus(inputs, order_list, rule, top, max_entries, lambda n: progress.advance(task, n))
    save_stats(stats, out, force)
    table = Table("lang", "chars", *(f"top {n}-grams" for n in order_list), title=f"{out}", title_justify="left")
    for e in stats.languages:
        table.add_row(e.lang, f"{e.chars:,}", *(" ".join(g for g, _ in e.top_ngrams[n][:5]) for n in order_list))
    console.print(table)
    if stats.meta["approximate_languages"]:
        console.print(f"counts near the cut are approximate for {', '.join(stats.meta['approximate_languages'])} (raise --max-entries for exact counts)")
    console.print(f"rule {rule}, {time.perf_counter() - started:.1f} s")


def _parse_inputs(values: list[str]) -> dict[str, Path]:
    inputs: dict[str, Path] = {}
    for value in values:
        lang, sep, path = value.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise BvvtokError(f"--input {value!r} is not LANG=PATH; write e.g. --input en=corpus/en.txt")
        if lang.strip() in inputs:
            raise BvvtokError(f"--input names {lang.strip()} twice; give one path (a folder) per language")
        inputs[lang.strip()] = Path(path.strip())
    return inputs


def _parse_orders(value: str) -> tuple[int, ...]:
    try:
        orders = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise BvvtokError(f"--orders {value!r} is not a list of integers; write e.g. --orders 2,3,4,5") from None
    if not orders or orders[0] < 1:
        raise BvvtokError(f"--orders {value!r} must name positive integers; write e.g. --orders 2,3,4,5")
    return orders


@app.command("encode")
def encode_command(
    text: Annotated[str, typer.Argument(help="The text to encode.")],
    vocab: Annotated[Path, typer.Option(metavar="DIR", help="A tokenizer folder (with tokenizer.json).")] = Path("artifacts/vocab-65k"),
) -> None:
    """Show how a tokenizer splits TEXT: tokens, ids, and the characters that fell to <unk>."""
    from bvvtok.vocab.encode import encode

    result = encode(vocab, text)
    table = Table("#", "id", "token", "text", title=f"{len(result.ids)} tokens, {len(text)} characters", title_justify="left")
    for i, (token_id, token, piece) in enumerate(zip(result.ids, result.tokens, result.pieces)):
        table.add_row(str(i), str(token_id), repr(token), repr(piece))
    console.print(table)
    console.print(f"ids: {result.ids}", highlight=False, soft_wrap=True)
    if result.unknown:
        listed = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in result.unknown)
        console.print(f"<unk>: {len(result.unknown)} character(s) not in the vocabulary: {listed}", highlight=False)


@app.command("embed")
def embed_command(
    vocab_dir: Annotated[Path, typer.Argument(metavar="VOCAB_DIR", help="A tokenizer folder (with tokenizer.json).")],
    method: Annotated[str, typer.Option(metavar="NAME", help="glyph (pictures of the token text) or bits (a binary codebook).")] = "glyph",
    recipe: Annotated[
        Optional[str], typer.Option(metavar="NAME", help="bvv241-2-3 or bvv241-max. Default: the vocabulary's preset (65k / 131k).")
    ] = None,
    glyph_size: Annotated[int, typer.Option(metavar="PX", help="32 (1,024 bits) or 64 (4,096 bits, the 'abs' variant).")] = 32,
    dim: Annotated[Optional[int], typer.Option(metavar="N", help="PCA output size. Default: the number of bits (a rotation, as published).")] = None,
    font: Annotated[
        Optional[list[Path]], typer.Option(metavar="PATH", help="Font file; repeat for a fallback chain. Default: $BVVTOK_FONT, fonts/, the system's Unifont.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Output folder. Default: VOCAB_DIR itself.")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", help="Processes that render glyphs. Default: one per CPU.")] = None,
    bits: Annotated[Optional[int], typer.Option(metavar="N", help="bits: code length; 16 = the token id itself, else random unique codes.")] = None,
    seed: Annotated[int, typer.Option(metavar="S", help="bits: the seed of the random codebook.")] = 0,
    as_float: Annotated[bool, typer.Option("--float", help="bits: the FLOAT ablation (PCA to --dim, L2-normalised rows).")] = False,
    d_model: Annotated[int, typer.Option(metavar="N", help="bits: the model width the manifest's repeat_interleave scale is for.")] = 1024,
    dump_text: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Also write the codes as text: id, token, bits per line.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a different substrate in --out.")] = False,
) -> None:
    """Build a frozen embedding substrate for a tokenizer: glyph codes -> PCA -> L2-normalised rows, or a binary codebook."""
    from bvvtok.substrate.embed import embed_bits, embed_glyph

    if method not in ("glyph", "bits"):
        raise BvvtokError(f"unknown --method {method!r}; choose glyph or bits")
    started = time.perf_counter()
    if method == "bits":
        if bits is None:
            raise BvvtokError("--method bits needs --bits N (e.g. 16, 64, 256, 1024)")
        if recipe is not None or font or glyph_size != 32:
            raise BvvtokError("--recipe, --font and --glyph-size go with --method glyph")
        with console.status("drawing the codebook"):
            result = embed_bits(vocab_dir, bits, seed, as_float, dim, d_model, out, force, dump_text)
        console.print(_bits_table(result.out, result.manifest["substrate"], time.perf_counter() - started))
        return
    if bits is not None or as_float:
        raise BvvtokError("--bits and --float go with --method bits")
    columns = (TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = embed_glyph(vocab_dir, out, recipe, glyph_size, dim, font or (), workers, force, dump_text, progress)
    console.print(_glyph_table(result.out, result.manifest["substrate"], time.perf_counter() - started))


def _bits_table(out: Path, info: dict, seconds: float) -> Table:
    table = Table(title=str(out), show_header=False, title_justify="left")
    kind = f"FLOAT: PCA to {info['dim']:,}, L2-normalised" if info["float"] else "0/1 values"
    table.add_row("substrate", f"bits, {info['bits']} per token ({info['codebook']}), {kind}")
    table.add_row("tokens", f"{info['tokens']:,}, all codes distinct ({info['redraws']:,} redrawn)")
    hamming = info["min_hamming"]
    table.add_row("min Hamming", f"{hamming['value']} ({'exact' if hamming['exact'] else 'estimated on 2,000,000 random pairs'})")
    table.add_row("model", f"n_embed {info['n_embed']}, d_model {info['d_model']}, repeat_interleave scale {info['scale']}")
    table.add_row("time", f"{seconds:.1f} s")
    return table


def _glyph_table(out: Path, info: dict, seconds: float) -> Table:
    table = Table(title=str(out), show_header=False, title_justify="left")
    table.add_row("substrate", f"glyph, recipe {info['recipe']}, {info['glyph_size']}px = {info['bits']:,} bits, PCA to {info['dim']:,}")
    byte_level = f" (byte-level; {info['escaped_tokens']:,} drawn as escaped bytes)" if info["byte_level"] else ""
    table.add_row("tokens", f"{info['tokens']:,}{byte_level}")
    table.add_row("fonts", ", ".join(f"{f['file']} {f.get('version', '')}".strip() for f in info["fonts"]))
    table.add_row("blank glyphs", f"{info['blank_glyphs']:,} tokens with no ink")
    for key, label in (("missing_chars", "no glyph"), ("unrenderable_chars", "not renderable")):
        if info[key]["count"]:
            first = " ".join(f"U+{ord(c):04X}" for c in info[key]["first"][:8])
            table.add_row(label, f"{info[key]['count']:,} characters, left blank: {first}")
    table.add_row("time", f"{seconds:.1f} s")
    return table


@app.command("fonts")
def fonts_command(
    vocab_dir: Annotated[Optional[Path], typer.Argument(metavar="[VOCAB_DIR]", help="Report coverage of this tokenizer's characters.")] = None,
    font: Annotated[Optional[list[Path]], typer.Option(metavar="PATH", help="Font file; repeat for a fallback chain.")] = None,
) -> None:
    """Show the font chain glyphs are drawn with, and how much of a vocabulary it covers."""
    from bvvtok.substrate.fonts import coverage, resolve_chain
    from bvvtok.substrate.token_text import token_texts
    from bvvtok.vocab.tokenizer_files import load_tokenizer

    chain = resolve_chain(font or ())
    counts: dict[int, int] = {}
    missing: list[str] = []
    if vocab_dir is not None:
        texts = token_texts(load_tokenizer(vocab_dir)).texts
        counts, missing = coverage((ch for t in texts for ch in t), chain)
    table = Table("#", "font", "version", "sha256", *(("characters drawn",) if vocab_dir else ()), title="font chain (first match wins)")
    table.columns[1].overflow = "fold"  # the whole path, wrapped: it says which file is used
    for i, f in enumerate(chain):
        info = f.describe()
        table.add_row(str(i), str(f.path), info.get("version", "unknown"), info["sha256"][:16], *((f"{counts.get(i, 0):,}",) if vocab_dir else ()))
    console.print(table)
    if vocab_dir is not None:
        shown = " ".join(f"U+{ord(c):04X}" for c in missing[:12])
        console.print(f"{len(missing):,} characters of {vocab_dir} have no glyph in the chain" + (f": {shown}" if missing else ""))


@app.command("show")
def show_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="SUBSTRATE_DIR", help="A folder built by `bvvtok embed`.")],
    tokens: Annotated[list[str], typer.Argument(metavar="TOKEN...", help="Token texts, or #ID.")],
    out: Annotated[Path, typer.Option("-o", "--out", metavar="FILE.png", help="Where to write the picture.")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """Draw tokens' glyphs, augmented pictures, codes and nearest neighbours into a PNG."""
    from bvvtok.substrate.show import show

    console.print(f"wrote {show(substrate_dir, tokens, out, force)}")


@app.command("verify")
def verify_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="SUBSTRATE_DIR", help="A folder built by `bvvtok embed`.")],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Also rebuild the substrate from its manifest and compare, byte for byte.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Check that a substrate is what its manifest says; exit 0 only when every check passes."""
    from bvvtok.substrate.verify import as_json as to_json
    from bvvtok.substrate.verify import verify

    with console.status(Text(f"verifying {substrate_dir}")):  # Text: a status string would be read as markup
        results = verify(substrate_dir, rebuild)
    if as_json:
        print(to_json(results))
    else:
        table = Table("check", "result", "detail", title=str(substrate_dir), title_justify="left")
        table.columns[2].overflow = "fold"
        for r in results:
            table.add_row(r.name, Text("pass", style="green") if r.ok else Text("FAIL", style="bold red"), r.detail)
        console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)


Repeat = Annotated[Optional[list[Path]], typer.Option("--corpus", metavar="PATH", help="Text: .txt, .jsonl (field text), .gz of either, a folder of them, or a `bvvtok prepare` folder. Repeatable.")]


def _byte_bar(description: str) -> Progress:
    columns = (TextColumn(description), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err_console, transient=True)


@app.command("prepare")
def prepare_command(
    substrate_dir: Annotated[Path, typer.Option("--substrate", metavar="DIR", help="The substrate (or any tokenizer) folder whose tokenizer to use.")],
    corpus: Repeat = None,
    out: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Where to write the shards. Default: the cache that `train` looks in.")] = None,
    val_fraction: Annotated[float, typer.Option(metavar="F", help="Share of the text held out for validation (by content hash).")] = 0.01,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Tokenize a corpus once into memory-mapped token shards (train does this itself; this is for large corpora)."""
    from bvvtok.lm.data import prepare_tokens

    if not corpus:
        raise BvvtokError("give the text with --corpus PATH (repeatable)")
    with _byte_bar("tokenizing") as bar:
        task = bar.add_task("tokenizing", total=None)
        data = prepare_tokens(substrate_dir, corpus, out, val_fraction, force, lambda done, total: bar.update(task, completed=done, total=total))
    info = data.manifest["tokens"]
    console.print(f"{data.folder}: {info['train_tokens']:,} train + {info['val_tokens']:,} validation tokens ({info['dtype']}), {info['documents']:,} documents")


@app.command("train")
def train_command(
    substrate_dir: Annotated[Path, typer.Option("--substrate", metavar="DIR", help="A substrate folder written by `bvvtok embed`.")],
    out: Annotated[Path, typer.Option(metavar="RUN_DIR", help="The run folder to write.")],
    corpus: Repeat = None,
    preset: Annotated[Optional[str], typer.Option(metavar="NAME", help="tiny (minutes on 2 CPU cores) or paper (the published 1024 x 16 model). Default: tiny.")] = None,
    config: Annotated[Optional[Path], typer.Option(metavar="FILE", help="A TOML file: preset, [model] and [train] tables (see docs/train.md).")] = None,
    d_model: Annotated[Optional[int], typer.Option(metavar="N", help="Model width (a multiple of the substrate's n_embed).")] = None,
    n_layer: Annotated[Optional[int], typer.Option(metavar="N", help="Transformer blocks.")] = None,
    n_head: Annotated[Optional[int], typer.Option(metavar="N", help="Attention heads.")] = None,
    context: Annotated[Optional[int], typer.Option(metavar="N", help="Context length in tokens.")] = None,
    unfrozen: Annotated[bool, typer.Option("--unfrozen", help="Train the embedding too (the papers' baseline).")] = False,
    init: Annotated[Optional[str], typer.Option(metavar="FROM", help="With --unfrozen: start the embedding from the substrate (default) or random.")] = None,
    steps: Annotated[Optional[int], typer.Option(metavar="N", help="Optimizer steps.")] = None,
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
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN_DIR from its last checkpoint.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing RUN_DIR.")] = False,
    init_from: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Start from a run, grown run or mixture (its architecture and weights).")] = None,
    train_only: Annotated[Optional[list[str]], typer.Option(metavar="PATTERN", help="With --init-from: train only parameters whose names match (fnmatch, e.g. 'members.*.head.*'). Repeatable.")] = None,
) -> None:
    """Train a language model on a frozen substrate (or, with --unfrozen, the same model with a trainable embedding)."""
    from bvvtok.lm.config import resolve_config
    from bvvtok.lm.train import train

    if not corpus:
        raise BvvtokError("give the training text with --corpus PATH (repeatable)")
    model_flags = dict(d_model=d_model, n_layer=n_layer, n_head=n_head, context=context, frozen=False if unfrozen else None, init=init)
    train_flags = dict(steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr_ratio=min_lr_ratio, warmup=warmup,
                       weight_decay=weight_decay, grad_clip=grad_clip, eval_every=eval_every, eval_windows=eval_windows,
                       checkpoint_every=checkpoint_every, val_fraction=val_fraction, seed=seed)  # fmt: skip
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
    with _byte_bar("tokenizing") as data_bar, Progress(*columns, console=err_console, disable=not show) as bar:
        data_task = data_bar.add_task("tokenizing", total=None)
        task = bar.add_task("train", total=run_config.train.steps, loss="-", speed="-", visible=False)
        info: dict = {}

        def on_event(kind: str, event: dict) -> None:
            if kind == "start":
                data_bar.stop()
                info.update(event)
                console.print(_run_start(event), soft_wrap=True)
                bar.update(task, completed=event["start_step"], visible=True)
            elif kind == "step":
                row = event["row"]
                bar.update(task, completed=row.step, loss=f"{row.train_loss:.3f}", speed=f"{row.tokens_per_s:,.0f}")
                if row.val_loss is not None:
                    bar.console.print(f"step {row.step:,}: train loss {row.train_loss:.4f}, validation loss {row.val_loss:.4f}")

        result = train(substrate_dir, corpus, out, run_config, device, dtype, compile, resume, force, on_event,
                       lambda done, total: data_bar.update(data_task, completed=done, total=total), init_from, train_only or ())  # fmt: skip
    if show:
        console.print(_run_end(result, time.perf_counter() - started))


def _run_start(event: dict) -> str:
    raw, p = event["raw"], event["parameters"]
    models = raw["members"] if "members" in raw else [raw["model"]]
    shapes = "; ".join(f"d_model {m['d_model']}, {m['n_layer']} layers, {m['n_head']} heads, context {m['context']}" for m in models)
    kind = "frozen" if event["frozen"] else "trainable"
    what = f"mixture of {len(models)} ({shapes})" if "members" in raw else shapes
    lines = [
        f"model: {what}, {kind} {event['substrate']['n_embed']}-dim {event['substrate']['method']} substrate "
        f"(scale {models[0]['d_model'] // event['substrate']['n_embed']}); {p['total']:,} parameters, {p['trainable']:,} trainable",
        f"data: {event['data']['train_tokens']:,} train + {event['data']['val_tokens']:,} held-out tokens "
        f"(validation reads {event['data']['validation']}); device {event['device']}, {event['dtype']}, {event['world_size']} process(es)",
    ]
    if "init_from" in raw:
        lines.append(f"from {raw['init_from']['folder']}, training {', '.join(raw['trainable'])}")
    if event["start_step"]:
        lines.append(f"resuming at step {event['start_step']:,}")
    return "\n".join(lines)


def _run_end(result, seconds: float) -> Table:
    rows = result.rows
    val = [r.val_loss for r in rows if r.val_loss is not None]
    table = Table(title=str(result.out), show_header=False, title_justify="left")
    table.add_row("steps", f"{rows[-1].step:,}" if rows else "0")
    table.add_row("train loss", f"{rows[-1].train_loss:.4f}" if rows else "-")
    table.add_row("validation loss", f"{val[-1]:.4f} (first {val[0]:.4f})" if val else "-")
    table.add_row("unigram entropy", f"{result.unigram_entropy:.4f} nats/token (the loss of a model without context)")
    speeds = [r.tokens_per_s for r in rows[1:]] or [r.tokens_per_s for r in rows]
    table.add_row("tokens/s", f"{sum(speeds) / len(speeds):,.0f} (mean over steps)" if speeds else "-")
    table.add_row("parameters", f"{result.parameters['total']:,} ({result.parameters['trainable']:,} trainable)")
    table.add_row("time", f"{seconds:.0f} s")
    return table


@app.command("generate")
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
        err_console.print(f"warning: {len(unknown)} character(s) not in the vocabulary become <unk>: {escape(listed)}", highlight=False)
    stop_ids = frozenset(i for i in (tokenizer.token_to_id("</s>"),) if i is not None)
    outputs: list[list[int]] = [[] for _ in texts]
    shown = [""] * len(texts)

    def on_token(index: int, token: int) -> bool:
        outputs[index].append(token)
        text = tokenizer.decode(outputs[index], skip_special_tokens=False)
        if len(texts) == 1:  # stream a single prompt to the terminal
            console.out(text[len(shown[index]) :], end="", highlight=False)
        shown[index] = text
        return stop is not None and stop in text

    if len(texts) == 1:
        console.out(texts[0], end="", highlight=False)
    generate(model, [e.ids for e in encoded], sampling, max_new_tokens, stop_ids, not no_kv_cache, on_token, tokenizer.token_to_id("<pad>") or 0)
    if len(texts) == 1:
        console.out("")
    else:
        for text, continuation in zip(texts, shown):
            console.out(text + continuation + "\n", highlight=False)  # a blank line between samples


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run, grown run or mixture folder.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="The folder to write.")],
    format: Annotated[str, typer.Option(metavar="NAME", help="hf: transformers' own GPT-NeoX, no custom code (a mixture: hf-remote); hf-remote: bvvtok's layout and code (trust_remote_code).")] = "hf",
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if bvvtok wrote it.")] = False,
) -> None:
    """Write a run as a Hugging Face model folder: AutoModelForCausalLM.from_pretrained(DIR)."""
    from bvvtok.lm.export import export

    with console.status(Text(f"writing {out}")):
        written = export(run_dir, out, format, force)
    how = "no custom code" if written == "hf" else "bvvtok's own code; load it with trust_remote_code=True"
    console.print(f"wrote {out} ({written}: {how})")


@app.command("import")
def import_command(
    hf_dir: Annotated[Path, typer.Argument(metavar="HF_DIR", help="A folder `bvvtok export` wrote (format hf).")],
    out: Annotated[Path, typer.Option(metavar="RUN_DIR", help="The run folder to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace RUN_DIR if bvvtok wrote it.")] = False,
) -> None:
    """Make a run folder of an exported model again, its substrate proven (generate, eval, combine, grow, train --init-from)."""
    from bvvtok.lm.import_hf import import_hf

    with console.status(Text(f"importing {hf_dir}")):
        import_hf(hf_dir, out, force)
    console.print(f"wrote {out}")


@app.command("combine")
def combine_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Two or more runs on the same substrate and tokenizer.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="The mixture folder to write.")],
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


@app.command("grow")
def grow_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder written by `bvvtok train`.")],
    add_layers: Annotated[int, typer.Option(metavar="N", help="Blocks to stack on top (they start as the identity).")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="The grown model's folder.")],
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the new blocks' weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists.")] = False,
) -> None:
    """Stack N new blocks on a run; `train --init-from DIR` then trains only the new blocks and the head."""
    from bvvtok.lm.grow import grow

    with console.status(Text(f"growing {run_dir}")):
        grow(run_dir, add_layers, out, seed, force)
    console.print(f"wrote {out}: train it with bvvtok train --init-from {out}")


@app.command("eval")
def eval_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Run, mixture or grown folders.")],
    perplexity: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Held-out text (.txt, blank-line separated documents, or .jsonl): loss, perplexity, bits per character.")] = None,
    multiple_choice: Annotated[Optional[Path], typer.Option(metavar="FILE.jsonl", help="Questions with lettered options (MMLU / ARC / CommonsenseQA layouts, see docs/eval.md).")] = None,
    protocol: Annotated[str, typer.Option(metavar="NAME", help="Multiple choice: generative (the papers'), loglik (lm-eval-harness's) or both.")] = "both",
    runs_count: Annotated[int, typer.Option("--runs", metavar="N", help="Generative protocol: sampled runs, reported as mean +- 95% CI.")] = 10,
    temperature: Annotated[float, typer.Option(metavar="T", help="Generative protocol: sampling temperature.")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Generative protocol: greedy answers (one run).")] = False,
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the first sampled run.")] = 0,
    translation: Annotated[Optional[Path], typer.Option(metavar="FILE.tsv", help="source<TAB>reference per line: BLEU with sacrebleu.")] = None,
    src_lang: Annotated[str, typer.Option(metavar="LANG", help="Translation: the source language's name in the prompt.")] = "en",
    tgt_lang: Annotated[str, typer.Option(metavar="LANG", help="Translation: the target language (zh uses sacrebleu's zh tokenizer).")] = "zh",
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Use only the first N documents, questions or pairs.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at a malformed question line instead of skipping it.")] = False,
    device: Annotated[str, typer.Option(metavar="NAME", help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Optional[list[Path]], typer.Option("-o", "--out", metavar="FILE", help="Also write the figures to FILE.csv or FILE.json. Repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --out files.")] = False,
) -> None:
    """Perplexity, multiple-choice accuracy and BLEU of one or several runs, on local files, as one table."""
    from bvvtok.lm.distributed import pick_device
    from bvvtok.lm.evals.report import EvalRequest, evaluate_runs, write_results
    from bvvtok.lm.generate import Sampling

    for path in out or []:
        check_output_file(path, force, [*runs, *(p for p in (perplexity, multiple_choice, translation) if p)])
    request = EvalRequest(perplexity, multiple_choice, protocol, runs_count, Sampling(greedy, temperature, seed=seed),
                          translation, src_lang, tgt_lang, limit, strict)  # fmt: skip
    chosen = pick_device(device)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        current: list[int] = []

        def progress(task: str, total: int) -> None:
            if task:
                current[:] = [bar.add_task(task, total=total)]
            else:
                bar.advance(current[0])

        rows = evaluate_runs(runs, request, chosen, progress, lambda message: bar.console.print(f"skipped {message}", highlight=False))
    console.print(_eval_table(rows))
    if perplexity and len({r["tokenizer_sha256"] for r in rows}) > 1:
        console.print("note: the runs have different tokenizers; compare bits per character (loss and perplexity are per token)")
    for path in out or []:
        write_results(rows, path, force)
        console.print(f"wrote {path}")


def _eval_table(rows: list[dict]) -> Table:
    shown = {"loss": "loss/token", "perplexity": "perplexity", "bits_per_char": "bits/char", "mc_generative": "MC generative %",
             "mc_loglik": "MC loglik %", "chance": "chance %"}  # fmt: skip
    keys = [k for k in shown if any(k in r for r in rows)] + [k for k in rows[0] if k.startswith("bleu_") and k != "bleu_signature"]
    table = Table("run", *[shown.get(k, k.replace("bleu_", "BLEU ").replace("_", "-")) for k in keys])
    for r in rows:
        cells = []
        for k in keys:
            value = r.get(k)
            text = "-" if value is None else f"{value:.2f}" if k != "loss" else f"{value:.4f}"
            if k == "mc_generative" and value is not None and r.get("mc_runs", 1) > 1:
                text += f" ± {r['mc_generative_ci95']:.2f}"
            cells.append(text)
        table.add_row(r["run"], *cells)
    return table


@app.command("compare")
def compare_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Run folders written by `bvvtok train`.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="FILE.png", help="Write the validation-loss curves here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """Validation-loss curves of several runs in one plot, and a table of their final losses."""
    from bvvtok.lm.plots import compare_runs

    summaries = compare_runs(runs, out, force)
    table = Table("run", "embedding", "steps", "train loss", "val loss", "best val")
    for s in summaries:
        fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        table.add_row(s.name, "frozen" if s.frozen else f"unfrozen ({s.init})", f"{s.steps_done:,}/{s.steps_planned:,}",
                      fmt(s.final_train_loss), fmt(s.final_val_loss), fmt(s.best_val_loss))  # fmt: skip
    console.print(table)
    if out is not None:
        console.print(f"wrote {out}")


@app.command("plot-substrate")
def plot_substrate_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A substrate folder written by `bvvtok embed`.")],
    out: Annotated[Path, typer.Option("-o", "--out", metavar="FILE.png", help="Where to write the map.")],
    method: Annotated[str, typer.Option(metavar="NAME", help="pca (seconds) or tsne (scikit-learn's t-SNE, minutes).")] = "pca",
    sample: Annotated[int, typer.Option(metavar="N", help="Tokens drawn at random (placeholders excluded).")] = 4000,
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the sample and of t-SNE.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """A 2-D map of a sample of token vectors, coloured by script: the substrate's visual clusters at a glance."""
    from bvvtok.substrate.plot_map import check_plot_out, map_substrate, plot_map

    check_plot_out(out, force, [substrate_dir])
    with console.status(Text(f"projecting {sample:,} tokens with {method}")):
        m = map_substrate(substrate_dir, method, sample, seed)
    plot_map(m, out, f"{substrate_dir.name}: {len(m.ids):,} tokens, {method}", force)
    counts = ", ".join(f"{name} {m.scripts.count(name):,}" for name in dict.fromkeys(m.scripts))
    console.print(f"wrote {out} ({counts})")


@app.command("bench-tokenizer")
def bench_tokenizer_command(
    tokenizer_dirs: Annotated[list[Path], typer.Argument(metavar="TOKENIZER_DIR...", help="Folders with a tokenizer.json (bvvtok's or any other).")],
    text: Annotated[list[str], typer.Option(metavar="LANG=FILE", help="Documents of one language: .txt (blank-line separated) or .jsonl. Repeatable.")],
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Use only the first N documents of each file.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE.csv", help="Write the table (the published benchmark's layout).")] = None,
    heatmap: Annotated[Optional[Path], typer.Option(metavar="FILE.png", help="Write a heatmap of characters per token.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output files.")] = False,
) -> None:
    """Characters per token (mean, std), unknown-token rate and round-trip losslessness per language and tokenizer."""
    from bvvtok.vocab.tokenizer_bench import bench_tokenizers, plot_heatmap, write_csv

    texts = {}
    for value in text:
        lang, sep, path = value.partition("=")
        if not sep or not lang.strip() or not path:
            raise BvvtokError(f"--text {value!r} is not LANG=FILE; write e.g. --text en=english.txt")
        if lang.strip() in texts:
            raise BvvtokError(f"--text names {lang.strip()} twice; give one file per language")
        texts[lang.strip()] = Path(path)
    if heatmap is not None:
        check_png_path(heatmap)
    for path in (csv_out, heatmap):
        if path is not None:
            check_output_file(path, force, [*tokenizer_dirs, *texts.values()])
    with console.status(Text(f"tokenizing {len(texts)} text(s) with {len(tokenizer_dirs)} tokenizer(s)")):
        cells = bench_tokenizers(tokenizer_dirs, texts, limit)
    table = Table("tokenizer", "language", "documents", "chars/token", "std", "unknown %", "lossless %")
    for c in cells:
        table.add_row(c.tokenizer, c.lang, f"{c.documents:,}", f"{c.chars_per_token_mean:.3f}", f"{c.chars_per_token_std:.3f}",
                      f"{100 * c.unknown_rate:.2f}", f"{100 * c.lossless:.1f}")  # fmt: skip
    console.print(table)
    if csv_out is not None:
        write_csv(cells, csv_out, force)
        console.print(f"wrote {csv_out}")
    if heatmap is not None:
        plot_heatmap(cells, heatmap, force)
        console.print(f"wrote {heatmap}")


@app.command("info")
def info_command(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A vocabulary or substrate folder.")],
) -> None:
    """A short summary of a vocabulary or substrate folder."""
    from bvvtok.commit import recover_for_reading
    from bvvtok.manifest import file_problems, read_manifest

    if not folder.is_dir():
        raise BvvtokError(f"{folder} is not a folder")
    recover_for_reading(folder)
    manifest = read_manifest(folder)
    if not manifest:
        raise BvvtokError(f"{folder} has no bvvtok.json; it is not a bvvtok folder")
    problems = file_problems(folder, manifest)
    try:
        table = _info_table(folder, manifest, problems)
    except (KeyError, TypeError, AttributeError) as e:
        raise BvvtokError(f"{folder}/bvvtok.json lacks what a summary needs ({e!r}); run bvvtok verify {folder}") from None
    console.print(table)
    if problems:
        console.print(f"{folder}: the files are not as the manifest says: {'; '.join(problems)}; run `bvvtok verify {folder}`",
                      soft_wrap=True)  # fmt: skip
        raise typer.Exit(code=1)


def _info_table(folder: Path, manifest: dict, problems: list[str]) -> Table:
    """The summary; `problems`: how the files differ from the manifest (the table flags it, the caller lists them)."""
    table = Table(title=str(folder), show_header=False, title_justify="left")
    vocab, sub = manifest.get("vocab"), manifest.get("substrate")
    if vocab:
        table.add_row("vocabulary", f"{vocab['preset']} ({vocab['alias']}), {vocab['vocab_size']:,} ids, {len(vocab['languages'])} languages")
    if sub:
        if sub["method"] == "glyph":
            fonts = ", ".join(f"{f['file']} {f.get('version', '')}".strip() for f in sub["fonts"])
            what = f"glyph, recipe {sub['recipe']}, {sub['glyph_size']} px, fonts {fonts}"
        else:
            what = f"bits, {sub['bits']} per token, seed {sub['seed']}" + (", FLOAT" if sub.get("float") else "")
        table.add_row("substrate", what)
        table.add_row("shape", f"[{sub['tokens']:,}, {sub['n_embed']}]" + (f", scale {sub['scale']} to d_model {sub['d_model']}" if sub.get("d_model") else ""))
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    listed = f"{len(manifest.get('files', {}))} listed, {size / 2**20:,.1f} MiB on disk"
    table.add_row("files", Text(listed + ", NOT as the manifest says", style="bold red") if problems else listed)
    table.add_row("bvvtok", str(manifest.get("bvvtok_version")))
    return table


def main() -> None:
    app()
