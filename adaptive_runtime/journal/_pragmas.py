"""SQLite settings for the journal: one small function per pragma, each with its reference.

Never trust the build's default: set each one, and read back the ones that matter.
"""

from __future__ import annotations

import time

import apsw

from ..errors import JournalError

__all__ = [
    "set_autocheckpoint",
    "set_journal_size_limit",
    "set_synchronous",
    "set_trusted_schema_off",
    "set_wal",
]


def set_wal(conn: apsw.Connection, timeout_s: float = 30.0) -> None:
    """Write-ahead logging: readers never block the writer. https://sqlite.org/wal.html

    Switching a new file to WAL needs it to itself, and SQLite answers BUSY at once,
    without its busy handler, while another process is opening the same new file:
    so retry, with short growing pauses, up to the busy timeout.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            mode = conn.pragma("journal_mode", "wal")
            break
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    if str(mode).lower() != "wal":
        msg = f"SQLite refused WAL mode (journal_mode is {mode!r}); is the file on a network share?"
        raise JournalError(msg)


def set_synchronous(conn: apsw.Connection, level: int) -> None:
    """FULL syncs the WAL on every commit; NORMAL survives a process crash only.

    https://sqlite.org/pragma.html#pragma_synchronous
    """
    conn.pragma("synchronous", level)
    actual = conn.pragma("synchronous")
    if actual != level:
        msg = f"SQLite kept synchronous={actual} after being asked for {level}"
        raise JournalError(msg)


def set_trusted_schema_off(conn: apsw.Connection) -> None:
    """Don't let schema objects call functions with side effects.

    https://sqlite.org/pragma.html#pragma_trusted_schema
    """
    conn.pragma("trusted_schema", 0)


def set_journal_size_limit(conn: apsw.Connection, limit: int) -> None:
    """Truncate the WAL file back to this size when it starts over, so disk use stays bounded.

    https://sqlite.org/pragma.html#pragma_journal_size_limit
    """
    conn.pragma("journal_size_limit", limit)


def set_autocheckpoint(conn: apsw.Connection, pages: int) -> None:
    """Checkpoint the WAL into the database once it holds this many pages.

    https://sqlite.org/pragma.html#pragma_wal_autocheckpoint
    """
    conn.pragma("wal_autocheckpoint", pages)
