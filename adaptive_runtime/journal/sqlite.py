"""The SQLite journal: one WAL-mode file through apsw, the only module that imports apsw."""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, TypeVar, cast

import apsw
import msgspec

from .._checks import storable
from .._crashpoints import crash_point
from ..errors import (
    AdaptiveRuntimeError,
    AgentOwnedElsewhere,
    ConfigurationError,
    JournalBusyError,
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalVersionError,
    NotAJournalError,
)
from ..records import HOST_STREAM
from . import _chain, _fork
from ._agent_locks import AgentLocks
from ._checkpointer import Checkpointer
from ._keys import load_or_create_key, snapshot_mac
from ._pragmas import (
    set_autocheckpoint,
    set_journal_size_limit,
    set_synchronous,
    set_trusted_schema_off,
    set_wal,
)
from .base import (
    GENESIS_DIGEST,
    Durability,
    Entry,
    Head,
    Pending,
    Snapshot,
    VerifyReport,
    host_name,
)

__all__ = ["SCHEMA_VERSION", "SqliteJournal", "discard"]

SCHEMA_VERSION = 2
T = TypeVar("T")
APPLICATION_ID = 0x41525431  # "ART1": marks the file as an Adaptive Runtime journal
PAGE = 512  # rows per read query: reads stream without holding a long read transaction

# snapshots.checksum holds each snapshot's MAC under the journal's key (see _keys.py).
#
# Indexes cost every commit a page write each. Reads by stream go through `runs`
# instead of an index on entries(stream, seq): a row per run of consecutive entries of
# one stream, written only when the stream changes from the entry before. One agent
# appending alone writes no run rows at all; a host interleaving agents writes one per
# batch, against an index entry per row. The trigger keeps runs in step with entries
# inside SQLite, whatever process writes. A batch is of one stream, so only its first
# entry (seq = batch) can start a run: the others skip the lookup. Kind filters scan
# the stream's ranges.
_RUNS = """
CREATE TABLE runs (
    first_seq INTEGER PRIMARY KEY,
    stream    TEXT    NOT NULL
) STRICT;
CREATE INDEX runs_stream ON runs(stream, first_seq);
CREATE TRIGGER entries_runs AFTER INSERT ON entries
    WHEN NEW.seq = NEW.batch
        AND NEW.stream IS NOT (SELECT stream FROM entries WHERE seq = NEW.seq - 1)
    BEGIN INSERT INTO runs (first_seq, stream) VALUES (NEW.seq, NEW.stream); END;
CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs
    BEGIN SELECT RAISE(ABORT, 'journal runs are append-only'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
    BEGIN SELECT RAISE(ABORT, 'journal runs are append-only'); END;
"""
# Schema 1 had the index entries_stream instead of runs: opening it migrates in one
# transaction, with the runs computed from the entries (which are not touched).
_MIGRATE_1 = """
INSERT INTO runs (first_seq, stream)
    SELECT seq, stream FROM (
        SELECT seq, stream, lag(stream) OVER (ORDER BY seq) AS before FROM entries
    ) WHERE before IS NOT stream;
DROP INDEX entries_stream;
"""
_SCHEMA = """
CREATE TABLE entries (
    seq        INTEGER PRIMARY KEY,
    stream     TEXT    NOT NULL,
    stream_seq INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    ts_ns      INTEGER NOT NULL,
    event_id   TEXT,
    body       BLOB    NOT NULL,
    batch      INTEGER NOT NULL,
    digest     BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX entries_event_id ON entries(event_id) WHERE event_id IS NOT NULL;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'journal entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'journal entries are append-only'); END;
CREATE TABLE snapshots (
    id       INTEGER PRIMARY KEY,
    stream   TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    digest   BLOB    NOT NULL,
    version  TEXT    NOT NULL,
    state    BLOB    NOT NULL,
    checksum BLOB    NOT NULL,
    ts_ns    INTEGER NOT NULL
) STRICT;
CREATE INDEX snapshots_stream ON snapshots(stream, id);
"""

