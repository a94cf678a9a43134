"""Questions asked of the decision history: what happened, why, and how well it went."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from .._text import shown
from ..calibration import Calibration, calibrate
from ..engines.decision import RuleCheck
from ..engines.events import outcome_id
from ..engines.learning import Estimate
from ..engines.legacy import ruleset_v1
from ..engines.pipeline import PluginSet, Policy, weigh
from ..errors import ConfigurationError, JournalCorruptError
from ..journal import Journal
from ..records import (
    ALERT_RESOLVED,
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
    Decision,
    DecisionMade,
    Entry,
    Event,
    EventReceived,
    FleetIncident,
    LearningPolicy,
    OutcomeRecorded,
    read_as,
    read_record,
)
from .agent import DecisionSummary
from .rebuild import rebuild

__all__ = [
    "AgentSummary",
    "Attempt",
    "Explanation",
    "HistoryItem",
    "Outcome",
    "Stats",
    "agent_ids",
    "agents",
    "agents_beside",
    "agents_clause",
    "decision_at",
    "decision_for_event",
    "explain",
    "history",
    "run_started_ns",
    "stats",
]

CONFIDENCE_BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class HistoryItem(msgspec.Struct, frozen=True, kw_only=True):
    """One event and the decision made about it."""

    seq: int
    event_seq: int
    stream: str
    ts_ns: int
    event: Event
    decision: Decision

    def summary(self) -> dict[str, Any]:
        """The item as a flat dict: the decision's main fields and the event as sent."""
        d = self.decision
        return {
            "seq": self.seq,
            "event_seq": self.event_seq,
            "ts_ns": self.ts_ns,
            "type": d.event_type,
            "action": d.action,
            "priority": d.priority,
            "confidence": d.confidence,
            "reason": d.reason,
            "context": d.context,
            "risk": d.risk,
            "rule": d.rule,
            "event_id": d.event_id,
            "event": self.event.as_dict(),
        }


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts_ns: int
    success: bool
    id: str | None = None
    """The id it was recorded under (record_outcome's `id`), if any."""


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One step in carrying out a decision's action."""

    seq: int
    ts_ns: int
    kind: str
    attempt: int
    detail: str


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """Why a decision came out as it did, and what became of it."""

    item: HistoryItem
    rules_tried: tuple[RuleCheck, ...]
    custom_rules: int
    outcomes: tuple[Outcome, ...]
    attempts: tuple[Attempt, ...] = ()
    incident: FleetIncident | None = None
    """The fleet incident this decision opened, if it made the count."""
    learning: LearningPolicy = LearningPolicy()
    """The learning policy the decision was made under."""
    estimates: tuple[Estimate, ...] = ()
    """Each action the rules name for the decision's context and risk, with its learned
    estimate, faded record and bonus; empty when nothing had been learned there yet."""
    rules_not_shown: str | None = None
    """Why `rules_tried` and `estimates` are empty though the decision had rules to try:
    a plugin it was decided with is not installed here at its version. What the journal
    holds (the event, the decision, its attempts and outcomes) is shown all the same."""

    @property
    def never_acted(self) -> bool:
        """Whether the journal says the decision's action has not run: it has steps
        (skipped, waiting for approval or denied, scheduled) and none of them started.
        False with no steps at all: no handler here, so it may have been carried out
        elsewhere."""
        return bool(self.attempts) and all(a.kind != "ActionStarted" for a in self.attempts)


def history(
    journal: Journal,
    *,
    agent: str | None = None,
    event_type: str | None = None,
    action: str | None = None,
    priority: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 20,
    before: int | None = None,
) -> Iterator[HistoryItem]:
    """Yield decisions newest first (in journal order), filtered, up to `limit`.

    `before` is a cursor: only decisions with a smaller seq (the last seq of one page
    gives the next page).

    Times are the clock's, and a clock can step backwards: a decision journaled after
    an older-stamped one still counts, so `since_ns` filters rather than ends the scan.
    """
    if limit <= 0:
        return
    found = 0
    for entry in journal.latest(2**62, agent, kind="DecisionMade", before=before):
        if since_ns is not None and entry.ts_ns < since_ns:
            continue
        if until_ns is not None and entry.ts_ns > until_ns:
            continue
        d = read_as(entry, DecisionMade).decision
        if (
            (event_type is not None and d.event_type != event_type)
            or (action is not None and d.action != action)
            or (priority is not None and d.priority != priority)
        ):
            continue
        yield _item(journal, entry.seq, entry.batch, entry.stream, entry.ts_ns, d)
        found += 1
        if found >= limit:
            return


