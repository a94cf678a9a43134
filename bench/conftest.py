"""Shared pieces of the benchmark suites: workloads, raw baselines, fresh files.

Every figure here is paired with a raw baseline measured in the same run; the report
(bench/report.py) turns each pair into a ratio. Absolute times on a shared machine
mean little; ratios from one run mean a lot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import apsw
import msgspec
import pytest

KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
RAW_SCHEMA = (
    "CREATE TABLE entries (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, kind TEXT NOT NULL,"
    " ts_ns INTEGER NOT NULL, body BLOB NOT NULL)"
)
_counter = itertools.count()


def event(i: int) -> dict[str, object]:
    """A realistic event, varied by its number."""
    return {
        "type": KINDS[i % 5],
        "severity": (i * 37 % 100) / 100,
        "cpu": float(i * 13 % 101),
        "memory": float(i * 7 % 101),
    }


@pytest.fixture
def fresh(tmp_path: Path) -> Callable[[], Path]:
    """Return a function that gives a new, unused database path each call."""

    def make() -> Path:
        return tmp_path / f"bench-{next(_counter)}.db"

    return make


def raw_connection(path: Path, synchronous: int) -> apsw.Connection:
    """A bare apsw connection set up like the journal's: WAL, the given synchronous level."""
    conn = apsw.Connection(str(path))
    conn.pragma("journal_mode", "wal")
    conn.pragma("synchronous", synchronous)
    conn.execute(RAW_SCHEMA)
    return conn


class FrameCounter:
    """A WAL hook that counts commits and the frames (pages) they write."""

    def __init__(self) -> None:
        self.commits = 0
        self.frames = 0
        self.checkpoints = 0
        self._last = 0

    def __call__(self, conn: apsw.Connection, name: str, pages: int) -> int:
        self.commits += 1
        self.frames += pages - self._last if pages >= self._last else pages
        self._last = pages
        if pages >= 1000:  # what SQLite's own autocheckpoint would do, so the log restarts
            conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            self.checkpoints += 1
        return apsw.SQLITE_OK


def raw_bodies() -> tuple[bytes, bytes]:
    """An event body and a decision body of the sizes the runtime writes."""
    ev = msgspec.msgpack.encode(event(1))
    decision = msgspec.msgpack.encode(
        {
            "action": "restart_service",
            "confidence": 0.7831,
            "reason": "high_resource_pressure",
            "priority": "high",
            "context": "resource_pressure",
            "risk": "high",
            "stability": "low",
            "pressure": 0.651,
            "rule": "default[2]",
            "ruleset": "48edf3392655ee8a",
        }
    )
    return ev, decision


def raw_run(
    path: Path,
    n: int,
    synchronous: int,
    per_commit: int = 1,
    hook: FrameCounter | None = None,
) -> None:
    """The baseline measured as ours is: open the file, write, close it.

    Our side times asyncio.run with start() and stop() (opening, rebuilding, the
    snapshot at stop, closing), so the raw side times its connect, schema and close.
    """
    conn = raw_connection(path, synchronous)
    if hook is not None:
        conn.set_wal_hook(hook)
    raw_insert(conn, n, per_commit)
    conn.close()


def raw_insert(conn: apsw.Connection, n: int, per_commit: int = 1) -> None:
    """The baseline: event + decision rows, `per_commit` events to a transaction."""
    ev, decision = raw_bodies()
    insert = "INSERT INTO entries (stream, kind, ts_ns, body) VALUES (?, ?, ?, ?)"
    for start in range(0, n, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(start, min(n, start + per_commit)):
            conn.execute(insert, ("agent", "EventReceived", i, ev))
            conn.execute(insert, ("agent", "DecisionMade", i, decision))
        conn.execute("COMMIT")
