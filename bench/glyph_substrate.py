"""Speed and memory of `embed --method glyph` against the straightforward per-token recipe.

For each preset: the vocabulary is built (from ../shared/reference when present,
else offline), then `embed_glyph` runs in a fresh process (so its peak RSS is its
own) and writes a substrate to a temporary folder, in pairs: cold (an empty glyph
cache, so every character is rendered) and warm (the same build again). The last
line says whether the fonts' direct glyph path is proven for this machine's
libraries (without it, cold builds render every glyph through Pillow). Timings on
a shared or virtual machine vary from run to run, so each pair is repeated
(--repeat) and the median run is shown with the range (so is the baseline's pass
over its sample). Peak RSS is the process's own (VmHWM). The baseline is
`recipe.reference_code`, token by token as the notebooks did, on a random sample
of tokens (all of them with --full-baseline), plus what the recipe does with the
codes: scikit-learn's PCA on the full matrix, unit rows, `torch.save` of the result.
The sample also checks that both give the same bits, and every row of the fast
embedding is compared with scikit-learn's PCA of the codes in float64 (min row cosine).

    .venv/bin/python bench/glyph_substrate.py [--presets 65k,131k] [--repeat 3] [--sample 3000] [--full-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ngrams"


def build_vocab_folder(preset: str, folder: Path) -> str:
    from bvvtok.vocab.build import build_vocab, save_vocab

    if REFERENCE.is_dir():
        files = {"65k": [REFERENCE / "ngrams-2-3.txt"], "131k": [REFERENCE / "ngrams-2-3-4-5.txt"]}[preset]
        extra = REFERENCE / "intersection.txt" if preset == "131k" else None
        save_vocab(build_vocab(preset, files, extra), folder)
        return "published statistics (rebuilt bvv241)"
    save_vocab(build_vocab(preset), folder)
    return "offline default"


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM belongs to its memory map, whereas ru_maxrss carries over
    across exec the parent's RSS at fork (so a big bench process would inflate every child)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_embed(vocab: str, out: str) -> None:
    """Child process: time embed_glyph (and when each stage ends) and report the figures as JSON on stdout."""
    from bvvtok.substrate.embed import embed_glyph

    ends: dict[str, float] = {}
    started = time.perf_counter()
    result = embed_glyph(Path(vocab), Path(out), progress=lambda stage, done, total: ends.__setitem__(stage, time.perf_counter()))
    seconds = time.perf_counter() - started
    # stages end in this order; what follows the PCA is writing the folder and hashing its files
    marks = [0.0] + [ends[s] - started for s in ("render", "codes", "pca")] + [seconds]
    stages = dict(zip(("load + render", "codes", "pca", "save"), (b - a for a, b in zip(marks, marks[1:]))))
    own = peak_rss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "stages": stages, "tokens": len(result.bits), "rss_mb": own, "workers_rss_mb": children}))


def baseline(vocab: Path, substrate: Path, sample: int | None, repeat: int) -> dict:
    """Per-token reference codes on a sample (or all), checked against the fast codes; sklearn PCA on all."""
    import torch
    from safetensors.numpy import load_file
    from sklearn.decomposition import PCA

    from bvvtok.substrate.fonts import resolve_chain
    from bvvtok.substrate.glyphs import fonts_per_char, open_pillow_fonts
    from bvvtok.substrate.recipe import get_recipe, reference_code

    manifest = json.loads((substrate / "bvvtok.json").read_text())
    recipe = get_recipe(manifest["substrate"]["recipe"])
    from bvvtok.substrate.token_text import token_texts
    from bvvtok.vocab.tokenizer_files import load_tokenizer

    tokens = token_texts(load_tokenizer(vocab)).texts
    fast_bits = np.unpackbits(np.load(substrate / "codes.npy"), axis=1)
    chain = resolve_chain()
    pillow_fonts = open_pillow_fonts([f.path for f in chain], 32)
    ids = list(range(len(tokens))) if sample is None else sorted(random.Random(0).sample(range(len(tokens)), sample))
    per_token = []
    for _ in range(repeat):  # the median pass: the machine's speed drifts, as for the fast builds
        mismatches = 0
        started = time.perf_counter()
        for i in ids:
            fonts = fonts_per_char(tokens[i], chain, pillow_fonts)
            mismatches += not np.array_equal(reference_code(tokens[i], fonts, recipe), fast_bits[i])
        per_token.append((time.perf_counter() - started) / len(ids))
    started = time.perf_counter()
    rows = PCA(n_components=fast_bits.shape[1]).fit_transform(fast_bits.astype(np.float32))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    torch.save(torch.from_numpy(rows), substrate.parent / "baseline.pt")  # the recipe's own output file
    pca_seconds = time.perf_counter() - started
    # exactness, untimed: against sklearn's PCA in float64 (the float32 fit above, as the recipe ran
    # it, is itself off by up to ~0.6% in a few 131k rows)
    exact = PCA(n_components=fast_bits.shape[1], svd_solver="covariance_eigh").fit_transform(fast_bits.astype(np.float64))
    exact /= np.linalg.norm(exact, axis=1, keepdims=True)
    ours = load_file(substrate / "embeddings.safetensors")["weight"]
    cosine = np.einsum("ij,ij->i", ours, exact)
    cosine = cosine[np.isfinite(cosine)]  # sklearn's rows of a code equal to the mean are 0/0
    return {
        "checked": len(ids), "mismatches": mismatches, "ms_per_token": float(np.median(per_token)) * 1e3,
        "pca_seconds": pca_seconds, "min_cosine": float(cosine.min()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="65k,131k")
    parser.add_argument("--sample", type=int, default=3000, help="tokens the baseline draws (default 3000)")
    parser.add_argument("--repeat", type=int, default=3, help="cold and warm builds (and baseline passes) per preset, default 3: the median is shown")
    parser.add_argument("--full-baseline", action="store_true", help="run the baseline on every token (minutes)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_embed(*args.child)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table("preset", f"fast s, median of {args.repeat} (range)", "stages s of that run (load + render / codes / PCA / save)", "fast ms/token", "peak RSS MB (main / render workers)", "baseline ms/token", "baseline s (codes + sklearn PCA + normalise + torch.save)", "speed-up", "checked: bits, and embeddings against sklearn's float64 PCA (min row cosine)")
    for preset in args.presets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            vocab = Path(tmp) / "vocab"
            source = build_vocab_folder(preset, vocab)
            runs: dict[str, list[dict]] = {"cold": [], "warm": []}
            out = None
            for repeat in range(args.repeat):
                # cold: an empty glyph cache, every character rendered; warm: the same build again (the cache hit)
                env = {**os.environ, "BVVTOK_CACHE_DIR": str(Path(tmp) / f"glyph-cache-{repeat}")}
                for run in ("cold", "warm"):
                    if out is not None:
                        shutil.rmtree(out)  # one substrate on disk at a time, the same for every run
                    os.sync()  # start from a quiet disk: writes still queued from earlier work slow the save
                    out = Path(tmp) / f"substrate-{run}-{repeat}"
                    child = subprocess.run([sys.executable, __file__, "--child", str(vocab), str(out)], env=env, capture_output=True, text=True, check=True)
                    runs[run].append(json.loads(child.stdout.strip().splitlines()[-1]))
            base = baseline(vocab, out, None, 1) if args.full_baseline else baseline(vocab, out, args.sample, args.repeat)
        n = runs["cold"][0]["tokens"]
        base_seconds = base["ms_per_token"] * n / 1e3 + base["pca_seconds"]
        for run, repeats in runs.items():
            seconds = [r["seconds"] for r in repeats]
            middle = sorted(repeats, key=lambda r: r["seconds"])[len(repeats) // 2]  # the median run, stages and all
            table.add_row(
                f"{preset} {run} ({source})",
                f"{middle['seconds']:.2f} ({min(seconds):.2f}-{max(seconds):.2f})",
                " / ".join(f"{v:.2f}" for v in middle["stages"].values()),
                f"{middle['seconds'] / n * 1e3:.4f}",
                f"{max(r['rss_mb'] for r in repeats):.0f} / {max(r['workers_rss_mb'] for r in repeats):.0f}",
                f"{base['ms_per_token']:.3f}",
                f"{base_seconds:.1f}" + ("" if args.full_baseline else " (codes from the sample's ms/token)"),
                f"{base_seconds / middle['seconds']:.1f}x",
                f"{base['checked']:,}, {base['mismatches']} differ; {base['min_cosine']:.7f}",
            )
    console.print(table)
    console.print(direct_path_status())


def direct_path_status() -> str:
    """Whether cold builds here may draw glyphs with FreeType directly: cold figures depend on it."""
    from bvvtok.substrate.fonts import resolve_chain
    from bvvtok.substrate.plain_glyphs import plain_ranges

    names = [f"{f.path.name}: {'proven' if plain_ranges(f.sha256, 32) is not None else 'not proven, Pillow draws every glyph'}" for f in resolve_chain()]
    return "direct glyph path at 32 px (bvvtok/substrate/data/plain_glyphs.json, this machine's libraries): " + "; ".join(names)


if __name__ == "__main__":
    main()
