"""What only the SQLite journal can show: files, permissions, tampering, other processes."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from adaptive_runtime.errors import (
    JournalBusyError,
    JournalError,
    JournalVersionError,
    NotAJournalError,
)
from adaptive_runtime.journal import SCHEMA_VERSION, Head, Pending, SqliteJournal
from adaptive_runtime.journal import sqlite as sqlite_module
from adaptive_runtime.journal._chain import link

GUARD_S = 20.0
"""How long a thread that should answer at once is given before the test calls it stuck."""


def fill(path: Path, n: int = 10) -> None:
    journal = SqliteJournal(path, durability="normal")
    for i in range(n):
        stream = "a" if i % 2 else "b"
        journal.append([Pending(stream=stream, kind="K", ts_ns=i, body=f"body-{i}".encode())])
    journal.close()


def tamper(path: Path, *statements: str) -> None:
    """Edit the file behind the journal's back, as an attacker with sqlite3 would."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    db.execute("DROP TRIGGER runs_no_update")
    db.execute("DROP TRIGGER runs_no_delete")
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.close()


def first_bad(path: Path) -> int | None:
    journal = SqliteJournal(path)
    report = journal.verify()
    journal.close()
    assert not report.ok
    return report.first_bad_seq


def test_entries_survive_reopen(tmp_path: Path) -> None:
    """What was appended is there after the journal is closed and opened again."""
    fill(tmp_path / "j.db")
    journal = SqliteJournal(tmp_path / "j.db")
    assert 10 == journal.head().seq
    assert journal.verify().ok
    assert "full" == journal.durability


class _ReadOnlyFile(apsw.VFSFile):  # type: ignore[misc]
    """The main database file opened read-only, as for a user who may only read it."""

    def __init__(self, name: Any, flags: list[int]) -> None:
        if flags[0] & apsw.SQLITE_OPEN_MAIN_DB:
            writable = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
            flags[0] = (flags[0] & ~writable) | apsw.SQLITE_OPEN_READONLY
        super().__init__("", name, flags)


class _ReadOnlyVFS(apsw.VFS):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__("read-only-main", "")

    def xOpen(self, name: Any, flags: list[int]) -> _ReadOnlyFile:
        return _ReadOnlyFile(name, flags)


def test_a_journal_this_process_may_only_read_reads_and_says_why_it_cant_append(
    tmp_path: Path,
) -> None:
    """A journal file this process can't write (its owner's, made read-only) reads as
    usual; an append raises a JournalError that says what access it needs and what to
    do instead (it was apsw's bare "attempt to write a readonly database"), and writes
    nothing."""
    fill(tmp_path / "j.db")
    owner = apsw.Connection(str(tmp_path / "j.db"))  # the owner's process: -wal and -shm exist
    owner.execute("SELECT count(*) FROM entries").fetchall()
    vfs = _ReadOnlyVFS()
    journal = SqliteJournal(tmp_path / "j.db", create=False, vfs="read-only-main")
    try:
        assert 10 == journal.head().seq
        assert journal.verify().ok
        with pytest.raises(JournalError, match="read-only to this process") as refused:
            journal.append([Pending(stream="a", kind="K", ts_ns=99, body=b"more")])
        assert "and to its folder" in str(refused.value)
        assert "run as the journal's owner" in str(refused.value)
        assert 10 == journal.head().seq
    finally:
        journal.close()
        vfs.unregister()
        owner.close()


@pytest.mark.usefixtures("read_only_storage")
def test_a_journal_on_read_only_storage_is_read_as_it_is_and_never_written(
    tmp_path: Path,
) -> None:
    """A backup on read-only storage (a mounted snapshot, an auditor's read-only share) could
    not be opened at all: SQLite needs a -shm beside a WAL database to read it. Opened
    with read_only_ok, it reads in full; an append is refused and no file is made."""
    fill(tmp_path / "j.db")
    before = sorted(os.listdir(tmp_path))
    journal = SqliteJournal(tmp_path / "j.db", create=False, read_only_ok=True)
    try:
        assert 10 == journal.head().seq
        assert journal.verify().ok
        assert [2, 4, 6, 8, 10] == [e.seq for e in journal.read("a")]
        with pytest.raises(JournalError, match="read-only to this process"):
            journal.append([Pending(stream="a", kind="K", ts_ns=99, body=b"more")])
    finally:
        journal.close()
    assert before == sorted(os.listdir(tmp_path))  # no -wal, no -shm


