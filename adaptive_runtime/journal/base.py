"""The Journal protocol and the value types every backend shares."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol, TypeGuard, runtime_checkable

import msgspec

from ..records import Entry, Pending

__all__ = [
    "GENESIS_DIGEST",
    "Durability",
    "Entry",
    "Head",
    "Journal",
    "Ownership",
    "Pending",
    "Snapshot",
    "VerifyReport",
    "has_ownership",
    "host_name",
    "is_journal",
]

Durability = Literal["full", "normal"]

GENESIS_DIGEST = bytes(32)
"""The digest the first entry chains to."""


class Head(msgspec.Struct, frozen=True):
    """The last entry's seq and digest: keep it somewhere safe to detect truncation."""

    seq: int
    digest: bytes

    def __str__(self) -> str:
        return f"{self.seq}:{self.digest.hex()}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """Read a head written as `SEQ:HEXDIGEST`: a seq from 0 to 2**63-1 and the 64 hex
        digits of a digest. Anything else (a head cut short when copied) is a ValueError,
        not a head that no journal matches."""
        seq_text, sep, digest_text = text.strip().partition(":")
        if sep and seq_text.isascii() and seq_text.isdigit() and len(digest_text) == 64:
            try:
                digest = bytes.fromhex(digest_text)
            except ValueError:
                digest = b""
            if int(seq_text) < 2**63 and len(digest) == 32:
                return cls(int(seq_text), digest)
        msg = (
            f"expected a head as SEQ:HEXDIGEST (as printed by `head`: a seq, a colon and"
            f" 64 hex digits), got {text!r}"
        )
        raise ValueError(msg)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A projection's state saved at a seq, in the journal's own database."""

    id: int
    stream: str
    seq: int
    """The global seq of the last entry the state covers (0: none)."""
    digest: bytes
    """That entry's digest, so a snapshot cannot outlive a rewritten history."""
    version: str
    state: bytes
    ts_ns: int
    trusted: bool = True
    """Its MAC checks out under the journal's key and its digest matches the chain."""


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `verify()` found."""

    ok: bool
    entries: int
    head: Head
    first_bad_seq: int | None = None
    problem: str | None = None


@runtime_checkable
class Journal(Protocol):
    """An append-only, hash-chained store of entries, split into streams.

    Every backend passes the contract suite in tests/contract.
    """

    @property
    def durability(self) -> Durability: ...

    def append(self, batch: Sequence[Pending], *, expected: int | None = None) -> list[Entry]:
        """Append one stream's batch atomically and return the entries as stored.

        `expected` is the stream's current last stream_seq (0 for a new stream);
        a mismatch raises StreamConflictError. A batch whose event ids were all
        journaled before, with the same bodies, appends nothing and returns the
        original transaction's entries.
        """
        ...

    def append_many(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None] | None = None
    ) -> list[list[Entry] | Exception]:
        """Append several batches in one commit; each succeeds or fails on its own.

        `expected`, if given, holds one expected stream_seq (or None) per batch. Once a
        batch of a stream is refused, every later batch of that stream with an expected
        stream_seq is refused with StreamConflictError: it was written to follow the
        refused one. So is every FleetBatch after a refused FleetBatch: its fleet gate
        counted the refused one.
        """
        ...

    def append_caught_up(
        self, stream: str, after: int, build: Callable[[list[Entry]], Sequence[Pending]]
    ) -> tuple[list[Entry], list[Entry]]:
        """Catch up with a stream and append to it, holding the write lock throughout.

        Reads the stream's entries with seq > `after`, calls `build(those)` for the batch
        to append, and appends it in the same transaction: no other writer can come in
        between, so this cannot meet a stream conflict. Returns (the entries caught up,
        the entries appended). The way out of a conflict that makes progress certain.
        """
        ...

    def read(
        self, stream: str | None = None, *, after: int = 0, kind: str | None = None
    ) -> Iterator[Entry]:
        """Yield entries with seq > after, oldest first, optionally one stream or kind."""
        ...

    def latest(
        self,
        n: int,
        stream: str | None = None,
        *,
        kind: str | None = None,
        before: int | None = None,
    ) -> Iterator[Entry]:
        """Yield up to n entries, newest first (with seq < `before`, if given: a cursor)."""
        ...

    def get(self, seq: int) -> Entry | None:
        """Return the entry at a seq."""
        ...

    def by_event_id(self, event_id: str) -> Entry | None:
        """Return the entry that carries an event id."""
        ...

    def head(self) -> Head:
        """Return the last entry's seq and digest (0 and the genesis digest when empty)."""
        ...

    def stream_head(self, stream: str) -> int:
        """Return a stream's last stream_seq (0 when empty)."""
        ...

    def streams(self) -> list[str]:
        """Return every stream name, sorted."""
        ...

    def put_snapshot(
        self, stream: str, seq: int, state: bytes, *, version: str, ts_ns: int
    ) -> Snapshot:
        """Save a snapshot covering `stream` up to global `seq`; keep the newest few."""
        ...

    def put_snapshots(
        self, items: Sequence[tuple[str, int, bytes]], *, version: str, ts_ns: int
    ) -> list[Snapshot]:
        """Save several (stream, seq, state) snapshots in one transaction (one sync)."""
        ...

    def snapshots(self, stream: str, *, untrusted: bool = False) -> Iterator[Snapshot]:
        """Yield a stream's snapshots that still match the chain and their MAC, newest first.

        With `untrusted=True`, yield every stored snapshot, each with `trusted` set, for
        a verifier to report.
        """
        ...

    def verify(
        self, *, expected_head: Head | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        """Walk the hash chain (and the storage's own checks); report the first bad seq.

        `progress`, if given, is called with the count of entries checked, every 100,000.
        """
        ...

    def close(self) -> None:
        """Release the storage; later calls raise JournalClosedError."""
        ...


@runtime_checkable
class Ownership(Protocol):
    """A journal many hosts share: each agent is owned by one host at a time.

    PostgresJournal has it, with leases and fencing: a host that finds it claims each
    agent before writing it, keeps its claims renewed, and takes over agents whose
    owner's lease ran out. SqliteJournal has it with locks on this machine, which need
    neither (see its claim()).
    """

    owner: str
    lease_seconds: float
    claims_are_local: bool
    """True where a claim is a lock on this machine, dropped only when its host's process
    ends (SQLite): taken at once, and never lost, so nothing is renewed or looked for.
    False where it is a lease on a shared server (PostgreSQL)."""

    def claim(self, agent: str) -> int:
        """Own the agent (raise AgentOwnedElsewhere while another host's lease runs)."""
        ...

    def claims(self) -> dict[str, int]:
        """The agents held now, with their epochs."""
        ...

    def renew(self) -> list[str]:
        """Extend every claim; return the agents lost meanwhile."""
        ...

    def release(self, agents: Sequence[str] | None = None) -> None:
        """Give claims up now."""
        ...

    def orphans(self) -> list[str]:
        """Agents whose owner's lease ran out."""
        ...


@runtime_checkable
class Readers(Protocol):
    """A journal that can give another thread a journal of its own to read from.

    SqliteJournal gives a second connection to its file, opened for reading only (a WAL
    reader never waits for the writer, nor the writer for it); PostgresJournal gives a
    journal on the same schema with a pool of one connection of its own. MemoryJournal
    has none: its reads run where its writes do.
    """

    def reader(self) -> Journal:
        """A journal on the same storage, for reads on another thread while this one
        writes. Closing it never closes this one."""
        ...


def _members(protocol: type) -> tuple[str, ...]:
    """A protocol's public methods, properties and attributes, by name."""
    names = {name for name in vars(protocol) if not name.startswith("_")}
    return tuple(sorted(names | set(getattr(protocol, "__annotations__", {}))))


_JOURNAL_MEMBERS = _members(Journal)
_OWNERSHIP_MEMBERS = _members(Ownership)
_READERS_MEMBERS = _members(Readers)


def is_journal(obj: object) -> TypeGuard[Journal]:
    """Whether obj has every member of Journal.

    Not isinstance(obj, Journal): from Python 3.12 that looks members up statically, so a
    wrapper that hands calls on through __getattr__ (a journal with metrics, a test's
    fault injector) was a Journal on 3.11 and not on 3.12. This looks them up as any
    call would, the same on every version.
    """
    return all(hasattr(obj, name) for name in _JOURNAL_MEMBERS)


def has_ownership(obj: object) -> TypeGuard[Ownership]:
    """Whether obj has every member of Ownership (looked up as is_journal does)."""
    return all(hasattr(obj, name) for name in _OWNERSHIP_MEMBERS)


def has_readers(obj: object) -> TypeGuard[Readers]:
    """Whether obj has every member of Readers (looked up as is_journal does)."""
    return all(hasattr(obj, name) for name in _READERS_MEMBERS)


def host_name() -> str:
    """A name for the host a journal object serves, unique across processes and machines:
    the machine, the process, and a few random bytes (two hosts in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
