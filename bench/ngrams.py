"""Throughput of `bvvtok ngrams` counting against plain Python on the same corpus (default rule, orders 2 and 3).

(a) naive: one process, a `collections.Counter` fed every window of every line;
(b) pool: `multiprocessing.Pool` over chunks of lines, each counted as in (a), the chunks' Counters summed;
(c) `count_corpus(workers=1)` and (d) `count_corpus(workers=N)` (N: `--workers`, default 2).
The methods alternate within each round; the table gives the median of the rounds, and checks that (b), (c)
and (d) found exactly (a)'s top grams. The 16-worker line projects (c) and (d) with Amdahl's law: the serial
fraction s solves t_N = t_1 (s + (1 - s) / N), and t_16 = t_1 (s + (1 - s) / 16), assuming 16 real cores
as free as the ones measured.

Without `--corpus`, it writes a corpus of `--size` MB from Debian's fortunes (scripts/fortunes_corpus.py): half
English, a quarter Chinese, a quarter the other installed languages. Space-separated languages are words drawn
from the fortunes' own word frequencies (so they repeat as natural text does); Chinese is a chain of characters,
each drawn from those that follow the one before in the fortunes, so its clauses almost never repeat (the hard
case for counting each distinct unit once) while its 2- and 3-grams are those of real text. `max_entries` is set
high enough that nothing is pruned: every method counts exactly.

    .venv/bin/python bench/ngrams.py --size 80
    .venv/bin/python bench/ngrams.py --corpus en=wiki-en.txt --corpus zh=wiki-zh.txt --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bvvtok.vocab.corpus_stats import corpus_size, count_corpus
from bvvtok.vocab.counting import default_units

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from fortunes_corpus import fortunes_by_language  # noqa: E402

ORDERS = (2, 3)
TOP = 1000
CHUNK_LINES = 10_000  # lines per task of the plain pool
SHARES = {"en": 0.5, "zh": 0.25}  # of the generated corpus; the other languages share the rest

Counts = dict[int, Counter]
Result = dict[str, list]  # lang -> [top lists per order, chars]


def count_lines(lines: list[str]) -> tuple[Counts, int]:
    """(a)'s counting of some lines: every window of every unit into one Counter per order."""
    counts: Counts = {n: Counter() for n in ORDERS}
    chars = 0
    for line in lines:
        units = default_units(line)
        chars += sum(map(len, units))
        for n, counter in counts.items():
            counter.update(u[i : i + n] for u in units for i in range(len(u) - n + 1))
    return counts, chars


def ranked(counts: Counts, chars: int) -> list:
    return [{n: sorted(c.items(), key=lambda gc: (-gc[1], gc[0]))[:TOP] for n, c in counts.items()}, chars]


def naive(inputs: dict[str, Path], workers: int) -> Result:
    result = {}
    for lang, path in inputs.items():
        with open(path, encoding="utf-8") as f:
            result[lang] = ranked(*count_lines(list(f)))
    return result


def pool(inputs: dict[str, Path], workers: int) -> Result:
    result = {}
    with multiprocessing.get_context("forkserver").Pool(workers) as processes:
        for lang, path in inputs.items():
            counts: Counts = {n: Counter() for n in ORDERS}
            chars = 0
            with open(path, encoding="utf-8") as f:
                chunks = iter(lambda: list(itertools.islice(f, CHUNK_LINES)), [])
                for part, part_chars in processes.imap_unordered(count_lines, chunks):
                    chars += part_chars
                    for n, counter in counts.items():
                        counter.update(part[n])
            result[lang] = ranked(counts, chars)
    return result


def bvvtok(workers: int) -> Callable[[dict[str, Path], int], Result]:
    def run(inputs: dict[str, Path], _: int) -> Result:
        stats = count_corpus(inputs, ORDERS, top=TOP, max_entries=10**9, workers=workers)
        return {e.lang: [e.top_ngrams, e.chars] for e in stats.languages}

    return run


