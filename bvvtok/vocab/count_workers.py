"""Counting n-grams in worker processes.

The main process reads the corpus and hands out batches of texts through one
bounded queue; each worker counts the batches it takes into its own counters
(one per language) and sends them back once, at the end, where they are merged.
Workers start from a fresh interpreter (forkserver or spawn, never fork: the
main process runs a progress bar's thread).
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from types import TracebackType

from bvvtok.errors import BvvtokError, option
from bvvtok.vocab.counting import TextCounter

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
POLL_S = 1.0  # how often a blocked main process checks that its workers are alive
QUEUED_PER_WORKER = 2  # batches waiting per worker: keeps them busy, and bounds the memory of the queue

Counters = dict[str, TextCounter]


Batches = Iterator[tuple[str, list[str]]]


def count_batches(batches: Batches, orders: tuple[int, ...], rule: str, max_entries: int) -> Counters:
    """Count `(lang, texts)` batches: one finished counter per language."""
    counters: Counters = {}
    for lang, texts in batches:
        if lang not in counters:
            counters[lang] = TextCounter(orders, rule, max_entries)
        counters[lang].add_texts(texts)
    return {lang: counter.finish() for lang, counter in counters.items()}


def _count(tasks: Queue, results: Queue, orders: tuple[int, ...], rule: str, max_entries: int) -> None:
    """A worker: count the batches of `tasks` until None, then send back its counters (or a traceback)."""
    try:
        results.put(count_batches(iter(tasks.get, None), orders, rule, max_entries))
    except BaseException:  # a KeyboardInterrupt too: the main process is told, instead of waiting forever
        results.put(traceback.format_exc())


class CountingWorkers:
    """Up to `workers` counting processes, started as batches arrive (a small corpus starts few).

    Use as a context manager: `send` every batch, then `collect`; on leaving, any
    worker still running (after an error) is stopped.
    """

    def __init__(self, workers: int, orders: tuple[int, ...], rule: str, max_entries: int) -> None:
        self.workers = workers
        self.settings = (orders, rule, max_entries)
        self.context = multiprocessing.get_context(START_METHOD)
        self.tasks = self.context.Queue(QUEUED_PER_WORKER * workers)
        self.results = self.context.Queue()
        self.processes: list[BaseProcess] = []

    def __enter__(self) -> CountingWorkers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join()
        self.tasks.cancel_join_thread()  # batches no worker will read must not hold the main process at exit

    def send(self, lang: str, texts: list[str]) -> None:
        if len(self.processes) < self.workers:
            process = self.context.Process(target=_count, args=(self.tasks, self.results, *self.settings), daemon=True)
            process.start()
            self.processes.append(process)
        self._put((lang, texts))

    def collect(self) -> list[Counters]:
        """Each worker's counters, once every batch is counted."""
        for _ in self.processes:
            self._put(None)
        parts: list[Counters] = []
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