def test_a_read_only_copy_whose_wal_holds_commits_but_no_shm_is_refused_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as immutable, such a copy would hide the commits in its -wal: it is refused."""
    live = SqliteJournal(tmp_path / "live.db", durability="normal")
    live.append([Pending(stream="a", kind="K", ts_ns=1, body=b"in the wal only")])
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        (copy / f"j.db{suffix}").write_bytes((tmp_path / f"live.db{suffix}").read_bytes())
    live.close()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: not mode & os.W_OK and real(p, mode, **kw)
    )
    with pytest.raises(JournalError, match=r"its j\.db-wal holds commits not yet copied"):
        SqliteJournal(copy / "j.db", create=False, read_only_ok=True)


def test_new_files_are_private(tmp_path: Path) -> None:
    """The database and its WAL are readable by the owner only."""
    fill(tmp_path / "j.db", 1)
    journal = SqliteJournal(tmp_path / "j.db")
    journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"")])
    for name in ("j.db", "j.db-wal"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    journal.close()


def test_journal_refuses_update_and_delete(tmp_path: Path) -> None:
    """Triggers make the entries table append-only even to plain SQL."""
    fill(tmp_path / "j.db", 2)
    db = sqlite3.connect(tmp_path / "j.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE entries SET body = x'00' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM entries WHERE seq = 1")
    db.close()


@pytest.mark.parametrize(
    ("statements", "bad_seq"),
    [
        (["UPDATE entries SET body = x'00' WHERE seq = 4"], 4),
        (["UPDATE entries SET ts_ns = 999 WHERE seq = 7"], 7),
        (["UPDATE entries SET kind = 'Other' WHERE seq = 1"], 1),
        (["DELETE FROM entries WHERE seq = 5"], 5),
        (["DELETE FROM entries WHERE seq = 1"], 1),
        (
            [
                "UPDATE entries SET seq = -1 WHERE seq = 3",
                "UPDATE entries SET seq = 3 WHERE seq = 5",
                "UPDATE entries SET seq = 5 WHERE seq = -1",
            ],
            3,
        ),
        (
            [
                "UPDATE entries SET seq = seq + 100 WHERE seq >= 6",
                "INSERT INTO entries SELECT 6, stream, stream_seq, kind, ts_ns, NULL, x'01', batch,"
                " digest FROM entries WHERE seq = 105",
                "UPDATE entries SET seq = seq - 99 WHERE seq > 100",
            ],
            6,
        ),
    ],
    ids=[
        "edit-body",
        "edit-time",
        "edit-kind",
        "delete-middle",
        "delete-first",
        "reorder",
        "insert",
    ],
)
def test_verify_names_first_tampered_seq(
    tmp_path: Path, statements: list[str], bad_seq: int
) -> None:
    """Edits, deletions, reorderings and insertions are caught at their first seq."""
    fill(tmp_path / "j.db")
    tamper(tmp_path / "j.db", *statements)
    assert bad_seq == first_bad(tmp_path / "j.db")


def test_verify_detects_truncation_given_expected_head(tmp_path: Path) -> None:
    """Dropping the newest entries is only visible against a head kept elsewhere."""
    fill(tmp_path / "j.db")
    journal = SqliteJournal(tmp_path / "j.db")
    head = journal.head()
    journal.close()
    tamper(
        tmp_path / "j.db",
        "DELETE FROM entries WHERE seq > 8",
        "DELETE FROM runs WHERE first_seq > 8",
    )
    journal = SqliteJournal(tmp_path / "j.db")
    assert journal.verify().ok
    report = journal.verify(expected_head=head)
    assert (False, 9) == (report.ok, report.first_bad_seq)


def test_damaged_snapshot_is_skipped(tmp_path: Path) -> None:
    """A snapshot whose bytes changed is not offered; the older one is."""
    fill(tmp_path / "j.db", 4)
    journal = SqliteJournal(tmp_path / "j.db")
    journal.put_snapshot("a", 2, b"old", version="v", ts_ns=0)
    journal.put_snapshot("a", 4, b"new", version="v", ts_ns=0)
    journal.close()
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("UPDATE snapshots SET state = x'00' WHERE seq = 4")
    db.commit()
    db.close()
    journal = SqliteJournal(tmp_path / "j.db")
    assert [b"old"] == [s.state for s in journal.snapshots("a")]


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """A text file gets NotAJournalError, not an apsw exception."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a database\n" * 100)
    with pytest.raises(NotAJournalError, match="not a SQLite database"):
        SqliteJournal(path)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    """Another application's SQLite file is refused and left alone."""
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(NotAJournalError, match="not an Adaptive Runtime journal"):
        SqliteJournal(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal from a newer schema version gets JournalVersionError."""
    fill(tmp_path / "j.db", 1)
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(JournalVersionError) as caught:
        SqliteJournal(tmp_path / "j.db")
    assert (99, SCHEMA_VERSION) == (caught.value.found, caught.value.supported)


def as_schema_1(path: Path) -> None:
    """Turn a journal file back into schema 1: an index on entries(stream, seq), no runs."""
    db = sqlite3.connect(path)
    for trigger in ("entries_runs", "runs_no_update", "runs_no_delete"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DROP TABLE runs")
    db.execute("CREATE INDEX entries_stream ON entries(stream, seq)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def test_schema_1_is_migrated_on_open_with_every_read_the_same(tmp_path: Path) -> None:
    """A schema-1 file gains its runs from the entries, loses the index, and reads as before."""
    path = tmp_path / "j.db"
    fill(path, 40)
    journal = SqliteJournal(path)
    before = [list(journal.read(s)) for s in ("a", "b")], journal.head(), journal.stream_head("a")
    journal.close()
    as_schema_1(path)
    journal = SqliteJournal(path)
    after = [list(journal.read(s)) for s in ("a", "b")], journal.head(), journal.stream_head("a")
    assert before == after
    assert journal.verify().ok
    journal.append([Pending(stream="b", kind="K", ts_ns=99, body=b"after")])
    assert (21, [41, 39]) == (journal.stream_head("b"), [e.seq for e in journal.latest(2, "b")])
    journal.close()
    # an older process, still running, inserts a linked entry the way schema 1 did (one
    # INSERT into entries, nothing else): the trigger keeps runs right
    db = apsw.Connection(str(path))
    seq, digest = db.execute("SELECT seq, digest FROM entries ORDER BY seq DESC").fetchone()
    [entry] = link([Pending(stream="c", kind="K", ts_ns=100, body=b"old")], Head(seq, digest), 0)
    db.execute(sqlite_module._INSERT, msgspec.structs.astuple(entry))
    db.close()
    journal = SqliteJournal(path)
    assert journal.verify().ok
    assert [42] == [e.seq for e in journal.read("c")]
    journal.close()
    db = sqlite3.connect(path)
    indexes = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")]
    assert (SCHEMA_VERSION, False) == (
        db.execute("PRAGMA user_version").fetchone()[0],
        "entries_stream" in indexes,
    )
    db.close()


@pytest.mark.parametrize(
    ("statement", "bad_seq"),
    [
        ("DELETE FROM runs WHERE first_seq = 4", 4),
        ("INSERT INTO runs (first_seq, stream) VALUES (2, 'a')", 2),
        ("UPDATE runs SET stream = 'b' WHERE first_seq = 1", 1),
    ],
    ids=["removed", "added", "changed"],
)
def test_runs_changed_outside_the_journal_fail_verify(
    tmp_path: Path, statement: str, bad_seq: int
) -> None:
    """A run row removed, added or changed behind the journal's back is reported at its
    seq, and the report says the chain is intact."""
    journal = SqliteJournal(tmp_path / "j.db")
    for i, stream in enumerate("aaabb"):  # runs start at seq 1 (a) and 4 (b)
        journal.append([Pending(stream=stream, kind="K", ts_ns=i, body=b"%d" % i)])
    journal.close()
    tamper(tmp_path / "j.db", statement)
    journal = SqliteJournal(tmp_path / "j.db")
    report = journal.verify()
    journal.close()
    assert (False, bad_seq, 5) == (report.ok, report.first_bad_seq, report.entries)
    assert "hash chain are intact" in (report.problem or "")


def test_writer_held_past_timeout_raises_busy(tmp_path: Path) -> None:
    """A lock held longer than the busy timeout becomes JournalBusyError."""
    fill(tmp_path / "j.db", 1)
    # apsw, not sqlite3: two SQLite libraries in one process don't see each other's locks
    blocker = apsw.Connection(str(tmp_path / "j.db"))
    blocker.execute("BEGIN IMMEDIATE")
    journal = SqliteJournal(tmp_path / "j.db", busy_timeout_ms=0)
    with pytest.raises(JournalBusyError):
        journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"")])
    blocker.execute("ROLLBACK")
    blocker.close()
    journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"")])
    assert 2 == journal.head().seq


WRITER = textwrap.dedent(
    """
    import sys
    from adaptive_runtime.journal import Pending, SqliteJournal
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    journal = SqliteJournal(path, durability="normal")
    for i in range(n):
        batch = [Pending(stream=name, kind="E", ts_ns=i, body=b"e", event_id=f"{name}-{i}"),
                 Pending(stream=name, kind="D", ts_ns=i, body=b"d")]
        journal.append(batch)
    journal.close()
    """
)


@pytest.mark.parametrize("writers", [2, 4])
def test_processes_appending_to_one_file(tmp_path: Path, writers: int) -> None:
    """Several processes append at once: no duplicates, no gaps, no BusyError."""
    path = tmp_path / "shared.db"
    SqliteJournal(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{k}", "150"], stderr=subprocess.PIPE
        )
        for k in range(writers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    journal = SqliteJournal(path)
    report = journal.verify()
    assert (True, writers * 300) == (report.ok, report.entries)
    for k in range(writers):
        entries = list(journal.read(f"w{k}"))
        assert list(range(1, 301)) == [e.stream_seq for e in entries]
        # each batch stayed contiguous: its decision follows its event
        assert all(d.seq == e.seq + 1 for e, d in zip(entries[::2], entries[1::2], strict=True))


def test_background_checkpoint_moves_the_wal_into_the_database(tmp_path: Path) -> None:
    """The checkpoint thread's connection really checkpoints (regression: it once did nothing)."""
    journal = SqliteJournal(
        tmp_path / "j.db", durability="normal", checkpoint="background", checkpoint_pages=10**9
    )
    for i in range(200):
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x" * 200)])
    assert 4096 == (tmp_path / "j.db").stat().st_size  # everything is still in the WAL
    pages, done = journal._checkpointer.run_once()  # type: ignore[union-attr]
    assert pages > 0
    assert pages == done
    assert (tmp_path / "j.db").stat().st_size > 4096 * 10
    assert journal.verify().ok
    journal.close()


def test_rewritten_history_is_caught_only_against_a_kept_head(tmp_path: Path) -> None:
    """An attacker who edits a row and recomputes every later digest fools verify(), not a kept head."""
    from adaptive_runtime.journal._chain import digest_of

    fill(tmp_path / "j.db")
    journal = SqliteJournal(tmp_path / "j.db")
    kept = journal.head()
    journal.close()
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = x'00' WHERE seq = 6")
    rows = db.execute(
        "SELECT seq, stream, stream_seq, kind, ts_ns, event_id, body, batch FROM entries ORDER BY seq"
    ).fetchall()
    prev = bytes(32)
    for seq, stream, stream_seq, kind, ts_ns, event_id, body, batch in rows:
        prev = digest_of(prev, seq, stream, stream_seq, kind, ts_ns, event_id, body, batch)
        db.execute("UPDATE entries SET digest = ? WHERE seq = ?", (prev, seq))
    db.commit()
    db.close()
    journal = SqliteJournal(tmp_path / "j.db")
    assert journal.verify().ok  # a consistent rewrite: nothing inside the file can tell
    report = journal.verify(expected_head=kept)
    assert (False, 10) == (report.ok, report.first_bad_seq)
    assert "history rewritten" in (report.problem or "")


def test_damaged_wal_tail_loses_only_the_torn_commit(tmp_path: Path) -> None:
    """A WAL cut mid-frame or scribbled at its end: the journal opens, verifies, and keeps a prefix."""
    live = tmp_path / "live.db"
    journal = SqliteJournal(live, durability="normal", checkpoint_pages=10**6)
    for i in range(30):
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x" * 500)])
    original = list(journal.read())
    wal = Path(f"{live}-wal").read_bytes()
    for damage, name in (
        (lambda w: w[: len(w) - 700], "cut"),
        (lambda w: w[:-300] + b"\xff" * 300, "scribbled"),
    ):
        copy = tmp_path / f"{name}.db"
        copy.write_bytes(live.read_bytes())
        Path(f"{copy}-wal").write_bytes(damage(wal))
        damaged = SqliteJournal(copy)
        report = damaged.verify()
        assert report.ok, report
        assert 0 < report.entries < 30
        assert original[: report.entries] == list(damaged.read())
        damaged.close()
    journal.close()


def test_opening_without_create_leaves_an_empty_file_alone(tmp_path: Path) -> None:
    """create=False (the audit commands) refuses an empty file instead of making it a journal."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(NotAJournalError, match="is empty"):
        SqliteJournal(empty, create=False)
    assert b"" == empty.read_bytes()


def test_many_openers_creating_one_new_journal_all_succeed(tmp_path: Path) -> None:
    """Eight threads creating the same new file at once never see NotAJournalError (regression)."""
    import threading

    failures: list[BaseException] = []
    for trial in range(25):
        path = tmp_path / f"race-{trial}.db"
        barrier = threading.Barrier(8)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                SqliteJournal(path, durability="normal").close()
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [] == failures


def test_processes_creating_one_new_journal_all_succeed(tmp_path: Path) -> None:
    """Four processes creating the same new file at once all open it as a journal."""
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from adaptive_runtime.journal import SqliteJournal\n"
        "start = float(sys.argv[2])\n"
        "while time.time() < start: pass\n"
        "SqliteJournal(sys.argv[1], durability='normal').close()\n"
    )
    import time

    for trial in range(3):
        path = tmp_path / f"race-{trial}.db"
        start = str(time.time() + 1.0)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(path), start], stderr=subprocess.PIPE
            )
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [0, 0, 0, 0] == [p.returncode for p in procs], errors


def test_a_flipped_byte_mid_wal_drops_later_commits_seen_only_against_a_kept_head(
    tmp_path: Path,
) -> None:
    """SQLite recovers a WAL up to its first bad frame: later commits vanish, and only a kept head shows it.

    This pins what RELIABILITY.md states: without a head kept elsewhere, the journal
    opens and verifies as a shorter, consistent prefix; with one, verify reports truncation.
    """
    live = tmp_path / "live.db"
    journal = SqliteJournal(live, durability="normal", checkpoint_pages=10**6)
    for i in range(30):
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x" * 500)])
    head = journal.head()
    wal = bytearray(Path(f"{live}-wal").read_bytes())
    copy = tmp_path / "flipped.db"
    copy.write_bytes(live.read_bytes())  # before close(), which would checkpoint the WAL
    journal.close()
    wal[len(wal) // 2] ^= 0x01  # one bit, in the middle of the log
    Path(f"{copy}-wal").write_bytes(bytes(wal))
    damaged = SqliteJournal(copy)
    unkept = damaged.verify()
    kept = damaged.verify(expected_head=head)
    damaged.close()
    assert unkept.ok
    assert 0 < unkept.entries < 30
    assert (False, unkept.entries + 1) == (kept.ok, kept.first_bad_seq)
    assert "truncated" in (kept.problem or "")


def test_the_background_checkpointer_runs_by_wal_size_and_keeps_the_wal_bounded(
    tmp_path: Path,
) -> None:
    """It checkpoints once per `checkpoint_pages` of growth, not per commit (regression), and the log restarts."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(
        path, durability="normal", checkpoint="background", checkpoint_pages=200
    )
    largest = 0
    for i in range(3000):
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x" * 300)])
        if i % 100 == 0:
            largest = max(largest, Path(f"{path}-wal").stat().st_size)
    checkpointer = journal._checkpointer  # type: ignore[attr-defined]
    commits, frames, runs = (
        checkpointer.commits,
        checkpointer.frames_written,
        checkpointer.checkpoints,
    )
    journal.close()
    assert 3000 == commits
    assert 3000 <= frames  # at least a page a commit
    # one request per 200 frames of growth, each some passes (more while the writer runs
    # on, as on a loaded machine): far below the one per commit or so before the fix
    assert runs < commits // 10, (runs, frames)
    assert largest < 20 * 200 * 4096, (
        largest
    )  # the log restarts: it never reaches 20x the threshold


