"""The journal's group-commit writer on its own: shared commits, answers in order, failures isolated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adaptive_runtime.errors import DuplicateEventError
from adaptive_runtime.journal import JournalWorker, Pending, SqliteJournal
from adaptive_runtime.records import Entry


def batch(i: int, event_id: str | None = None) -> list[Pending]:
    return [Pending(stream="s", kind="K", ts_ns=i, body=b"x", event_id=event_id or f"e{i}")]


async def test_concurrent_appends_share_commits_and_fold_in_order(tmp_path: Path) -> None:
    """64 appends queued at once take fewer commits; on_commit sees them in seq order before callers resume."""
    journal = SqliteJournal(tmp_path / "j.db", durability="full")
    folded: list[int] = []
    worker = JournalWorker(
        journal, asyncio.get_running_loop(), lambda entries: folded.extend(e.seq for e in entries)
    )
    results = await asyncio.gather(*(worker.append(batch(i)) for i in range(64)))
    assert [[i + 1] for i in range(64)] == [[e.seq for e in r] for r in results]
    assert list(range(1, 65)) == folded
    assert worker.commits < 64
    await worker.run(journal.close)
    worker.close()


async def test_a_failing_batch_fails_alone(tmp_path: Path) -> None:
    """A duplicate id in a shared commit fails its caller only; the others commit."""
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    journal.append([Pending(stream="s", kind="K", ts_ns=0, body=b"old", event_id="taken")])
    worker = JournalWorker(journal, asyncio.get_running_loop(), lambda entries: None)
    outcomes = await asyncio.gather(
        worker.append(batch(1)),
        worker.append(batch(2, "taken")),
        worker.append(batch(3)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], DuplicateEventError)
    assert [[2], [3]] == [[e.seq for e in r] for r in outcomes if isinstance(r, list)]
    await worker.run(journal.close)
    worker.close()


async def test_inline_mode_answers_at_once(tmp_path: Path) -> None:
    """inline=True commits on the caller's thread: the future is done when append() returns."""
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    seen: list[list[Entry]] = []
    worker = JournalWorker(journal, asyncio.get_running_loop(), seen.append, inline=True)
    future = worker.append(batch(1))
    assert future.done()
    assert [[1]] == [[e.seq for e in entries] for entries in seen]
    assert [1] == [e.seq for e in await future]
    journal.close()
    worker.close()
