"""The runtime on PostgreSQL, beside plain psycopg inserting the same two rows per event.

Skipped without a server: set ADAPTIVE_RUNTIME_TEST_PG (see tests/postgres_support.py).
Every figure is events per second at durability full (synchronous_commit on), each
against a raw baseline measured in the same run:

- 1 writer: Host.process one event at a time, against one psycopg connection committing
  the event's two rows per transaction;
- 4 and 16 writer tasks: that many tasks processing through one Host (its group commit
  shares transactions), against as many threads with a connection each, one commit per
  event;
- batched: process_many(64), against psycopg inserting 64 events' rows per commit.

As in the SQLite suites, periodic snapshots are off (checkpoint_every=10**9) so that
each figure times processing alone; one more batched figure keeps the default (a
snapshot every 100 entries), which on PostgreSQL is a transaction and a flush of its own
after each call of 64 events.

The reader's lag (commit acknowledged to follower woken) is measured beside them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import uuid
from typing import Any

import msgspec
import pytest
from conftest import event

from adaptive_runtime import Host

URL = os.environ.get("ADAPTIVE_RUNTIME_TEST_PG")
pytestmark = pytest.mark.skipif(URL is None, reason="set ADAPTIVE_RUNTIME_TEST_PG to a server")
EVENTS = 400
ROWS_SQL = (
    "INSERT INTO {s}.raw (seq, stream, kind, ts_ns, body) VALUES (%s, %s, %s, %s, %s),"
    " (%s, %s, %s, %s, %s)"
)


def _schema() -> tuple[str, str]:
    assert URL is not None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return f"{URL}{'&' if '?' in URL else '?'}schema={schema}", schema


def _journal_schema() -> str:
    """A new journal's schema, made before the clock starts (as the raw side's table is)."""
    from adaptive_runtime.journal.postgres import PostgresJournal

    url, _ = _schema()
    PostgresJournal(url).close()
    return url


def _raw_setup() -> tuple[Any, str]:
    import psycopg

    assert URL is not None
    _, schema = _schema()
    conn = psycopg.connect(URL, autocommit=True)
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(
        f"CREATE TABLE {schema}.raw (seq BIGINT PRIMARY KEY, stream TEXT NOT NULL,"
        " kind TEXT NOT NULL, ts_ns BIGINT NOT NULL, body BYTEA NOT NULL)"
    )
    conn.close()
    return psycopg, schema


_BODY = msgspec.msgpack.encode(event(1))


def _raw_events(psycopg: Any, schema: str, events: range, per_commit: int, lock: Any) -> None:
    """Insert each event's two rows; `per_commit` events per transaction."""
    assert URL is not None
    sql = ROWS_SQL.format(s=schema)
    with psycopg.connect(URL) as conn:
        batch: list[int] = []
        for i in events:
            batch.append(i)
            if len(batch) == per_commit:
                _raw_commit(conn, sql, batch)
                batch = []
        if batch:
            _raw_commit(conn, sql, batch)