def _item(
    journal: Journal, seq: int, event_seq: int, stream: str, ts_ns: int, d: Decision
) -> HistoryItem:
    event_entry = journal.get(event_seq)
    if event_entry is None:
        msg = f"the decision at seq {seq} names its event at seq {event_seq}, which is missing"
        raise JournalCorruptError(msg, seq=seq)
    event = read_as(event_entry, EventReceived).event
    decision = msgspec.structs.replace(d, seq=seq, event_seq=event_seq)
    return HistoryItem(
        seq=seq, event_seq=event_seq, stream=stream, ts_ns=ts_ns, event=event, decision=decision
    )


def run_started_ns(journal: Journal, stream: str, decision_seq: int, action: str) -> int | None:
    """When the latest run of a decision's action began: its last attempt 1 (a dead
    letter's retry starts a run anew). None if no attempt has started."""
    started = None
    for entry in journal.read(stream, after=decision_seq, kind=ActionStarted.__name__):
        rec = read_as(entry, ActionStarted)
        if rec.decision_seq == decision_seq and rec.action == action and rec.attempt == 1:
            started = entry.ts_ns
    return started


def decision_at(journal: Journal, seq: int) -> HistoryItem | None:
    """Return the decision journaled at `seq`, with its event, or None."""
    entry = journal.get(seq)
    if entry is None or entry.kind != "DecisionMade":
        return None
    record = read_as(entry, DecisionMade)
    return _item(journal, entry.seq, entry.batch, entry.stream, entry.ts_ns, record.decision)


def decision_for_event(journal: Journal, event_id: str) -> HistoryItem | None:
    """Return the decision made about the event with this id, or None if it was never seen."""
    event_entry = journal.by_event_id(event_id)
    if event_entry is None:
        return None
    found = decision_at(journal, event_entry.seq + 1)
    if found is None or found.event_seq != event_entry.seq:
        return None
    return found


def _not_a_decision(journal: Journal, seq: int, entry: Entry | None) -> str:
    """Why explain can't: an outcome or an attempt names the decision it is about, and a
    step planned with a decision (scheduled, skipped, awaiting approval, an incident)
    shares its transaction."""
    about = None if entry is None else getattr(read_record(entry), "decision_seq", None)
    if entry is not None and about is None and entry.batch < seq:
        first = journal.get(entry.batch + 1)  # the batch's event, then its decision
        if first is not None and first.kind == "DecisionMade" and first.stream == entry.stream:
            about = first.seq
    if entry is not None and type(about) is int and about > 0:
        return f"no decision at seq {seq}: it holds the {entry.kind} of the decision at seq {about}"
    return f"no decision at seq {seq}; `adaptive-runtime history` lists decisions with their seqs"


