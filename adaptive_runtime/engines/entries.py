"""Check an entry from outside (an import) exactly as the runtime checks what it journals."""

from __future__ import annotations

import math

import msgspec

from .._checks import MAX_LABEL_LENGTH, check_text
from ..errors import InvalidEventError
from ..records import (
    FLEET_FOLD,
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
    ApprovalPolicySet,
    Breaker,
    CheckpointCreated,
    DeadLetterDismissed,
    DeadLetterRetry,
    Decision,
    DecisionMade,
    EpisodeClosed,
    EventReceived,
    FleetIncident,
    FleetPolicySet,
    OutcomeRecorded,
    PluginsSet,
    Record,
    RulesChanged,
    SilenceEnded,
    SilenceSet,
    StatePatched,
    decode_record,
)
from .context import RISK_LEVELS
from .decision import PRIORITIES, parse_rules
from .events import MAX_EVENT_BYTES, check_values, parse_event
from .learning import MAX_HISTORY_WEIGHT
from .silences import check_text_field, new_silence

__all__ = ["check_entry"]

MAX_ERROR_LENGTH = 1000


def check_entry(kind: str, body: bytes, *, max_event_bytes: int = MAX_EVENT_BYTES) -> Record:
    """Decode a body of `kind` and check it as the runtime would have; return the record.

    Raises InvalidEventError naming what is wrong: a body that does not decode (or is
    nested too deeply), one of another kind, or contents the runtime would refuse. An
    event is held to `max_event_bytes`, as the host that journaled it was (its default
    unless that host raised it): past it, EventTooLargeError.
    """
    try:
        record = decode_record(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidEventError(f"the body does not decode as a record ({why})") from None
    if type(record).__name__ != kind:
        msg = f"the entry says it is a {kind} but its body is a {type(record).__name__}"
        raise InvalidEventError(msg, field="kind")
    _check(record, max_event_bytes)
    return record


def _check(record: Record, max_event_bytes: int) -> None:
    if isinstance(record, EventReceived):
        if parse_event(record.event, max_bytes=max_event_bytes) != record.event:
            raise InvalidEventError("the event is not as the runtime journals one", field="event")
    elif isinstance(record, DecisionMade):
        _check_decision(record.decision)
    elif isinstance(record, OutcomeRecorded):
        _label("context", record.context)
        _label("action", record.action)
        _choice("risk", record.risk, RISK_LEVELS)
        _unit("confidence", record.confidence)
        _seq("decision_seq", record.decision_seq)
    elif isinstance(record, StatePatched):
        if check_values(record.values) != record.values:
            raise InvalidEventError("the state patch holds values the runtime would refuse")
    elif isinstance(record, CheckpointCreated):
        if check_values(record.state, what="checkpoint state") != record.state:
            raise InvalidEventError("the checkpoint holds values the runtime would refuse")
    elif isinstance(record, RulesChanged):
        if parse_rules(record.rules) != record.rules:
            raise InvalidEventError("the rules are not as the runtime journals them", field="rules")
        _label("ruleset", record.ruleset)
    elif isinstance(record, ActionScheduled):
        _label("action", record.action)
        _check_breaker(record.breaker)
    elif isinstance(record, ActionSkipped):
        _label("action", record.action)
        _label("reason", record.reason)
    elif isinstance(record, FleetIncident):
        _label("context", record.context)
        _label("rule", record.rule)
        for agent in record.agents:
            _label("agents", agent)
    elif isinstance(record, FleetPolicySet):
        # the policy's own checks ran when it was decoded (FleetPolicy.__post_init__)
        if type(record.fold) is not int or not 1 <= record.fold <= FLEET_FOLD:
            msg = f"fold is 1 to {FLEET_FOLD} (how the fleet's windows count), not {record.fold!r}"
            raise InvalidEventError(msg, field="fold")
    elif isinstance(record, PluginsSet):
        for plugin in record.plugins:
            _label("plugin", plugin.name)
            _label("plugin version", plugin.version)
    elif isinstance(record, SilenceSet):
        checked = new_silence(
            record.matcher,
            starts_ns=record.starts_ns,
            ends_ns=record.ends_ns,
            comment=record.comment,
            by=record.by,
            fire_after=record.fire_after,
        )
        if checked != record:
            raise InvalidEventError("the silence's id is not the hash of what it is", field="id")
    elif isinstance(record, SilenceEnded):
        check_text_field("id", record.id)
        check_text_field("by", record.by)
    elif isinstance(record, ApprovalPolicySet):
        for action in record.policy.actions:
            _label("actions", action)
        for risk in record.policy.risks:
            _choice("risks", risk, RISK_LEVELS)
    elif isinstance(record, ActionAwaitingApproval):
        _label("action", record.action)
        _label("reason", record.reason)
    elif isinstance(record, ApprovalGiven | DeadLetterRetry | DeadLetterDismissed):
        _label("agent", record.agent)
        _seq("decision_seq", record.decision_seq)
        check_text_field("by", record.by)
    elif isinstance(record, ActionVerifying | ActionVerified | ActionEscalated):
        _seq("decision_seq", record.decision_seq)
        _label("action", record.action)
        if isinstance(record, ActionVerified):
            _label("evidence", record.evidence)
        if isinstance(record, ActionEscalated):
            _count("step", record.step)
            _label("reason", record.reason)
    elif isinstance(record, EpisodeClosed):
        _label("fingerprint", record.fingerprint)
        _label("reason", record.reason)
    elif isinstance(record, ApprovalDecided | ActionRetried):
        _seq("decision_seq", record.decision_seq)
        _label("action", record.action)
        check_text_field("by", record.by)
    else:
        _check_action_step(record)


def _check_action_step(
    record: ActionStarted | ActionSucceeded | ActionFailed | ActionAbandoned,
) -> None:
    _seq("decision_seq", record.decision_seq)
    _label("action", record.action)
    _count("attempt", record.attempts if isinstance(record, ActionAbandoned) else record.attempt)
    if isinstance(record, ActionSucceeded | ActionFailed):
        _check_breaker(record.breaker)
    if isinstance(record, ActionFailed):
        check_text("error", record.error, MAX_ERROR_LENGTH)
        if record.retry_in is not None and not (
            math.isfinite(record.retry_in) and record.retry_in >= 0
        ):
            raise InvalidEventError("retry_in must be a finite number of seconds", field="retry_in")
    if isinstance(record, ActionAbandoned):
        _label("reason", record.reason)


def _check_decision(d: Decision) -> None:
    for name in ("action", "reason", "context", "rule", "ruleset", "event_type", "stability"):
        _label(name, getattr(d, name))
    _choice("risk", d.risk, RISK_LEVELS)
    _choice("priority", d.priority, PRIORITIES)
    for name in ("confidence", "pressure", "base_confidence"):
        _unit(name, getattr(d, name), 2.0)
    # a learned confidence over its prior, which may be as low as FLOOR
    _unit("history_weight", d.history_weight, MAX_HISTORY_WEIGHT)
    _unit("risk_factor", d.risk_factor, 2.0)
    for tag in d.tags:
        _label("tags", tag)
    if d.event_id is not None:
        _label("event_id", d.event_id)
    for name in ("ts_ns", "seq", "event_seq"):
        _count(name, getattr(d, name))


def _check_breaker(breaker: Breaker) -> None:
    _count("breaker.failures", breaker.failures)
    _count("breaker.opened_at_ns", breaker.opened_at_ns)


def _label(name: str, value: str) -> None:
    if not value:
        raise InvalidEventError(f"{name!r} must not be empty", field=name)
    check_text(name, value, MAX_LABEL_LENGTH)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        msg = f"{name!r} must be one of {', '.join(allowed)}, not {value!r}"
        raise InvalidEventError(msg, field=name)


def _unit(name: str, value: float, high: float = 1.0) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= high):
        raise InvalidEventError(f"{name!r} must be a number from 0 to {high:g}", field=name)


def _count(name: str, value: int) -> None:
    if not 0 <= value < 2**63:
        raise InvalidEventError(f"{name!r} must be from 0 to 2**63-1", field=name)


def _seq(name: str, value: int) -> None:
    if not 0 < value < 2**63:
        raise InvalidEventError(f"{name!r} must be a seq from 1 to 2**63-1", field=name)
