"""Reading one agent's entries out of a journal many agents share, beside an indexed table.

The journal keeps no index on entries(stream, seq): a read by stream finds the stream's
runs (one row per stretch of consecutive entries of one stream) and reads each as a seq
range. This measures that path where it does the most work, every batch its own run,
beside the design it replaced: the same rows in a table with an index on (stream, seq).
The stream read is the same size in both journals; the second journal is ten times
larger, so a read that grew with the journal rather than the stream would show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import raw_bodies

from adaptive_runtime.journal import Pending, SqliteJournal

PER_STREAM = 1000  # entries of the stream read: 500 batches of event + decision
SIZES = [10, 100]  # agents sharing the journal, each batch in turn: 10k and 100k entries
_COLUMNS = "seq, stream, stream_seq, kind, ts_ns, event_id, body, batch, digest"


def build(path: Path, agents: int) -> None:
    """Journal `agents` agents taking turns, one event + decision batch each turn."""
    ev, decision = raw_bodies()
    journal = SqliteJournal(path, durability="normal")
    batches = []
    for turn in range(PER_STREAM // 2):
        for agent in range(agents):
            stream = f"agent-{agent}"
            batches.append(
                [
                    Pending(stream=stream, kind="EventReceived", ts_ns=turn, body=ev),
                    Pending(stream=stream, kind="DecisionMade", ts_ns=turn, body=decision),
                ]
            )
        if len(batches) >= 5000:
            journal.append_many(batches)
            batches = []
    if batches:
        journal.append_many(batches)
    journal.close()


def indexed_copy(source: Path, path: Path) -> None:
    """The same rows in a plain table indexed on (stream, seq): the replaced design."""
    conn = apsw.Connection(str(path))
    conn.execute(f"ATTACH DATABASE '{source}' AS j")  # a path made by the test, not input
    conn.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, stream TEXT, stream_seq INTEGER,"
        " kind TEXT, ts_ns INTEGER, event_id TEXT, body BLOB, batch INTEGER, digest BLOB);"
        f"INSERT INTO entries SELECT {_COLUMNS} FROM j.entries;"
        "CREATE INDEX entries_stream ON entries(stream, seq);"
    )
    conn.execute("DETACH DATABASE j")
    conn.close()


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}agents")
def journals(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, int]:
    folder = tmp_path_factory.mktemp("read")
    build(folder / "journal.db", request.param)
    indexed_copy(folder / "journal.db", folder / "indexed.db")
    return folder / "journal.db", folder / "indexed.db", request.param


def test_raw_indexed_stream_read(benchmark: Any, journals: tuple[Path, Path, int]) -> None:
    """Baseline: SELECT one stream's rows through an index on (stream, seq)."""
    _, indexed, agents = journals
    benchmark.group = f"read-stream-{agents}"
    benchmark.extra_info.update(
        events=PER_STREAM, role="baseline", journal_entries=agents * PER_STREAM
    )
    conn = apsw.Connection(str(indexed), flags=apsw.SQLITE_OPEN_READONLY)
    sql = f"SELECT {_COLUMNS} FROM entries WHERE stream = ? ORDER BY seq"
    rows = benchmark(lambda: conn.execute(sql, ("agent-3",)).fetchall())
    conn.close()
    assert PER_STREAM == len(rows)


def test_journal_stream_read(benchmark: Any, journals: tuple[Path, Path, int]) -> None:
    """Ours: SqliteJournal.read(stream), run by run, as Entry structs."""
    path, _, agents = journals
    benchmark.group = f"read-stream-{agents}"
    benchmark.extra_info.update(events=PER_STREAM, role="ours", journal_entries=agents * PER_STREAM)
    journal = SqliteJournal(path, create=False)
    entries = benchmark(lambda: list(journal.read("agent-3")))
    journal.close()
    assert [e.stream_seq for e in entries] == list(range(1, PER_STREAM + 1))