def explain(journal: Journal, seq: int) -> Explanation:
    """Explain the decision at `seq` (or the one made about the event at `seq`).

    Raises LookupError when no decision is journaled there.
    """
    entry = journal.get(seq)
    if entry is not None and entry.kind == "EventReceived":
        entry = journal.get(seq + 1)
    if entry is None or entry.kind != "DecisionMade":
        raise LookupError(_not_a_decision(journal, seq, entry))
    d = read_as(entry, DecisionMade).decision
    item = _item(journal, entry.seq, entry.batch, entry.stream, entry.ts_ns, d)
    before = rebuild(journal, entry.stream, upto=entry.seq - 1).state  # as replay sees it
    not_shown = None
    try:
        plugins = _plugins_of(d.plugins)
    except ConfigurationError as exc:  # not installed here at its version: show the rest
        plugins, not_shown = None, f"{exc}; install it at that version to see them"
    policy = Policy(rules=before.rules, plugins=plugins, learning=before.learning)
    estimates: tuple[Estimate, ...] = ()
    tried: tuple[RuleCheck, ...] = ()
    if not_shown is None:
        if d.ruleset == policy.ruleset or d.ruleset != ruleset_v1(policy):
            # (engine 1 kept one pooled confidence: no record per action to show)
            estimates = weigh(policy, before.history, d.context, d.risk, d.base_confidence)
        own = {e.action: e.value for e in estimates} if estimates else None
        tried = tuple(policy.decision_engine.explain(d.context, d.risk, d.confidence, own))
    outcomes: list[Outcome] = []
    attempts: list[Attempt] = []
    incident: FleetIncident | None = None
    for later in journal.read(entry.stream, after=entry.seq):
        rec = read_record(later)
        if later.batch == entry.batch and isinstance(rec, FleetIncident):
            incident = rec
            continue
        if isinstance(rec, OutcomeRecorded) and rec.decision_seq == entry.seq:
            outcomes.append(
                Outcome(
                    seq=later.seq,
                    ts_ns=later.ts_ns,
                    success=rec.success,
                    id=outcome_id(later.event_id),
                )
            )
        elif later.batch == entry.batch and isinstance(
            rec, ActionScheduled | ActionSkipped | ActionAwaitingApproval
        ):
            if isinstance(rec, ActionScheduled):
                detail = "scheduled"
            elif isinstance(rec, ActionSkipped):
                detail = f"skipped: {rec.reason}"
            else:
                detail = f"awaiting approval: {rec.reason}"
            attempts.append(
                Attempt(seq=later.seq, ts_ns=later.ts_ns, kind=later.kind, attempt=0, detail=detail)
            )
        elif (
            isinstance(
                rec,
                ApprovalDecided
                | ActionRetried
                | ActionVerifying
                | ActionVerified
                | ActionEscalated,
            )
            and rec.decision_seq == entry.seq
        ):
            if isinstance(rec, ActionVerifying):
                detail = f"verifying {rec.action}: its effect is checked later"
            elif isinstance(rec, ActionVerified):
                verdict = "verified" if rec.ok else "did not work"
                detail = f"{rec.action} {verdict}: {rec.evidence}"
            elif isinstance(rec, ActionEscalated):
                detail = f"escalated to {rec.action} (step {rec.step}): {rec.reason}"
            elif isinstance(rec, ActionRetried):
                detail = f"retried by {rec.by}"
            else:
                verdict = "approved" if rec.approved else "denied"
                detail = f"{verdict} by {rec.by}: {rec.reason}"
            attempts.append(
                Attempt(seq=later.seq, ts_ns=later.ts_ns, kind=later.kind, attempt=0, detail=detail)
            )
        elif (
            isinstance(rec, ActionStarted | ActionSucceeded | ActionFailed | ActionAbandoned)
            and rec.decision_seq == entry.seq
        ):
            attempts.append(_attempt(later.seq, later.ts_ns, rec))
    return Explanation(
        item=item,
        rules_tried=tried,
        custom_rules=len(before.rules),
        outcomes=tuple(outcomes),
        attempts=tuple(attempts),
        incident=incident,
        learning=policy.learning.policy,
        estimates=estimates,
        rules_not_shown=not_shown,
    )


def _plugins_of(labels: tuple[str, ...]) -> PluginSet | None:
    """The plugins a decision names, loaded at its versions, to list the rules it tried."""
    if not labels:
        return None
    from ..plugins import load_labels  # here: only decisions made with plugins need them

    return load_labels(labels)


def _attempt(
    seq: int, ts_ns: int, rec: ActionStarted | ActionSucceeded | ActionFailed | ActionAbandoned
) -> Attempt:
    if isinstance(rec, ActionStarted):
        return Attempt(
            seq=seq, ts_ns=ts_ns, kind="ActionStarted", attempt=rec.attempt, detail="started"
        )
    if isinstance(rec, ActionSucceeded):
        return Attempt(
            seq=seq, ts_ns=ts_ns, kind="ActionSucceeded", attempt=rec.attempt, detail="succeeded"
        )
    if isinstance(rec, ActionFailed):
        then = f"retry in {rec.retry_in:.2f}s" if rec.retry_in is not None else "no retry"
        return Attempt(
            seq=seq,
            ts_ns=ts_ns,
            kind="ActionFailed",
            attempt=rec.attempt,
            detail=f"failed: {rec.error}; {then}",
        )
    never_run = _NEVER_RUN.get(rec.reason) if rec.attempts == 0 else None
    return Attempt(
        seq=seq,
        ts_ns=ts_ns,
        kind="ActionAbandoned",
        attempt=rec.attempts,
        detail=f"abandoned: {rec.reason}"
        if never_run is None
        else f"{rec.action} not run: {never_run}",
    )


