"""What `bvvtok experiment run` adds to the time of the same cells run by hand.

    python bench/experiment.py [--steps 40] [--rounds 2]

The same cells both ways, in alternating rounds, each round in fresh folders: a glyph substrate
(256-dim) built once, and a frozen and an unfrozen tiny model on it at two seeds. By hand: the
commands a user types (`bvvtok embed`, then `bvvtok train` per cell). The runner: `bvvtok experiment
run` on a spec of the same cells, which also plans (a measured step of each model), records every
cell and writes the report. The vocabulary is built once beforehand and the corpus tokenized once
(both ways read the same token cache). Prints the median wall time of each way and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BVVTOK = [sys.executable, "-m", "bvvtok"]
SEEDS = (0, 1)

SPEC = """\
name = "bench"
preset = "tiny"
seeds = [{seeds}]
baseline = "unfrozen"
[vocab]
path = "{vocab}"
[data]
corpus = ["{corpus}"]
[train]
steps = {steps}
eval_every = {eval_every}
[substrates.glyph]
method = "glyph"
[arms.glyph]
substrate = "glyph"
[arms.unfrozen]
substrate = "glyph"
frozen = false
"""


def run(*args: object) -> None:
    subprocess.run([*BVVTOK, *map(str, args)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def by_hand(work: Path, vocab: Path, corpus: Path, steps: int) -> float:
    began = time.perf_counter()
    run("embed", vocab, "--dim", 256, "--out", work / "substrate")
    for unfrozen in (False, True):
        for seed in SEEDS:
            name = f"{'unfrozen' if unfrozen else 'glyph'}-s{seed}"
            run("train", "--substrate", work / "substrate", "--corpus", corpus, "--out", work / name, "--preset", "tiny",
                "--steps", steps, "--eval-every", steps // 2, "--seed", seed, *(["--unfrozen"] if unfrozen else []))
    return time.perf_counter() - began


def runner(work: Path, spec: Path) -> float:
    began = time.perf_counter()
    run("experiment", "run", spec, "--out", work / "experiment")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per cell")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each way, alternating")
    parser.add_argument("--corpus", type=Path, default=ROOT / "artifacts" / "corpus", help="scripts/fortunes_corpus.py's output")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus} not found: python scripts/fortunes_corpus.py {args.corpus}")
    with tempfile.TemporaryDirectory(prefix="bvvtok-bench-experiment-") as tmp:
        root = Path(tmp)
        os.environ["BVVTOK_CACHE_DIR"] = str(root / "cache")
        vocab = root / "vocab"
        run("build-vocab", "--preset", "65k", "--out", vocab)
        run("prepare", "--substrate", vocab, "--corpus", args.corpus.resolve())  # the token cache both ways read
        spec = root / "bench.toml"
        spec.write_text(SPEC.format(seeds=", ".join(map(str, SEEDS)), vocab=vocab, corpus=args.corpus.resolve(),
                                    steps=args.steps, eval_every=args.steps // 2), encoding="utf-8")  # fmt: skip
        times: dict[str, list[float]] = {"by hand": [], "experiment run": []}
        for r in range(args.rounds):
            work = root / f"round-{r}"
            times["by hand"].append(by_hand(work / "hand", vocab, args.corpus.resolve(), args.steps))
            times["experiment run"].append(runner(work / "runner", spec))
            print(f"round {r + 1}: by hand {times['by hand'][-1]:.1f} s, experiment run {times['experiment run'][-1]:.1f} s",
                  flush=True)
    hand, ours = (statistics.median(v) for v in times.values())
    print(f"4 cells of {args.steps} steps, {args.rounds} alternating rounds, load average {os.getloadavg()[0]:.2f}")
    print(f"by hand (embed + 4 x train): {hand:.1f} s; experiment run: {ours:.1f} s; ratio {ours / hand:.3f}")


if __name__ == "__main__":
    main()
