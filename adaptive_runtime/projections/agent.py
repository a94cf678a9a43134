"""The agent-state projection: one fold over a stream's entries, for the live path and replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ..engines.learning import Learning, Outcomes
from ..engines.learning import record as record_outcome
from ..records import (
    ActionAbandoned,
    ActionEscalated,
    ActionFailed,
    ActionRetried,
    ActionScheduled,
    ActionSkipped,
    ActionStarted,
    ActionSucceeded,
    ActionVerified,
    ActionVerifying,
    ApprovalDecided,
    Breaker,
    CheckpointCreated,
    DecisionMade,
    Entry,
    LearningPolicy,
    OutcomeRecorded,
    Rule,
    RulesChanged,
    StatePatched,
    decode_record,
    read_record,
)

__all__ = ["RECENT", "AgentState", "DecisionSummary", "OpenAction", "apply_patch", "evolve"]

RECENT = 20
"""How many of the latest decisions the state keeps at hand."""
_DEFAULT_LEARNING = Learning()


class DecisionSummary(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    ts_ns: int
    event_type: str
    action: str
    priority: str
    confidence: float
    risk: str


class OpenAction(msgspec.Struct, frozen=True, array_like=True):
    """An action that was scheduled and has not finished: resumed or abandoned on start."""

    action: str
    attempt: int = 0
    """The last attempt started (0: none yet)."""
    running: bool = False
    """An attempt started and has no result: the process stopped during it."""
    due_ns: int = 0
    """When the next attempt may start."""
    retrying: bool = True
    """False once the last attempt failed with no retry to follow: only the abandon is missing."""
    verifying: bool = False
    """The handler returned; the check of its effect is due at `due_ns`."""

    @property
    def step(self) -> str:
        """Where it stands: scheduled, running, retrying, verifying, or failed (its last
        attempt failed with no retry to follow: only its abandon is missing)."""
        if self.verifying:
            return "verifying"
        if self.running:
            return "running"
        if not self.retrying:
            return "failed"
        return "retrying" if self.attempt else "scheduled"


class AgentState(msgspec.Struct, kw_only=True):
    """Everything one agent's engines and callers need, folded from its stream.

    The fold owns its state and updates it in place: replaying a million entries
    must not allocate a new state for each.
    """

    stream: str = ""
    seq: int = 0
    """The global seq of the last entry folded in (0: none)."""
    stream_seq: int = 0
    ts_ns: int = 0
    events: int = 0
    decisions: int = 0
    outcomes: int = 0
    successes: int = 0
    actions: dict[str, int] = {}
    priorities: dict[str, int] = {}
    history: Outcomes = Outcomes()
    """Each action's faded record of successes and failures, by (context, risk)."""
    rules: tuple[Rule, ...] = ()
    learning: LearningPolicy | None = None
    """The learning policy journaled last (None: the default)."""
    kv: dict[str, Any] | None = None
    checkpoints: int = 0
    recent: list[DecisionSummary] = []
    last_decision_seq: int = 0
    breakers: dict[str, Breaker] = {}
    open_actions: dict[int, OpenAction] = {}
    """Keyed by the seq of the decision whose action it is."""
    action_attempts: int = 0
    action_failures: int = 0
    actions_succeeded: int = 0
    actions_abandoned: int = 0
    actions_skipped: int = 0


class _DecidedFields(msgspec.Struct, frozen=True, array_like=True):
    """A Decision's leading fields, up to the last the fold reads; the rest are not decoded."""

    action: str
    confidence: float
    reason: str
    priority: str
    context: str
    risk: str
    stability: str
    pressure: float
    rule: str
    ruleset: str
    event_type: str


class _DecisionMadeFields(msgspec.Struct, frozen=True, tag="DecisionMade", array_like=True):
    decision: _DecidedFields


_fast_summary = msgspec.msgpack.Decoder(_DecisionMadeFields).decode


def decided_fields(body: bytes) -> _DecisionMadeFields:
    """The leading fields of a DecisionMade body (the folds read no more); old map bodies too."""
    try:
        return _fast_summary(body)
    except msgspec.DecodeError:
        # an entry of the earlier map encoding: the whole-record decoder reads that too
        record = decode_record(body)
        if not isinstance(record, DecisionMade):
            raise
        d = record.decision
        leading = (getattr(d, name) for name in _DecidedFields.__struct_fields__)
        return _DecisionMadeFields(_DecidedFields(*leading))


