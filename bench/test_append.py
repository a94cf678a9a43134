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


def test_runtime_parts_alone(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours, the parts alone: per event, what process() calls (validate, decide, encode
    both records, the journal's check, link, insert and commit), with nothing above them:
    no Host, ledger, asyncio, fold or metrics. What the layers above cost is process()
    at normal less this (the same events, opening and closing included on both sides)."""
    from conftest import event

    from adaptive_runtime.engines.events import parse_event
    from adaptive_runtime.engines.learning import Outcomes
    from adaptive_runtime.engines.pipeline import Policy, decide
    from adaptive_runtime.records import DecisionMade, EventReceived, RuntimeBatch, to_pending

    policy, history = Policy(), Outcomes()
    events = [event(i) for i in range(EVENTS)]
    benchmark.group = "append-normal"
    benchmark.extra_info.update(events=EVENTS, role="ours")

    def run(path: Path) -> None:
        journal = SqliteJournal(path, durability="normal", checkpoint="background")
        at = 0
        for i, raw in enumerate(events):
            ev = parse_event(raw)
            decision = decide(policy, history, ev, i)
            batch = RuntimeBatch(
                (
                    to_pending("bench", EventReceived(ev), i, ev.id),
                    to_pending("bench", DecisionMade(decision), i),
                )
            )
            [entries] = journal.append_many([batch], [at])
            assert isinstance(entries, list)
            at = entries[-1].stream_seq
        journal.close()

    benchmark.pedantic(run, setup=lambda: ((fresh(),), {}), rounds=5)
