"""The vocabulary stage's commands: build-vocab, ngrams, encode, bench-tokenizer (bvvtok/vocab/)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.text import Text

from bvvtok.cli.app import CORPUS_FORMATS, DataTable, TextColumnFlag, app, console, example, progress_bar, summary
from bvvtok.difference import plural
from bvvtok.errors import BvvtokError
from bvvtok.files import check_output_file, check_png_path
from bvvtok.output import new_output
from bvvtok.vocab.stats import NgramStats


@app.command("build-vocab", epilog=example("bvvtok build-vocab --preset 65k --out artifacts/vocab-65k"))
def build_vocab_command(
    preset: Annotated[str, typer.Option(metavar="NAME", help="65k (= bvv241-2-3) or 131k (= bvv241-max).")] = "65k",
    ngrams: Annotated[
        Optional[list[Path]],
        typer.Option(metavar="FILE", help="N-gram statistics (published Python-literal or bvvtok JSON); repeatable. Omit (and --corpus) to build offline from wordfreq."),
    ] = None,
    corpus: Annotated[
        Optional[list[str]],
        typer.Option(metavar="LANG=PATH", help="Count this corpus first, as `bvvtok ngrams --input` does; repeatable. With --ngrams, the vocabulary is built from both."),
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
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Output folder. Default: artifacts/vocab-PRESET.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    rule: Annotated[Optional[str], typer.Option(metavar="NAME", help="Counting --corpus: default or bvv241 (as ngrams --rule). Default: default.")] = None,
    orders: Annotated[Optional[str], typer.Option(metavar="N,N,...", help="Counting --corpus: n-gram orders. Default: 2,3,4,5.")] = None,
    top: Annotated[Optional[int], typer.Option(metavar="N", help="Counting --corpus: grams kept per order and language. Default: 1000.")] = None,
    max_entries: Annotated[Optional[int], typer.Option(metavar="N", help="Counting --corpus: as ngrams --max-entries. Default: 2000000.")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", help="Counting --corpus: processes (1: this one). Default: every CPU this process may use.")] = None,
    text_column: TextColumnFlag = "text",
) -> None:
    """Build a Unicode + n-gram tokenizer folder, id-for-id compatible with the bvv241 recipe."""
    from bvvtok.lm.data import describe_corpus
    from bvvtok.vocab.build import build_vocab, save_vocab
    from bvvtok.vocab.languages import parse_langs
    from bvvtok.vocab.layout import get_preset

    chosen = get_preset(preset)
    out = out or Path("artifacts") / f"vocab-{chosen.name}"
    inputs = _parse_inputs(corpus or [], "--corpus")
    counting = {"--rule": rule, "--orders": orders, "--top": top, "--max-entries": max_entries, "--workers": workers}
    if not inputs and any(value is not None for value in counting.values()):
        given = ", ".join(flag for flag, value in counting.items() if value is not None)
        raise BvvtokError(f"{given}: only for counting a corpus; give --corpus LANG=PATH, or leave {given} out")
    order_list = _parse_orders(orders or "2,3,4,5")  # the defaults of ngrams
    rule, top, max_entries = rule or "default", 1000 if top is None else top, 2_000_000 if max_entries is None else max_entries
    source = ", ".join([*(["the given statistics"] if ngrams else []), *(["the corpus"] if inputs else [])]) or "wordfreq (offline)"
    started = time.perf_counter()
    sources = [*(ngrams or ()), *inputs.values(), *([extra_tokens] if extra_tokens else [])]
    with new_output(out, force, sources, kind="vocab"):
        stats: list[NgramStats] = []
        if inputs:
            counted = _count(inputs, order_list, rule, top, max_entries, workers, text_column)
            counted.stats.meta["corpus"] = [{"lang": lang, **entry} for lang, path in inputs.items() for entry in describe_corpus([path])]
            stats.append(counted.stats)
        with console.status(f"building the {chosen.name} ({chosen.alias}) vocabulary from {source}"):
            build = build_vocab(chosen, ngrams or (), extra_tokens, top_k, parse_langs(langs), stats)
            manifest = save_vocab(build, out, force)
    elapsed = time.perf_counter() - started
    info = manifest["vocab"]
    table = summary(str(out))
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
    if inputs:
        table.add_row("counting", counted.speed())
        if counted.stats.meta["max_undercount"]:
            table.add_row("approximate", counted.undercount())
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)


@app.command("ngrams", epilog=example("bvvtok ngrams --input en=corpus/en.txt --input zh=corpus/zh --out artifacts/ngrams.json"))
def ngrams_command(
    input: Annotated[list[str], typer.Option("--input", metavar="LANG=PATH", help=f"LANG=PATH: a corpus ({CORPUS_FORMATS}) or a folder of files; repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the statistics (bvvtok JSON).")],
    rule: Annotated[str, typer.Option(metavar="NAME", help="default (every script) or bvv241 (the original regex and CJK rule).")] = "default",
    orders: Annotated[str, typer.Option(metavar="N,N,...", help="Comma-separated n-gram orders.")] = "2,3,4,5",
    top: Annotated[int, typer.Option(metavar="N", help="Grams kept per order and language.")] = 1000,
    max_entries: Annotated[int, typer.Option(metavar="N", help="Distinct grams held per order before the rarest are forgotten (bounds memory).")] = 2_000_000,
    workers: Annotated[Optional[int], typer.Option(metavar="N", help="Processes that count (1: this one). Default: every CPU this process may use.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    text_column: TextColumnFlag = "text",
) -> None:
    """Count n-gram statistics from your own corpus, per language, for `build-vocab --ngrams`."""
    from bvvtok.vocab.stats import save_stats

    inputs = _parse_inputs(input, "--input")
    order_list = _parse_orders(orders)
    check_output_file(out, force, inputs.values())
    counted = _count(inputs, order_list, rule, top, max_entries, workers, text_column)
    stats = counted.stats
    save_stats(stats, out, force)
    table = DataTable("lang", "chars", *(f"top {n}-grams" for n in order_list), title=f"{out}", title_justify="left")
    for e in stats.languages:
        table.add_row(e.lang, f"{e.chars:,}", *(" ".join(g for g, _ in e.top_ngrams[n][:5]) for n in order_list))
    console.print(table)
    if stats.meta["max_undercount"]:
        console.print(f"{counted.undercount()}; raise --max-entries for exact counts")
    console.print(f"rule {rule}, {counted.speed()}")


@dataclass
class _Counted:
    """A corpus counted for the command line: its statistics and how fast."""

    stats: NgramStats
    workers: int
    size: int | None  # corpus bytes (None: a streamed dataset's, not known)
    seconds: float

    def speed(self) -> str:
        if self.size is None:
            return f"{plural(self.workers, 'worker')}, {self.seconds:.1f} s"
        megabytes = self.size / 1e6
        return f"{plural(self.workers, 'worker')}, {megabytes:,.1f} MB in {self.seconds:.1f} s ({megabytes / self.seconds:,.1f} MB/s)"

    def undercount(self) -> str:
        low = ", ".join(f"{bound:,} ({lang})" for lang, bound in self.stats.meta["max_undercount"].items())
        return f"rare grams were forgotten: a count may be low by at most {low}"


def _count(inputs: dict[str, Path], orders: tuple[int, ...], rule: str, top: int, max_entries: int, workers: int | None,
           text_column: str) -> _Counted:  # fmt: skip
    """count_corpus with a progress bar, timed."""
    from bvvtok.vocab.corpus_stats import available_cpus, corpus_size, count_corpus

    total = corpus_size(inputs)  # also checks every path before the progress bar starts
    started = time.perf_counter()
    columns = (TextColumn("counting"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with progress_bar(*columns) as progress:
        task = progress.add_task("count", total=total)
        stats = count_corpus(inputs, orders, rule, top, max_entries, lambda n: progress.advance(task, n), workers, text_column)
    workers = available_cpus() if workers is None else workers
    return _Counted(stats, workers, total, max(time.perf_counter() - started, 1e-9))


def _parse_inputs(values: list[str], flag: str) -> dict[str, Path]:
    inputs: dict[str, Path] = {}
    for value in values:
        lang, sep, path = value.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise BvvtokError(f"{flag} {value!r} is not LANG=PATH; write e.g. {flag} en=corpus/en.txt")
        if lang.strip() in inputs:
            raise BvvtokError(f"{flag} names {lang.strip()} twice; give one path (a folder) per language")
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


@app.command("encode", epilog=example("bvvtok encode --vocab artifacts/vocab-65k \"hello the test, 你好世界\""))
def encode_command(
    text: Annotated[str, typer.Argument(help="The text to encode.")],
    vocab: Annotated[Path, typer.Option(metavar="DIR", help="A tokenizer folder (with tokenizer.json).")] = Path("artifacts/vocab-65k"),
) -> None:
    """Show how a tokenizer splits TEXT: tokens, ids, and the characters that fell to <unk>."""
    from bvvtok.vocab.encode import encode

    result = encode(vocab, text)
    table = DataTable("#", "id", "token", "text", title=f"{plural(len(result.ids), 'token')}, {plural(len(text), 'character')}", title_justify="left")
    for i, (token_id, token, piece) in enumerate(zip(result.ids, result.tokens, result.pieces)):
        table.add_row(str(i), str(token_id), repr(token), repr(piece))
    console.print(table)
    console.print(f"ids: {result.ids}", highlight=False, soft_wrap=True)
    if result.unknown:
        listed = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in result.unknown)
        console.print(f"<unk>: {plural(len(result.unknown), 'character')} not in the vocabulary: {listed}", highlight=False)


@app.command("bench-tokenizer", epilog=example("bvvtok bench-tokenizer artifacts/vocab-65k artifacts/vocab-131k --text en=english.txt --csv artifacts/bench.csv"))
def bench_tokenizer_command(
    tokenizer_dirs: Annotated[list[Path], typer.Argument(metavar="TOKENIZER_DIR", help="Folders with a tokenizer.json (bvvtok's or any other).")],
    text: Annotated[list[str], typer.Option(metavar="LANG=FILE", help=f"Documents of one language, a record each (in .txt, separated by blank lines): {CORPUS_FORMATS}. Repeatable.")],
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Use only the first N documents of each file.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE.csv", help="Write the table (the published benchmark's layout).")] = None,
    heatmap: Annotated[Optional[Path], typer.Option(metavar="FILE.png", help="Write a heatmap of characters per token.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output files.")] = False,
    text_column: TextColumnFlag = "text",
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
    with console.status(Text(f"tokenizing {plural(len(texts), 'text')} with {plural(len(tokenizer_dirs), 'tokenizer')}")):
        cells = bench_tokenizers(tokenizer_dirs, texts, limit, text_column)
    table = DataTable("tokenizer", "language", "documents", "chars/token", "std", "unknown %", "lossless %", keys=2)
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
