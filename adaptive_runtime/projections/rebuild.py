"""Get an agent's state back: the newest usable snapshot plus the entries after it."""

from __future__ import annotations

import logging

import msgspec

from ..engines.confidence import ConfidenceParams
from ..engines.pipeline import ENGINE_VERSION
from ..errors import ConfigurationError
from ..journal import Journal, Snapshot
from .agent import AgentState, evolve

__all__ = ["STATE_VERSION", "Rebuilt", "decode_state", "encode_state", "rebuild", "state_at"]

log = logging.getLogger("adaptive_runtime.projections")

STATE_VERSION = f"agent-state/1/engine/{ENGINE_VERSION}"
"""Snapshots of another version are skipped: their layout or meaning may differ."""

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
    params: ConfidenceParams | None = None,
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
        evolve(state, entry, params)
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
    params: ConfidenceParams | None = None,
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
    return rebuild(journal, stream, upto=seq, params=params).state


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
