"""Counting n-grams in worker processes.

The main process reads the corpus and hands out batches of texts through one
bounded queue; each worker counts the batches it takes into its own counters
(one per language). At the end the workers share out the grams: each gram
belongs to one worker (by a hash of its code points), every worker sends the
others their grams and adds up its own, and only the top of each share goes
back to the main process. No process ever adds up every gram, so the merge
runs on every core too. Workers start from a fresh interpreter (forkserver or
spawn, never fork: the main process runs a progress bar's thread).
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from types import TracebackType

import numpy as np

from bvvtok.errors import BvvtokError, option
from bvvtok.vocab.counting import NgramCounter, TextCounter, top_of

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
POLL_S = 1.0  # how often a blocked main process checks that its workers are alive
QUEUED_PER_WORKER = 2  # batches waiting per worker: keeps them busy, and bounds the memory of the queue

Batches = Iterator[tuple[str, list[str]]]
Counters = dict[str, TextCounter]


@dataclass
class Counted:
    """One language counted: its top grams per order, the characters counted, and how low any count may be."""

    top: dict[int, list[tuple[str, int]]]
    chars: int
    undercount: int  # 0: the counts are exact

    @classmethod
    def of(cls, counter: TextCounter, top: int) -> Counted:
        return cls(counter.ngrams.top(top), counter.chars, max(counter.ngrams.undercount.values()))


@dataclass
class _Share:
    """What a worker sends back for one language: the top of its share of the grams and the undercount of adding
    it up, and, of the texts it counted itself, the characters and its counters' undercount."""

    top: dict[int, list[tuple[str, int]]]
    share_undercount: dict[int, int]
    chars: int
    undercount: dict[int, int]


def count_batches(batches: Iterable[tuple[str, list[str]]], orders: tuple[int, ...], rule: str, max_entries: int) -> Counters:
    """Count `(lang, texts)` batches: one finished counter per language."""
    counters: Counters = {}
    for lang, texts in batches:
        if lang not in counters:
            counters[lang] = TextCounter(orders, rule, max_entries)
        counters[lang].add_texts(texts)
    return {lang: counter.finish() for lang, counter in counters.items()}


def count_in_workers(batches: Batches, workers: int, orders: tuple[int, ...], rule: str, max_entries: int,
                     top: int) -> dict[str, Counted]:  # fmt: skip
    """Count the batches in up to `workers` processes: the same counts as `count_batches` when nothing is pruned."""
    with _Workers(workers, (orders, rule, max_entries, top)) as pool:
        for lang, texts in batches:
            pool.send(lang, texts)
        parts = pool.collect()
    langs = list(dict.fromkeys(lang for part in parts for lang in part))
    return {lang: _combined([part[lang] for part in parts if lang in part], orders, top) for lang in langs}


def _combined(shares: list[_Share], orders: tuple[int, ...], top: int) -> Counted:
    """The shares hold disjoint grams, so the top of their tops is the top of all. A count may be low by what any
    worker's own counting lost, plus what adding up its share lost."""
    ranked = {n: top_of([pair for share in shares for pair in share.top[n]], top) for n in orders}
    undercount = {n: sum(s.undercount[n] for s in shares) + max(s.share_undercount[n] for s in shares) for n in orders}
    return Counted(ranked, sum(s.chars for s in shares), max(undercount.values()))


def _count(index: int, tasks: Queue, inboxes: list[Queue], started: Synchronized, results: Queue,
           settings: tuple[tuple[int, ...], str, int, int]) -> None:  # fmt: skip
    """A worker: count the batches of `tasks` until None, swap grams with the other workers, send back its _Shares."""
    orders, rule, max_entries, top = settings
    try:
        counters = count_batches(iter(tasks.get, None), orders, rule, max_entries)
        peers = started.value
        shares = _split(counters, peers, max_entries)
        for peer, inbox in enumerate(inboxes[:peers]):
            if peer != index:
                inbox.put(shares[peer])
        mine = shares[index]
        for _ in range(peers - 1):
            for lang, counter in inboxes[index].get().items():
                if lang in mine:
                    mine[lang].merge(counter)
                else:
                    mine[lang] = counter
        unseen = TextCounter(orders, rule, max_entries)  # a language whose grams came only from the others
        results.put({
            lang: _Share(share.top(top), share.undercount, counters.get(lang, unseen).chars, counters.get(lang, unseen).ngrams.undercount)
            for lang, share in mine.items()
        })  # fmt: skip
    except BaseException:  # a KeyboardInterrupt too: the main process is told, instead of waiting forever
        results.put(traceback.format_exc())


