"""The background WAL checkpointer: a thread and a connection of its own."""

from __future__ import annotations

import logging
import threading
from typing import cast

import apsw

from .._crashpoints import crash_point

__all__ = ["Checkpointer"]


class Checkpointer:
    """Checkpoint the WAL from a thread of its own, so the committing thread never waits on it.

    A checkpoint copies the WAL into the database and syncs both: at synchronous=NORMAL
    that is the only fsync SQLite does, and it belongs off the event loop.

    It runs by WAL size, not per commit: once each time the log has grown by `pages`
    frames since the last request (and again from the start once the log restarts).
    Asking on every commit past the threshold made it run for a third of all commits,
    each with a sync and a thread wake-up. The WAL stays bounded: each run catches up
    with what was written before it, and a log far behind is restarted.
    """

    def __init__(self, path: str, busy_timeout_ms: int, pages: int, vfs: str | None = None) -> None:
        self._path = path
        self._pages = max(1, pages)
        self._wake = threading.Event()
        self._busy_timeout_ms = busy_timeout_ms
        self._closing = False
        self._conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
        self._conn.set_busy_timeout(busy_timeout_ms)
        self.checkpoints = 0
        self._requested_at = 0
        """The WAL size, in frames, at the last request (0: none since the log restarted)."""
        self._last_frames = 0
        self.commits = 0
        self.frames_written = 0
        """WAL frames (pages) written by commits: divided by commits, the cost of a commit."""
        self._thread = threading.Thread(
            target=self._loop, name="adaptive-runtime-checkpoint", daemon=True
        )
        self._thread.start()

    def hook(self, conn: apsw.Connection, name: str, pages: int) -> int:
        self.commits += 1
        self.frames_written += pages - self._last_frames if pages >= self._last_frames else pages
        self._last_frames = pages
        if pages < self._requested_at:
            self._requested_at = 0  # the log started over at its beginning
        if pages >= self._requested_at + self._pages:
            self._requested_at = pages
            self._wake.set()  # requests coalesce while one runs
        return apsw.SQLITE_OK

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self.catch_up()
            except apsw.Error as exc:  # retried on the next wake-up; the WAL stays valid meanwhile
                logging.getLogger("adaptive_runtime.journal").warning(
                    "%s: WAL checkpoint failed: %s", self._path, exc
                )

    def catch_up(self, rounds: int = 4) -> None:
        """Checkpoint until every frame written so far is in the database, a few passes at most.

        The log starts over (and journal_size_limit trims it) only when a write finds it
        fully copied back. A writer that never pauses appends while a pass runs, so each
        pass leaves what was written during it. A few passes usually catch up; when they
        don't, the next request (another `pages` frames on) tries again, so the log
        still starts over every few requests. Passing until caught up ran hundreds of
        passes per thousand commits once a commit took 30 us (each pass a sync).
        """
        for _ in range(rounds):
            if self._closing:
                return
            pages, done = self.run_once()
            if done >= pages:
                return

    def run_once(self) -> tuple[int, int]:
        """Checkpoint now; return the WAL's size in pages and how many are in the database."""
        crash_point("checkpoint.wal")
        # the PRAGMA, not Connection.wal_checkpoint(): on a connection that has not read
        # the database yet, the latter reports (-1, -1) and does nothing
        # fetchall: a statement left unfinished keeps a read open, and no log restarts under it
        [row] = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        _, pages, done = cast(tuple[int, int, int], row)
        if done >= pages >= self._pages:
            # Caught up: ask for the log to start over at its beginning, without waiting
            # (a writer mid-commit makes this fail at once; the next request tries again).
            self._conn.set_busy_timeout(0)
            try:
                [(busy, _, _)] = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            except apsw.BusyError:
                busy = 1
            finally:
                self._conn.set_busy_timeout(self._busy_timeout_ms)
            if busy:
                done = min(done, pages - 1)  # not restarted: catch_up tries once more
        self.checkpoints += 1
        return pages, done

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._conn.close()
