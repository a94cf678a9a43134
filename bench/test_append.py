"""The journal's append on its own, beside the raw insert."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import raw_bodies, raw_connection, raw_insert

from adaptive_runtime.journal import Pending, SqliteJournal

EVENTS = 2000


def test_raw_append(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Baseline: raw event + decision insert, one commit each, synchronous=NORMAL."""
    benchmark.group = "append-normal"
    benchmark.extra_info.update(events=EVENTS, role="baseline")
    benchmark.pedantic(
        lambda conn: raw_insert(conn, EVENTS),
        setup=lambda: ((raw_connection(fresh(), 1),), {}),
        rounds=5,
    )


def test_journal_append(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours: SqliteJournal.append of the same two bodies: seqs, hash chain, indexes."""
    ev, decision = raw_bodies()
    batch = [
        Pending(stream="agent", kind="EventReceived", ts_ns=1, body=ev),
        Pending(stream="agent", kind="DecisionMade", ts_ns=1, body=decision),
    ]
    benchmark.group = "append-normal"
    benchmark.extra_info.update(events=EVENTS, role="ours")

    def run(journal: SqliteJournal) -> None:
        for _ in range(EVENTS):
            journal.append(batch)
        journal.close()

    benchmark.pedantic(
        run, setup=lambda: ((SqliteJournal(fresh(), durability="normal"),), {}), rounds=5
    )
