"""Reads off the appends' way: Host.read on reader threads with journals of their own."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from journal_support import FaultyJournal
from postgres_support import fresh_url

from adaptive_runtime import Host, ManualClock
from adaptive_runtime.errors import (
    ConfigurationError,
    JournalClosedError,
    JournalError,
    RuntimeNotStartedError,
)
from adaptive_runtime.journal import Pending, SqliteJournal
from adaptive_runtime.journal.base import Journal
from adaptive_runtime.projections.audit import stats

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
GUARD_S = 10.0
"""How long a read that should not wait at all is given before the test calls it stuck."""


def open_fds_on(path: Path) -> int:
    """How many of this process's file descriptors are open on the file at `path`."""
    target = os.path.realpath(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.path.realpath(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


def head_seq(journal: Journal) -> int:
    return journal.head().seq


async def test_a_read_answers_while_a_commit_holds_the_journals_thread(tmp_path: Path) -> None:
    """At durability full a read queued on the journal's thread waits for every commit
    before it; through Host.read it runs beside a commit that does not end."""
    async with Host(tmp_path / "j.db", durability="full", clock=ManualClock()) as host:
        await host.process({**OVERLOAD, "agent_id": "web-1"})
        faulty = FaultyJournal.installed_in(host)
        release = faulty.hold_next()
        held = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "web-1"}))
        try:
            await asyncio.to_thread(faulty.holding.wait)
            seq = await asyncio.wait_for(host.read(head_seq), GUARD_S)
            counted = await asyncio.wait_for(host.read(stats), GUARD_S)
            assert not held.done()  # the commit is still held: the read did not wait for it
        finally:
            release.set()
        decision = await held
    assert 2 == seq  # what was acknowledged before the read began, not the held commit
    assert 1 == counted.decisions
    assert 4 == decision.seq


async def test_at_normal_reads_leave_the_event_loop_free(tmp_path: Path) -> None:
    """At "normal" appends run on the event loop itself; reads run on a reader thread."""
    loop_thread = threading.get_ident()
    async with Host(tmp_path / "j.db", durability="normal", clock=ManualClock()) as host:
        decision = await host.process({**OVERLOAD, "agent_id": "web-1"})

        def where(journal: Journal) -> tuple[int, int | None]:
            entry = journal.get(decision.seq)
            return threading.get_ident(), None if entry is None else entry.seq

        thread, seq = await host.read(where)
    assert thread != loop_thread
    assert decision.seq == seq  # acknowledged, so seen by a read that began after


async def test_a_memory_journal_is_read_where_it_is_written() -> None:
    async with Host("memory:", durability="normal", clock=ManualClock()) as host:
        decision = await host.process({**OVERLOAD, "agent_id": "web-1"})
        assert decision.seq == await host.read(head_seq)


