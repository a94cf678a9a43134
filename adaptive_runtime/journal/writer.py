"""Group commit for asyncio: one thread owns the journal, and queued appends share commits.

The event loop never waits on SQLite or fsync. Batches submitted while a commit is
in flight are appended together in the next transaction, so under load many
`process()` calls share one fsync; each caller is answered only once its own
transaction has committed.

A transaction that fails may have committed all the same (the server gone after the
commit, its answer lost). The worker tells the host so (`on_lost`) on the event loop,
in commit order, before any later commit is answered: a commit answered after one in
doubt must not be folded past entries nobody has read back yet.

A FleetBatch was decided from a view that counted every fleet batch queued before it.
When one of those is refused, or its commit fails, the fleet batches queued behind it
are refused unwritten (StreamConflictError) until the host has rebuilt that view from
what was journaled and said so (`rebased`): their agents decide them again from it.

With `inline=True` the calls run on the caller's thread instead. That is for a
journal whose commits never sync (SQLite at synchronous=NORMAL, with its WAL
checkpoints moved to a background thread): there a thread hop would cost more
than the commit it hands off.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import StreamConflictError
from ..observability.metrics import Metrics
from ..records import Entry, FleetBatch, Pending
from .base import Journal

__all__ = ["FleetViewRefused", "JournalWorker"]

T = TypeVar("T")
Committed = Callable[[list[Entry]], None]
Lost = Callable[[Sequence[Sequence[Pending]]], None]
Queued = tuple[Sequence[Pending], int | None, "asyncio.Future[list[Entry]]", int | None]
"""A batch, its expected stream_seq, its caller's future, and (a FleetBatch's) view epoch."""


class FleetViewRefused(StreamConflictError):
    """A FleetBatch refused unwritten: its fleet view counted a batch that was then refused
    or not committed. Its agent decides it again once the host has rebuilt that view."""


MAX_BATCHES_PER_COMMIT = 1024
YIELD_EVERY = 16
"""Inline commits between two yields to the event loop (see JournalWorker.yield_due)."""


class JournalWorker:
    """Run every journal call on one thread; coalesce appends into shared commits."""

    __slots__ = (
        "_closed",
        "_executor",
        "_fleet_epoch",
        "_fleet_refused_through",
        "_inline",
        "_journal",
        "_lock",
        "_loop",
        "_on_commit",
        "_on_lost",
        "_queue",
        "_scheduled",
        "_since_yield",
        "commit_latency",
        "commits",
    )

    def __init__(
        self,
        journal: Journal,
        loop: asyncio.AbstractEventLoop,
        on_commit: Committed,
        *,
        inline: bool = False,
        on_lost: Lost | None = None,
    ) -> None:
        self._inline = inline
        self._journal = journal
        self._loop = loop
        self._on_commit = on_commit
        self._on_lost = on_lost
        """Called with the batches of a transaction that failed as a whole, its outcome
        unknown, before its callers hear the error."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="adaptive-runtime-journal"
        )
        self._lock = threading.Lock()
        self._queue: list[Queued] = []
        self._fleet_epoch = 0
        """Bumped (on the loop) each time the host rebuilds its fleet view: see rebased()."""
        self._fleet_refused_through = -1
        """(On the journal's thread.) The newest view epoch a refused FleetBatch was decided
        in: the fleet batches decided in it since counted that one, and are refused."""
        self._scheduled = False
        self._closed = False
        self._since_yield = 0
        self.commits = 0
        """Transactions committed: fewer than appends when commits were shared."""
        self.commit_latency = Metrics()
        """How long each transaction took, from its first append to its commit (fsync included)."""

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def closed(self) -> bool:
        """Whether close() was called: no more work is taken."""
        return self._closed

    @property
    def inline(self) -> bool:
        """Whether journal calls run on the caller's thread."""
        return self._inline

    def append(
        self, batch: Sequence[Pending], expected: int | None = None
    ) -> asyncio.Future[list[Entry]]:
        """Queue a batch; the future resolves after its commit, in submission order."""
        [future] = self.append_all([batch], [expected])
        return future

    def append_now(self, batch: Sequence[Pending], expected: int | None = None) -> list[Entry]:
        """Append inline, on the caller's thread, and fold the result: no future to answer.

        Only for an inline worker; raises the batch's error as append's future would.
        """
        try:
            [result] = self._append_many([batch], [expected])
        except Exception:
            if self._on_lost is not None:
                self._on_lost([batch])
            raise
        self.commits += 1
        if isinstance(result, Exception):
            raise result
        self._on_commit(result)
        return result

    def yield_due(self) -> bool:
        """Whether the caller of an inline append should yield to the event loop now.

        An inline commit completes without suspending, so a caller looping over process()
        would starve handlers, actions and snapshots. A yield on every call costs more
        than the commit's Python; one every YIELD_EVERY commits (counted across the
        host's agents) bounds the delay they see at that many events.
        """
        self._since_yield += 1
        if self._since_yield < YIELD_EVERY:
            return False
        self._since_yield = 0
        return True

    def append_all(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None]
    ) -> list[asyncio.Future[list[Entry]]]:
        """Queue several batches together: they share one commit, each with its own answer."""
        futures: list[asyncio.Future[list[Entry]]] = [self._loop.create_future() for _ in batches]
        if self._inline:
            lost: Sequence[Sequence[Pending]] = ()
            try:
                results = self._append_many(batches, expected)
                self.commits += 1
            except Exception as exc:
                results = [exc] * len(batches)
                lost = batches
            self._answer(futures, results, lost)
            return futures
        epoch = self._fleet_epoch
        with self._lock:
            self._queue.extend(
                (batch, want, future, epoch if type(batch) is FleetBatch else None)
                for batch, want, future in zip(batches, expected, futures, strict=True)
            )
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._executor.submit(self._flush)
        return futures

    def rebased(self) -> None:
        """The host rebuilt its fleet view from the journal, with no batch queued: the fleet
        batches decided from now on count no refused one."""
        self._fleet_epoch += 1

    def committed(self, entries: list[Entry]) -> None:
        """Fold entries that a call made through `run` committed (`append_caught_up`), as
        this worker's own appends are folded: on the loop thread, by the same callback."""
        self._on_commit(entries)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a journal call on the journal's thread, after the appends queued before it."""
        if self._inline:
            return fn(*args)
        return await self._loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Finish queued work and stop the thread."""
        self._closed = True
        self._executor.shutdown(wait=True)

    def _flush(self) -> None:
        with self._lock:
            taken = self._queue[:MAX_BATCHES_PER_COMMIT]
            del self._queue[:MAX_BATCHES_PER_COMMIT]
            if self._queue:
                self._executor.submit(self._flush)
            else:
                self._scheduled = False
        if not taken:
            return
        results: list[list[Entry] | Exception] = []
        sent: list[int] = []
        lost: list[Sequence[Pending]] = []
        for index, (batch, expected, _, epoch) in enumerate(taken):
            if epoch is not None and epoch <= self._fleet_refused_through:
                results.append(_counted_a_refused_batch(batch, expected))
            else:
                results.append([])
                sent.append(index)
        if sent:
            try:
                written = self._append_many(
                    [taken[k][0] for k in sent], [taken[k][1] for k in sent]
                )
                self.commits += 1
            except Exception as exc:  # the whole transaction failed: every caller in it hears why
                written = [exc] * len(sent)
                lost = [taken[k][0] for k in sent]
            for index, result in zip(sent, written, strict=True):
                results[index] = result
                _, expected, _, epoch = taken[index]
                if epoch is not None and not _journaled_as_built(result, expected):
                    self._fleet_refused_through = max(self._fleet_refused_through, epoch)
        futures = [future for _, _, future, _ in taken]
        self._loop.call_soon_threadsafe(self._answer, futures, results, lost)

    def _append_many(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None]
    ) -> list[list[Entry] | Exception]:
        started = time.perf_counter()
        results = self._journal.append_many(batches, expected)
        self.commit_latency.observe_ms((time.perf_counter() - started) * 1000.0)
        return results

    def _answer(
        self,
        futures: list[asyncio.Future[list[Entry]]],
        results: list[list[Entry] | Exception],
        lost: Sequence[Sequence[Pending]] = (),
    ) -> None:
        # On the loop thread, in commit order: the state is folded before any caller resumes.
        if lost and self._on_lost is not None:
            self._on_lost(lost)
        for future, result in zip(futures, results, strict=True):
            if isinstance(result, Exception):
                if not future.done():
                    future.set_exception(result)
                continue
            try:
                self._on_commit(result)
            except Exception as exc:  # the entries are durable, but their caller must hear why
                if not future.done():  # the fold failed; every other caller is still answered
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)


def _journaled_as_built(result: list[Entry] | Exception, expected: int | None) -> bool:
    """Whether a batch went into the journal as it was built: not refused, not failed, and
    not answered with an earlier batch of the same event id (which it was not)."""
    if isinstance(result, Exception):
        return False
    return expected is None or result[0].stream_seq == expected + 1


def _counted_a_refused_batch(batch: Sequence[Pending], expected: int | None) -> FleetViewRefused:
    stream = batch[0].stream
    msg = (
        f"stream {stream!r}: this batch's fleet gate counted a fleet-gated batch queued before "
        "it that was then refused or not committed; decide it again"
    )
    return FleetViewRefused(msg, stream=stream, expected=expected or 0, actual=expected or 0)
