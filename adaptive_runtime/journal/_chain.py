"""The logic every backend shares: linking entries into a hash chain and walking it."""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any

import msgspec

from .._checks import check_stored_name
from ..errors import DuplicateEventError, InvalidEventError, StreamConflictError
from ..records import HOST_STREAM, FleetBatch, RuntimeBatch
from ._keys import snapshot_mac
from .base import GENESIS_DIGEST, Entry, Head, Pending, Snapshot, VerifyReport

_encode = msgspec.msgpack.Encoder().encode

MAX_NAME_LENGTH = 256
MAX_TS_NS = 2**63 - 1
PROGRESS_EVERY = 100_000


def digest_of(
    prev: bytes,
    seq: int,
    stream: str,
    stream_seq: int,
    kind: str,
    ts_ns: int,
    event_id: str | None,
    body: bytes,
    batch: int,
) -> bytes:
    """Hash an entry together with the digest of the entry before it."""
    fields = (prev, seq, stream, stream_seq, kind, ts_ns, event_id, body, batch)
    return hashlib.blake2b(_encode(fields), digest_size=32).digest()


def check_batch(batch: Sequence[Pending]) -> str:
    """Check a batch before it touches storage; return its one stream."""
    if not batch:
        raise InvalidEventError("append needs at least one entry; got an empty batch")
    stream = batch[0].stream
    if type(batch) is RuntimeBatch or type(batch) is FleetBatch:
        return stream  # built from checked parts (see RuntimeBatch)
    seen: set[str] = set()
    for index, pending in enumerate(batch):
        _check_name("stream", pending.stream)
        _check_name("kind", pending.kind)
        if pending.stream != stream:
            msg = (
                f"entry {index} is for stream {pending.stream!r} but the batch is for "
                f"{stream!r}; append one stream per batch"
            )
            raise InvalidEventError(msg, field="stream")
        if type(pending.body) is not bytes:
            msg = (
                f"entry {index} has a body of type {type(pending.body).__name__}; it must be bytes"
            )
            raise InvalidEventError(msg, field="body")
        if pending.event_id is not None:
            _check_name("event_id", pending.event_id)
            if pending.event_id in seen:
                msg = f"event_id {pending.event_id!r} appears twice in one batch"
                raise InvalidEventError(msg, field="event_id")
            seen.add(pending.event_id)
        if type(pending.ts_ns) is not int or not 0 <= pending.ts_ns <= MAX_TS_NS:
            msg = f"entry {index} has ts_ns {pending.ts_ns!r}; it must be an int from 0 to 2**63-1"
            raise InvalidEventError(msg, field="ts_ns")
    return stream


def _check_name(field: str, value: object) -> None:
    if type(value) is str:
        _check_text_name(field, value)  # cached: streams and kinds repeat on every append
        return
    msg = f"{field} must be a non-empty string of at most {MAX_NAME_LENGTH} characters"
    raise InvalidEventError(msg, field=field)


@functools.lru_cache(maxsize=1024)
def _check_text_name(field: str, value: str) -> None:
    if not value:
        msg = f"{field} must be a non-empty string of at most {MAX_NAME_LENGTH} characters"
        raise InvalidEventError(msg, field=field)
    check_stored_name(field, value, MAX_NAME_LENGTH)


def find_replayed(
    batch: Sequence[Pending],
    lookup: Callable[[str], Entry | None],
    transaction: Callable[[int], list[Entry]],
) -> list[Entry] | None:
    """Return the original entries if this batch was appended before, else None.

    A batch counts as appended before when every event id in it is already
    journaled with the same stream, kind and body. Any other reuse of an id
    raises DuplicateEventError.
    """
    originals: list[Entry] = []
    fresh: list[str] = []
    for pending in batch:
        if pending.event_id is None:
            continue
        found = lookup(pending.event_id)
        if found is None:
            fresh.append(pending.event_id)
            continue
        if (found.stream, found.kind, found.body) != (pending.stream, pending.kind, pending.body):
            msg = (
                f"event_id {pending.event_id!r} was already journaled at seq {found.seq} "
                "with a different body; use a new id for a new event"
            )
            raise DuplicateEventError(msg, event_id=pending.event_id, seq=found.seq)
        originals.append(found)
    if not originals:
        return None
    if fresh or len({e.batch for e in originals}) != 1:
        first = originals[0]
        msg = (
            f"event_id {first.event_id!r} was already journaled at seq {first.seq} in "
            "another batch; a retried batch must repeat the original exactly"
        )
        raise DuplicateEventError(msg, event_id=first.event_id or "", seq=first.seq)
    return transaction(originals[0].batch)