DIGEST_MISMATCH = "digest does not match the entry and its predecessor (edited or reordered)"


@pytest.mark.parametrize(
    ("statements", "bad_seq", "problem"),
    [
        (["UPDATE entries SET body = x'00' WHERE seq = 4"], 4, DIGEST_MISMATCH),
        (["UPDATE entries SET ts_ns = 999 WHERE seq = 7"], 7, DIGEST_MISMATCH),
        (["UPDATE entries SET kind = 'Other' WHERE seq = 1"], 1, DIGEST_MISMATCH),
        (["UPDATE entries SET event_id = 'forged' WHERE seq = 2"], 2, DIGEST_MISMATCH),
        (["UPDATE entries SET stream = 'c' WHERE seq = 3"], 3, "stream 'c' expected stream_seq 1, found 2"),
        (["UPDATE entries SET batch = 10 WHERE seq = 9"], 9, "batch marker 10 does not match its transaction"),
        (["UPDATE entries SET batch = 8 WHERE seq = 9"], 9, DIGEST_MISMATCH),
        (["UPDATE entries SET digest = x'00' WHERE seq = 10"], 10, DIGEST_MISMATCH),
        (["DELETE FROM entries WHERE seq = 5"], 5, "expected seq 5 next, found 6 (rows missing or inserted)"),
    ],
    ids=["body", "time", "kind", "event_id", "stream", "batch-forward", "batch-joined", "digest", "delete"],
)  # fmt: skip
def test_verify_reports_every_tamper_class_whole(
    tmp_path: Path, statements: list[str], bad_seq: int, problem: str
) -> None:
    """The whole report: not ok, the entries and head before the damage, the seq, the problem."""
    from adaptive_runtime.journal import Head, VerifyReport

    fill(tmp_path / "j.db")
    clean = SqliteJournal(tmp_path / "j.db")
    before = [e for e in clean.read() if e.seq < bad_seq]
    clean.close()
    tamper(tmp_path / "j.db", *statements)
    journal = SqliteJournal(tmp_path / "j.db")
    report = journal.verify()
    journal.close()
    head = Head(before[-1].seq, before[-1].digest) if before else Head(0, bytes(32))
    assert (
        VerifyReport(
            ok=False, entries=bad_seq - 1, head=head, first_bad_seq=bad_seq, problem=problem
        )
        == report
    )


