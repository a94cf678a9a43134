"""The fleet projection: one fold over the whole journal, in global order, for the fleet gate."""

from __future__ import annotations

import msgspec

from ..engines.events import fingerprint_of, target_of
from ..engines.fleet import (
    Counted,
    FleetView,
    acting,
    close_episode,
    observe,
    open_incident,
    restamp,
    uncount,
)
from ..errors import JournalVersionError
from ..journal import Journal
from ..records import (
    DRY_RUN_SKIP,
    FLEET_FOLD,
    HOST_STREAM,
    ActionAbandoned,
    ActionRetried,
    ActionSkipped,
    ApprovalDecided,
    DecisionMade,
    Entry,
    EpisodeClosed,
    EventReceived,
    FleetIncident,
    FleetPolicy,
    FleetPolicySet,
    PluginRef,
    PluginsSet,
    SilenceEnded,
    SilenceSet,
    read_as,
    read_record,
)
from .agent import decided_fields
from .silences import silence_named

__all__ = [
    "FLEET_VERSION",
    "HOST_STREAM",
    "count_decision",
    "decode_view",
    "evolve_fleet",
    "journaled_plugins",
    "journaled_policy",
    "rebuild_fleet",
    "settle",
    "settles",
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
        counted = observe(
            view,
            entry.ts_ns,
            entry.stream,
            d.context,
            action,
            entry.stream_seq,
            target,
            fingerprint,
        )
        count_decision(view, entry.seq, counted)
    elif kind == "ActionSkipped" or kind == "ActionAwaitingApproval":
        last = view.last_counted
        if last is not None and last[0] == entry.seq - 1:  # in its decision's batch, after it
            if kind == "ActionAwaitingApproval":
                view.awaiting[last[0]] = last[1]
            else:
                reason = read_as(entry, ActionSkipped).reason
                if silence_named(reason) in view.fire_after:
                    view.owed[last[0]] = last[1]  # it runs when the silence ends
                elif reason != DRY_RUN_SKIP:  # a dry run's stands for the run it trials
                    uncount(view, last[1])
    elif kind in _SETTLING and (view.awaiting or view.owed):
        settled = settles(view, entry)
        if settled is not None:
            settle(view, settled, entry.ts_ns)
    elif kind == "EpisodeClosed":
        close_episode(view, entry.stream, read_as(entry, EpisodeClosed).fingerprint)
    elif kind == "FleetIncident":
        open_incident(view, read_as(entry, FleetIncident), entry.ts_ns)
    elif kind == "FleetPolicySet" and entry.stream == HOST_STREAM:
        record = read_as(entry, FleetPolicySet)
        if not 1 <= record.fold <= FLEET_FOLD:
            msg = (
                f"the fleet policy journaled at seq {entry.seq} counts its windows by fold"
                f" {record.fold}, which this version does not know (it knows 1 to {FLEET_FOLD});"
                " upgrade adaptive-runtime to decide from this journal or replay it"
            )
            raise JournalVersionError(msg, found=record.fold, supported=FLEET_FOLD)
        view.policy, view.fold = record.policy, record.fold
    elif kind == "SilenceSet" and entry.stream == HOST_STREAM:
        silence = read_as(entry, SilenceSet)
        if silence.fire_after:
            view.fire_after[silence.id] = None
        else:
            view.fire_after.pop(silence.id, None)
    elif kind == "SilenceEnded" and entry.stream == HOST_STREAM:
        view.fire_after.pop(read_as(entry, SilenceEnded).id, None)
    return view


def count_decision(view: FleetView, seq: int, counted: Counted | None) -> None:
    """After observe(): keep what the decision at `seq` counted, for its batch's next entry
    to take out again (fold 2)."""
    view.last_counted = None if counted is None or view.fold < 2 else (seq, counted)


_SETTLING = frozenset({"ApprovalDecided", "ActionRetried", "ActionAbandoned"})

Settled = tuple[int, Counted, bool]
"""(decision seq, what its decision counted, whether the action runs now)."""


def settles(view: FleetView, entry: Entry) -> Settled | None:
    """What an entry settles of an action the windows counted from its decision and held
    (fold 2): an approval's answer (a yes runs it now, a no takes it out), or the end of
    what a `fire_after` silence owed (run now, or given up unrun). None for anything else.
    It reads the view and changes nothing: `settle` does."""
    kind = entry.kind
    if kind == "ApprovalDecided" and view.awaiting:
        answer = read_as(entry, ApprovalDecided)
        counted = view.awaiting.get(answer.decision_seq)
        return None if counted is None else (answer.decision_seq, counted, answer.approved)
    if kind in ("ActionRetried", "ActionAbandoned") and view.owed:
        record: ActionRetried | ActionAbandoned = (
            read_as(entry, ActionRetried)
            if kind == "ActionRetried"
            else read_as(entry, ActionAbandoned)
        )
        counted = view.owed.get(record.decision_seq)
        return None if counted is None else (record.decision_seq, counted, kind == "ActionRetried")
    return None


def settle(view: FleetView, settled: Settled, ts_ns: int) -> None:
    """Apply what `settles` found, at the settling entry's time."""
    seq, counted, runs = settled
    view.awaiting.pop(seq, None)
    view.owed.pop(seq, None)
    if runs:
        restamp(view, counted, ts_ns)
    else:
        uncount(view, counted)


FLEET_VERSION = "fleet-view/2"
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
