"""Helpers the journal's tests share."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.journal.open import open_journal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import HOST_STREAM, SilenceMatcher, StatePatched, to_pending


def silence_set_elsewhere(path: Path, matcher: SilenceMatcher, starts_ns: int, hours: int) -> str:
    """Journal a silence on the SQLite file at `path` through a connection of its own, as
    `silence add` does from another process (a running host learns of it only when it
    looks at the journal again); return its id."""
    from adaptive_runtime.engines.silences import new_silence

    silence = new_silence(
        matcher,
        starts_ns=starts_ns,
        ends_ns=starts_ns + hours * 3600 * 10**9,
        comment="deploy window",
        by="ops",
    )
    other = SqliteJournal(path, create=False)
    try:
        other.append([to_pending(HOST_STREAM, silence, starts_ns)])
    finally:
        other.close()
    return silence.id


def assert_replays(path: Path | str) -> None:
    """Replaying the journal at `path` (a SQLite file, or a URL) from empty re-makes every
    decision to the byte."""
    journal = open_journal(path, create=False)
    try:
        report = verify_replay(journal)
        assert report.ok, report.mismatches[:2]
    finally:
        journal.close()


class _Hold:
    """Stops the next call that passes `here()` on the journal's thread until released."""

    def __init__(self) -> None:
        self._release: threading.Event | None = None
        self.holding = threading.Event()
        """Set once the held call is waiting."""

    def arm(self) -> threading.Event:
        """Hold the next call until the returned event is set."""
        self._release = threading.Event()
        self.holding.clear()
        return self._release

    def here(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            self.holding.set()
            release.wait()


class FaultyJournal:
    """A journal with one fault armed for its next commit at most, as `(fault, agent)`:

    - "before": the commit fails before writing (`JournalUnavailableError`);
    - "after": it is written, and then answers with that error (the answer lost);
    - "intrude": another writer appends a StatePatched to `agent`'s stream just before.

    `hold_next()` makes the next commit take its fault (or none), then wait on the
    journal's thread until released, so that later appends queue behind it.
    `armed_caught_up` is a fault ("before" or "after") for the next `append_caught_up`,
    the append of a batch decided again after a conflict under the write lock, and
    `hold_caught_up()` holds that call on the journal's thread before it reads the stream
    and builds the batch.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed: tuple[str, str] | None = None
        self.armed_caught_up: str | None = None
        self.intrusions = 0
        self._commit = _Hold()
        self.holding = self._commit.holding
        """Set once the held commit is waiting."""
        self._caught_up = _Hold()
        self.holding_caught_up = self._caught_up.holding
        """Set once the held append_caught_up is waiting."""

    @classmethod
    def installed_in(cls, host: Any) -> FaultyJournal:
        """Put one between a started host's journal worker and its journal."""
        worker = host.require_worker()
        faulty = cls(worker._journal)
        worker._journal = faulty
        return faulty

    def hold_next(self) -> threading.Event:
        """Hold the next commit until the returned event is set."""
        return self._commit.arm()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def hold_caught_up(self) -> threading.Event:
        """Hold the next append_caught_up until the returned event is set."""
        return self._caught_up.arm()

    def append_caught_up(self, stream: str, after: int, build: Any) -> Any:
        fault, self.armed_caught_up = self.armed_caught_up, None
        self._caught_up.here()
        if fault == "before":
            raise JournalUnavailableError("injected: the commit failed before writing")
        result = self.inner.append_caught_up(stream, after, build)
        if fault == "after":
            raise JournalUnavailableError("injected: the commit's answer was lost")
        return result

    def append_many(
        self, batches: Sequence[Sequence[Any]], expected: Sequence[int | None] | None = None
    ) -> list[Any]:
        armed, self.armed = self.armed, None
        fault, agent = armed or ("", "")
        self._commit.here()
        if fault == "before":
            raise JournalUnavailableError("injected: the commit failed before writing")
        if fault == "intrude":
            self.intrusions += 1
            patch = StatePatched(values={"intruder": self.intrusions})
            self.inner.append([to_pending(agent, patch, 1)])
        results = self.inner.append_many(batches, expected)
        if fault == "after":
            raise JournalUnavailableError("injected: the commit's answer was lost")
        return results


async def queued_behind(
    host: Any, journal: FaultyJournal, release: threading.Event, *calls: Coroutine[Any, Any, Any]
) -> list[asyncio.Future[Any]]:
    """Start `calls` once the journal's thread holds a commit (`journal.hold_next()`, whose
    event is `release`); return them when each has queued one batch behind it. If they
    don't, release the commit (nothing is left waiting) and fail."""
    await asyncio.to_thread(journal.holding.wait)
    started = [asyncio.ensure_future(call) for call in calls]
    worker = host.require_worker()
    for _ in range(1000):
        if len(worker._queue) == len(calls):
            return started
        await asyncio.sleep(0)
    release.set()
    raise AssertionError("the calls did not queue their batches behind the held commit")


def answered_in_commit_order(host: Any) -> None:
    """Block the event loop until the journal's thread has run all it was given: its answers
    then wait on the loop in commit order, and no caller has resumed to hear its own."""
    host.require_worker()._executor.submit(lambda: None).result()
