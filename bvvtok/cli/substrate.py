"""The substrate stage's commands: embed, fonts, show, verify, info, plot-substrate (bvvtok/substrate/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bvvtok.cli.app import app, console, err_console
from bvvtok.errors import BvvtokError


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