def test_appends_by_two_connections_in_turn_each_see_the_others_head(tmp_path: Path) -> None:
    """Each connection caches its own head between commits; the other's commit (or its own
    snapshot write) invalidates it, so the chain and the stream heads stay right."""
    one = SqliteJournal(tmp_path / "j.db", durability="normal")
    two = SqliteJournal(tmp_path / "j.db", durability="normal")
    for i in range(6):
        writer = one if i % 2 else two
        [entry] = writer.append(
            [Pending(stream="s", kind="K", ts_ns=i, body=b"%d" % i)], expected=i
        )
        assert (i + 1, i + 1) == (entry.seq, entry.stream_seq)
        if i == 3:
            writer.put_snapshot("s", entry.seq, b"state", version="v", ts_ns=0)
    assert one.verify().ok
    assert (6, 6) == (one.stream_head("s"), two.head().seq)
    one.close()
    two.close()


def test_reads_by_stream_match_a_filter_of_the_whole_journal(tmp_path: Path) -> None:
    """Streams interleaved at random (seeded), in runs of every length, across read pages:
    read() and latest() by stream, kind, position and limit equal the same filter in Python."""
    rng = random.Random(7)
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    for i in range(1400):
        stream = rng.choice(["a", "a", "a", "b", "c"])
        kind = rng.choice(["K", "L"])
        journal.append([Pending(stream=stream, kind=kind, ts_ns=i, body=b"%d" % i)])
    everything = list(journal.read())
    for stream in ("a", "b", "c", "none"):
        for kind in (None, "K"):
            mine = [e for e in everything if e.stream == stream and kind in (None, e.kind)]
            for after in (0, 1, 517, 1399, 1400):
                assert [e for e in mine if e.seq > after] == list(
                    journal.read(stream, after=after, kind=kind)
                )
            for n, before in ((1, None), (600, None), (2000, 900), (3, 2)):
                below = [e for e in mine if before is None or e.seq < before]
                assert below[::-1][:n] == list(journal.latest(n, stream, kind=kind, before=before))
        ends = [e.stream_seq for e in everything if e.stream == stream]
        assert (ends[-1] if ends else 0) == journal.stream_head(stream)
    journal.close()


