"""Get an agent's state back: the newest usable snapshot plus the entries after it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from ..engines.fleet import FleetView
from ..engines.pipeline import ENGINE_VERSION
from ..errors import ConfigurationError
from ..journal import Journal, Snapshot
from .agent import AgentState, evolve
from .fleet import FLEET_VERSION, HOST_STREAM, decode_view, evolve_fleet

__all__ = [
    "STATE_VERSION",
    "Rebuilt",
    "SnapshotCheck",
    "check_snapshots",
    "decode_state",
    "encode_state",
    "rebuild",
    "state_at",
]

log = logging.getLogger("adaptive_runtime.projections")

STATE_VERSION = f"agent-state/2/engine/{ENGINE_VERSION}"
"""Snapshots of another version are skipped: their layout or meaning may differ."""

MAX_SEQ = 2**63 - 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AgentState)


def encode_state(state: AgentState) -> bytes:
    """Serialize a state for a snapshot."""
    return _encoder.encode(state)


def decode_state(data: bytes) -> AgentState:
    """Read a snapshot's state back."""
    return _decoder.decode(data)


class Rebuilt(msgspec.Struct, frozen=True, kw_only=True):
    """A rebuilt state and how it was reached."""

    state: AgentState
    snapshot_seq: int | None
    """The seq the snapshot used covered; None for a full replay."""
    replayed: int
    """Entries folded after the snapshot."""
    skipped: tuple[str, ...] = ()
    """Snapshots passed over, each with why."""


def rebuild(
    journal: Journal,
    stream: str,
    *,
    upto: int | None = None,
) -> Rebuilt:
    """Rebuild a stream's state as of `upto` (default: the end) from snapshot plus tail."""
    skipped: list[str] = []
    state: AgentState | None = None
    snapshot_seq: int | None = None
    for snapshot in journal.snapshots(stream):
        if upto is not None and snapshot.seq > upto:
            continue
        state = _usable(snapshot, stream, skipped)
        if state is not None:
            snapshot_seq = snapshot.seq
            break
    if state is None:
        state = AgentState(stream=stream)
    replayed = 0
    for entry in journal.read(stream, after=state.seq):
        if upto is not None and entry.seq > upto:
            break
        evolve(state, entry)
        replayed += 1
    return Rebuilt(
        state=state, snapshot_seq=snapshot_seq, replayed=replayed, skipped=tuple(skipped)
    )


def state_at(
    journal: Journal,
    stream: str,
    *,
    seq: int | None = None,
    ts_ns: int | None = None,
) -> AgentState:
    """Time travel: the state as of a seq, or as of the last entry journaled at or before ts_ns."""
    if (seq is None) == (ts_ns is None):
        raise ConfigurationError("give exactly one of seq or ts_ns")
    if ts_ns is not None:
        seq = 0
        for entry in journal.read(stream):
            if entry.ts_ns > ts_ns:
                break
            seq = entry.seq
    return rebuild(journal, stream, upto=seq).state


def _usable(snapshot: Snapshot, stream: str, skipped: list[str]) -> AgentState | None:
    if snapshot.version != STATE_VERSION:
        why = f"snapshot {snapshot.id} at seq {snapshot.seq} is version {snapshot.version!r}, not {STATE_VERSION!r}"
    else:
        try:
            state = decode_state(snapshot.state)
        except msgspec.DecodeError as exc:
            why = f"snapshot {snapshot.id} at seq {snapshot.seq} does not decode ({exc})"
        else:
            if state.stream == stream and state.seq == snapshot.seq:
                return state
            why = f"snapshot {snapshot.id} at seq {snapshot.seq} holds another stream or seq"
    log.warning("skipping %s; falling back to an older snapshot or a full replay", why)
    skipped.append(why)
    return None


class SnapshotCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One stored snapshot held against the state that replaying the chain gives."""

    stream: str
    id: int
    seq: int
    ok: bool
    """False: its state is not what the chain gives at its seq (forged or damaged)."""
    trusted: bool
    """Whether its MAC and covered digest check out, so that start() may use it."""
    problem: str | None = None


def check_snapshots(
    journal: Journal, *, progress: Callable[[int], None] | None = None
) -> list[SnapshotCheck]:
    """Rebuild every stream by replay and compare each stored snapshot with it, at its seq.

    This is the full check that `verify` runs: it trusts no snapshot, so it finds one
    rewritten by someone who also recomputed its MAC. A snapshot of another version is
    reported ok (start() never uses it) with a note.
    """
    results: list[SnapshotCheck] = []
    for stream in journal.streams():
        stored = sorted(journal.snapshots(stream, untrusted=True), key=lambda s: (s.seq, s.id))
        if stream == HOST_STREAM:  # the fleet view's snapshots: at seqs of every stream
            fleet = [s for s in stored if s.version == FLEET_VERSION]
            older = [s for s in stored if _is_fleet(s) and s.version != FLEET_VERSION]
            stored = [s for s in stored if not _is_fleet(s)]
            if fleet:
                results.extend(_check_fleet(journal, fleet))
            head = journal.head().seq
            for snapshot in older:  # an earlier version's, at a seq of any stream
                if 0 < snapshot.seq <= head:
                    why = f"version {snapshot.version!r}: not used, not compared"
                    results.append(_result(snapshot, True, why))
                else:
                    why = f"covers seq {snapshot.seq}, which is not in the journal"
                    results.append(_result(snapshot, False, why))
        if stored:
            results.extend(_check_stream(journal, stream, stored, progress))
    return results


def _is_fleet(snapshot: Snapshot) -> bool:
    """A fleet view's snapshot, of this version or an earlier one."""
    return snapshot.version.startswith(FLEET_VERSION.split("/")[0] + "/")


def _check_fleet(journal: Journal, stored: list[Snapshot]) -> list[SnapshotCheck]:
    """Fold the whole journal into a fleet view, comparing each fleet snapshot (in seq
    order) with the view as of its seq, which is the journal's, not its stream's."""
    results: list[SnapshotCheck] = []
    view = FleetView()
    left = iter(stored)
    nxt = next(left, None)
    for entry in journal.read():
        if nxt is None:
            break
        evolve_fleet(view, entry)
        while nxt is not None and nxt.seq == entry.seq:
            results.append(_compare_fleet(nxt, view))
            nxt = next(left, None)
    while nxt is not None:  # a seq past the head (or 0): no fold of the journal gives it
        results.append(_result(nxt, False, f"covers seq {nxt.seq}, which is not in the journal"))
        nxt = next(left, None)
    return results


def _compare_fleet(snapshot: Snapshot, view: FleetView) -> SnapshotCheck:
    try:
        stored = decode_view(snapshot.state)
    except msgspec.DecodeError as exc:
        return _result(snapshot, False, f"does not decode ({exc})")
    return _judged(snapshot, stored, view, "the fleet view the chain gives")


def _check_stream(
    journal: Journal,
    stream: str,
    stored: list[Snapshot],
    progress: Callable[[int], None] | None,
) -> list[SnapshotCheck]:
    """Fold one stream from empty, comparing each snapshot (in seq order) as its seq is passed."""
    results: list[SnapshotCheck] = []
    state = AgentState(stream=stream)
    left = iter(stored)
    nxt = next(left, None)
    folded = 0
    entries = journal.read(stream)
    while nxt is not None:
        entry = next(entries, None)
        upto = MAX_SEQ if entry is None else entry.seq - 1
        while nxt is not None and nxt.seq <= upto:  # at or before a seq of another stream
            results.append(_compare(nxt, state))
            nxt = next(left, None)
        if entry is None:
            break
        evolve(state, entry)
        while nxt is not None and nxt.seq == entry.seq:
            results.append(_compare(nxt, state))
            nxt = next(left, None)
        folded += 1
        if progress is not None and folded % 100_000 == 0:
            progress(folded)
    return results


def _compare(snapshot: Snapshot, state: AgentState) -> SnapshotCheck:
    if snapshot.seq != state.seq:
        return _result(
            snapshot, False, f"covers seq {snapshot.seq}, which is not an entry of this stream"
        )
    if snapshot.version != STATE_VERSION:
        return _result(snapshot, True, f"version {snapshot.version!r}: not used, not compared")
    try:
        stored = decode_state(snapshot.state)
    except msgspec.DecodeError as exc:
        return _result(snapshot, False, f"does not decode ({exc})")
    return _judged(snapshot, stored, state, "the chain's state")


def _judged(
    snapshot: Snapshot, stored: msgspec.Struct, folded: msgspec.Struct, what: str
) -> SnapshotCheck:
    """A decoded snapshot held against what folding the chain gave at its seq."""
    if stored != folded:
        fields = [
            name
            for name in type(folded).__struct_fields__
            if getattr(stored, name) != getattr(folded, name)
        ]
        return _result(
            snapshot, False, f"differs from {what} at seq {snapshot.seq} in {', '.join(fields)}"
        )
    if not snapshot.trusted:
        return _result(snapshot, True, "matches the chain but not its MAC: start() won't use it")
    return _result(snapshot, True, None)


def _result(snapshot: Snapshot, ok: bool, problem: str | None) -> SnapshotCheck:
    return SnapshotCheck(
        stream=snapshot.stream,
        id=snapshot.id,
        seq=snapshot.seq,
        ok=ok,
        trusted=snapshot.trusted,
        problem=problem,
    )
