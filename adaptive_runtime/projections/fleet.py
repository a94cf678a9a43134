"""The fleet projection: one fold over the whole journal, in global order, for the fleet gate."""

from __future__ import annotations

import msgspec

from ..engines.fleet import FleetView, observe, open_incident
from ..journal import Journal
from ..records import (
    DecisionMade,
    Entry,
    FleetIncident,
    FleetPolicy,
    FleetPolicySet,
    PluginRef,
    PluginsSet,
    decode_record,
    read_as,
    read_record,
)

__all__ = [
    "FLEET_VERSION",
    "HOST_STREAM",
    "evolve_fleet",
    "journaled_plugins",
    "journaled_policy",
    "rebuild_fleet",
    "snapshot_fleet",
]

HOST_STREAM = "~host"
"""The stream of the host's own records (its fleet policy, its plugins); agent ids may not start with '~'."""


class _DecidedFields(msgspec.Struct, frozen=True, array_like=True):
    """A Decision's leading fields, up to the context; the rest are not decoded."""

    action: str
    confidence: float
    reason: str
    priority: str
    context: str


class _DecisionMadeFields(msgspec.Struct, frozen=True, tag="DecisionMade", array_like=True):
    decision: _DecidedFields


_fast_decided = msgspec.msgpack.Decoder(_DecisionMadeFields).decode


def _decided(body: bytes) -> tuple[str, str]:
    """A decision's action and context (an entry of the earlier map encoding reads too)."""
    try:
        d = _fast_decided(body).decision
        return d.action, d.context
    except msgspec.DecodeError:
        record = decode_record(body)
        if not isinstance(record, DecisionMade):
            raise
        return record.decision.action, record.decision.context


def evolve_fleet(view: FleetView, entry: Entry) -> FleetView:
    """Fold one entry of any stream into the fleet view (in place)."""
    kind = entry.kind
    if kind == "DecisionMade":
        try:
            action, context = _decided(entry.body)
        except msgspec.DecodeError:
            read_record(entry)  # raises the typed error, naming the seq
            raise
        observe(view, entry.ts_ns, entry.stream, context, action, entry.stream_seq)
    elif kind == "FleetIncident":
        open_incident(view, read_as(entry, FleetIncident), entry.ts_ns)
    elif kind == "FleetPolicySet" and entry.stream == HOST_STREAM:
        view.policy = read_as(entry, FleetPolicySet).policy
    return view


FLEET_VERSION = "fleet-view/1"
_encode_view = msgspec.msgpack.Encoder().encode
_decode_view = msgspec.msgpack.Decoder(FleetView).decode


def journaled_policy(journal: Journal) -> FleetPolicy | None:
    """The fleet policy last journaled (None: never set)."""
    for entry in journal.latest(1, HOST_STREAM, kind="FleetPolicySet"):
        return read_as(entry, FleetPolicySet).policy
    return None


def journaled_plugins(journal: Journal) -> tuple[PluginRef, ...] | None:
    """The plugin set last journaled (None: never set)."""
    for entry in journal.latest(1, HOST_STREAM, kind="PluginsSet"):
        return read_as(entry, PluginsSet).plugins
    return None


def rebuild_fleet(journal: Journal) -> tuple[FleetView, int]:
    """The fleet view as of the journal's head: its newest snapshot plus every entry after it.

    Returns the view and the seq it covers.
    """
    view, seq = FleetView(), 0
    for snapshot in journal.snapshots(HOST_STREAM):
        if snapshot.version != FLEET_VERSION:
            continue
        try:
            view, seq = _decode_view(snapshot.state), snapshot.seq
        except msgspec.DecodeError:
            continue
        break
    for entry in journal.read(after=seq):
        evolve_fleet(view, entry)
        seq = entry.seq
    return view, seq


def snapshot_fleet(journal: Journal, view: FleetView, seq: int, ts_ns: int) -> None:
    """Save the fleet view as of `seq` (a cache: rebuild_fleet checks it like any snapshot)."""
    journal.put_snapshot(HOST_STREAM, seq, _encode_view(view), version=FLEET_VERSION, ts_ns=ts_ns)
