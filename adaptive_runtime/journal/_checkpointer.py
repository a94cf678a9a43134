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
    that is the only fsync SQLite does, and it belongs off the event loop. The WAL
    stays bounded because passive checkpoints run often enough to catch up with a
    steady writer (measured in bench/memory.py and RELIABILITY.md).
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
        self._thread = threading.Thread(
            target=self._loop, name="adaptive-runtime-checkpoint", daemon=True
        )
        self._thread.start()

    def hook(self, conn: apsw.Connection, name: str, pages: int) -> int:
        # Past the threshold, every commit asks for a passive checkpoint (the requests
        # coalesce while one runs). Running often is what lets a checkpoint catch up
        # with a steady writer, and only a caught-up log starts over at its beginning.
        if pages >= self._pages:
            self._wake.set()
        return apsw.SQLITE_OK

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self.run_once()
            except apsw.Error as exc:  # retried on the next wake-up; the WAL stays valid meanwhile
                logging.getLogger("adaptive_runtime.journal").warning(
                    "%s: WAL checkpoint failed: %s", self._path, exc
                )

    def run_once(self) -> tuple[int, int]:
        """Checkpoint now; return the WAL's size in pages and how many are in the database."""
        crash_point("checkpoint.wal")
        # the PRAGMA, not Connection.wal_checkpoint(): on a connection that has not read
        # the database yet, the latter reports (-1, -1) and does nothing
        row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        _, pages, done = cast(tuple[int, int, int], row)
        if pages >= 4 * self._pages and done < pages:
            # Far behind: try once to empty the log and restart it, without waiting
            # (waiting would only starve, or stall the writer).
            self._conn.set_busy_timeout(0)
            try:
                self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                self._conn.set_busy_timeout(self._busy_timeout_ms)
        self.checkpoints += 1
        return pages, done

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._conn.close()