async def test_the_readers_close_with_the_host_and_reads_then_fail(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    host = Host(path, durability="full", clock=ManualClock())
    await host.start()
    await host.process({**OVERLOAD, "agent_id": "web-1"})
    writer_only = open_fds_on(path)
    await asyncio.gather(*(host.read(head_seq) for _ in range(8)))
    assert open_fds_on(path) > writer_only  # the readers' own connections
    await host.stop()
    assert 0 == open_fds_on(path)
    with pytest.raises(RuntimeNotStartedError):
        await host.read(head_seq)


async def test_reads_keep_answering_through_a_reader_that_cannot_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal whose reader() fails is read where it is written, and says so once."""

    class NoReader(SqliteJournal):
        def reader(self) -> SqliteJournal:
            raise JournalError("injected: no second connection")

    journal = NoReader(tmp_path / "j.db", durability="full")
    try:
        async with Host(journal, clock=ManualClock()) as host:
            decision = await host.process({**OVERLOAD, "agent_id": "web-1"})
            assert [decision.seq] * 3 == [await host.read(head_seq) for _ in range(3)]
    finally:
        journal.close()
    said = [r.getMessage() for r in caplog.records if "reader could not be opened" in r.message]
    assert 1 == len(said), said
    assert "injected: no second connection" in said[0]


async def test_a_reader_that_opens_after_failing_takes_the_reads_again(tmp_path: Path) -> None:
    class FlakyReader(SqliteJournal):
        fail = True

        def reader(self) -> SqliteJournal:
            if FlakyReader.fail:
                raise JournalError("injected: not now")
            return super().reader()

    journal = FlakyReader(tmp_path / "j.db", durability="full")
    try:
        async with Host(journal, clock=ManualClock()) as host:
            await host.process({**OVERLOAD, "agent_id": "web-1"})
            appends_thread = await host.require_worker().run(threading.get_ident)

            def where(journal: Journal) -> int:
                return threading.get_ident()

            assert appends_thread == await host.read(where)
            FlakyReader.fail = False
            assert appends_thread != await host.read(where)
    finally:
        journal.close()


def test_a_sqlite_reader_reads_and_never_writes(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    try:
        reader = journal.reader()
        assert reader is not None
        try:
            journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"x")])
            assert 1 == reader.head().seq  # a commit after the reader opened
            with pytest.raises(JournalError):
                reader.append([Pending(stream="a", kind="K", ts_ns=2, body=b"y")])
            assert 1 == journal.head().seq
        finally:
            reader.close()
        assert 1 == journal.head().seq  # closing the reader left the journal open
    finally:
        journal.close()
    with pytest.raises(JournalClosedError):
        journal.reader()


def test_a_sqlite_reader_trusts_the_snapshots_written_after_it_opened(tmp_path: Path) -> None:
    """The journal's snapshot key is made with its first snapshot: a reader opened before
    that reads the key then, instead of taking every snapshot for a forgery."""
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    reader = journal.reader()
    assert reader is not None
    try:
        journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"x")])
        journal.put_snapshot("a", 1, b"state", version="v", ts_ns=1)
        assert [(1, True)] == [(s.seq, s.trusted) for s in reader.snapshots("a")]
    finally:
        reader.close()
        journal.close()


def test_read_only_is_for_a_journal_that_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="create=False"):
        SqliteJournal(tmp_path / "j.db", read_only=True)
    assert not (tmp_path / "j.db").exists()


def test_a_postgres_reader_has_a_pool_of_its_own_and_the_same_key() -> None:
    from adaptive_runtime.journal.postgres import PostgresJournal

    journal = PostgresJournal(fresh_url())
    try:
        reader = journal.reader()
        try:
            assert 1 == reader.pool_size
            journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"x")])
            journal.put_snapshot("a", 1, b"state", version="v", ts_ns=1)
            assert 1 == reader.head().seq
            assert [(1, True)] == [(s.seq, s.trusted) for s in reader.snapshots("a")]
        finally:
            reader.close()
        assert 1 == journal.head().seq  # closing the reader left the journal open
    finally:
        journal.close()


async def test_a_host_on_postgres_reads_through_a_reader_of_its_own() -> None:
    async with Host(fresh_url(), durability="full", clock=ManualClock()) as host:
        decision = await host.process({**OVERLOAD, "agent_id": "web-1"})

        def seen(journal: Any) -> tuple[bool, int]:
            return journal is not host.journal, journal.head().seq

        assert (True, decision.seq) == await host.read(seen)


async def test_the_controls_scans_by_kind_run_on_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing approvals and dead letters scans the journal by kind (about 0.1 s over
    400,000 entries here): at "normal" it ran on the event loop, now on a reader."""
    from adaptive_runtime.runtime import controls

    threads: dict[str, int] = {}
    for name in ("unanswered_approvals", "dead_letters"):
        scan = getattr(controls, name)

        def recorded(journal: Journal, _scan: Any = scan, _name: str = name) -> Any:
            threads[_name] = threading.get_ident()
            return _scan(journal)

        monkeypatch.setattr(controls, name, recorded)
    loop_thread = threading.get_ident()
    async with Host(tmp_path / "j.db", durability="normal", clock=ManualClock()) as host:
        await host.process({**OVERLOAD, "agent_id": "web-1"})
        assert [] == await host.controls.waiting()
        assert [] == await host.controls.dead_letters()
    assert {"unanswered_approvals", "dead_letters"} == set(threads)
    assert loop_thread not in threads.values()
