"""Reads off the journal's writing thread: for a server answering queries while it decides.

A host's appends run on one thread (the journal's, or the event loop's own at durability
"normal"). A read queued there waits for the commits before it, and holds back the ones
after it: a scan of a large journal (the stats of a year of decisions) would stall every
decision behind it, and at "normal" the event loop itself. A JournalReader runs read-only
calls on threads of its own instead, each with its own journal on the same storage
(`Readers.reader()`: a second SQLite connection, a PostgreSQL pool of its own), opened
when the thread first reads. A read sees every commit acknowledged before it began.

A journal that can give no reader (MemoryJournal) is read where it is written, through
the worker, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import AdaptiveRuntimeError
from .base import Journal, has_readers
from .writer import JournalWorker

__all__ = ["READER_THREADS", "JournalReader"]

READER_THREADS = 2
"""Threads that read at once: one long scan leaves the other for the live feeds."""

T = TypeVar("T")
log = logging.getLogger("adaptive_runtime.journal")


class JournalReader:
    """Run `fn(journal, *args)` for read-only calls on reader threads; see the module."""

    def __init__(self, worker: JournalWorker, threads: int = READER_THREADS) -> None:
        self._worker = worker
        self._source = worker.journal if has_readers(worker.journal) else None
        self._executor: ThreadPoolExecutor | None = (
            None
            if self._source is None
            else ThreadPoolExecutor(threads, thread_name_prefix="adaptive-runtime-reader")
        )
        self._local = threading.local()
        self._opened: list[Journal] = []
        self._lock = threading.Lock()
        self._warned = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a read-only journal call and return what it returns (or raise what it raised).

        Where no reader opens (the server away, say), this read goes through the worker,
        and the next one tries to open a reader again.
        """
        worker = self._worker
        if self._executor is not None:
            done = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._read, fn, args
            )
            if not isinstance(done, _NoReader):
                return done
        return await worker.run(fn, worker.journal, *args)

    def _read(self, fn: Callable[..., T], args: tuple[object, ...]) -> T | _NoReader:
        """On a reader thread: the call on this thread's reader, opened on first use."""
        journal: Journal | None = getattr(self._local, "journal", None)
        if journal is None:
            assert self._source is not None
            try:
                journal = self._source.reader()
            except AdaptiveRuntimeError as exc:
                if not self._warned:  # once until a reader opens
                    self._warned = True
                    log.warning(
                        "a journal reader could not be opened (%s): reads run where the"
                        " appends do until one opens",
                        exc,
                    )
                return _NO_READER
            self._warned = False
            with self._lock:
                self._opened.append(journal)
            self._local.journal = journal
        return fn(journal, *args)

    def close(self) -> None:
        """Wait for the reads in flight, then close the readers (never the worker's journal)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for journal in opened:
            try:
                journal.close()
            except AdaptiveRuntimeError as exc:  # a server gone away: its connection with it
                log.warning("a journal reader did not close cleanly: %s", exc)


class _NoReader:
    """What a reader thread answers when it has no reader to read with."""


_NO_READER = _NoReader()