FLEET_KINDS = (
    "DecisionMade",
    "EpisodeClosed",
    "FleetIncident",
    "FleetPolicySet",
    "ApprovalDecided",
    "ActionRetried",
    "ActionAbandoned",
)
"""The kinds a fleet view folds something of that another writer's gate would miss (an
EventReceived, a skip or an approval request come only with their decision; a silence
changes only what the controls, checked on their own, decide; an approval's answer, and
the run or giving-up of what a silence owed, move an action in the windows)."""


class OwnWrites:
    """The seq ranges one journal object committed itself, to tell its host's entries
    from other writers' (other hosts, the command line) after a fleet view's seq.

    Only the newest MAX_RANGES are kept: an entry older than those counts as another
    writer's, which at worst has a fleet batch decided again. Nothing is kept until the
    object is first asked about a fleet batch (foreign_after): a journal whose host
    gates nothing pays nothing.
    """

    MAX_RANGES = 4096

    __slots__ = ("_active", "_firsts", "_lasts", "_lock", "_staged")

    def __init__(self) -> None:
        self._active = False
        self._firsts: list[int] = []
        self._lasts: list[int] = []
        self._staged: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def activate(self) -> None:
        """Keep what this object commits from now on: it appends fleet batches."""
        self._active = True

    def stage(self, entries: Sequence[Entry]) -> None:
        """Entries this transaction appends (kept if it commits: confirm)."""
        if self._active and entries:
            self._staged.append((entries[0].seq, entries[-1].seq))

    def confirm(self) -> None:
        """The transaction committed: what it staged was written by this object."""
        if self._staged:
            staged, self._staged = self._staged, []
            self.record(staged)

    def record(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Committed by this object: these (first seq, last seq) ranges, in seq order."""
        if not self._active:
            return
        with self._lock:
            for first, last in ranges:
                self._firsts.append(first)
                self._lasts.append(last)
            if len(self._firsts) > self.MAX_RANGES:
                del self._firsts[: self.MAX_RANGES // 2], self._lasts[: self.MAX_RANGES // 2]

    def forget(self) -> None:
        """The transaction did not commit: what it staged is not this object's."""
        self._staged = []

    def wrote(self, seq: int) -> bool:
        """Whether this object committed the entry at `seq` (among the newest ranges)."""
        with self._lock:
            at = bisect.bisect_right(self._firsts, seq) - 1
            return at >= 0 and seq <= self._lasts[at]

    def foreign_after(
        self, committed: int, fleet_seqs_after: Callable[[int], Iterable[int]]
    ) -> Callable[[int], int | None]:
        """For one append, whose transaction sees the journal up to seq `committed`:
        check_fleet_view's `foreign_after`, from `fleet_seqs_after(seq)`, the seqs of the
        fleet entries after `seq` in order (each seq asked about is read once)."""
        self.activate()
        found: dict[int, int | None] = {}

        def foreign_after(seq: int) -> int | None:
            if seq >= committed:
                return None
            if seq not in found:
                found[seq] = next((at for at in fleet_seqs_after(seq) if not self.wrote(at)), None)
            return found[seq]

        return foreign_after


def check_fleet_view(
    stream: str, batch: Sequence[Pending], foreign_after: Callable[[int], int | None] | None
) -> None:
    """Refuse a FleetBatch decided from a fleet view that another writer has moved past.

    Its gate counted the fleet as of `batch.view_seq` plus its own host's batches. If
    another writer (another host on the journal) has journaled a decision, an incident,
    an episode's end or a fleet policy since, the gate did not count it: the batch is
    refused (StreamConflictError), and its host catches up and decides it again, so that
    every gated decision was made from the journal's order, as replay makes it.
    `foreign_after(seq)` gives the seq of the first such entry after `seq`, or None;
    it is None itself for an append with no fleet batch (has_fleet_batch).
    """
    if type(batch) is not FleetBatch or batch.view_seq is None or foreign_after is None:
        return
    found = foreign_after(batch.view_seq)
    if found is not None:
        msg = (
            f"stream {stream!r}: another writer journaled a fleet entry at seq {found}, after"
            f" the fleet view (seq {batch.view_seq}) this batch was decided from; decide it again"
        )
        raise StreamConflictError(msg, stream=stream, expected=0, actual=0)


def controls_seen(batch: Sequence[Pending]) -> int | None:
    """The `~host` stream_seq a batch's action was planned from (see RuntimeBatch), or None."""
    if type(batch) is RuntimeBatch or type(batch) is FleetBatch:
        return batch.controls_seen
    return None


def plans_from_controls(batches: Sequence[Sequence[Pending]]) -> bool:
    """Whether an append holds a batch planned from the controls (only then is `~host`'s
    head looked up for check_controls_view)."""
    return any(controls_seen(batch) is not None for batch in batches)


def check_controls_view(stream: str, batch: Sequence[Pending], host_head: int) -> None:
    """Refuse a batch whose action was planned from operator controls that have moved on.

    A silence (or an approval policy, an answer...) journaled in `~host` after the
    controls its host had read was not asked about this batch's action: the batch is
    refused (StreamConflictError), and its host reads the controls again and decides it
    again, so a silence holds from the commit that journaled it, whichever process did.
    `host_head` is `~host`'s stream_seq as the append sees it.
    """
    seen = controls_seen(batch)
    if seen is None or host_head <= seen:
        return
    msg = (
        f"stream {stream!r}: the operators' controls ({HOST_STREAM} at stream_seq"
        f" {host_head}) moved on after this batch's action was planned from stream_seq"
        f" {seen}; decide it again"
    )
    raise StreamConflictError(msg, stream=stream, expected=0, actual=0)


def has_fleet_batch(batches: Sequence[Sequence[Pending]]) -> bool:
    """Whether an append holds a FleetBatch (only then does it check fleet views)."""
    return any(type(batch) is FleetBatch for batch in batches)


_FLEET_REFUSED = ""
"""In an append's `refused` set: a FleetBatch was refused (no stream is named "")."""


def note_refused(refused: set[str], stream: str | None, batch: Sequence[Pending]) -> None:
    """Remember a batch refused in this append, for check_expected's later calls."""
    if stream is not None:
        refused.add(stream)
    if type(batch) is FleetBatch:
        refused.add(_FLEET_REFUSED)


def check_expected(
    stream: str,
    expected: int | None,
    actual: int,
    refused: Container[str] = (),
    batch: Sequence[Pending] = (),
) -> None:
    """Optimistic concurrency: refuse a batch written against a stream head that moved on.

    `refused` holds what note_refused noted of the batches refused earlier in the same
    append. A later batch of one of their streams that expects a head was built on the
    refused batch, so it is refused too, even when the head it expects happens to be the
    actual one (other writers' entries exactly as many as the refused batch's). So is a
    FleetBatch once a FleetBatch was refused: its fleet gate counted that one.
    """
    if _FLEET_REFUSED in refused and type(batch) is FleetBatch:
        msg = (
            f"stream {stream!r}: a fleet-gated batch before this one in the same append was "
            "refused, and this one's fleet gate counted it; decide it again"
        )
        raise StreamConflictError(
            msg, stream=stream, expected=actual if expected is None else expected, actual=actual
        )
    if expected is None:
        return
    if stream in refused:
        msg = (
            f"stream {stream!r}: a batch before this one in the same append was refused, and "
            f"this one was written to follow it (at stream_seq {expected}); re-read and retry"
        )
        raise StreamConflictError(msg, stream=stream, expected=expected, actual=actual)
    if expected != actual:
        msg = f"stream {stream!r} is at stream_seq {actual}, not {expected}; re-read and retry"
        raise StreamConflictError(msg, stream=stream, expected=expected, actual=actual)


def trusted(snapshot: Snapshot, mac: bytes, key: bytes | None, chained: bytes | None) -> bool:
    """Whether a stored snapshot may be used: its MAC checks out and it covers the chain's digest."""
    if key is None or chained != snapshot.digest:
        return False
    s = snapshot
    return hmac.compare_digest(
        mac, snapshot_mac(key, s.stream, s.seq, s.digest, s.version, s.state)
    )


def checked_snapshots(
    rows: Iterable[Sequence[Any]], key: bytes | None, *, untrusted: bool
) -> Iterator[Snapshot]:
    """Stored snapshots as rows (id, stream, seq, digest, version, state, mac, ts_ns, and
    the digest the chain has at that seq), each checked; the untrusted ones only if asked."""
    for sid, name, seq, digest, version, state, mac, ts_ns, at in rows:
        snapshot = Snapshot(
            id=int(sid),
            stream=name,
            seq=int(seq),
            digest=bytes(digest),
            version=version,
            state=bytes(state),
            ts_ns=int(ts_ns),
        )
        chained = GENESIS_DIGEST if snapshot.seq == 0 else None if at is None else bytes(at)
        ok = trusted(snapshot, bytes(mac), key, chained)
        if ok or untrusted:
            yield snapshot if ok else msgspec.structs.replace(snapshot, trusted=False)


def link(batch: Sequence[Pending], head: Head, stream_seq: int) -> list[Entry]:
    """Give a checked batch its seqs and digests, chained onto `head`."""
    entries: list[Entry] = []
    prev, seq, first = head.digest, head.seq, head.seq + 1
    for pending in batch:
        seq += 1
        stream_seq += 1
        digest = digest_of(
            prev,
            seq,
            pending.stream,
            stream_seq,
            pending.kind,
            pending.ts_ns,
            pending.event_id,
            pending.body,
            first,
        )
        entries.append(
            Entry(
                seq=seq,
                stream=pending.stream,
                stream_seq=stream_seq,
                kind=pending.kind,
                ts_ns=pending.ts_ns,
                event_id=pending.event_id,
                body=pending.body,
                batch=first,
                digest=digest,
            )
        )
        prev = digest
    return entries


def walk(
    entries: Iterable[Entry],
    expected_head: Head | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check seqs, stream seqs and digests from the first entry to the last."""
    if progress is not None:
        entries = _reporting(entries, progress)
    prev = GENESIS_DIGEST
    seq = 0
    batch = 0
    stream_seqs: dict[str, int] = {}
    at_expected = GENESIS_DIGEST

    def bad(at: int, problem: str) -> VerifyReport:
        return VerifyReport(
            ok=False, entries=seq, head=Head(seq, prev), first_bad_seq=at, problem=problem
        )

    for entry in entries:
        if entry.seq != seq + 1:
            problem = f"expected seq {seq + 1} next, found {entry.seq} (rows missing or inserted)"
            return bad(seq + 1, problem)
        want_stream_seq = stream_seqs.get(entry.stream, 0) + 1
        if entry.stream_seq != want_stream_seq:
            problem = (
                f"stream {entry.stream!r} expected stream_seq {want_stream_seq}, "
                f"found {entry.stream_seq}"
            )
            return bad(entry.seq, problem)
        if entry.batch != entry.seq and entry.batch != batch:
            return bad(entry.seq, f"batch marker {entry.batch} does not match its transaction")
        expected = digest_of(
            prev,
            entry.seq,
            entry.stream,
            entry.stream_seq,
            entry.kind,
            entry.ts_ns,
            entry.event_id,
            entry.body,
            entry.batch,
        )
        if expected != entry.digest:
            problem = "digest does not match the entry and its predecessor (edited or reordered)"
            return bad(entry.seq, problem)
        stream_seqs[entry.stream] = entry.stream_seq
        if expected_head is not None and entry.seq == expected_head.seq:
            at_expected = entry.digest
        prev, seq, batch = entry.digest, entry.seq, entry.batch
    if expected_head is not None and expected_head.seq > 0:
        if seq < expected_head.seq:
            problem = (
                f"journal ends at seq {seq} but the expected head is at seq "
                f"{expected_head.seq} (truncated)"
            )
            return bad(seq + 1, problem)
        if at_expected != expected_head.digest:
            problem = (
                f"the digest at seq {expected_head.seq} differs from the expected head "
                "(history rewritten)"
            )
            return bad(expected_head.seq, problem)
    return VerifyReport(ok=True, entries=seq, head=Head(seq, prev))


def _reporting(entries: Iterable[Entry], progress: Callable[[int], None]) -> Iterator[Entry]:
    for count, entry in enumerate(entries, start=1):
        if count % PROGRESS_EVERY == 0:
            progress(count)
        yield entry