def test_stream_reads_sort_nothing_and_search_every_table(tmp_path: Path) -> None:
    """A read by stream walks runs_stream and the primary key in order: no table scan and
    no temporary sort, so a page costs its size, not the journal's (the plan, not a timing)."""
    fill(tmp_path / "j.db")
    db = sqlite3.connect(tmp_path / "j.db")
    for sql in (*sqlite_module._STREAM_UP.values(), *sqlite_module._STREAM_DOWN.values()):
        bindings = ("a", 1, 10) + (("K",) if "?4" in sql else ())
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, bindings)]
        assert all(step.startswith(("SEARCH", "CORRELATED", "SCALAR")) for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
    db.close()


def test_one_live_host_claims_an_agent_and_a_closed_one_leaves_it(tmp_path: Path) -> None:
    """Claims on one file: a second journal is refused an agent the first holds while the
    first is open, takes one the first gave up, and takes the rest once the first is
    closed (as when its process ends). The journal's file and its chain don't change."""
    from adaptive_runtime.errors import AgentOwnedElsewhere

    path = tmp_path / "j.db"
    first, second = SqliteJournal(path), SqliteJournal(path)
    try:
        head = first.head()
        assert 1 == first.claim("a")
        assert 1 == first.claim("b")
        assert 1 == first.claim("a")  # again: still this one's
        with pytest.raises(AgentOwnedElsewhere, match="another journal object in this") as refused:
            second.claim("a")
        assert "a" == refused.value.agent
        assert {"a": 1, "b": 1} == first.claims()
        assert [] == first.renew() == second.orphans()
        first.release(["b"])
        assert {"a": 1} == first.claims()
        assert 1 == second.claim("b")
        with pytest.raises(AgentOwnedElsewhere):
            first.claim("b")
    finally:
        first.close()  # as if its process ended: its locks go with it
    try:
        assert 1 == second.claim("a")
        assert {"a": 1, "b": 1} == second.claims()
        assert head == second.head()  # a claim writes nothing to the journal
        locks = list((tmp_path / "j.db.agents").iterdir())
        assert locks  # lock files, which hold no data
        assert all(0 == lock.stat().st_size for lock in locks)
    finally:
        second.close()


def test_a_lock_file_that_cannot_be_made_lets_the_host_serve_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder the host may not write (here, a file where the lock files' folder would
    go): a claim still succeeds, as before there were claims, with one warning saying
    what is lost; the journal itself works."""
    path = tmp_path / "j.db"
    (tmp_path / "j.db.agents").write_bytes(b"")
    journal = SqliteJournal(path)
    try:
        with caplog.at_level("WARNING", logger="adaptive_runtime.journal"):
            assert 1 == journal.claim("a")
            assert 1 == journal.claim("b")
        said = [r.getMessage() for r in caplog.records if "can't make" in r.getMessage()]
        assert 1 == len(said)
        assert "can't keep other hosts from serving its agents" in said[0]
        journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"x")])
    finally:
        journal.close()


@pytest.mark.parametrize("how", ["deleted", "moved", "replaced"])
def test_a_file_deleted_or_replaced_while_open_takes_no_more_appends(
    tmp_path: Path, how: str
) -> None:
    """A journal file deleted while open is still written by the process that has it open,
    and is gone when it exits: each append after the delete was acknowledged, then lost.
    Now the append that would write to it is refused, and says why and what to do."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, durability="full")
    journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"before")])
    names = [p for p in tmp_path.iterdir() if p.name.startswith("j.db")]
    if how == "deleted":  # the file and its -wal and -shm, as `rm j.db*` does
        for name in names:
            name.unlink() if name.is_file() else None
    elif how == "moved":
        path.rename(tmp_path / "elsewhere.db")
    else:  # another journal moved over it (its -wal and -shm left: `mv other.db j.db`)
        fill(tmp_path / "other.db", n=2)
        (tmp_path / "other.db").replace(path)
    said = {"deleted": "was deleted", "moved": "was deleted", "replaced": "was replaced"}[how]
    with pytest.raises(JournalError, match=f"{said}.*Put the journal back at"):
        journal.append([Pending(stream="a", kind="K", ts_ns=2, body=b"after")])
    journal.close()


