"""Group commit for asyncio: one thread owns the journal, and queued appends share commits.

The event loop never waits on SQLite or fsync. Batches submitted while a commit is
in flight are appended together in the next transaction, so under load many
`process()` calls share one fsync; each caller is answered only once its own
transaction has committed.

A transaction that fails may have committed all the same (the server gone after the
commit, its answer lost). The worker tells the host so (`on_lost`) on the event loop,
in commit order, before any later commit is answered: a commit answered after one in
doubt must not be folded past entries nobody has read back yet.

A caller that stops waiting (its task cancelled) does not take its batch back: the
batch commits all the same. When a commit is answered and its caller's future was
cancelled, the worker hands the entries to the host instead (`on_unheard`), which owes
them what the caller would have done next (start the action they schedule).

A batch is decided from a view that counts the batches queued before it: its agent's
view counts that agent's, and a FleetBatch's fleet view every fleet batch. When one of
those is refused, or its commit fails, the batches built on the same view and queued
behind it are refused unwritten (ViewRefused, a StreamConflictError) until the view has
been rebuilt from what was journaled and the worker told so (`rebased`): their agents
decide them again from it. A batch built to follow a refused one could otherwise be
journaled after it, should other writers' entries fill exactly the refused one's place.

With `inline=True` the calls run on the caller's thread instead. That is for a
journal whose commits never sync (SQLite at synchronous=NORMAL, with its WAL
checkpoints moved to a background thread): there a thread hop would cost more
than the commit it hands off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import StreamConflictError
from ..observability.metrics import Metrics
from ..records import Entry, FleetBatch, Pending
from .base import Journal

__all__ = ["FLEET_VIEW", "JournalWorker", "ViewRefused"]

T = TypeVar("T")
Committed = Callable[[list[Entry]], None]
Lost = Callable[[Sequence[Sequence[Pending]]], None]
Views = tuple[tuple[str, int], ...]
Queued = tuple[Sequence[Pending], int | None, "asyncio.Future[list[Entry]]", Views]
"""A batch, its expected stream_seq, its caller's future, and the views it was built on,
each with its epoch when the batch was queued."""

log = logging.getLogger("adaptive_runtime.journal")

FLEET_VIEW = ""
"""The key of the host's fleet view among the views (a stream's key is its name, never empty)."""


class ViewRefused(StreamConflictError):
    """A batch refused unwritten: the view it was decided from (its agent's, or the fleet's)
    counted a batch queued before it that was then refused or not committed. Its agent
    decides it again once that view has been rebuilt from the journal."""


MAX_BATCHES_PER_COMMIT = 1024
YIELD_EVERY = 16
"""Inline commits between two yields to the event loop (see JournalWorker.yield_due)."""


class JournalWorker:
    """Run every journal call on one thread; coalesce appends into shared commits."""

    __slots__ = (
        "_closed",
        "_epochs",
        "_executor",
        "_inline",
        "_journal",
        "_lock",
        "_loop",
        "_on_commit",
        "_on_lost",
        "_on_unheard",
        "_queue",
        "_refused_through",
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
        on_unheard: Committed | None = None,
    ) -> None:
        self._inline = inline
        self._journal = journal
        self._loop = loop
        self._on_commit = on_commit
        self._on_lost = on_lost
        """Called with the batches of a transaction that failed as a whole, its outcome
        unknown, before its callers hear the error."""
        self._on_unheard = on_unheard
        """Called, on the loop, with the entries of each batch that committed after its
        caller stopped waiting for them (see unheard())."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="adaptive-runtime-journal"
        )
        self._lock = threading.Lock()
        self._queue: list[Queued] = []
        self._epochs: dict[str, int] = {}
        """Each view's epoch, bumped (on the loop) each time it is rebuilt: see rebased()."""
        self._refused_through: dict[str, int] = {}
        """(On the journal's thread.) For each view, the newest epoch in which a batch built
        on it was refused or not committed: the batches built on it since counted that one,
        and are refused."""
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
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the worker answers on: the one its host was started on."""
        return self._loop

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

    def unheard(self, entries: list[Entry]) -> None:
        """A batch committed and folded, and its caller will never hear of it: it was
        cancelled while the answer was on its way. The host does what the caller would
        have done next. Called by the worker for an answer whose future was cancelled, and
        by a caller cancelled after its answer came."""
        if self._on_unheard is None:
            return
        try:
            self._on_unheard(entries)
        except Exception:  # the entries are journaled and folded; the others are answered
            log.exception("the follow-up of a batch whose caller was cancelled failed")

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
        epochs = self._epochs
        queued: list[Queued] = []
        for batch, want, future in zip(batches, expected, futures, strict=True):
            views: Views = ()
            if want is not None:  # built to follow its stream's head: on its agent's view
                stream = batch[0].stream
                views = ((stream, epochs.get(stream, 0)),)
            if type(batch) is FleetBatch:
                views += ((FLEET_VIEW, epochs.get(FLEET_VIEW, 0)),)
            queued.append((batch, want, future, views))
        with self._lock:
            self._queue.extend(queued)
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._executor.submit(self._flush)
        return futures

    def rebased(self, view: str = FLEET_VIEW) -> None:
        """A view (an agent's stream, or the fleet's) was rebuilt from the journal, with no
        batch built on it queued: the batches decided from it now count no refused one."""
        self._epochs[view] = self._epochs.get(view, 0) + 1

    def committed(self, entries: list[Entry]) -> None:
        """Fold entries that a call made through `run` committed (`append_caught_up`), as
        this worker's own appends are folded: on the loop thread, by the same callback."""
        self._on_commit(entries)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a journal call on the journal's thread, after the appends queued before it.

        Awaited on the running loop, which is the worker's but for a stop() from another
        loop (a second asyncio.run), whose snapshot would else meet "Event loop is closed".
        """
        if self._inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

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
        refused = self._refused_through
        for index, (batch, expected, _, views) in enumerate(taken):
            if any(epoch <= refused.get(view, -1) for view, epoch in views):
                results.append(_built_on_a_refused_batch(batch, expected))
                _refuse(refused, views)  # and so was any batch built on this one
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
                _, expected, _, views = taken[index]
                if views and not _journaled_as_built(result, expected):
                    _refuse(refused, views)
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
            else:  # cancelled: its caller stopped waiting, and the batch committed all the same
                self.unheard(result)


def _journaled_as_built(result: list[Entry] | Exception, expected: int | None) -> bool:
    """Whether a batch went into the journal as it was built: not refused, not failed, and
    not answered with an earlier batch of the same event id (which it was not)."""
    if isinstance(result, Exception):
        return False
    return expected is None or result[0].stream_seq == expected + 1


def _refuse(refused: dict[str, int], views: Views) -> None:
    """Note that a batch built on these views was not journaled as built."""
    for view, epoch in views:
        if epoch > refused.get(view, -1):
            refused[view] = epoch


def _built_on_a_refused_batch(batch: Sequence[Pending], expected: int | None) -> ViewRefused:
    stream = batch[0].stream
    msg = (
        f"stream {stream!r}: this batch was decided from a view that counted a batch queued "
        "before it that was then refused or not committed; decide it again"
    )
    return ViewRefused(msg, stream=stream, expected=expected or 0, actual=expected or 0)