def _raw_commit(conn: Any, sql: str, batch: list[int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            sql,
            [
                (2 * i + 1, "agent", "EventReceived", i, _BODY, 2 * i + 2, "agent", "D", i, _BODY)
                for i in batch
            ],
        )
    conn.commit()


def _raw_threads(threads: int, per_commit: int, events: int = EVENTS) -> Any:
    psycopg, schema = _raw_setup()
    share = events // threads

    def run() -> None:
        workers = [
            threading.Thread(
                target=_raw_events,
                args=(psycopg, schema, range(t * share, (t + 1) * share), per_commit, None),
            )
            for t in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return run


async def _ours(
    url: str, tasks: int, batch: int, events: int = EVENTS, checkpoint_every: int = 10**9
) -> None:
    async with Host(url, durability="full", checkpoint_every=checkpoint_every) as host:
        share = events // tasks

        async def worker(t: int) -> None:
            agent = host.agent(f"agent-{t}")
            if batch > 1:
                for start in range(0, share, batch):
                    await agent.process_many([event(i) for i in range(start, start + batch)])
            else:
                for i in range(share):
                    await agent.process(event(i))

        await asyncio.gather(*(worker(t) for t in range(tasks)))


@pytest.mark.parametrize("writers", [1, 4, 16])
def test_pg_raw_per_commit(benchmark: Any, writers: int) -> None:
    """Baseline: plain psycopg, `writers` connections, one commit per event's two rows."""
    benchmark.group = f"postgres-{writers}"
    benchmark.extra_info.update(events=EVENTS, role="baseline")
    benchmark.pedantic(lambda run: run(), setup=lambda: ((_raw_threads(writers, 1),), {}), rounds=3)


@pytest.mark.parametrize("writers", [1, 4, 16])
def test_pg_process(benchmark: Any, writers: int) -> None:
    """Ours: Host.process with `writers` concurrent tasks (one agent each), on PostgreSQL."""
    benchmark.group = f"postgres-{writers}"
    benchmark.extra_info.update(events=EVENTS, role="ours")
    benchmark.pedantic(
        lambda url: asyncio.run(_ours(url, writers, 1)),
        setup=lambda: ((_journal_schema(),), {}),
        rounds=3,
    )


BATCHED = 6400


def test_pg_raw_batched(benchmark: Any) -> None:
    """Baseline: plain psycopg, 64 events' rows per commit."""
    benchmark.group = "postgres-batched"
    benchmark.extra_info.update(events=BATCHED, role="baseline")
    benchmark.pedantic(
        lambda run: run(), setup=lambda: ((_raw_threads(1, 64, BATCHED),), {}), rounds=3
    )


def test_pg_process_many(benchmark: Any) -> None:
    """Ours: process_many(64) on PostgreSQL."""
    benchmark.group = "postgres-batched"
    benchmark.extra_info.update(events=BATCHED, role="ours")
    benchmark.pedantic(
        lambda url: asyncio.run(_ours(url, 1, 64, BATCHED)),
        setup=lambda: ((_journal_schema(),), {}),
        rounds=3,
    )


def test_pg_process_many_default_snapshots(benchmark: Any) -> None:
    """Ours: process_many(64) on PostgreSQL with the default snapshot every 100 entries."""
    benchmark.group = "postgres-batched"
    benchmark.extra_info.update(events=BATCHED, role="ours")
    benchmark.pedantic(
        lambda url: asyncio.run(_ours(url, 1, 64, BATCHED, checkpoint_every=100)),
        setup=lambda: ((_journal_schema(),), {}),
        rounds=3,
    )


def test_pg_reader_lag(benchmark: Any) -> None:
    """A follower's lag: from the start of an append to the follower holding its entry
    (so it includes the append's own commit: an upper bound on commit-to-reader)."""
    from adaptive_runtime.journal.follow import follow
    from adaptive_runtime.journal.postgres import PostgresJournal

    url, _ = _schema()
    writer, reader = PostgresJournal(url), PostgresJournal(url)
    started: dict[int, float] = {}
    lags: list[float] = []
    done = threading.Event()

    def read() -> None:
        for entry in follow(reader, poll=0.5, stop=done.is_set):
            lags.append(time.monotonic() - started[entry.ts_ns])
            if len(lags) == 200:
                return

    def write() -> None:
        from adaptive_runtime.journal import Pending

        follower = threading.Thread(target=read)
        follower.start()
        for i in range(200):
            started[i] = time.monotonic()
            writer.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x")])
            time.sleep(0.005)
        follower.join(timeout=30)
        done.set()

    benchmark.group = "postgres-reader"
    benchmark.pedantic(write, rounds=1)
    lags.sort()
    p99 = lags[int(len(lags) * 0.99) - 1] * 1000
    benchmark.extra_info.update(
        p99_ms=round(p99, 2), median_ms=round(statistics.median(lags) * 1000, 2)
    )
    writer.close()
    reader.close()
