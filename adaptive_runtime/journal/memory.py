"""The in-memory journal: the same contract as SQLite, kept in lists, for tests and `persist=False`."""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Callable, Iterator, Sequence

import msgspec

from ..errors import JournalClosedError, JournalError
from ..records import HOST_STREAM
from . import _chain
from ._keys import snapshot_mac
from .base import GENESIS_DIGEST, Durability, Entry, Head, Pending, Snapshot, VerifyReport

__all__ = ["MemoryJournal", "MemoryStore"]


class MemoryJournal:
    """A Journal that lives and dies with the process."""

    __slots__ = (
        "_by_event_id",
        "_closed",
        "_entries",
        "_keep",
        "_key",
        "_snapshot_ids",
        "_snapshots",
        "_stream_heads",
    )

    def __init__(self, *, keep_snapshots: int = 3, snapshot_key: bytes | None = None) -> None:
        self._entries: list[Entry] = []
        self._by_event_id: dict[str, int] = {}
        self._stream_heads: dict[str, int] = {}
        self._snapshots: dict[str, list[tuple[Snapshot, bytes]]] = {}
        self._snapshot_ids = itertools.count(1)
        self._keep = max(1, keep_snapshots)
        self._key = snapshot_key or os.urandom(32)
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryJournal(entries={len(self._entries)}, streams={len(self._stream_heads)})"

    async def connect(self) -> None:
        """Do nothing: kept so the original project's `await store.connect()` still works."""
        self._check_open()

    @property
    def durability(self) -> Durability:
        return "normal"

    def append(self, batch: Sequence[Pending], *, expected: int | None = None) -> list[Entry]:
        self._check_open()
        stream = _chain.check_batch(batch)
        replayed = _chain.find_replayed(batch, self.by_event_id, self._transaction)
        if replayed is not None:
            return replayed
        actual = self._stream_heads.get(stream, 0)
        _chain.check_expected(stream, expected, actual)
        _chain.check_controls_view(stream, batch, self._stream_heads.get(HOST_STREAM, 0))
        entries = _chain.link(batch, self.head(), actual)
        self._entries.extend(entries)  # in one step: a read on another thread sees all or none
        for entry in entries:
            if entry.event_id is not None:
                self._by_event_id[entry.event_id] = entry.seq
        self._stream_heads[stream] = entries[-1].stream_seq
        return entries

    def append_many(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None] | None = None
    ) -> list[list[Entry] | Exception]:
        results: list[list[Entry] | Exception] = []
        refused: set[str] = set()  # streams with a batch refused in this append
        for index, batch in enumerate(batches):
            want = None if expected is None else expected[index]
            named: str | None = None
            try:
                named = _chain.check_batch(batch)
                if refused:  # written to follow a refused batch: refused too
                    _chain.check_expected(named, want, self.stream_head(named), refused, batch)
                results.append(self.append(batch, expected=want))
            except (JournalClosedError, MemoryError):
                raise
            except Exception as exc:  # each batch fails on its own, as in SQLite
                results.append(exc)
                _chain.note_refused(refused, named, batch)
        return results

    def append_caught_up(
        self, stream: str, after: int, build: Callable[[list[Entry]], Sequence[Pending]]
    ) -> tuple[list[Entry], list[Entry]]:
        caught = list(self.read(stream, after=after))
        return caught, self.append(build(caught), expected=self.stream_head(stream))

    def read(
        self, stream: str | None = None, *, after: int = 0, kind: str | None = None
    ) -> Iterator[Entry]:
        self._check_open()
        index = max(0, after)
        while index < len(self._entries):
            entry = self._entries[index]
            index += 1
            if (stream is None or entry.stream == stream) and (kind is None or entry.kind == kind):
                yield entry

    def latest(
        self,
        n: int,
        stream: str | None = None,
        *,
        kind: str | None = None,
        before: int | None = None,
    ) -> Iterator[Entry]:
        self._check_open()
        left = n
        end = len(self._entries) if before is None else max(0, min(before - 1, len(self._entries)))
        for entry in reversed(self._entries[:end]):
            if left <= 0:
                return
            if (stream is None or entry.stream == stream) and (kind is None or entry.kind == kind):
                left -= 1
                yield entry

    def get(self, seq: int) -> Entry | None:
        self._check_open()
        return self._entries[seq - 1] if 0 < seq <= len(self._entries) else None

    def by_event_id(self, event_id: str) -> Entry | None:
        self._check_open()
        seq = self._by_event_id.get(event_id)
        return None if seq is None else self._entries[seq - 1]

    def head(self) -> Head:
        self._check_open()
        if not self._entries:
            return Head(0, GENESIS_DIGEST)
        last = self._entries[-1]
        return Head(last.seq, last.digest)

    def stream_head(self, stream: str) -> int:
        self._check_open()
        return self._stream_heads.get(stream, 0)

    def streams(self) -> list[str]:
        self._check_open()
        return sorted(self._stream_heads)

    def put_snapshot(
        self, stream: str, seq: int, state: bytes, *, version: str, ts_ns: int
    ) -> Snapshot:
        self._check_open()
        digest = self._digest_at(seq)
        snapshot = Snapshot(
            id=next(self._snapshot_ids),
            stream=stream,
            seq=seq,
            digest=digest,
            version=version,
            state=state,
            ts_ns=ts_ns,
        )
        kept = self._snapshots.setdefault(stream, [])
        kept.append((snapshot, snapshot_mac(self._key, stream, seq, digest, version, state)))
        del kept[: -self._keep]
        return snapshot

    def put_snapshots(
        self, items: Sequence[tuple[str, int, bytes]], *, version: str, ts_ns: int
    ) -> list[Snapshot]:
        for _, seq, _ in items:
            self._digest_at(seq)  # all or nothing: every seq is checked first
        return [
            self.put_snapshot(stream, seq, state, version=version, ts_ns=ts_ns)
            for stream, seq, state in items
        ]

    def snapshots(self, stream: str, *, untrusted: bool = False) -> Iterator[Snapshot]:
        self._check_open()
        for snapshot, mac in reversed(list(self._snapshots.get(stream, ()))):
            entry = self.get(snapshot.seq)
            chained = (
                GENESIS_DIGEST if snapshot.seq == 0 else None if entry is None else entry.digest
            )
            trusted = _chain.trusted(snapshot, mac, self._key, chained)
            if trusted or untrusted:
                yield snapshot if trusted else msgspec.structs.replace(snapshot, trusted=False)

    def verify(
        self, *, expected_head: Head | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        self._check_open()
        return _chain.walk(iter(self._entries), expected_head, progress)

    def close(self) -> None:
        self._closed = True

    def _digest_at(self, seq: int) -> bytes:
        if seq == 0:
            return GENESIS_DIGEST
        entry = self.get(seq)
        if entry is None:
            msg = f"cannot snapshot at seq {seq}: the journal ends at seq {len(self._entries)}"
            raise JournalError(msg)
        return entry.digest

    def _transaction(self, first: int) -> list[Entry]:
        end = bisect.bisect_right(self._entries, first, key=lambda e: e.batch)
        return self._entries[first - 1 : end]

    def _check_open(self) -> None:
        if self._closed:
            raise JournalClosedError("the journal is closed; open a new one")


MemoryStore = MemoryJournal
"""The original project's name for the in-memory store."""