def apply_patch(state: Mapping[str, Any] | None, patch: StatePatched) -> dict[str, Any]:
    """Return the key/value state after one StatePatched entry."""
    if patch.replace or state is None:
        return dict(patch.values)
    merged = dict(state)
    merged.update(patch.values)
    return merged


def evolve(state: AgentState, entry: Entry) -> AgentState:
    """Fold one entry into the state; an entry already folded in is ignored."""
    if entry.seq <= state.seq:
        return state
    state.seq = entry.seq
    state.stream_seq = entry.stream_seq
    state.ts_ns = entry.ts_ns
    # Half of a journal is events and half decisions: fold those two without decoding
    # more than the fold needs (an event's body not at all).
    if entry.kind == "EventReceived":
        state.events += 1
        return state
    if entry.kind == "DecisionMade":
        try:
            d = decided_fields(entry.body).decision
        except msgspec.DecodeError:
            read_record(entry)  # raises the typed error, naming the seq
            raise
        state.last_decision_seq = entry.seq
        state.decisions += 1
        state.actions[d.action] = state.actions.get(d.action, 0) + 1
        state.priorities[d.priority] = state.priorities.get(d.priority, 0) + 1
        state.recent.append(
            DecisionSummary(
                entry.seq, entry.ts_ns, d.event_type, d.action, d.priority, d.confidence, d.risk
            )
        )
        if len(state.recent) > RECENT:
            del state.recent[0]
        return state
    record = read_record(entry)
    if isinstance(record, OutcomeRecorded):
        state.outcomes += 1
        state.successes += record.success
        learning = _DEFAULT_LEARNING if state.learning is None else Learning(state.learning)
        state.history = record_outcome(
            learning, state.history, record.context, record.risk, record.action, record.success
        )
    elif isinstance(record, StatePatched):
        state.kv = apply_patch(state.kv, record)
    elif isinstance(record, RulesChanged):
        state.rules = record.rules
        state.learning = record.learning
    elif isinstance(record, CheckpointCreated):
        state.checkpoints += 1
    else:
        _evolve_action(state, entry, record)
    return state


def _evolve_action(state: AgentState, entry: Entry, record: object) -> None:
    opened = state.open_actions
    if isinstance(record, ActionScheduled):
        opened[state.last_decision_seq] = OpenAction(record.action, due_ns=entry.ts_ns)
        state.breakers[record.action] = record.breaker
    elif isinstance(record, ActionSkipped):
        state.actions_skipped += 1
    elif isinstance(record, ActionVerifying):
        opened[record.decision_seq] = OpenAction(
            record.action, due_ns=record.due_ns, verifying=True
        )
    elif isinstance(record, ActionVerified):
        opened.pop(record.decision_seq, None)
    elif isinstance(record, ActionEscalated):
        opened[record.decision_seq] = OpenAction(record.action, due_ns=entry.ts_ns)
    elif isinstance(record, ApprovalDecided | ActionRetried):
        if not isinstance(record, ApprovalDecided) or record.approved:
            # approved, or retried: scheduled from here, as ActionScheduled schedules
            opened[record.decision_seq] = OpenAction(record.action, due_ns=entry.ts_ns)
    elif isinstance(record, ActionStarted):
        state.action_attempts += 1
        opened[record.decision_seq] = OpenAction(record.action, record.attempt, True, entry.ts_ns)
    elif isinstance(record, ActionFailed):
        state.action_failures += 1
        state.breakers[record.action] = record.breaker
        if record.decision_seq in opened:
            wait_ns = round((record.retry_in or 0.0) * 1e9)
            opened[record.decision_seq] = OpenAction(
                record.action,
                record.attempt,
                False,
                entry.ts_ns + wait_ns,
                record.retry_in is not None,
            )
    elif isinstance(record, ActionSucceeded):
        state.actions_succeeded += 1
        state.breakers[record.action] = record.breaker
        opened.pop(record.decision_seq, None)
    elif isinstance(record, ActionAbandoned):
        state.actions_abandoned += 1
        opened.pop(record.decision_seq, None)