def _split(counters: Counters, peers: int, max_entries: int) -> list[dict[str, NgramCounter]]:
    """Each peer's share of the grams of every language, by a hash of the grams' code points (the same in every
    process, unlike `hash`)."""
    shares = [{lang: NgramCounter(c.ngrams.counts, max_entries) for lang, c in counters.items()} for _ in range(peers)]
    for lang, counter in counters.items():
        for n, counts in counter.ngrams.counts.items():
            owner = _owner(list(counts), n, peers)
            order = np.argsort(owner, kind="stable")
            grams = np.array(list(counts), dtype=object)[order]
            values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))[order]
            bounds = np.searchsorted(owner[order], np.arange(peers + 1))
            for peer, (start, end) in enumerate(zip(bounds, bounds[1:])):
                shares[peer][lang].counts[n] = Counter(dict(zip(grams[start:end].tolist(), values[start:end].tolist())))
    return shares


def _owner(grams: list[str], n: int, peers: int) -> np.ndarray:
    """Which peer adds up each gram (all of length n): a multiplicative hash of its code points, modulo `peers`."""
    points = np.frombuffer("".join(grams).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).reshape(-1, n)
    mixed = np.zeros(len(points), dtype=np.uint64)
    for column in points.T.astype(np.uint64):
        mixed = (mixed ^ column) * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64, as meant
    return ((mixed >> np.uint64(32)) % np.uint64(peers)).astype(np.int64)


class _Workers:
    """Up to `workers` counting processes, started as batches arrive (a small corpus starts few).

    Use as a context manager: `send` every batch, then `collect`; on leaving, any
    worker still running (after an error) is stopped.
    """

    def __init__(self, workers: int, settings: tuple[tuple[int, ...], str, int, int]) -> None:
        self.workers = workers
        self.settings = settings
        self.context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "forkserver":  # workers fork from a server that imported this module once, not each its own
            self.context.set_forkserver_preload(["__main__", __name__])
        self.tasks = self.context.Queue(QUEUED_PER_WORKER * workers)
        self.inboxes = [self.context.Queue() for _ in range(workers)]  # the grams the others send each worker
        self.started = self.context.Value("i", 0)  # how many workers share out the grams, read after the last batch
        self.results = self.context.Queue()
        self.processes: list[BaseProcess] = []

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join()
        for unread in (self.tasks, *self.inboxes):
            unread.cancel_join_thread()  # what no worker will read must not hold the main process at exit

    def send(self, lang: str, texts: list[str]) -> None:
        if len(self.processes) < self.workers:
            args = (len(self.processes), self.tasks, self.inboxes, self.started, self.results, self.settings)
            process = self.context.Process(target=_count, args=args, daemon=True)
            process.start()
            self.processes.append(process)
        self._put((lang, texts))

    def collect(self) -> list[dict[str, _Share]]:
        """Each worker's shares, once every batch is counted and the grams are added up."""
        self.started.value = len(self.processes)
        for _ in self.processes:
            self._put(None)
        parts: list[dict[str, _Share]] = []
        while len(parts) < len(self.processes):
            try:
                part = self.results.get(timeout=POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            if isinstance(part, str):
                raise RuntimeError(f"an n-gram counting worker failed:\n{part}")
            parts.append(part)
        return parts

    def _put(self, task: tuple[str, list[str]] | None) -> None:
        while True:
            try:
                return self.tasks.put(task, timeout=POLL_S)
            except queue.Full:
                self._check_alive()

    def _check_alive(self) -> None:
        """A worker that died without a word (killed, out of memory) is an error, not a wait forever."""
        for process in self.processes:
            if process.exitcode not in (None, 0):
                raise BvvtokError(
                    f"an n-gram counting worker stopped (exit code {process.exitcode}; out of memory?); "
                    f"count with fewer {option('workers')} or a smaller {option('max_entries')}"
                )
