"""What the HTTP API sends and takes: JSON objects with named fields, described in its OpenAPI.

The journal stores a Decision as an array of its fields; the API shows it as an object,
`DecisionView`, made from Decision's own field list so the two can't drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import msgspec

from ..projections.audit import HistoryItem
from ..records import Decision

__all__ = [
    "AgentView",
    "AlertResult",
    "AlertsReceived",
    "ApprovalIn",
    "ApprovalView",
    "AskedBy",
    "BatchResult",
    "DecisionPage",
    "DecisionView",
    "HistoryView",
    "IncidentView",
    "OutcomeIn",
    "OutcomeView",
    "Problem",
    "SilenceIn",
    "SilenceView",
    "decision_view",
    "history_view",
]


def _decision_fields() -> list[tuple[str, Any, Any] | tuple[str, Any]]:
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [("agent", str | None, None)]
    for f in msgspec.structs.fields(Decision):
        if f.default is msgspec.NODEFAULT:
            fields.append((f.name, f.type))
        else:
            fields.append((f.name, f.type, f.default))
    required = [f for f in fields if len(f) == 2]
    optional = [f for f in fields if len(f) == 3]
    return required + optional


if TYPE_CHECKING:

    class DecisionView(msgspec.Struct):
        """A Decision as an object of named fields, with the agent it was made for."""

else:
    DecisionView = msgspec.defstruct(
        "DecisionView", _decision_fields(), kw_only=True, module=__name__
    )


def decision_view(decision: Decision, agent: str | None) -> DecisionView:
    values = {name: getattr(decision, name) for name in decision.__struct_fields__}
    return cast(DecisionView, cast(Any, DecisionView)(agent=agent, **values))


class HistoryView(msgspec.Struct, kw_only=True):
    seq: int
    event_seq: int
    agent: str
    ts_ns: int
    event: dict[str, Any]
    decision: DecisionView


def history_view(item: HistoryItem) -> HistoryView:
    return HistoryView(
        seq=item.seq,
        event_seq=item.event_seq,
        agent=item.stream,
        ts_ns=item.ts_ns,
        event=item.event.as_dict(),
        decision=decision_view(item.decision, item.stream),
    )


class DecisionPage(msgspec.Struct, kw_only=True):
    items: list[HistoryView]
    next: int | None
    """Pass as `before` for the next page; null on the last one."""


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, with the field to fix when one is known."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    field: str | None = None


class BatchResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One event of a batch: its decision, or the problem it alone met."""

    decision: DecisionView | None = None
    problem: Problem | None = None


class OutcomeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seq: int = msgspec.field()
    """The seq of the decision (as returned, or as `GET /v1/decisions` lists it)."""
    success: bool
    id: str | None = None
    """Makes a retry safe: an outcome with an id is journaled once, however often it is
    sent (the same id for another decision or result is a 409)."""


class OutcomeView(msgspec.Struct, kw_only=True):
    decision_seq: int
    agent: str
    success: bool
    recorded: bool
    """False when an outcome with this id was journaled before: nothing was journaled now."""


class AgentView(msgspec.Struct, kw_only=True):
    agent: str
    entries: int
    events: int
    decisions: int
    open_actions: int
    loaded: bool
    last_action: str | None
    last_decision_seq: int | None


class IncidentView(msgspec.Struct, kw_only=True):
    seq: int
    ts_ns: int
    agent: str
    """The agent whose decision made the count."""
    context: str
    agents: list[str]
    rule: str
    open: bool


class AlertResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    status: str
    """decided, already_decided, resolved, already_resolved (an outcome of the decision was
    recorded before: an earlier resolution, or its action's own success), not_acted (a
    resolution of a decision whose action the journal shows never ran: skipped, or
    waiting for or denied an approval; no outcome is recorded, and a request still waiting
    is denied), unknown_alert, or refused
    (this alert alone could not be decided: `problem` says why)."""
    seq: int | None = None
    action: str | None = None
    problem: Problem | None = None


class AlertsReceived(msgspec.Struct, kw_only=True):
    results: list[AlertResult]


class SilenceIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A silence to set: the matcher (each field given must equal the decision's), a time span, why."""

    agent: str | None = None
    target: str | None = None
    event_type: str | None = None
    context: str | None = None
    starts: str | None = None
    """ISO 8601 or Unix seconds; default now."""
    ends: str
    """ISO 8601 or Unix seconds."""
    comment: str
    by: str
    fire_after: bool = False
    """When it ends, run the actions it skipped (once each); by default they never run."""


class AskedBy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Who asks (to end a silence, retry or dismiss a dead letter)."""

    by: str


class ApprovalIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    approve: bool
    by: str
    comment: str = ""


class ApprovalView(msgspec.Struct, kw_only=True):
    decision_seq: int
    agent: str
    action: str
    reason: str
    requested_ns: int
    expires_ns: int
    """Unanswered by then, it is denied."""


class SilenceView(msgspec.Struct, kw_only=True):
    id: str
    agent: str | None
    target: str | None
    event_type: str | None
    context: str | None
    starts_ns: int
    ends_ns: int
    comment: str
    by: str
    fire_after: bool
    state: str
    """in_force, to_come or ended."""
    note: str | None = None
    """Only in the answer to setting one, when it names an agent the journal has no
    entries of (a mistyped name, most often): what the journal's agents are."""
