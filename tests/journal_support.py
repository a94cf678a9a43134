"""Helpers the journal's tests share."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import StatePatched, to_pending


def assert_replays(path: Path) -> None:
    """Replaying the SQLite journal at `path` from empty re-makes every decision to the byte."""
    journal = SqliteJournal(path, create=False)
    try:
        report = verify_replay(journal)
        assert report.ok, report.mismatches[:2]
    finally:
        journal.close()


class FaultyJournal:
    """A journal with one fault armed for its next commit at most, as `(fault, agent)`:

    - "before": the commit fails before writing (`JournalUnavailableError`);
    - "after": it is written, and then answers with that error (the answer lost);
    - "intrude": another writer appends a StatePatched to `agent`'s stream just before.

    `hold_next()` makes the next commit take its fault (or none), then wait on the
    journal's thread until released, so that later appends queue behind it.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed: tuple[str, str] | None = None
        self.intrusions = 0
        self._release: threading.Event | None = None
        self.holding = threading.Event()
        """Set once the held commit is waiting."""

    @classmethod
    def installed_in(cls, host: Any) -> FaultyJournal:
        """Put one between a started host's journal worker and its journal."""
        worker = host.require_worker()
        faulty = cls(worker._journal)
        worker._journal = faulty
        return faulty

    def hold_next(self) -> threading.Event:
        """Hold the next commit until the returned event is set."""
        self._release = threading.Event()
        self.holding.clear()
        return self._release

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append_many(
        self, batches: Sequence[Sequence[Any]], expected: Sequence[int | None] | None = None
    ) -> list[Any]:
        armed, self.armed = self.armed, None
        fault, agent = armed or ("", "")
        release, self._release = self._release, None
        if release is not None:
            self.holding.set()
            release.wait()
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