_LEFT = "; a dead letter (retry runs it, dismiss drops it)"
_NEVER_RUN = {
    "needs_approval": "the approval policy wants a person's yes" + _LEFT,
    "silenced": "a silence covers the decision" + _LEFT,
    "breaker_open": "its circuit breaker is open" + _LEFT,
    ALERT_RESOLVED: "its alert resolved while a silence held it",
}
"""Why an action abandoned with no attempt was never run, by reason: an escalation step
or an action a silence owed, held by the controls or its breaker (a dead letter), or one
whose alert resolved (nothing left to do)."""


class AgentSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One agent of a journal at a glance."""

    agent: str
    entries: int
    events: int
    decisions: int
    last_decision: DecisionSummary | None
    open_actions: int
    """Actions scheduled or begun and not finished: a restart resumes them."""


def agent_ids(journal: Journal) -> list[str]:
    """The journal's agents: every stream but the runtime's own (`~host`: no agent id
    begins with `~`)."""
    return [stream for stream in journal.streams() if not stream.startswith("~")]


def agents_beside(journal: Journal, agent: str) -> list[str] | None:
    """None if `agent` has entries in the journal; else the agents that do, for a note
    that an operator's control names an agent never seen (a mistyped name, most often)."""
    if journal.stream_head(agent) > 0:
        return None
    return agent_ids(journal)


def agents_clause(names: list[str], limit: int = 10) -> str:
    """The agents `agents_beside` gave, as a clause of a message (the first `limit`), each
    shown on one line with no character a terminal or a log reader would act on."""
    if not names:
        return "the journal holds no agent"
    listed = ", ".join(shown(name) for name in names[:limit])
    return "its agents are: " + listed + (", ..." if len(names) > limit else "")


def agents(journal: Journal) -> list[AgentSummary]:
    """Every agent of the journal, with its entry count, last decision and open actions."""
    out: list[AgentSummary] = []
    for stream in agent_ids(journal):
        state = rebuild(journal, stream).state
        out.append(
            AgentSummary(
                agent=stream,
                entries=state.stream_seq,
                events=state.events,
                decisions=state.decisions,
                last_decision=state.recent[-1] if state.recent else None,
                open_actions=len(state.open_actions),
            )
        )
    return out


class Stats(msgspec.Struct, kw_only=True):
    """Counts over the decision history, and how well confidence predicted outcomes."""

    decisions: int = 0
    by_type: dict[str, int] = {}
    by_action: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    per_hour: dict[int, int] = {}
    """Decisions per hour, keyed by the hour's start in Unix seconds."""
    calibration: list[dict[str, Any]] = []
    """Per confidence band: outcomes recorded, successes, and the success rate."""
    reliability: Calibration = calibrate(())
    """ECE, Brier score and ten reliability bins of the recorded outcomes' confidences."""


def stats(
    journal: Journal, *, agent: str | None = None, progress: Callable[[int], None] | None = None
) -> Stats:
    """Count decisions by type, action, priority and hour; measure calibration from outcomes."""
    result = Stats()
    bands = [[0, 0] for _ in CONFIDENCE_BANDS[1:]]
    pairs: list[tuple[float, bool]] = []
    for count, entry in enumerate(journal.read(agent), start=1):
        if progress is not None and count % 100_000 == 0:
            progress(count)
        if entry.kind == "DecisionMade":
            d = read_as(entry, DecisionMade).decision
            result.decisions += 1
            _bump(result.by_type, d.event_type)
            _bump(result.by_action, d.action)
            _bump(result.by_priority, d.priority)
            hour = entry.ts_ns // 3_600_000_000_000 * 3600
            result.per_hour[hour] = result.per_hour.get(hour, 0) + 1
        elif entry.kind == "OutcomeRecorded":
            outcome = read_as(entry, OutcomeRecorded)
            band = min(int(outcome.confidence * 5), 4)
            bands[band][0] += 1
            bands[band][1] += outcome.success
            pairs.append((outcome.confidence, outcome.success))
    for (low, high), (n, ok) in zip(itertools.pairwise(CONFIDENCE_BANDS), bands, strict=True):
        result.calibration.append(
            {
                "band": f"{low:.1f}-{high:.1f}",
                "outcomes": n,
                "successes": ok,
                "success_rate": round(ok / n, 4) if n else None,
            }
        )
    result.reliability = calibrate(pairs)
    for table in (result.by_type, result.by_action, result.by_priority):
        ordered = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
        table.clear()
        table.update(ordered)
    result.per_hour = dict(sorted(result.per_hour.items()))
    return result


def _bump(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1
