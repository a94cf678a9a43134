"""One agent of a Host: the Runtime API (process, outcomes, rules, actions, views) for its stream."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .._crashpoints import crash_point
from ..engines.backoff import BreakerPolicy, RetryPolicy
from ..engines.context import ContextEngine
from ..engines.decision import DecisionEngine
from ..engines.events import (
    AGENT_FIELD,
    event_list,
    fingerprint_of,
    outcome_key,
    parse_event,
    repeats,
    target_of,
)
from ..engines.fleet import acting, gate_in_fleet, held_back, observe, open_incident, uncount
from ..engines.original import ConfidenceEngine, pooled
from ..engines.pipeline import decide
from ..engines.reachable import unmatched_rules
from ..errors import (
    AdaptiveRuntimeError,
    ConfigurationError,
    DecisionTooSlowError,
    DuplicateEventError,
    InvalidEventError,
)
from ..observability.logs import logger_for
from ..original.recovery import RecoveryEngine
from ..original.state import StateEngine
from ..projections import AgentState
from ..projections.audit import HistoryItem, decision_for_event, history
from ..records import (
    ActionScheduled,
    ActionSkipped,
    Decision,
    DecisionMade,
    Entry,
    EpisodeClosed,
    Event,
    EventReceived,
    FleetBatch,
    OutcomeRecorded,
    Pending,
    Rule,
    RulesChanged,
    RuntimeBatch,
    read_as,
    to_pending,
)
from .actions import Handler, Resume, Verification, register_action
from .bus import EventBus
from .ledger import Ledger
from .rules import LearningArg, RulesArg, learning_from, rules_from

if TYPE_CHECKING:
    from .host import Host

__all__ = ["Agent"]

_SCHEDULED = ActionScheduled.__name__
log_runtime = logger_for("RUNTIME")
log_context = logger_for("CONTEXT_ENGINE")
log_confidence = logger_for("CONFIDENCE_ENGINE")
log_decision = logger_for("DECISION_ENGINE")
log_state = logger_for("STATE_ENGINE")


class Agent:
    """A handle on one agent of a host; its state is rebuilt on first use, and after eviction."""

    __slots__ = ("__weakref__", "_host", "agent_id", "recovery_engine", "state_engine")

    def __init__(self, host: Host, agent_id: str) -> None:
        self._host = host
        self.agent_id = agent_id
        store = _AgentStore(self)
        self.state_engine = StateEngine(store, agent_id, clock=host.clock)
        self.recovery_engine = RecoveryEngine(store, agent_id, clock=host.clock)

    def __repr__(self) -> str:
        return f"Agent({self.agent_id!r}, loaded={self._host.loaded(self.agent_id) is not None})"

    @property
    def bus(self) -> EventBus:
        """The host's event bus: handlers hear events of every agent it serves."""
        return self._host.bus

    async def load(self) -> AgentState:
        """Rebuild the agent's state now if it is not loaded, and return it."""
        return (await self._host.ledger(self.agent_id)).state

    # -- the work --------------------------------------------------------------

    async def process(self, event: Mapping[str, Any] | Event) -> Decision:
        """Decide about one event; return once the event and the decision are journaled.

        An event whose `id` was processed before returns the recorded decision and
        appends nothing (if its body differs, DuplicateEventError). Bad input raises
        InvalidEventError and journals nothing.
        """
        host = self._host
        ledger = await host.ledger(self.agent_id)
        started = time.perf_counter()
        ev = self._addressed(parse_event(event, redact=host.redact, max_bytes=host.max_event_bytes))
        if ev.id is not None:
            worker = ledger.worker
            recorded = self._recorded(
                ev, await worker.run(decision_for_event, worker.journal, ev.id)
            )
            if recorded is not None:
                ledger.metrics.count("events_deduplicated")
                return recorded
        made: list[Decision] = []
        if host.fleet_stale:
            await host.resync_fleet()
        try:
            entries, fresh = await ledger.submit(self._batch(ledger, ev, made))
        except BaseException:
            host.actions.release(id(made))  # the place its action held under max_in_flight
            if host.fleet is not None and made:
                host.fleet_stale = True  # the view holds a decision that was not journaled
            raise
        crash_point("process.committed")
        return self._committed(ledger, ev, made, entries, fresh, started)

    async def process_many(
        self, events: Sequence[Mapping[str, Any] | Event]
    ) -> list[Decision | AdaptiveRuntimeError]:
        """Decide about several events in order, journaled in one commit; one result each.

        Each result is the event's Decision, or the error that event alone met (bad
        input, an id reused with another body...): a bad event never stops the others.
        """
        host = self._host
        events = event_list(events)
        ledger = await host.ledger(self.agent_id)
        started = time.perf_counter()
        results: list[Decision | AdaptiveRuntimeError | None] = [None] * len(events)
        parsed: list[tuple[int, Event]] = []
        for index, event in enumerate(events):
            try:
                parsed.append(
                    (
                        index,
                        self._addressed(
                            parse_event(event, redact=host.redact, max_bytes=host.max_event_bytes)
                        ),
                    )
                )
            except AdaptiveRuntimeError as exc:
                results[index] = exc
        ids = [ev.id for _, ev in parsed if ev.id is not None]
        worker = ledger.worker
        journal = worker.journal
        known = (
            await worker.run(lambda: {i: decision_for_event(journal, i) for i in ids})
            if ids
            else {}
        )
        todo: list[tuple[int, Event]] = []
        first_of: dict[str, tuple[int, Event]] = {}
        repeats: list[tuple[int, tuple[int, Event], Event]] = []  # an id again in this call
        for index, ev in parsed:
            try:
                if ev.id is not None:
                    recorded = self._recorded(ev, known.get(ev.id))
                    if recorded is not None:
                        results[index] = recorded
                        continue
                    earlier = first_of.get(ev.id)
                    if earlier is not None:
                        repeats.append((index, earlier, ev))
                        continue
                    first_of[ev.id] = (index, ev)
            except AdaptiveRuntimeError as exc:
                results[index] = exc
                continue
            todo.append((index, ev))
        if host.fleet_stale:
            await host.resync_fleet()
        made: list[list[Decision]] = [[] for _ in todo]
        try:
            answers = await ledger.submit_many(
                [self._batch(ledger, ev, made[k]) for k, (_, ev) in enumerate(todo)]
            )
        except BaseException:  # cancelled, or the host stopped: no action starts from here
            for decided in made:
                host.actions.release(id(decided))
            if host.fleet is not None and any(made):
                host.fleet_stale = True
            raise
        for k, ((index, ev), answer) in enumerate(zip(todo, answers, strict=True)):
            if isinstance(answer, BaseException):
                host.actions.release(id(made[k]))
                if host.fleet is not None and made[k]:
                    host.fleet_stale = True
                if not isinstance(answer, AdaptiveRuntimeError):
                    raise answer
                results[index] = answer
                continue
            entries, fresh = answer
            results[index] = self._committed(ledger, ev, made[k], entries, fresh, started)
        for index, (first, first_ev), ev in repeats:
            # answered as the first was, once its seq is known; another body is refused
            result = results[first]
            if isinstance(result, Decision) and first_ev != ev:
                msg = (
                    f"event id {ev.id!r} was journaled at seq {result.event_seq}, earlier in this"
                    " call, with a different body; use a new id for a new event"
                )
                result = DuplicateEventError(msg, event_id=str(ev.id), seq=result.event_seq or 0)
            results[index] = result
        return [r for r in results if r is not None]

    def _addressed(self, ev: Event) -> Event:
        """The event, unless its agent_id names another agent than this one.

        Host.process routes by it; a runtime (or an agent's handle) took the event for its
        own agent and journaled the other's name as a plain attribute.
        """
        named = ev.attrs.get(AGENT_FIELD)
        if named is not None and named != self.agent_id:
            msg = (
                f"the event's agent_id names agent {named!r}, but this is agent"
                f" {self.agent_id!r}: send it through a host's process(), which routes by"
                " agent_id, or leave agent_id out; nothing was journaled"
            )
            raise InvalidEventError(msg, field=AGENT_FIELD)
        return ev

    def _recorded(self, ev: Event, found: HistoryItem | None) -> Decision | None:
        """The decision recorded for an event id seen before; DuplicateEventError if unlike."""
        if found is None:
            return None
        assert ev.id is not None
        if found.stream != self.agent_id:
            msg = (
                f"event id {ev.id!r} was already journaled by agent {found.stream!r} at seq "
                f"{found.event_seq}; ids are unique across the journal"
            )
            raise DuplicateEventError(msg, event_id=ev.id, seq=found.event_seq)
        if not repeats(ev, found.event):
            msg = (
                f"event id {ev.id!r} was already journaled at seq {found.event_seq} with a "
                "different body; use a new id for a new event"
            )
            raise DuplicateEventError(msg, event_id=ev.id, seq=found.event_seq)
        return found.decision

    def _batch(
        self, ledger: Ledger, ev: Event, made: list[Decision]
    ) -> Callable[[], list[Pending]]:
        """The batch for one event: decided from the ledger's view as it is queued."""
        host = self._host

        def batch() -> list[Pending]:
            ts = host.clock.now_ns()
            began = time.perf_counter()
            decision = decide(ledger.policy, ledger.history, ev, ts)
            took_ms = (time.perf_counter() - began) * 1000.0
            if took_ms > host.max_decide_ms:
                # refused before anything is journaled: replay never meets a timing-made result
                msg = (
                    f"deciding about this {ev.type} event took {took_ms:.1f} ms, past the host's "
                    f"max_decide_ms of {host.max_decide_ms:g} (plugins: "
                    f"{', '.join(ledger.plugins.labels) or 'none'}); nothing was journaled"
                )
                raise DecisionTooSlowError(msg)
            incident = counted = None
            fleet = host.fleet
            if fleet is not None:
                target = target_of(ev.attrs)
                fingerprint = fingerprint_of(ev.attrs)
                decision, incident = gate_in_fleet(
                    fleet,
                    decision,
                    self.agent_id,
                    ledger.policy.decision_engine,
                    target,
                    fingerprint,
                )
                counted = observe(
                    fleet,
                    ts,
                    self.agent_id,
                    decision.context,
                    acting(decision),
                    ledger.next_stream_seq + 2,
                    target,
                    fingerprint,
                )
                if incident is not None:
                    open_incident(fleet, incident, ts)
            both = (
                to_pending(self.agent_id, EventReceived(ev), ts, ev.id),
                to_pending(self.agent_id, DecisionMade(decision), ts),
            )
            pending = RuntimeBatch(both) if fleet is None else FleetBatch(both, host.fleet_view_seq)
            controls = host.controls
            plan = host.actions.plan(
                ledger,
                decision.action,
                ts,
                hold=controls.hold(self.agent_id, ev, decision, ts)
                or (decision.fleet if held_back(decision) else None),
                approval=controls.approval(decision, ts),
                target=target_of(ev.attrs),
                max_in_flight=None if fleet is None else fleet.policy.max_in_flight,
                token=id(made),
            )
            if (
                counted is not None
                and fleet is not None
                and fleet.fold >= 2
                and type(plan) is ActionSkipped
                and not controls.stands_for_a_run(plan.reason)
            ):
                uncount(fleet, counted)  # as the fold does on reading the skip after it
            if plan is not None:
                pending.append(to_pending(self.agent_id, plan, ts))
                # planned from the controls as read: the journal refuses it if they moved
                pending.controls_seen = controls.seen
            if incident is not None:
                pending.append(to_pending(self.agent_id, incident, ts))
            made.append(decision)
            crash_point("process.decided")
            return pending

        return batch

    def _committed(
        self,
        ledger: Ledger,
        ev: Event,
        made: list[Decision],
        entries: list[Entry],
        fresh: bool,
        started: float,
    ) -> Decision:
        """After the commit: the decision with its seqs, counted, logged, acted on, published.

        `made` holds the decisions the batch was built with (the last one journaled); it is
        also the token its action's place under max_in_flight is held by.
        """
        host = self._host
        journaled = made[-1]
        if not fresh:
            # a concurrent call with the same id won the race: answer with its decision
            journaled = read_as(entries[1], DecisionMade).decision
            ledger.metrics.count("events_deduplicated")
            if host.fleet is not None:
                host.fleet_stale = True  # the view counted the decision the journal didn't take
        decision = msgspec.structs.replace(journaled, seq=entries[1].seq, event_seq=entries[0].seq)
        metrics = ledger.metrics
        metrics.count("events_processed")
        metrics.count(f"action.{decision.action}")
        metrics.observe_ms((time.perf_counter() - started) * 1000.0)
        if log_runtime.isEnabledFor(logging.INFO):
            _log_decision(decision)
        if fresh:  # a duplicate that lost the race was handled by the call that won it
            if ledger.recovered:  # found journaled after their answers were lost
                host.resume_recovered(ledger, ledger.take_recovered())
            if len(entries) > 2 and any(e.kind == _SCHEDULED for e in entries[2:]):
                host.actions.start(ledger, decision, ev.as_dict(), token=id(made))
            if host.bus.listens(ev.type):
                host.bus.publish(ev.type, ev.as_dict())
        host.actions.release(id(made))  # nothing started: no place held
        return decision

    async def record_outcome(
        self, decision: Decision, *, success: bool, id: str | None = None
    ) -> bool:
        """Journal how a decision turned out; later confidence in its context adapts.

        Only the decision's `seq` is taken from the caller: the decision itself is read
        back from the journal, so a changed copy can't put bad data into the outcome.
        With an `id`, the outcome is journaled once however often it is sent (a retried
        request): the same id again returns False and journals nothing, and the same id
        for another decision or result raises DuplicateEventError. Else it returns True.
        """
        key = None if id is None else outcome_key(id)
        ledger = await self._host.ledger(self.agent_id)
        seq = decision.seq if isinstance(decision, Decision) else None
        if type(seq) is not int or not 0 < seq < 2**63:
            raise InvalidEventError(
                "record_outcome needs a Decision returned by process()", field="decision"
            )
        if not isinstance(success, bool | int) or success not in (0, 1):
            msg = f"success must be True or False, not {success!r}"
            raise InvalidEventError(msg, field="success")
        found = await ledger.load_decision(seq)
        if found is None:
            msg = f"no decision of agent {self.agent_id!r} is journaled at seq {seq}"
            raise InvalidEventError(msg, field="decision")
        outcome = OutcomeRecorded.of(found.decision, success=bool(success))
        if key is None:
            await ledger.append_records([outcome])
        else:
            try:
                _, fresh = await ledger.append_once(outcome, key)
            except DuplicateEventError as exc:
                msg = (
                    f"outcome id {id!r} was already journaled at seq {exc.seq} for another"
                    " decision or result; use a new id for a new outcome"
                )
                raise DuplicateEventError(msg, event_id=key, seq=exc.seq) from None
            if not fresh:
                return False
        crash_point("outcome.committed")
        ledger.metrics.count("outcomes_success" if success else "outcomes_failure")
        return True

    async def close_episode(self, fingerprint: str, *, reason: str) -> bool:
        """Journal that the trouble a fingerprint named is over (its alert resolved): the next
        event with it is decided afresh, not as a repeat. False (nothing journaled) when no
        episode of it is open under the fleet policy's dedup_window."""
        ledger = await self._host.ledger(self.agent_id)
        if not self._host.episode_open(self.agent_id, fingerprint):
            return False
        await ledger.append_records([EpisodeClosed(fingerprint=fingerprint, reason=reason)])
        return True

    async def set_rules(self, rules: RulesArg, *, learning: LearningArg = None) -> str:
        """Journal a new set of custom rules (placed before the defaults); return its ruleset hash.

        `learning` changes how outcomes are learned from too (None: keep the one in force,
        or take a policy file's `[learning]` table). A policy file's `[fleet]` and
        `[approvals]` tables are the host's, set when it is made: they are warned of here,
        not applied.
        """
        ledger = await self._host.ledger(self.agent_id)
        if isinstance(rules, str | os.PathLike):  # a policy file, read as Host(rules=...) reads it
            from ..rulefiles import load_policy

            file = load_policy(rules, need_rules=True)
            parsed = file.rules or ()
            learning = file.learning if learning is None else learning
            for table in ("fleet", "approvals"):
                if getattr(file, table) is not None:
                    log_runtime.warning(
                        "set_rules(%r) applies the file's rules and [learning] table; its"
                        " [%s] table is the host's, taken when the host is made"
                        " (Host(rules=...)), so it is not applied here",
                        os.fspath(rules),
                        table,
                    )
        else:
            parsed = rules_from(rules) or ()
        learning = learning_from(learning) or ledger.view.learning
        policy = ledger.policy_for(parsed, learning)
        await ledger.append_records(
            [RulesChanged(rules=parsed, ruleset=policy.ruleset, learning=learning)]
        )
        log_decision.info("Rules changed: %d custom rules, ruleset %s", len(parsed), policy.ruleset)
        self._warn_unmatched(parsed)
        return policy.ruleset

    def change_rules_soon(self, rules: tuple[Rule, ...]) -> None:
        """Change the rules from synchronous code: journaled before any later decision."""
        ledger = self._host.loaded(self.agent_id)
        if ledger is None:
            raise ConfigurationError("the agent is not loaded: use `await agent.set_rules(...)`")
        if rules == ledger.policy.custom_rules:
            return  # already in force (or queued): journal no change
        learning = ledger.view.learning
        policy = ledger.policy_for(rules, learning)
        ledger.append_soon([RulesChanged(rules=rules, ruleset=policy.ruleset, learning=learning)])
        log_decision.info("Rules changed: %d custom rules, ruleset %s", len(rules), policy.ruleset)
        self._warn_unmatched(rules)

    def _warn_unmatched(self, rules: tuple[Rule, ...]) -> None:
        """Warn of each rule for a context no event is given (see reachable)."""
        if not self._host.plugins.refs:  # else a plugin's analyser may give it
            for warning in unmatched_rules(rules):
                log_decision.warning("%s", warning)

    def action(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        retry_on: Callable[[BaseException], bool] | None = None,
        fallback: Handler | None = None,
        resume: Resume = "retry",
        verify: Verification | None = None,
        escalate: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Register a handler that carries out every decision of action `name` for this agent.

        The handler gets an ActionCall (decision, event, attempt, idempotency key) and
        runs in the background after the decision is durable, retried under `retry`
        (default: 3 attempts, 1 s doubling), behind a circuit breaker per action. Each
        attempt is journaled; its outcome feeds the confidence engine. After a crash,
        start() resumes unfinished actions (`resume="retry"`) or abandons them.
        """
        return register_action(
            self._host.actions,
            self.agent_id,
            name,
            retry,
            breaker,
            retry_on,
            fallback,
            resume,
            verify=verify,
            escalate=escalate,
        )

    async def wait_for_actions(self) -> None:
        """Wait until every action of this agent running now has finished (retries included)."""
        await self._host.actions.wait(self.agent_id)

    async def event_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the latest events with their decisions, newest first, across restarts."""
        worker = await self._host.when_ready()
        if type(limit) is not int or limit < 0:
            raise ConfigurationError(f"limit must be an int from 0, not {limit!r}")
        items = await worker.run(
            lambda: list(history(worker.journal, agent=self.agent_id, limit=limit))
        )
        return [item.summary() for item in items]

    async def recover(self) -> dict[str, Any]:
        """Rebuild the state from the journal (snapshot plus tail) and return a summary of it."""
        ledger = await self._host.ledger(self.agent_id)
        await ledger.idle.wait()
        await ledger.rebuild()
        return self.snapshot_summary()

    # -- views -----------------------------------------------------------------

    def _ledger(self) -> Ledger:
        ledger = self._host.loaded(self.agent_id)
        if ledger is None:
            self._host.require_worker()
            msg = f"agent {self.agent_id!r} is not loaded: `await agent.load()` first"
            raise ConfigurationError(msg)
        return ledger

    @property
    def state(self) -> AgentState:
        """The agent's projected state (read it; don't change it)."""
        return self._ledger().state

    @property
    def context_engine(self) -> ContextEngine:
        return self._ledger().policy.context_engine

    @property
    def decision_engine(self) -> DecisionEngine:
        return self._ledger().policy.decision_engine

    @property
    def confidence_engine(self) -> ConfidenceEngine:
        """The original's confidence engine, seeded with the agent's outcomes summed per
        (context, risk) (the runtime itself scores each action by its own record).

        To feed an outcome into the runtime itself, use `record_outcome`: it is journaled.
        """
        ledger = self._ledger()
        return ConfidenceEngine(ledger.policy.confidence, pooled(ledger.history))

    def metrics(self) -> dict[str, Any]:
        """Return this agent's counters and latency histogram (since it was loaded)."""
        ledger = self._ledger()
        snap = ledger.metrics.snapshot()
        s = ledger.state
        snap["actions"] = {
            "running": self._host.actions.running(self.agent_id),
            "attempts": s.action_attempts,
            "failures": s.action_failures,
            "succeeded": s.actions_succeeded,
            "abandoned": s.actions_abandoned,
            "skipped": s.actions_skipped,
            "unfinished": len(s.open_actions),
        }
        snap["bus"] = {"delivered": self.bus.delivered, "errors": self.bus.errors}
        worker = self._host.require_worker()
        snap["commits"] = worker.commits
        return snap

    def snapshot_summary(self) -> dict[str, Any]:
        """The state in brief: seqs, counts, the key/value state, and how it was rebuilt."""
        ledger = self._ledger()
        s = ledger.state
        return {
            "agent_id": self.agent_id,
            "seq": s.seq,
            "stream_seq": s.stream_seq,
            "events": s.events,
            "decisions": s.decisions,
            "outcomes": s.outcomes,
            "state": dict(s.kv or {}),
            "snapshot_seq": ledger.last_rebuild.get("snapshot_seq"),
            "replayed": ledger.last_rebuild.get("replayed", 0),
        }


class _AgentStore:
    """The store an agent's state and recovery engines write through."""

    __slots__ = ("_agent",)
    is_async_store = True

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def append(self, batch: Sequence[Pending]) -> list[Entry]:
        ledger = await self._agent._host.ledger(self._agent.agent_id)
        entries, _ = await ledger.submit(lambda: list(batch))
        return entries

    async def latest(self, n: int, stream: str, *, kind: str) -> list[Entry]:
        worker = await self._agent._host.when_ready()
        journal = worker.journal
        return await worker.run(lambda: list(journal.latest(n, stream, kind=kind)))

    async def load_state(self, stream: str) -> dict[str, Any] | None:
        kv = (await self._agent._host.ledger(self._agent.agent_id)).state.kv
        return None if kv is None else dict(kv)


def _log_decision(d: Decision) -> None:
    log_runtime.info("Event received: %s", d.event_type)
    log_context.info("risk=%s stability=%s pressure=%.2f", d.risk, d.stability, d.pressure)
    log_confidence.info("confidence=%.2f", d.confidence)
    log_decision.info("ACTION: %s", d.action.upper())
    log_state.info("State persisted (seq %d)", d.seq)
