"""The fleet projection: one fold over the whole journal, in global order, for the fleet gate."""

from __future__ import annotations

import msgspec

from ..engines.events import fingerprint_of, target_of
from ..engines.fleet import FleetView, acting, close_episode, observe, open_incident
from ..journal import Journal
from ..records import (
    HOST_STREAM,
    DecisionMade,
    Entry,
    EpisodeClosed,
    EventReceived,
    FleetIncident,
    FleetPolicy,
    FleetPolicySet,
    PluginRef,
    PluginsSet,
    read_as,
    read_record,
)
from .agent import decided_fields

__all__ = [
    "FLEET_VERSION",
    "HOST_STREAM",
    "decode_view",
    "evolve_fleet",
    "journaled_plugins",
    "journaled_policy",
    "rebuild_fleet",
    "snapshot_fleet",
]


def evolve_fleet(view: FleetView, entry: Entry) -> FleetView:
    """Fold one entry of any stream into the fleet view (in place)."""
    kind = entry.kind
    policy = view.policy
    if kind == "EventReceived" and (policy.cooldown is not None or policy.dedup_window is not None):
        attrs = read_as(entry, EventReceived).event.attrs
        view.targets[entry.stream] = target_of(attrs)
        view.pending_fingerprints[entry.stream] = fingerprint_of(attrs)
    elif kind == "DecisionMade":
        try:
            d = decided_fields(entry.body).decision
        except msgspec.DecodeError:
            read_record(entry)  # raises the typed error, naming the seq
            raise
        target = view.targets.pop(entry.stream, None)
        fingerprint = view.pending_fingerprints.pop(entry.stream, None)
        action = d.action
        if policy.on_cooldown == "skip":  # the fields that say so are past the leading ones
            action = acting(read_as(entry, DecisionMade).decision)
        observe(
            view,
            entry.ts_ns,
            entry.stream,
            d.context,
            action,
            entry.stream_seq,
            target,
            fingerprint,
        )
    elif kind == "EpisodeClosed":
        close_episode(view, entry.stream, read_as(entry, EpisodeClosed).fingerprint)
    elif kind == "FleetIncident":
        open_incident(view, read_as(entry, FleetIncident), entry.ts_ns)
    elif kind == "FleetPolicySet" and entry.stream == HOST_STREAM:
        view.policy = read_as(entry, FleetPolicySet).policy
    return view


FLEET_VERSION = "fleet-view/1"
"""The version of the host's fleet snapshots (in its stream; their seq is the journal's)."""
_encode_view = msgspec.msgpack.Encoder().encode
decode_view = msgspec.msgpack.Decoder(FleetView).decode


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
            view, seq = decode_view(snapshot.state), snapshot.seq
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