_COLUMNS = "seq, stream, stream_seq, kind, ts_ns, event_id, body, batch, digest"
_FLEET_AFTER = (
    "SELECT seq FROM entries WHERE seq > ? AND kind IN"
    f" ({', '.join('?' * len(_chain.FLEET_KINDS))}) ORDER BY seq"
)
_INSERT = (
    "INSERT INTO entries (seq, stream, stream_seq, kind, ts_ns, event_id, body, batch, digest) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEAD = "SELECT seq, digest FROM entries ORDER BY seq DESC LIMIT 1"
END_OF_TIME = 2**63 - 1
_FORKED_ADVICE = (
    "Start processes that use it with the 'spawn' or 'forkserver' method"
    " (multiprocessing.get_context('spawn')): SQLite's lock state comes over a fork, so"
    " even a new connection here may find the parent's locks held"
)
# A stream's entries in seq order, as one statement: its runs through runs_stream, and
# each run's seq range through the primary key; both loops come out in order, so
# SQLite sorts nothing (EXPLAIN QUERY PLAN shows only SEARCHes), and a page costs its
# own size plus a lookup per run. The end of a run is the next run's start: found by
# ORDER BY ... LIMIT 1, which seeks, where min() under a WHERE would scan. Each bound is
# one expression, so the range search uses it (two lower bounds, and SQLite may pick
# the looser one and scan from there). `e.stream = ?1` too: a damaged runs table can
# only hide entries from a read, never show another stream's.
_RUN_END = (
    "coalesce((SELECT n.first_seq FROM runs n WHERE n.first_seq > r.first_seq "
    f"ORDER BY n.first_seq LIMIT 1), {END_OF_TIME})"
)
_E_COLUMNS = ", ".join(f"e.{c}" for c in _COLUMNS.split(", "))
# ?1 stream, ?2 the first seq wanted, ?3 the page size, ?4 the kind
_STREAM_UP = {
    kind: f"SELECT {_E_COLUMNS} FROM runs r JOIN entries e "
    f"ON e.seq >= max(r.first_seq, ?2) AND e.seq < {_RUN_END} "
    "WHERE r.stream = ?1 AND r.first_seq >= coalesce((SELECT s.first_seq FROM runs s "
    "WHERE s.stream = ?1 AND s.first_seq <= ?2 ORDER BY s.first_seq DESC LIMIT 1), 0) "
    f"AND e.stream = ?1{' AND e.kind = ?4' if kind else ''} "
    "ORDER BY r.first_seq, e.seq LIMIT ?3"
    for kind in (False, True)
}
# ?1 stream, ?2 the seq to stay below, ?3 the page size, ?4 the kind
_STREAM_DOWN = {
    kind: f"SELECT {_E_COLUMNS} FROM runs r JOIN entries e "
    f"ON e.seq >= r.first_seq AND e.seq < min({_RUN_END}, ?2) "
    f"WHERE r.stream = ?1 AND r.first_seq < ?2 AND e.stream = ?1"
    f"{' AND e.kind = ?4' if kind else ''} "
    "ORDER BY r.first_seq DESC, e.seq DESC LIMIT ?3"
    for kind in (False, True)
}
# A run row where the stream does not change, or a change with no run row.
_RUNS_WRONG = (
    "SELECT e.seq FROM entries e LEFT JOIN entries p ON p.seq = e.seq - 1 "
    "WHERE (p.stream IS NOT e.stream) <> EXISTS (SELECT 1 FROM runs r WHERE r.first_seq = e.seq) "
    "UNION ALL SELECT r.first_seq FROM runs r LEFT JOIN entries e ON e.seq = r.first_seq "
    "WHERE e.stream IS NOT r.stream ORDER BY 1 LIMIT 1"
)
_BY_EVENT_ID = f"SELECT {_COLUMNS} FROM entries WHERE event_id = ?"
_BY_SEQ = f"SELECT {_COLUMNS} FROM entries WHERE seq = ?"
_TRANSACTION = f"SELECT {_COLUMNS} FROM entries WHERE seq >= ? AND batch = ? ORDER BY seq"

# Keyed by whether a kind is given; every value is a bound parameter.
_FORWARD = {
    False: f"SELECT {_COLUMNS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
    True: f"SELECT {_COLUMNS} FROM entries WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
}
_BACKWARD = {
    False: f"SELECT {_COLUMNS} FROM entries WHERE seq < ? ORDER BY seq DESC LIMIT ?",
    True: f"SELECT {_COLUMNS} FROM entries WHERE kind = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
}
_PUT_SNAPSHOT = (
    "INSERT INTO snapshots (stream, seq, digest, version, state, checksum, ts_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_PRUNE_SNAPSHOTS = (
    "DELETE FROM snapshots WHERE stream = ? AND id NOT IN "
    "(SELECT id FROM snapshots WHERE stream = ? ORDER BY id DESC LIMIT ?)"
)
_SNAPSHOTS = (
    "SELECT s.id, s.stream, s.seq, s.digest, s.version, s.state, s.checksum, s.ts_ns, e.digest "
    "FROM snapshots s LEFT JOIN entries e ON e.seq = s.seq "
    "WHERE s.stream = ? ORDER BY s.id DESC"
)

_SYNCHRONOUS = {"full": 2, "normal": 1}


def _entry(row: Any) -> Entry:
    return Entry(*row)


class _FileId(NamedTuple):
    """The journal file as it was opened, to tell when the file at its path is another.

    A file deleted while open is still written, by this process only, and is gone when it
    closes: every entry appended after the delete would be acknowledged and then lost. A
    file moved away keeps them, but the next start at the path begins a new journal. So
    each write transaction first checks, with one stat, that the path still names the
    file the connection has open (by absolute path: the process may change folder).
    `head()` checks too, for writers and readers alike: a follower polls it, and would
    otherwise wait on a file no writer will append to again.
    """

    path: str
    device: int
    inode: int

    @classmethod
    def of(cls, path: str) -> _FileId | None:
        """The id of the file just opened at `path` (absolute), or None for a database that
        is no file (":memory:", a VFS's)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(path, st.st_dev, st.st_ino)

    def check(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            happened = "was deleted (or moved away)"
        except OSError:  # can't tell (a folder made unreadable): the file is likely whole
            return
        else:
            if (st.st_dev, st.st_ino) == (self.device, self.inode):
                return
            happened = "was replaced by another file"
        msg = (
            f"the journal file {self.path} {happened} while this process had it open:"
            " nothing more is journaled or read through it (a deleted file's entries are gone once"
            " the process exits, and a moved one is not where the next start looks). Put"
            f" the journal back at {self.path} (moved back, or restored from a backup or an"
            " export with adaptive-runtime import), then start again"
        )
        raise JournalError(msg)


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    """Turn apsw's exceptions into the project's error tree at the boundary."""
    try:
        yield
    except apsw.Error as exc:
        raise _journal_error(path, exc) from exc


def _journal_error(path: str, exc: apsw.Error) -> JournalError:
    """The project's error for an apsw exception, with a message that says what to do."""
    if isinstance(exc, apsw.BusyError):
        msg = f"{path}: another writer held the journal past the busy timeout; retry later"
        return JournalBusyError(msg)
    if isinstance(exc, apsw.NotADBError):
        msg = f"{path} is not a SQLite database, so not an Adaptive Runtime journal"
        return NotAJournalError(msg)
    if isinstance(exc, apsw.CorruptError):
        msg = f"{path} is damaged ({exc}); run `adaptive-runtime verify --db {shlex.quote(path)}`"
        return JournalCorruptError(msg)
    if isinstance(exc, apsw.FullError):
        return JournalError(f"{path}: the disk is full; nothing from this append was journaled")
    if isinstance(exc, apsw.CantOpenError):
        return JournalError(f"cannot open {path}: check that its folder exists and is writable")
    if isinstance(exc, apsw.ReadOnlyError):
        msg = (
            f"{path} is read-only to this process ({exc}): writing to it needs write access"
            f" to the file and to its folder (for the {os.path.basename(path)}-wal and -shm"
            " SQLite keeps beside it); the read commands (history, explain, verify, export"
            " ...) read it as it is. To write, run as the journal's owner, or copy the file"
            " (with any -wal beside it) to a folder you can write"
        )
        return JournalError(msg)
    return JournalError(f"{path}: {type(exc).__name__}: {exc}")


class SqliteJournal:
    """A Journal in one SQLite file in WAL mode; safe for several processes at once.

    Within a process, calls from several threads take turns on its one connection: a
    read waits for an append's transaction to commit, and an append for a read's query.
    For reads that never wait on a commit, use reader().
    """

    __slots__ = (
        "__weakref__",
        "_busy_timeout_ms",
        "_checkpointer",
        "_claims",
        "_conn",
        "_durability",
        "_file",
        "_forked_from",
        "_heads",
        "_keep",
        "_key",
        "_locks",
        "_own",
        "_path",
        "_path_beside",
        "_turn",
        "_vfs",
        "claims_are_local",
        "lease_seconds",
        "owner",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "full",
        busy_timeout_ms: int = 30_000,
        keep_snapshots: int = 3,
        create: bool = True,
        checkpoint: Literal["inline", "background"] = "inline",
        checkpoint_pages: int = 1000,
        vfs: str | None = None,
        snapshot_key: bytes | None = None,
        read_only_ok: bool = False,
        read_only: bool = False,
    ) -> None:
        """`read_only_ok=True` (with create=False): a file this process can't write (on
        read-only storage, or another user's) is opened for reading only instead of
        refused; each append then fails with JournalError. The read commands do this.
        `read_only=True` (with create=False) opens any journal file so (see reader())."""
        if durability not in _SYNCHRONOUS:
            msg = f"durability must be 'full' or 'normal', not {durability!r}"
            raise ConfigurationError(msg)
        if read_only and create:
            msg = "read_only=True opens a journal that exists: pass create=False"
            raise ConfigurationError(msg)
        self._path = os.fspath(path)
        if "\x00" in self._path:
            raise ConfigurationError(f"a journal path can't hold a NUL character: {self._path!r}")
        self._path_beside = self._path if self._path == ":memory:" else os.path.abspath(self._path)
        """The path the files kept beside the journal are named from (its agents' locks,
        its snapshot key), and its readers open: absolute, as the process may change
        folder after opening."""
        self._durability: Durability = durability
        self._keep = max(1, keep_snapshots)
        self._checkpointer: Checkpointer | None = None
        self._forked_from: int | None = None
        """(In a forked child.) The pid of the parent this journal was left to (see _fork)."""
        self._heads = _HeadCache()
        self._own = _chain.OwnWrites()
        self._file: _FileId | None = None
        self._turn = threading.RLock()
        """Held for each use of the connection, a whole write transaction included: apsw
        refuses a call while another thread is in one, and a read between another
        thread's BEGIN and COMMIT would run inside that transaction."""
        self.owner = host_name()
        """This journal's name as a host."""
        self.lease_seconds = 3600.0
        """A claim here has no lease (see _agent_locks): nothing reads this."""
        self.claims_are_local = True
        self._claims: dict[str, int] = {}
        self._locks = AgentLocks(self._path_beside)
        if checkpoint not in ("inline", "background"):
            raise ConfigurationError(
                f"checkpoint must be 'inline' or 'background', not {checkpoint!r}"
            )
        if not create and not os.path.exists(self._path):
            msg = f"no journal at {self._path}; check --db, or run `adaptive-runtime demo` to make one"
            raise JournalError(msg)
        if os.path.isdir(self._path):
            msg = f"{self._path} is a folder, not a journal file; give the path of a file"
            raise JournalError(msg)
        if os.path.exists(self._path) and not os.path.isfile(self._path):
            msg = (
                f"{self._path} is not a regular file (a device, a pipe or a socket); give the"
                " path of a journal file"
            )
            raise JournalError(msg)
        _create_private(self._path)
        self._conn: apsw.Connection | None = None
        _fork.track(self)
        self._busy_timeout_ms = busy_timeout_ms
        self._vfs = vfs
        if read_only or (read_only_ok and not create and not _writable(self._path)):
            self._conn = _open_read_only(self._path, busy_timeout_ms, vfs)
            try:
                self._check_format(create)
                self._check_readable_schema()
                self._file = _FileId.of(self._path_beside)
            except BaseException:
                self.close()
                raise
        else:
            self._open_writable(
                create, durability, busy_timeout_ms, checkpoint, checkpoint_pages, vfs
            )
        if snapshot_key is not None and len(snapshot_key) < 16:
            raise ConfigurationError("snapshot_key must be at least 16 bytes")
        self._key = (
            snapshot_key
            if snapshot_key is not None
            else os.urandom(32)
            if self._path == ":memory:"
            else load_or_create_key(self._path_beside, create=False)  # made with the first snapshot
        )

    def _open_writable(
        self,
        create: bool,
        durability: Durability,
        busy_timeout_ms: int,
        checkpoint: Literal["inline", "background"],
        checkpoint_pages: int,
        vfs: str | None,
    ) -> None:
        with _translated(self._path):
            self._conn = apsw.Connection(
                self._path, flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE, vfs=vfs
            )
            try:
                self._conn.set_busy_timeout(busy_timeout_ms)
                self._check_format(create)
                set_wal(self._conn, busy_timeout_ms / 1000)
                set_synchronous(self._conn, _SYNCHRONOUS[durability])
                set_trusted_schema_off(self._conn)
                set_journal_size_limit(self._conn, 64 * 1024 * 1024)
                self._create_schema()
                if checkpoint == "background":
                    self._checkpointer = Checkpointer(
                        self._path, busy_timeout_ms, checkpoint_pages, vfs
                    )
                    self._conn.set_wal_hook(self._checkpointer.hook)  # replaces the autocheckpoint
                else:
                    set_autocheckpoint(self._conn, checkpoint_pages)
                self._file = _FileId.of(self._path_beside)
            except BaseException:
                self._conn.close()
                self._conn = None
                raise

    def __repr__(self) -> str:
        return f"SqliteJournal({self._path!r}, durability={self._durability!r})"

    @property
    def path(self) -> str:
        return self._path

    @property
    def durability(self) -> Durability:
        return self._durability

    # -- writing -------------------------------------------------------------

    def append(self, batch: Sequence[Pending], *, expected: int | None = None) -> list[Entry]:
        [result] = self._write(lambda conn: self._append_all(conn, [batch], [expected]))
        if isinstance(result, Exception):
            raise result
        return result

    def append_many(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None] | None = None
    ) -> list[list[Entry] | Exception]:
        return self._write(
            lambda conn: self._append_all(conn, batches, expected or [None] * len(batches))
        )

    def append_caught_up(
        self, stream: str, after: int, build: Callable[[list[Entry]], Sequence[Pending]]
    ) -> tuple[list[Entry], list[Entry]]:
        def caught_up(conn: apsw.Connection) -> tuple[list[Entry], list[Entry] | Exception]:
            caught = list(self.read(stream, after=after))
            batch = build(caught)
            [result] = self._append_all(conn, [batch], [_stream_head(conn, stream)])
            return caught, result

        caught, result = self._write(caught_up)
        if isinstance(result, Exception):
            raise result
        return caught, result

    def _write(self, work: Callable[[apsw.Connection], T]) -> T:
        """Run `work` as one BEGIN IMMEDIATE transaction: all of it, or none of it.

        The head cache keeps what the transaction staged only if it commits. Written out
        rather than as context managers: this runs once per append.
        """
        self._turn.acquire()
        try:
            return self._write_in_turn(work)
        finally:
            self._turn.release()

    def _write_in_turn(self, work: Callable[[apsw.Connection], T]) -> T:
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self._file is not None:
                    self._file.check()
                result = work(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except apsw.Error as exc:
            self._heads.forget()
            self._own.forget()
            raise _journal_error(self._path, exc) from exc
        except BaseException:
            self._heads.forget()
            self._own.forget()
            raise
        crash_point("journal.committed")
        self._heads.confirm(conn.data_version())
        self._own.confirm()
        return result

    def _append_all(
        self,
        conn: apsw.Connection,
        batches: Sequence[Sequence[Pending]],
        expected: Sequence[int | None],
    ) -> list[list[Entry] | Exception]:
        """Check and link every batch, then insert all of them with one statement.

        Every check happens before the insert, so a refused batch needs no savepoint:
        it is simply left out. Event ids and stream heads staged earlier in the same
        transaction count as journaled.
        """
        cache = self._heads
        cache.check(conn)
        head = cache.head or _head(conn)
        foreign_after = (
            None
            if not _chain.has_fleet_batch(batches)
            else self._own.foreign_after(
                head.seq,
                # read whole: no statement is left unfinished in the write transaction
                lambda seq: [
                    at for (at,) in conn.execute(_FLEET_AFTER, (seq, *_chain.FLEET_KINDS))
                ],
            )
        )

        stream_heads: dict[str, int] = {}
        staged_ids: dict[str, Entry] = {}
        staged_batches: dict[int, list[Entry]] = {}

        def lookup(event_id: str) -> Entry | None:
            return staged_ids.get(event_id) or self._one(_BY_EVENT_ID, (event_id,))

        def transaction(first: int) -> list[Entry]:
            return staged_batches.get(first) or self._transaction(first)

        def host_head() -> int:
            """`~host`'s stream_seq in this transaction (looked up once, then cached)."""
            known = stream_heads.get(HOST_STREAM)
            if known is None:
                known = cache.streams.get(HOST_STREAM)
            if known is None:
                known = stream_heads[HOST_STREAM] = _stream_head(conn, HOST_STREAM)
            return known

        rows: list[tuple[Any, ...]] = []
        results: list[list[Entry] | Exception] = []
        refused: set[str] = set()  # streams with a batch refused in this append
        for batch, want in zip(batches, expected, strict=True):
            named = None
            try:
                stream = named = _chain.check_batch(batch)
                replayed = _chain.find_replayed(batch, lookup, transaction)
                if replayed is not None:
                    results.append(replayed)
                    continue
                actual = stream_heads.get(stream)
                if actual is None:
                    actual = cache.streams.get(stream)
                if actual is None:
                    actual = _stream_head(conn, stream)
                _chain.check_expected(stream, want, actual, refused, batch)
                _chain.check_fleet_view(stream, batch, foreign_after)
                if _chain.controls_seen(batch) is not None:
                    _chain.check_controls_view(stream, batch, host_head())
            except AdaptiveRuntimeError as exc:
                results.append(exc)
                _chain.note_refused(refused, named, batch)
                continue
            entries = _chain.link(batch, head, actual)
            self._own.stage(entries)
            rows.extend(msgspec.structs.astuple(e) for e in entries)
            head = Head(entries[-1].seq, entries[-1].digest)
            stream_heads[stream] = entries[-1].stream_seq
            staged_batches[entries[0].seq] = entries
            for entry in entries:
                if entry.event_id is not None:
                    staged_ids[entry.event_id] = entry
            results.append(entries)
        if rows:
            conn.executemany(_INSERT, rows)
            crash_point("journal.insert")
        cache.stage(head, stream_heads)
        return results

    def _transaction(self, first: int) -> list[Entry]:
        conn = self._open()
        return [_entry(row) for row in conn.execute(_TRANSACTION, (first, first))]

    # -- reading -------------------------------------------------------------

    def read(
        self, stream: str | None = None, *, after: int = 0, kind: str | None = None
    ) -> Iterator[Entry]:
        if not storable(stream, kind) or after >= END_OF_TIME:  # none past; SQLite binds no more
            return iter(())
        kinds = () if kind is None else (kind,)
        after = max(after, 0)
        if stream is not None:  # ?1 stream, ?2 the first seq wanted, ?3 size, ?4 kind
            return self._paged(
                _STREAM_UP[kind is not None],
                lambda at, size: (stream, at + 1, size, *kinds),
                after,
            )
        return self._paged(_FORWARD[kind is not None], lambda at, size: (*kinds, at, size), after)

    def latest(
        self,
        n: int,
        stream: str | None = None,
        *,
        kind: str | None = None,
        before: int | None = None,
    ) -> Iterator[Entry]:
        if not storable(stream, kind):
            return iter(())
        kinds = () if kind is None else (kind,)
        position = END_OF_TIME if before is None else min(before, END_OF_TIME)
        if stream is not None:  # ?1 stream, ?2 the seq to stay below, ?3 size, ?4 kind
            return self._paged(
                _STREAM_DOWN[kind is not None],
                lambda at, size: (stream, at, size, *kinds),
                position,
                n,
            )
        return self._paged(
            _BACKWARD[kind is not None], lambda at, size: (*kinds, at, size), position, n
        )

    def _paged(
        self,
        sql: str,
        bind: Callable[[int, int], tuple[object, ...]],
        position: int,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        """Entries of `sql` a page at a time, at most `limit`: each page is bound to the
        last seq of the one before (`position` for the first) and its size."""
        left = limit
        while left is None or left > 0:
            size = PAGE if left is None else min(left, PAGE)
            rows = self._rows(sql, bind(position, size))
            for row in rows:
                yield _entry(row)
            if len(rows) < size:
                return
            if left is not None:
                left -= size
            position = cast(int, rows[-1][0])

    def _rows(self, sql: str, bindings: tuple[object, ...]) -> list[Any]:
        with self._turn, _translated(self._path):
            return self._open().execute(sql, bindings).fetchall()

    def get(self, seq: int) -> Entry | None:
        if not 0 < seq <= END_OF_TIME:  # none stored there, and SQLite binds no more
            return None
        return self._one(_BY_SEQ, (seq,))

    def by_event_id(self, event_id: str) -> Entry | None:
        if not storable(event_id):
            return None
        return self._one(_BY_EVENT_ID, (event_id,))

    def head(self) -> Head:
        """The last entry's seq and digest. On a journal whose file was deleted or replaced
        since it was opened, a JournalError, as an append would raise: the head of a file
        no other process can see is not where the journal's next entry goes."""
        if self._file is not None:
            self._file.check()
        with self._turn, _translated(self._path):
            return _head(self._open())

    def wait_for_commit(self, after: int, timeout: float) -> bool:
        """Return whether an entry past seq `after` has committed, after waiting `timeout`
        seconds if none had: SQLite tells no other connection of a commit, so a follower
        polls. Raises JournalError, as head() does, once the file at the journal's path
        is no longer the one it opened: a follower would otherwise wait on it forever."""
        if self.head().seq > after:
            return True
        time.sleep(timeout)
        return self.head().seq > after

    def stream_head(self, stream: str) -> int:
        if not storable(stream):
            return 0
        with self._turn, _translated(self._path):
            return _stream_head(self._open(), stream)

    def streams(self) -> list[str]:
        with self._turn, _translated(self._path):
            rows = self._open().execute("SELECT DISTINCT stream FROM runs ORDER BY stream")
            return [cast(str, row[0]) for row in rows]

    def _one(self, sql: str, bindings: tuple[object, ...]) -> Entry | None:
        with self._turn, _translated(self._path):
            row = self._open().execute(sql, bindings).fetchone()
        return None if row is None else _entry(row)

    # -- snapshots -----------------------------------------------------------

    def put_snapshot(
        self, stream: str, seq: int, state: bytes, *, version: str, ts_ns: int
    ) -> Snapshot:
        [snapshot] = self.put_snapshots([(stream, seq, state)], version=version, ts_ns=ts_ns)
        return snapshot

    def put_snapshots(
        self, items: Sequence[tuple[str, int, bytes]], *, version: str, ts_ns: int
    ) -> list[Snapshot]:
        out: list[Snapshot] = []
        with self._turn, _translated(self._path):
            conn = self._open()
            with _immediate(conn):
                if self._key is None:
                    self._key = load_or_create_key(self._path_beside, create=True)
                for stream, seq, state in items:
                    if seq == 0:
                        digest = GENESIS_DIGEST
                    else:
                        row = conn.execute(
                            "SELECT digest FROM entries WHERE seq = ?", (seq,)
                        ).fetchone()
                        if row is None:
                            msg = f"cannot snapshot at seq {seq}: no such entry in {self._path}"
                            raise JournalError(msg)
                        digest = cast(bytes, row[0])
                    mac = snapshot_mac(self._key, stream, seq, digest, version, state)
                    values = (stream, seq, digest, version, state, mac, ts_ns)
                    snapshot_id = cast(int, conn.execute(_PUT_SNAPSHOT, values).fetchone()[0])  # type: ignore[index]
                    conn.execute(_PRUNE_SNAPSHOTS, (stream, stream, self._keep))
                    out.append(
                        Snapshot(
                            id=snapshot_id,
                            stream=stream,
                            seq=seq,
                            digest=digest,
                            version=version,
                            state=state,
                            ts_ns=ts_ns,
                        )
                    )
        return out

    def snapshots(self, stream: str, *, untrusted: bool = False) -> Iterator[Snapshot]:
        if not storable(stream):
            return
        with self._turn, _translated(self._path):
            rows = self._open().execute(_SNAPSHOTS, (stream,)).fetchall()
        if self._key is None and rows:  # made since this was opened (by another connection)
            self._key = load_or_create_key(self._path_beside, create=False)
        yield from _chain.checked_snapshots(rows, self._key, untrusted=untrusted)

    # -- checking ------------------------------------------------------------

    def verify(
        self, *, expected_head: Head | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        with self._turn, _translated(self._path):
            problems = [row[0] for row in self._open().execute("PRAGMA quick_check")]
        if problems == ["ok"]:
            walked = _chain.walk(self.read(), expected_head, progress)
            return walked if not walked.ok else self._check_runs(walked)
        # the file is damaged: still walk the chain as far as it reads, for true counts
        damage = "SQLite quick_check: " + "; ".join(problems[:5])
        try:
            walked = _chain.walk(self.read(), expected_head, progress)
        except JournalError as exc:
            return VerifyReport(
                ok=False,
                entries=0,
                head=Head(0, GENESIS_DIGEST),
                problem=f"{damage}; the entries can't be read ({exc})",
            )
        problem = damage if walked.ok else f"{damage}; {walked.problem}"
        return VerifyReport(
            ok=False,
            entries=walked.entries,
            head=walked.head,
            first_bad_seq=walked.first_bad_seq,
            problem=problem,
        )

    def _check_runs(self, walked: VerifyReport) -> VerifyReport:
        """The chain is sound: check that `runs`, which reads by stream use, agrees with it."""
        [row] = self._rows(f"SELECT ({_RUNS_WRONG})", ())
        if row[0] is None:
            return walked
        return msgspec.structs.replace(
            walked,
            ok=False,
            first_bad_seq=int(row[0]),
            problem=(
                f"the table runs, which reads by stream go through, disagrees with the entries "
                f"at seq {row[0]}: it was changed outside the journal. The entries and their "
                "hash chain are intact; export the journal and import it into a new file"
            ),
        )

    # -- ownership: one live host per agent ---------------------------------------

    def claim(self, agent: str) -> int:
        """Serve an agent from now on; return the claim's epoch (always 1 here: a claim
        is a lock that only the end of its host's process lets go of, so there is no
        lease to renew and no older claim to fence off).

        Raises AgentOwnedElsewhere while another live host serves it (see _agent_locks).
        """
        self._open()
        if not self._locks.take(agent):
            if self._locks.held_in_this_process(agent):
                msg = (
                    f"agent {agent!r} is claimed by another journal object in this process, on"
                    f" the same file (another Runtime or Host on {self._path}); send its events"
                    " through that one, or stop it first (one Host serves many agents)"
                )
            else:
                msg = (
                    f"agent {agent!r} is served by another host, a live process on this"
                    f" machine (it holds the agent's lock in {self._locks.path}); send its"
                    " events there, or stop that process first"
                )
            raise AgentOwnedElsewhere(msg, agent=agent, owner=None, epoch=None)
        self._claims[agent] = 1
        return 1

    def claims(self) -> dict[str, int]:
        """The agents this journal serves, with their epochs."""
        return dict(self._claims)

    def renew(self) -> list[str]:
        """Nothing to renew: a live host's locks are its own until it gives them up."""
        return []

    def release(self, agents: Sequence[str] | None = None) -> None:
        """Give claims up now (a host stopping), so that another may take them at once."""
        chosen = [a for a in (self.claims() if agents is None else agents) if a in self._claims]
        for agent in chosen:
            self._locks.give_up(agent)
            self._claims.pop(agent, None)

    def orphans(self) -> list[str]:
        """None to look for: a dead host's agents are free at once, and taken (their
        unfinished actions resumed) by the first host that starts or uses them."""
        return []

    def reader(self) -> SqliteJournal:
        """A second connection to this file, opened for reading only, for another thread.

        In WAL mode a reader never waits for the writer, nor the writer for it: each read
        sees the commits made before it began.
        """
        self._open()  # a closed journal gives no reader
        return SqliteJournal(
            self._path_beside,  # the file this one opened, whatever the folder is now
            durability=self._durability,
            busy_timeout_ms=self._busy_timeout_ms,
            keep_snapshots=self._keep,
            create=False,
            vfs=self._vfs,
            snapshot_key=self._key,
            read_only=True,
        )

    def close(self) -> None:
        self._locks.close()
        self._claims.clear()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        with self._turn:
            if self._conn is not None:
                with _translated(self._path):
                    self._conn.close()
                self._conn = None

    # -- set-up --------------------------------------------------------------

    def _open(self) -> apsw.Connection:
        if self._conn is None:
            if self._forked_from is not None:
                raise JournalClosedError(
                    _fork.forked_error(self._path, self._forked_from, _FORKED_ADVICE)
                )
            raise JournalClosedError(f"the journal {self._path} is closed; open a new one")
        return self._conn

    def _leave_to_parent(self, parent: int) -> list[object]:
        """In a child forked after this journal was opened: drop its connections (and
        return them, to be kept, never closed) and the turn lock, which may have come over
        held; every later use raises JournalClosedError (see _fork)."""
        kept: list[object] = [self._conn, self._checkpointer]
        self._conn, self._checkpointer = None, None
        self._turn = threading.RLock()
        self._forked_from = parent
        self._locks.leave_to_parent()
        self._claims.clear()
        return [thing for thing in kept if thing is not None]

    def _check_format(self, create: bool) -> None:
        conn = self._open()
        # One read transaction for all three: read apart, another process creating the
        # schema between them made a new journal look like another application's file.
        conn.execute("BEGIN")
        try:
            version = conn.pragma("user_version")
            app_id = conn.pragma("application_id")
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]  # type: ignore[index]
        finally:
            conn.execute("COMMIT")
        if version > SCHEMA_VERSION:
            msg = (
                f"{self._path} was written by a newer Adaptive Runtime (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}); upgrade adaptive-runtime"
            )
            raise JournalVersionError(msg, found=version, supported=SCHEMA_VERSION)
        if (tables or version) and app_id != APPLICATION_ID:
            msg = f"{self._path} is a SQLite database but not an Adaptive Runtime journal"
            raise NotAJournalError(msg)
        if not create and not tables and not version:
            msg = f"{self._path} is empty, not a journal; nothing was written to it"
            raise NotAJournalError(msg)

    def _check_readable_schema(self) -> None:
        """A file opened for reading only can't be brought to this version's schema."""
        with self._turn, _translated(self._path):
            version = self._open().pragma("user_version")
        if version != SCHEMA_VERSION:
            msg = (
                f"{self._path} has the schema of an earlier Adaptive Runtime ({version}), which"
                " this one upgrades on opening, and it can't be written here; open it once"
                " where it can be (or a copy of it)"
            )
            raise JournalError(msg)

    def _create_schema(self) -> None:
        conn = self._open()
        if conn.pragma("user_version") == SCHEMA_VERSION:
            return
        with _immediate(conn):
            version = conn.pragma("user_version")  # again: another process may have done it
            if version == 0:
                conn.execute(_SCHEMA + _RUNS)
                conn.pragma("application_id", APPLICATION_ID)
            elif version == 1:
                conn.execute(_RUNS + _MIGRATE_1)
            conn.pragma("user_version", SCHEMA_VERSION)


class _HeadCache:
    """The head and stream heads as of this connection's last commit.

    Valid while the file's data version (SQLITE_FCNTL_DATA_VERSION, read without a
    statement) is what it was just after that commit: any other commit to the file, by
    this connection or another, changes it. It spares an append the two
    SELECTs (the global head, the stream's head) that it would otherwise make.
    """

    __slots__ = ("_staged", "head", "streams", "version")

    MAX_STREAMS = 4096

    def __init__(self) -> None:
        self.version: int | None = None
        self.head: Head | None = None
        self.streams: dict[str, int] = {}
        self._staged: tuple[Head, dict[str, int]] | None = None

    def check(self, conn: apsw.Connection) -> None:
        """Drop what another commit may have changed (call inside the write transaction)."""
        if conn.data_version() != self.version:
            self.version, self.head = None, None
            self.streams.clear()

    def stage(self, head: Head, streams: dict[str, int]) -> None:
        self._staged = (head, streams)

    def confirm(self, version: int) -> None:
        """The transaction committed: what it staged is now the journal's, as of `version`."""
        if self._staged is None:
            self.version = None
            return
        head, streams = self._staged
        self._staged = None
        self.version = version
        if len(self.streams) + len(streams) > self.MAX_STREAMS:
            self.streams.clear()
        self.head = head
        self.streams.update(streams)

    def forget(self) -> None:
        """The transaction failed: nothing cached can be trusted."""
        self.version, self.head, self._staged = None, None, None
        self.streams.clear()


@contextlib.contextmanager
def _immediate(conn: apsw.Connection) -> Iterator[None]:
    """Run the block as one BEGIN IMMEDIATE transaction: all of it, or none of it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    crash_point("journal.committed")


def _head(conn: apsw.Connection) -> Head:
    row = conn.execute(_HEAD).fetchone()
    return Head(0, GENESIS_DIGEST) if row is None else Head(cast(int, row[0]), cast(bytes, row[1]))


def _stream_head(conn: apsw.Connection, stream: str) -> int:
    """The stream_seq of the stream's last entry."""
    row = conn.execute(_STREAM_DOWN[False], (stream, END_OF_TIME, 1)).fetchone()
    return 0 if row is None else int(cast(int, row[2]))


def discard(path: str | os.PathLike[str]) -> None:
    """Delete a journal file and the files SQLite keeps beside it (its WAL and shared memory)."""
    base = os.fspath(path)
    for name in (base, f"{base}-wal", f"{base}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _writable(path: str) -> bool:
    """Whether this process may write the file and create its -wal and -shm beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


def _open_read_only(path: str, busy_timeout_ms: int, vfs: str | None) -> apsw.Connection:
    """Open a journal this process can't write, for reading only.

    SQLite reads a WAL database read-only when its -wal and -shm exist or can be made.
    On read-only storage with neither, the file is opened as immutable: all of it is in
    the file (no -wal holds commits not yet copied back), and nothing can change it.
    """
    wal = f"{path}-wal"
    has_wal = os.path.exists(wal) and os.path.getsize(wal) > 0
    folder_takes_files = os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    if not has_wal and not folder_takes_files:
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?immutable=1"
        flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
        with _translated(path):
            return apsw.Connection(uri, flags=flags, vfs=vfs)
    if has_wal and not os.path.exists(f"{path}-shm") and not folder_takes_files:
        msg = (
            f"{path} can't be read here: its {os.path.basename(path)}-wal holds commits not"
            " yet copied into it, and SQLite needs a -shm beside it to read them, which this"
            " folder won't take; copy the file with its -wal to a folder you can write"
        )
        raise JournalError(msg)
    with _translated(path):
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY, vfs=vfs)
        conn.set_busy_timeout(busy_timeout_ms)
        return conn


def _create_private(path: str) -> None:
    """Create a new database file readable by its owner only (SQLite copies the mode to -wal)."""
    if path == ":memory:" or os.path.exists(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        msg = f"cannot create the journal {path}: the folder {folder} does not exist"
        raise JournalError(msg)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass  # made meanwhile, by another process opening it too
    except OSError as exc:  # a read-only or virtual file system, a folder of another user's
        msg = (
            f"cannot create the journal {path}: {exc.strerror or exc}; give a path in a folder"
            " this user may write to"
        )
        raise JournalError(msg) from exc