def test_a_journal_opened_by_a_relative_path_appends_after_a_change_of_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journal = SqliteJournal("j.db", durability="normal")
    journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"one")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    journal.append([Pending(stream="a", kind="K", ts_ns=2, body=b"two")])
    assert 2 == journal.head().seq
    journal.close()


def test_a_journal_opened_by_a_relative_path_keeps_its_claims_key_and_readers_on_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a change of folder, a journal opened as "j.db" took its agents' locks in
    `j.db.agents/` under the new folder, where a host on the same file took the same
    agent too; its first snapshot made a key there, one no later start would find; and
    its reader() opened "j.db" there: no journal, or another one."""
    from adaptive_runtime.errors import AgentOwnedElsewhere

    monkeypatch.chdir(tmp_path)
    journal = SqliteJournal("j.db", durability="normal")
    [entry] = journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"one")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    journal.claim("web-1")
    journal.put_snapshot("a", entry.seq, b"state", version="v", ts_ns=0)
    other = SqliteJournal(tmp_path / "j.db", durability="normal")
    with pytest.raises(AgentOwnedElsewhere):
        other.claim("web-1")
    assert [] == list(elsewhere.iterdir())
    assert [b"state"] == [s.state for s in other.snapshots("a")]  # its key is beside the file
    reader = journal.reader()  # a Host opens its readers with its first read
    assert entry == reader.get(1)
    reader.close()
    other.close()
    journal.close()


def test_a_read_on_another_thread_mid_append_waits_for_the_commit(tmp_path: Path) -> None:
    """A Runtime's journal is written on the journal's thread while the caller's may read
    it (its actions append at any time). The two once met on the one connection: a read
    begun while an append's transaction was open left apsw busy, it refused the append's
    next call ("Connection is busy in another thread") and then its ROLLBACK, and the
    transaction left open refused every later append. Here a read starts on another
    thread while an append is between its BEGIN and its COMMIT (in the callback of
    `append_caught_up`): the read waits for the commit, and sees it."""
    journal = SqliteJournal(tmp_path / "j.db", durability="normal")
    journal.append_many(
        [[Pending(stream="t", kind="K", ts_ns=i, body=bytes(64))] for i in range(2000)]
    )
    reading = threading.Event()
    read: list[object] = []

    def reader() -> None:
        reading.set()
        try:
            read.append(sum(1 for _ in journal.read()))
        except BaseException as exc:
            read.append(exc)

    thread = threading.Thread(target=reader)

    def build(caught: list[object]) -> list[Pending]:
        thread.start()  # inside the append's transaction
        assert reading.wait(GUARD_S)
        return [Pending(stream="s", kind="K", ts_ns=0, body=b"0")]

    journal.append_caught_up("s", 0, build)
    thread.join(GUARD_S)
    assert read == [2001]  # after the commit, not refused and not inside it
    journal.append([Pending(stream="s", kind="K", ts_ns=1, body=b"1")], expected=1)
    assert (2002, True) == (journal.head().seq, journal.verify().ok)
    journal.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_follower_of_a_file_deleted_or_replaced_says_so_instead_of_waiting(
    tmp_path: Path, how: str
) -> None:
    """`tail --follow` kept polling the file it had opened after that file was deleted, or
    another moved over it (a restore), and showed nothing more, as if nothing were
    appended: the writers append to the file now at the path. It now stops with a
    JournalError saying what happened to the file."""
    from adaptive_runtime.journal.follow import follow

    path = tmp_path / "j.db"
    fill(path, 3)
    reader = SqliteJournal(path, create=False, read_only=True)
    followed = follow(reader, poll=0.001)
    assert [1, 2, 3] == [next(followed).seq for _ in range(3)]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        fill(tmp_path / "restored.db", 5)
        os.replace(tmp_path / "restored.db", path)
    with pytest.raises(JournalError, match=f"{path} was {how}"):
        next(followed)
    reader.close()


def test_a_refused_claim_says_whether_its_holder_is_this_process_or_another(
    tmp_path: Path,
) -> None:
    """A claim refused by a lock that another journal object of the same process held said
    "a live process on this machine ... stop that process first": the user's own process,
    with a second Runtime on the file. It now says which of the two holds the agent."""
    import subprocess
    import sys

    from adaptive_runtime.errors import AgentOwnedElsewhere

    path = tmp_path / "j.db"
    first = SqliteJournal(path)
    try:
        first.claim("a")
        second = SqliteJournal(path)
        try:
            with pytest.raises(AgentOwnedElsewhere, match="another journal object in this process"):
                second.claim("a")
            first.release(["a"])
            assert 1 == second.claim("a")  # given up: the other object of this process takes it
        finally:
            second.close()
        first.claim("a")
        elsewhere = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from adaptive_runtime.journal import SqliteJournal\n"
                "try:\n"
                "    SqliteJournal(sys.argv[1]).claim('a')\n"
                "except Exception as exc:\n"
                "    print(exc)\n",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "a live process on this machine" in elsewhere.stdout
    finally:
        first.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_journal_opened_before_a_fork_is_refused_in_the_child_and_stays_the_parents(
    tmp_path: Path,
) -> None:
    """A child forked while a thread of the parent was appending hung for ever on its first
    append through the parent's journal: the connection's lock came over held, by a thread
    the child does not have (SQLite forbids a connection across a fork in any case). The
    child is now told so at once; closing the journal there lets go of nothing of the
    parent's (its claims), and the parent's appends go on."""
    import os
    import signal
    import threading

    from adaptive_runtime.errors import AgentOwnedElsewhere, JournalClosedError

    path = tmp_path / "j.db"
    journal = SqliteJournal(path, durability="full")
    journal.claim("held-by-parent")
    stop = threading.Event()

    def append_until_stopped() -> None:
        i = 0
        while not stop.is_set():
            journal.append([Pending(stream="parent", kind="K", ts_ns=i, body=b"p")])
            i += 1

    writer = threading.Thread(target=append_until_stopped)
    writer.start()
    statuses = []
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # the child: exit 0 only if all of it held
                signal.alarm(20)  # a hang ends the child (SIGALRM): a failure, not a wait
                try:
                    for use in (
                        lambda: journal.append([Pending(stream="c", kind="K", ts_ns=0, body=b"c")]),
                        journal.head,
                        lambda: journal.claim("held-by-parent"),
                    ):
                        try:
                            use()
                            os._exit(2)
                        except JournalClosedError as exc:
                            if "is a fork of it" not in str(exc):
                                os._exit(3)
                    journal.close()  # the parent's: lets go of nothing of the parent's
                    os._exit(0)
                except BaseException:
                    os._exit(4)
            statuses.append(os.waitpid(pid, 0)[1])
    finally:
        stop.set()
        writer.join()
    assert [0] * 5 == [os.waitstatus_to_exitcode(s) for s in statuses]
    other = SqliteJournal(path)
    try:
        with pytest.raises(AgentOwnedElsewhere):  # still the parent's journal's
            other.claim("held-by-parent")
        assert other.verify().ok
        assert {"parent"} == {e.stream for e in other.read()}
    finally:
        other.close()
        journal.close()
