"""What each journal entry says, as data: the live stream's messages, and `tail`'s lines.

An entry of a decision, an outcome, a step of an action's life, a fleet incident or an
operator's request gives a message: its name, and the fields a reader of the stream (or
of `tail`) wants, without decoding the record again. Other entries (events, snapshots,
rules, policies...) give none: a decision's message names its event.
"""

from __future__ import annotations

from typing import Any

from ..records import (
    ActionAbandoned,
    ActionAwaitingApproval,
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
    ApprovalGiven,
    DeadLetterDismissed,
    DeadLetterRetry,
    DecisionMade,
    Entry,
    FleetIncident,
    OutcomeRecorded,
    SilenceEnded,
    SilenceSet,
    read_record,
)

__all__ = ["message_of"]


def message_of(entry: Entry) -> tuple[str, dict[str, Any]] | None:
    """The feed's message for an entry (event name, data), or None for entries it leaves out."""
    kind = entry.kind
    base: dict[str, Any] = {"seq": entry.seq, "agent": entry.stream, "ts_ns": entry.ts_ns}
    if kind == "DecisionMade":
        record = read_record(entry)
        assert isinstance(record, DecisionMade)
        d = record.decision
        return "decision", base | {
            "event_seq": entry.batch,
            "event_type": d.event_type,
            "action": d.action,
            "priority": d.priority,
            "confidence": d.confidence,
            "reason": d.reason,
            "context": d.context,
            "risk": d.risk,
            "rule": d.rule,
            "instead_of": d.instead_of,
            "degraded_from": d.degraded_from,
        }
    if kind in _ACTION_KINDS:
        return "action", base | _action(entry, read_record(entry))
    if kind == "OutcomeRecorded":
        outcome = read_record(entry)
        assert isinstance(outcome, OutcomeRecorded)
        return "outcome", base | {
            "decision_seq": outcome.decision_seq,
            "action": outcome.action,
            "success": outcome.success,
            "confidence": outcome.confidence,
            "context": outcome.context,
        }
    if kind in _CONTROL_KINDS:
        return "control", base | _control(read_record(entry))
    if kind == "FleetIncident":
        incident = read_record(entry)
        assert isinstance(incident, FleetIncident)
        return "incident", base | {
            "context": incident.context,
            "agents": list(incident.agents),
            "rule": incident.rule,
        }
    return None


_ACTION_KINDS = frozenset(
    {
        "ActionScheduled",
        "ActionSkipped",
        "ActionStarted",
        "ActionSucceeded",
        "ActionFailed",
        "ActionAbandoned",
        "ActionAwaitingApproval",
        "ApprovalDecided",
        "ActionRetried",
        "ActionVerifying",
        "ActionVerified",
        "ActionEscalated",
    }
)


_CONTROL_KINDS = frozenset(
    {"SilenceSet", "SilenceEnded", "ApprovalGiven", "DeadLetterRetry", "DeadLetterDismissed"}
)


def _control(record: object) -> dict[str, Any]:
    """A control message's fields: an operator's request, as the `~host` stream holds it.
    Its `agent` is the agent the request is for: for a silence, the one it matches (None:
    any), and None for a silence's end, which names only the silence."""
    if isinstance(record, SilenceSet):
        return {
            "control": "silence_set",
            "id": record.id,
            "agent": record.matcher.agent,
            "target": record.matcher.target,
            "event_type": record.matcher.event_type,
            "context": record.matcher.context,
            "starts_ns": record.starts_ns,
            "ends_ns": record.ends_ns,
            "comment": record.comment,
            "by": record.by,
            "fire_after": record.fire_after,
        }
    if isinstance(record, SilenceEnded):
        return {"control": "silence_ended", "id": record.id, "agent": None, "by": record.by}
    if isinstance(record, ApprovalGiven):
        return {
            "control": "approval_answered",
            "agent": record.agent,
            "decision_seq": record.decision_seq,
            "approve": record.approve,
            "by": record.by,
            "comment": record.comment,
        }
    assert isinstance(record, DeadLetterRetry | DeadLetterDismissed)
    return {
        "control": "dead_letter_retry"
        if isinstance(record, DeadLetterRetry)
        else "dead_letter_dismissed",
        "agent": record.agent,
        "decision_seq": record.decision_seq,
        "by": record.by,
    }


def _action(entry: Entry, record: object) -> dict[str, Any]:
    """An action message's fields: `status` says which step of the action's life it is."""
    if isinstance(record, ActionScheduled):
        return {"action": record.action, "status": "scheduled", "breaker": record.breaker.status}
    if isinstance(record, ActionSkipped):
        return {"action": record.action, "status": "skipped", "detail": record.reason}
    if isinstance(record, ActionStarted):
        return {
            "action": record.action,
            "status": "started",
            "decision_seq": record.decision_seq,
            "attempt": record.attempt,
        }
    if isinstance(record, ActionSucceeded):
        return {
            "action": record.action,
            "status": "succeeded",
            "decision_seq": record.decision_seq,
            "attempt": record.attempt,
            "breaker": record.breaker.status,
        }
    if isinstance(record, ActionFailed):
        return {
            "action": record.action,
            "status": "failed",
            "decision_seq": record.decision_seq,
            "attempt": record.attempt,
            "detail": record.error,
            "breaker": record.breaker.status,
        }
    if isinstance(record, ActionAbandoned):
        return {
            "action": record.action,
            "status": "abandoned",
            "decision_seq": record.decision_seq,
            "detail": record.reason,
        }
    return _awaited(entry, record)


def _awaited(entry: Entry, record: object) -> dict[str, Any]:
    """The steps where an action waits: for a person, or for the check of its effect."""
    if isinstance(record, ActionAwaitingApproval):
        return {
            "action": record.action,
            "status": "awaiting_approval",
            "decision_seq": entry.seq - 1,  # journaled right after its decision, in one batch
            "detail": record.reason,
            "expires_ns": record.expires_ns,
        }
    if isinstance(record, ApprovalDecided):
        return {
            "action": record.action,
            "status": "approved" if record.approved else "denied",
            "decision_seq": record.decision_seq,
            "detail": record.reason,
            "by": record.by,
        }
    if isinstance(record, ActionRetried):
        return {
            "action": record.action,
            "status": "retried",
            "decision_seq": record.decision_seq,
            "by": record.by,
        }
    if isinstance(record, ActionVerifying):
        return {
            "action": record.action,
            "status": "verifying",
            "decision_seq": record.decision_seq,
            "due_ns": record.due_ns,
        }
    if isinstance(record, ActionVerified):
        return {
            "action": record.action,
            "status": "verified" if record.ok else "verification_failed",
            "decision_seq": record.decision_seq,
            "detail": record.evidence,
        }
    assert isinstance(record, ActionEscalated)
    return {
        "action": record.action,
        "status": "escalated",  # `action` is the step escalated to; `step`, its place
        "decision_seq": record.decision_seq,
        "detail": record.reason,
        "step": record.step,
    }
