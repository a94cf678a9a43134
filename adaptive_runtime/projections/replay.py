"""Re-decide journaled events: verify determinism, or ask what other rules would have done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from ..engines.confidence import ConfidenceParams, History
from ..engines.confidence import record as record_pooled
from ..engines.events import fingerprint_of, target_of
from ..engines.fleet import FleetView, acting, gate_in_fleet, observe, open_incident
from ..engines.learning import Learning, Outcomes
from ..engines.learning import record as record_outcome
from ..engines.legacy import decide_v1, ruleset_v1
from ..engines.pipeline import PluginSet, Policy, decide
from ..errors import ReplayMismatchError
from ..journal import Journal
from ..records import (
    FLEET_FOLD,
    Decision,
    DecisionMade,
    Entry,
    Event,
    EventReceived,
    FleetPolicy,
    LearningPolicy,
    OutcomeRecorded,
    Rule,
    read_record,
)
from .agent import AgentState, evolve
from .fleet import count_decision, evolve_fleet, journaled_policy

__all__ = ["Mismatch", "Redecided", "ReplayReport", "redecide", "verify_replay", "what_if"]

_encode = msgspec.msgpack.Encoder().encode
Progress = Callable[[int], None]


class Redecided(msgspec.Struct, frozen=True, kw_only=True):
    """One journaled decision beside the one the engines make for it now."""

    seq: int
    event: Event
    journaled: Decision
    now: Decision

    @property
    def same_bytes(self) -> bool:
        return _encode(self.journaled) == _encode(self.now)


class Mismatch(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    fields: tuple[str, ...]
    """The decision fields that differ."""
    journaled: Decision
    replayed: Decision


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    decisions: int
    mismatches: tuple[Mismatch, ...]

    def check(self) -> None:
        """Raise ReplayMismatchError for the first mismatch, if there is one."""
        if self.mismatches:
            first = self.mismatches[0]
            msg = (
                f"{len(self.mismatches)} of {self.decisions} decisions differ on replay; the first is "
                f"seq {first.seq} ({', '.join(first.fields)}): run `adaptive-runtime replay --verify`"
            )
            raise ReplayMismatchError(msg, seq=first.seq)


_MADE_ANEW = ("EventReceived", "DecisionMade", "FleetIncident")
"""The kinds whose part in the fleet view replay makes again from the decisions it makes
now; the fleet view folds every other entry as the journal holds it (evolve_fleet)."""


def redecide(
    journal: Journal,
    stream: str | None = None,
    *,
    rules: Sequence[Rule] | None = None,
    fleet: FleetPolicy | None = None,
    learning: LearningPolicy | None = None,
    progress: Progress | None = None,
) -> Iterator[Redecided]:
    """Yield every journaled decision beside a fresh one, each made from the state before it.

    With `rules`, the fresh decisions are made under those custom rules instead of the
    journaled ones, with `fleet` under that fleet policy, and with `learning` under that
    learning policy (a what-if). The outcomes, and the fleet's journaled decisions, still
    come from the journal: a what-if learns from the outcomes the journaled actions had
    (folded with its own fade), since no one knows how the others would have gone. Fleet
    state is folded over every stream in the journal's global order, as the host kept it.
    """
    states: dict[str, AgentState] = {}
    learned: dict[str, Outcomes] = {}  # a what-if learning policy's own fold of the outcomes
    pooled: dict[str, History] = {}  # engine 1's fold, for decisions journaled by engine 1
    policies: dict[tuple[object, ...], Policy] = {}
    legacy: dict[tuple[object, ...], str] = {}
    events: dict[str, tuple[Entry, Event]] = {}
    plugin_sets: dict[tuple[str, ...], PluginSet] = {(): PluginSet()}
    view = FleetView() if fleet is not None or journaled_policy(journal) is not None else None
    source = journal.read() if view is not None else journal.read(stream)  # fleet: global order
    for count, entry in enumerate(source, start=1):
        if progress is not None and count % 100_000 == 0:
            progress(count)
        state = states.get(entry.stream)
        if state is None:
            state = states[entry.stream] = AgentState(stream=entry.stream)
        record = read_record(entry)
        if isinstance(record, EventReceived):
            events[entry.stream] = (entry, record.event)
        elif isinstance(record, DecisionMade):
            event_entry, event = events.pop(entry.stream)
            # the plugins its host had (hosts on one journal may differ, in a rolling upgrade)
            labels = record.decision.plugins
            plugins = plugin_sets.get(labels)
            if plugins is None:
                plugins = plugin_sets[labels] = _load_plugins(labels)
            in_force = state.rules if rules is None else tuple(rules)
            learns = state.learning if learning is None else learning
            key = (in_force, plugins.refs, learns)
            policy = policies.get(key)
            if policy is None:
                policy = policies[key] = Policy(rules=in_force, plugins=plugins, learning=learns)
            made = record.decision.ruleset
            if made != policy.ruleset and rules is None and learning is None:
                if key not in legacy:
                    legacy[key] = ruleset_v1(policy)
                by_engine_1 = made == legacy[key]
            else:
                by_engine_1 = False
            if by_engine_1:  # journaled before engine 2: re-decide it as engine 1 did
                history = pooled.get(entry.stream, History())
                fresh = decide_v1(policy, history, event, event_entry.ts_ns)
            else:
                outcomes = (
                    state.history if learning is None else learned.get(entry.stream, Outcomes())
                )
                fresh = decide(policy, outcomes, event, event_entry.ts_ns)
            if view is not None:
                if fleet is not None:  # a what-if counts as a host would journal it now
                    view.policy, view.fold = fleet, FLEET_FOLD
                target, fingerprint = target_of(event.attrs), fingerprint_of(event.attrs)
                fresh, incident = gate_in_fleet(
                    view, fresh, entry.stream, policy.decision_engine, target, fingerprint
                )
                # the view follows the decisions made now, so a what-if counts its own actions
                ts = entry.ts_ns
                counted = observe(
                    view,
                    ts,
                    entry.stream,
                    fresh.context,
                    acting(fresh),
                    entry.stream_seq,
                    target,
                    fingerprint,
                )
                count_decision(view, entry.seq, counted)
                if incident is not None:
                    open_incident(view, incident, ts)
            if stream is None or entry.stream == stream:
                yield Redecided(seq=entry.seq, event=event, journaled=record.decision, now=fresh)
        elif isinstance(record, OutcomeRecorded):
            pooled[entry.stream] = record_pooled(
                ConfidenceParams(),
                pooled.get(entry.stream, History()),
                record.context,
                record.risk,
                record.success,
            )
            if learning is not None:
                learned[entry.stream] = record_outcome(
                    Learning(learning),
                    learned.get(entry.stream, Outcomes()),
                    record.context,
                    record.risk,
                    record.action,
                    record.success,
                )
        if view is not None and entry.kind not in _MADE_ANEW:
            evolve_fleet(view, entry)
        evolve(state, entry)


def verify_replay(
    journal: Journal, stream: str | None = None, *, progress: Progress | None = None
) -> ReplayReport:
    """Re-decide every event from an empty state and compare, byte for byte, with the journal."""
    mismatches: list[Mismatch] = []
    decisions = 0
    for item in redecide(journal, stream, progress=progress):
        decisions += 1
        if not item.same_bytes:
            mismatches.append(
                Mismatch(
                    seq=item.seq,
                    fields=_differing(item.journaled, item.now),
                    journaled=item.journaled,
                    replayed=item.now,
                )
            )
    return ReplayReport(ok=not mismatches, decisions=decisions, mismatches=tuple(mismatches))


def what_if(
    journal: Journal,
    rules: Iterable[Rule] | None,
    stream: str | None = None,
    *,
    fleet: FleetPolicy | None = None,
    learning: LearningPolicy | None = None,
) -> list[Redecided]:
    """The journaled decisions whose action would change under other rules or policies."""
    return [
        r
        for r in redecide(
            journal,
            stream,
            rules=None if rules is None else tuple(rules),
            fleet=fleet,
            learning=learning,
        )
        if r.now.action != r.journaled.action
    ]


def _differing(a: Decision, b: Decision) -> tuple[str, ...]:
    left: Mapping[str, Any] = msgspec.structs.asdict(a)
    right: Mapping[str, Any] = msgspec.structs.asdict(b)
    return tuple(name for name in left if _encode(left[name]) != _encode(right[name]))


def _load_plugins(labels: tuple[str, ...]) -> PluginSet:
    """The plugins a decision was made with, at those versions (or a clear error why not)."""
    from ..plugins import load_labels  # here: only journals with plugins look at entry points

    return load_labels(labels)
