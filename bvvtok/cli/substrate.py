"""The substrate stage's commands: embed, fonts, show, verify, info, plot-substrate (bvvtok/substrate/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bvvtok.cli.app import Command, DataTable, app, console, example, progress_bar, summary
from bvvtok.difference import plural
from bvvtok.errors import BvvtokError


class _EmbedCommand(Command):
    """`embed --help` lists the methods, and says what each method flag means to each method that takes it:
    both come from the method modules (bvvtok.substrate.methods), imported for the help alone (plain text, as
    every help text: see bvvtok.cli.app._plain_help)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # click's, as typer brings it (it may vendor its own)
        from bvvtok.substrate.methods import METHODS, flag_help

        for param in self.params:
            if param.name == "method":
                param.help = escape("; ".join(f"{name}: {method.about}" for name, method in METHODS.items()) + ".")
            elif param.param_type_name == "option" and (text := flag_help(param.opts[0][2:].replace("-", "_"))):
                param.help = escape(text)
        super().format_help(ctx, formatter)


@app.command("embed", cls=_EmbedCommand, epilog=example("bvvtok embed artifacts/vocab-65k --dim 256 --out artifacts/vocab-65k-256"))
def embed_command(
    vocab_dir: Annotated[Path, typer.Argument(metavar="VOCAB_DIR", help="A tokenizer folder (with tokenizer.json).")],
    method: Annotated[str, typer.Option(metavar="NAME")] = "glyph",
    # the method flags (their help comes from the methods that take them): a flag left out is None
    recipe: Annotated[Optional[str], typer.Option(metavar="NAME")] = None,
    glyph_size: Annotated[Optional[int], typer.Option(metavar="PX")] = None,
    dim: Annotated[Optional[int], typer.Option(metavar="N")] = None,
    font: Annotated[Optional[list[Path]], typer.Option(metavar="PATH")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N")] = None,
    bits: Annotated[Optional[int], typer.Option(metavar="N")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="S")] = None,
    as_float: Annotated[bool, typer.Option("--float")] = False,
    d_model: Annotated[Optional[int], typer.Option(metavar="N")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Output folder. Default: VOCAB_DIR itself.")] = None,
    dump_text: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Also write the codes as text: id, token, bits per line (methods with codes).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a different substrate in --out.")] = False,
) -> None:
    """Build a frozen embedding substrate for a tokenizer, by one of bvvtok's methods (--method)."""
    from bvvtok.substrate.embed import embed
    from bvvtok.substrate.methods import get_method

    options = dict(recipe=recipe, glyph_size=glyph_size, dim=dim, font=font, workers=workers, bits=bits, seed=seed,
                   float=as_float or None, d_model=d_model)  # fmt: skip
    started = time.perf_counter()
    columns = (TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with progress_bar(*columns) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = embed(vocab_dir, method, out, force, dump_text, progress, **options)
    section = result.manifest["substrate"]
    table = summary(str(out or vocab_dir))  # the folder as the user named it
    for label, text in get_method(section["method"]).report(section):
        table.add_row(label, text)
    table.add_row("time", f"{time.perf_counter() - started:.1f} s")
    console.print(table)


@app.command("fonts", epilog=example("bvvtok fonts artifacts/vocab-65k"))
def fonts_command(
    vocab_dir: Annotated[Optional[Path], typer.Argument(metavar="VOCAB_DIR", help="Report coverage of this tokenizer's characters.")] = None,
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
    table = DataTable("#", "font", "version", "sha256", *(("characters drawn",) if vocab_dir else ()), title="font chain (first match wins)")
    for i, f in enumerate(chain):
        info = f.describe()
        table.add_row(str(i), str(f.path), info.get("version", "unknown"), info["sha256"][:16], *((f"{counts.get(i, 0):,}",) if vocab_dir else ()))
    console.print(table)
    if vocab_dir is not None:
        shown = " ".join(f"U+{ord(c):04X}" for c in missing[:12])
        console.print(f"no glyph in the chain for {plural(len(missing), 'character')} of {vocab_dir}" + (f": {shown}" if missing else ""))


@app.command("show", epilog=example("bvvtok show artifacts/vocab-65k A the 中 --out artifacts/glyphs.png"))
def show_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="SUBSTRATE_DIR", help="A folder built by `bvvtok embed`.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.png", help="Where to write the picture.")],
    tokens: Annotated[Optional[list[str]], typer.Argument(metavar="TOKEN", help="Token texts, or #ID (at least one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """Draw tokens' glyphs, augmented pictures, codes and nearest neighbours into a PNG."""
    from bvvtok.substrate.show import show

    console.print(f"wrote {show(substrate_dir, tokens or [], out, force)}")  # none: refused in one line, not click's usage panel


@app.command("verify", epilog=example("bvvtok verify artifacts/vocab-65k-256 --rebuild"))
def verify_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A folder bvvtok wrote: a vocabulary, substrate (`bvvtok embed`), run or export.")],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Also rebuild the substrate from its manifest and compare, byte for byte.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Check that a vocabulary, substrate, run or export folder is what its manifest says; exit 0 only when every check passes."""
    from bvvtok.substrate.verify import as_json as to_json
    from bvvtok.substrate.verify import verify

    with console.status(Text(f"verifying {substrate_dir}")):  # Text: a status string would be read as markup
        results = verify(substrate_dir, rebuild)
    if as_json:
        print(to_json(results))
    else:
        table = DataTable("check", "result", "detail", title=str(substrate_dir), title_justify="left")
        for r in results:
            table.add_row(r.name, Text("pass", style="green") if r.ok else Text("FAIL", style="bold red"), r.detail)
        console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)


@app.command("info", epilog=example("bvvtok info artifacts/vocab-65k-256"))
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
    from bvvtok.substrate.methods import get_method

    table = summary(str(folder))
    vocab, sub = manifest.get("vocab"), manifest.get("substrate")
    if vocab:
        table.add_row("vocabulary", f"{vocab['preset']} ({vocab['alias']}), {vocab['vocab_size']:,} ids, {plural(len(vocab['languages']), 'language')}")
    if sub:
        table.add_row("substrate", get_method(sub["method"]).summary(sub))
        table.add_row("shape", f"[{sub['tokens']:,}, {sub['n_embed']}]" + (f", scale {sub['scale']} to d_model {sub['d_model']}" if sub.get("d_model") else ""))
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    listed = f"{len(manifest.get('files', {}))} listed, {size / 2**20:,.1f} MiB on disk"
    table.add_row("files", Text(listed + ", NOT as the manifest says", style="bold red") if problems else listed)
    table.add_row("bvvtok", str(manifest.get("bvvtok_version")))
    return table


@app.command("plot-substrate", epilog=example("bvvtok plot-substrate artifacts/vocab-65k-256 --out artifacts/map.png"))
def plot_substrate_command(
    substrate_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A substrate folder written by `bvvtok embed`.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.png", help="Where to write the map.")],
    method: Annotated[str, typer.Option(metavar="NAME", help="pca (seconds) or tsne (scikit-learn's t-SNE, minutes).")] = "pca",
    sample: Annotated[int, typer.Option(metavar="N", help="Tokens drawn at random (placeholders excluded).")] = 4000,
    seed: Annotated[int, typer.Option(metavar="S", help="Seed of the sample and of t-SNE.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE.png if it exists.")] = False,
) -> None:
    """A 2-D map of a sample of token vectors, coloured by script: the substrate's visual clusters at a glance."""
    from bvvtok.substrate.plot_map import check_plot_out, map_substrate, plot_map

    check_plot_out(out, force, [substrate_dir])
    with console.status(Text(f"projecting {plural(sample, 'token')} with {method}")):
        m = map_substrate(substrate_dir, method, sample, seed)
    plot_map(m, out, f"{substrate_dir.name}: {plural(len(m.ids), 'token')}, {method}", force)
    counts = ", ".join(f"{name} {m.scripts.count(name):,}" for name in dict.fromkeys(m.scripts))
    console.print(f"wrote {out} ({counts})")
