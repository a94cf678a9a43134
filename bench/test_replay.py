"""Replay (decode + fold) and recovery from a snapshot, beside a raw msgspec scan."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest
from conftest import event

from adaptive_runtime.engines import Outcomes, Policy, decide, parse_event
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import AgentState, encode_state, evolve, rebuild
from adaptive_runtime.projections.rebuild import STATE_VERSION
from adaptive_runtime.records import DecisionMade, EventReceived, Record, to_pending

SIZES = [100_000] + ([1_000_000] if os.environ.get("BENCH_LARGE") else [])
TAIL = 1000


def build(path: Path, entries: int) -> None:
    """Write `entries` entries (event + decision pairs) in large transactions."""
    journal = SqliteJournal(path, durability="normal")
    policy, history = Policy(), Outcomes()
    batches = []
    for i in range(entries // 2):
        ev = parse_event(event(i))
        d = decide(policy, history, ev, i)
        batches.append(
            [to_pending("agent", EventReceived(ev), i), to_pending("agent", DecisionMade(d), i)]
        )
        if len(batches) == 5000:
            journal.append_many(batches)
            batches = []
    if batches:
        journal.append_many(batches)
    journal.close()


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1000}k")
def journal_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("replay") / "journal.db"
    build(path, request.param)
    return path, request.param


def test_raw_scan_decode_fold(benchmark: Any, journal_file: tuple[Path, int]) -> None:
    """Baseline: SELECT every body in order, decode it with a prebuilt Decoder, count actions."""
    path, n = journal_file
    benchmark.group = f"replay-{n // 1000}k"
    benchmark.extra_info.update(events=n, role="baseline")
    decoder = msgspec.msgpack.Decoder(Record)

    def scan() -> dict[str, int]:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        actions: dict[str, int] = {}
        for (body,) in conn.execute("SELECT body FROM entries ORDER BY seq"):
            record = decoder.decode(body)
            if isinstance(record, DecisionMade):
                actions[record.decision.action] = actions.get(record.decision.action, 0) + 1
        conn.close()
        return actions

    benchmark.pedantic(scan, rounds=3)


def test_replay_full(benchmark: Any, journal_file: tuple[Path, int]) -> None:
    """Ours: rebuild the agent's state from empty, through the journal's paged reads and evolve()."""
    path, n = journal_file
    benchmark.group = f"replay-{n // 1000}k"
    benchmark.extra_info.update(events=n, role="ours")

    def replay() -> AgentState:
        journal = SqliteJournal(path, create=False)
        state = rebuild(journal, "agent").state
        journal.close()
        return state

    state = benchmark.pedantic(replay, rounds=3)
    assert n == state.seq


@pytest.fixture(scope="module")
def snapshotted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recovery") / "journal.db"
    build(path, 20_000)
    journal = SqliteJournal(path, durability="normal")
    state = AgentState(stream="agent")
    for entry in journal.read("agent"):
        if entry.seq > 20_000 - TAIL:
            break
        evolve(state, entry)
    journal.put_snapshot("agent", state.seq, encode_state(state), version=STATE_VERSION, ts_ns=0)
    journal.close()
    return path


def test_recovery_snapshot_plus_tail(benchmark: Any, snapshotted: Path) -> None:
    """Ours: open the journal, load the newest snapshot, fold the last 1,000 entries."""
    benchmark.group = "recovery"
    benchmark.extra_info.update(events=TAIL, role="ours", target_ms=20)

    def recover() -> int:
        journal = SqliteJournal(snapshotted, create=False)
        rebuilt = rebuild(journal, "agent")
        journal.close()
        return rebuilt.replayed

    assert benchmark.pedantic(recover, rounds=20) == TAIL