def write_corpus(folder: Path, size_mb: float, seed: int = 0) -> dict[str, Path]:
    """The generated corpus (see the module's docstring), one .txt per language; kept in `folder` for reruns."""
    sources = fortunes_by_language()
    others = [lang for lang in sources if lang not in SHARES]
    shares = {lang: share for lang, share in SHARES.items() if lang in sources}
    shares |= {lang: (1 - sum(shares.values())) / len(others) for lang in others} if others else {}
    rng = random.Random(seed)
    inputs = {}
    for lang, share in shares.items():
        path = folder / f"{size_mb:g}MB-{lang}.txt"
        inputs[lang] = path
        if path.is_file():
            continue
        draw = chain(sources[lang], rng) if lang == "zh" else words(sources[lang], rng)
        target = int(share * size_mb * 1e6)
        with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as f:
            while f.tell() < target:
                f.write("".join(draw() + "\n" for _ in range(2000)))
        path.with_suffix(".tmp").replace(path)
    return inputs


def words(texts: list[str], rng: random.Random) -> Callable[[], str]:
    """Lines of 14 words drawn from the texts' word frequencies."""
    tokens = Counter(" ".join(texts).split())
    population, cumulative = list(tokens), list(itertools.accumulate(tokens.values()))
    return lambda: " ".join(rng.choices(population, cum_weights=cumulative, k=14))


def chain(texts: list[str], rng: random.Random) -> Callable[[], str]:
    """Lines of 40 characters, each drawn from the characters that follow the one before in the texts."""
    text = "".join(t.replace("\n", "").replace(" ", "") for t in texts)
    following: dict[str, list[str]] = {}
    for a, b in zip(text, text[1:]):
        following.setdefault(a, []).append(b)

    def line() -> str:
        chars = [rng.choice(text)]
        for _ in range(39):
            chars.append(rng.choice(following.get(chars[-1]) or text))
        return "".join(chars)

    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=80, help="MB of generated corpus (default 80)")
    parser.add_argument("--corpus", action="append", metavar="LANG=PATH", help="your corpus instead (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="the pool's and (d)'s processes")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bvvtok-bench-ngrams")
    args = parser.parse_args()
    if args.corpus:
        inputs = {lang: Path(path) for lang, _, path in (value.partition("=") for value in args.corpus)}
    else:
        args.dir.mkdir(parents=True, exist_ok=True)
        inputs = write_corpus(args.dir, args.size)
    mb = corpus_size(inputs) / 1e6
    print(f"corpus: {mb:.1f} MB, " + ", ".join(f"{lang} {path.stat().st_size / 1e6:.1f}" for lang, path in inputs.items()))
    methods = {
        "(a) naive Counter, 1 process": naive,
        f"(b) Pool of {args.workers}, merged Counters": pool,
        "(c) bvvtok, 1 worker": bvvtok(1),
        f"(d) bvvtok, {args.workers} workers": bvvtok(args.workers),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    reference = None
    for round_ in range(args.rounds):
        for name, method in methods.items():
            load = os.getloadavg()
            started = time.perf_counter()
            result = method(inputs, args.workers)
            times[name].append(time.perf_counter() - started)
            reference = reference or result
            same = "same top grams as (a)" if result == reference else "DIFFERENT TOP GRAMS FROM (a)"
            print(f"round {round_ + 1} {name}: {times[name][-1]:.2f} s, {same}; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["(a) naive Counter, 1 process"]
    print(f"\nmedians of {args.rounds} rounds, {mb:.1f} MB, {os.cpu_count()} CPUs; load average now {os.getloadavg()}")
    print(f"{'method':<36}{'s':>8}{'MB/s':>8}{'s/MB':>8}{'vs (a)':>8}")
    for name, t in median.items():
        print(f"{name:<36}{t:8.2f}{mb / t:8.2f}{t / mb:8.3f}{base / t:7.2f}x")
    one, many = median["(c) bvvtok, 1 worker"], median[f"(d) bvvtok, {args.workers} workers"]
    serial = min(1.0, max(0.0, (many / one - 1 / args.workers) / (1 - 1 / args.workers)))
    sixteen = one * (serial + (1 - serial) / 16)
    print(f"projection, 16 workers (Amdahl, serial fraction {serial:.2f} from (c) and (d)): {sixteen:.2f} s, "
          f"{mb / sixteen:.1f} MB/s, {base / sixteen:.1f}x (a)")  # fmt: skip


if __name__ == "__main__":
    main()
