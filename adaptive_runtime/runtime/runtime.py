"""The Runtime: events in, decisions out, everything journaled, state rebuilt on start."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import msgspec

from .._crashpoints import crash_point
from ..clock import Clock, SystemClock, checked
from ..engines.backoff import BreakerPolicy, RetryPolicy
from ..engines.confidence import ConfidenceEngine
from ..engines.context import ContextEngine
from ..engines.decision import DecisionEngine, load_rules, parse_rules
from ..engines.events import MAX_EVENT_BYTES, parse_event
from ..engines.pipeline import decide
from ..engines.recovery import RecoveryEngine
from ..engines.state import StateEngine
from ..errors import (
    ConfigurationError,
    DuplicateEventError,
    InvalidEventError,
)
from ..journal import Durability, Journal, JournalWorker, MemoryJournal, SqliteJournal
from ..observability.logs import logger_for
from ..observability.metrics import Metrics
from ..projections import AgentState
from ..projections.audit import decision_at, decision_for_event, history
from ..records import (
    ActionScheduled,
    Decision,
    DecisionMade,
    Entry,
    EventReceived,
    OutcomeRecorded,
    Pending,
    Record,
    Rule,
    RulesChanged,
    read_as,
    to_pending,
)
from .actions import ActionRunner, ActionSpec, Handler, Resume
from .bus import EventBus
from .ledger import Ledger
from .original import OriginalAPI

__all__ = ["Runtime"]

log_runtime = logger_for("RUNTIME")
log_context = logger_for("CONTEXT_ENGINE")
log_confidence = logger_for("CONFIDENCE_ENGINE")
log_decision = logger_for("DECISION_ENGINE")
log_state = logger_for("STATE_ENGINE")
log_recovery = logger_for("RECOVERY_ENGINE")

RulesArg = Iterable[Rule | Sequence[Any] | Mapping[str, Any]] | str | os.PathLike[str] | None


class Runtime(OriginalAPI):
    """Decide about events for one agent, journal every step, and recover by replay.

    `process()` returns only once the event and its decision are durable (at the
    journal's durability). Concurrent calls share commits. Decisions are always made
    from the state that the journal, replayed up to that point, gives.

    `sensitive_fields` names event attributes (at any depth, case-insensitively)
    whose values are replaced by "[redacted]" before they reach the journal, the
    logs, the event bus or an error message.
    """

    def __init__(
        self,
        agent_id: str = "default",
        path: str | os.PathLike[str] = "adaptive_runtime.db",
        *,
        checkpoint_every: int = 100,
        durability: Durability = "full",
        clock: Clock | None = None,
        rules: RulesArg = None,
        journal: Journal | None = None,
        persist: bool = True,
        sensitive_fields: Iterable[str] = (),
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id or len(agent_id) > 256:
            raise ConfigurationError(
                "agent_id must be a non-empty string of at most 256 characters"
            )
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ConfigurationError(
                f"checkpoint_every must be a positive int, not {checkpoint_every!r}"
            )
        if durability not in ("full", "normal"):
            raise ConfigurationError(f"durability must be 'full' or 'normal', not {durability!r}")
        if type(max_event_bytes) is not int or max_event_bytes < 1024:
            raise ConfigurationError(
                f"max_event_bytes must be an int of at least 1024, not {max_event_bytes!r}"
            )
        self.agent_id = agent_id
        self._redact = _field_names(sensitive_fields)
        self.max_event_bytes = max_event_bytes
        self.path = os.fspath(path)
        self.checkpoint_every = checkpoint_every
        self.durability: Durability = durability
        self.clock: Clock = checked(clock or SystemClock())
        self.bus = EventBus()
        self._rules: tuple[Rule, ...] | None = _rules_from(rules)
        self._journal_given = journal
        self._persist = persist
        self._metrics = Metrics()
        self._port = _RuntimeStore(self)
        self.state_engine = StateEngine(self._port, agent_id, clock=self.clock)
        self.recovery_engine = RecoveryEngine(self._port, agent_id, clock=self.clock)
        self._actions = ActionRunner(self)
        self._ledger = Ledger(
            agent_id, self.clock, checkpoint_every, self._metrics, self._actions.sync
        )
        self._ready = asyncio.Event()
        """Set once start() has rebuilt the state: public calls wait for it."""
        self._starting = False

    def __repr__(self) -> str:
        where = "memory" if not self._persist and self._journal_given is None else str(self.path)
        return f"Runtime(agent_id={self.agent_id!r}, journal={where!r}, started={self._ledger.worker is not None})"

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and rebuild the state; no decision is made before this ends."""
        if self._starting:
            await self._when_ready()
            return
        if self._ledger.worker is not None:
            return
        self._starting = True
        try:
            await self._start()
        finally:
            self._starting = False

    async def _start(self) -> None:
        journal = self._journal_given
        if journal is None:
            if self._persist:
                journal = await asyncio.to_thread(
                    SqliteJournal, self.path, durability=self.durability, checkpoint="background"
                )
            else:
                journal = MemoryJournal()
        # At "normal" a commit never syncs (checkpoints run on the journal's own thread),
        # so appends run inline; at "full" every commit syncs, so a worker thread shares them.
        inline = journal.durability == "normal" and self._journal_given is None
        self._ledger.worker = JournalWorker(
            journal, asyncio.get_running_loop(), self._ledger.on_commit, inline=inline
        )
        try:
            await self._ledger.rebuild()
            if self._rules is not None and self._rules != self._ledger.state.rules:
                await self._set_rules(self._rules)
            await self._actions.resume()
        except BaseException:
            worker, self._ledger.worker = self._ledger.worker, None
            if self._journal_given is None:
                await asyncio.to_thread(journal.close)
            await asyncio.to_thread(worker.close)
            self._ready.set()  # wake callers waiting on start(): they find it failed
            self._ready.clear()
            raise
        self._ready.set()
        log_runtime.info(
            "Runtime started: agent %s, %d entries (snapshot at seq %s, %d replayed)",
            self.agent_id,
            self._ledger.state.stream_seq,
            self._ledger.last_rebuild.get("snapshot_seq"),
            self._ledger.last_rebuild.get("replayed", 0),
        )

    async def stop(
        self, *, actions: Literal["wait", "interrupt"] = "wait", wait_for_handlers: bool = True
    ) -> None:
        """Finish work in flight, snapshot the state, and close the journal.

        `actions="wait"` lets running actions finish, retries included; "interrupt"
        cancels them and journals each attempt in flight as interrupted, so that the
        next start() resumes it.
        """
        worker = self._ledger.worker
        if worker is None:
            return
        if actions == "interrupt":
            await self._actions.interrupt()
        else:
            await self._actions.wait()
        if wait_for_handlers:
            await self.bus.drain()
        await self._ledger.settle()
        self._ready.clear()
        if self._journal_given is None:  # a journal the caller passed in stays the caller's
            # off the loop even when appends run inline: closing may checkpoint and sync
            await asyncio.to_thread(worker.journal.close)
        await asyncio.to_thread(worker.close)
        self._ledger.worker = None

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def recover(self) -> dict[str, Any]:
        """Rebuild the state from the journal (snapshot plus tail) and return a summary of it."""
        await self._when_ready()
        await self._ledger.idle.wait()
        await self._ledger.rebuild()
        return self.snapshot_summary()

    # -- the work --------------------------------------------------------------

    async def process(self, event: Mapping[str, Any]) -> Decision:
        """Decide about one event; return once the event and the decision are journaled.

        An event whose `id` was processed before returns the recorded decision and
        appends nothing. Bad input raises InvalidEventError and journals nothing.
        """
        worker = await self._when_ready()
        started = time.perf_counter()
        ev = parse_event(event, redact=self._redact, max_bytes=self.max_event_bytes)
        if ev.id is not None:
            found = await worker.run(decision_for_event, worker.journal, ev.id)
            if found is not None:
                if found.stream != self.agent_id:
                    msg = (
                        f"event id {ev.id!r} was already journaled by agent {found.stream!r} at seq "
                        f"{found.event_seq}; ids are unique across the journal"
                    )
                    raise DuplicateEventError(msg, event_id=ev.id, seq=found.event_seq)
                if found.event != ev:
                    msg = (
                        f"event id {ev.id!r} was already journaled at seq {found.event_seq} with a "
                        "different body; use a new id for a new event"
                    )
                    raise DuplicateEventError(msg, event_id=ev.id, seq=found.event_seq)
                self._metrics.count("events_deduplicated")
                return found.decision
        made: list[Decision] = []

        def batch() -> list[Pending]:
            ts = self.clock.now_ns()
            decision = decide(self._ledger.policy, self._ledger.history, ev, ts)
            pending = [
                to_pending(self.agent_id, EventReceived(ev), ts, ev.id),
                to_pending(self.agent_id, DecisionMade(decision), ts),
            ]
            plan = self._actions.plan(decision.action, ts)
            if plan is not None:
                pending.append(to_pending(self.agent_id, plan, ts))
            made.append(decision)
            crash_point("process.decided")
            return pending

        entries, fresh = await self._ledger.submit(batch)
        crash_point("process.committed")
        journaled = made[-1]
        if not fresh:
            # a concurrent call with the same id won the race: answer with its decision
            journaled = read_as(entries[1], DecisionMade).decision
            self._metrics.count("events_deduplicated")
        decision = msgspec.structs.replace(journaled, seq=entries[1].seq, event_seq=entries[0].seq)
        self._metrics.count("events_processed")
        self._metrics.count(f"action.{decision.action}")
        self._metrics.observe_ms((time.perf_counter() - started) * 1000.0)
        if log_runtime.isEnabledFor(logging.INFO):
            _log_decision(decision)
        if fresh:  # a duplicate that lost the race was handled by the call that won it
            if len(entries) == 3 and entries[2].kind == ActionScheduled.__name__:
                self._actions.start(decision, ev.as_dict())
            if self.bus.listens(ev.type):
                self.bus.publish(ev.type, ev.as_dict())
        return decision

    async def record_outcome(self, decision: Decision, *, success: bool) -> None:
        """Journal how a decision turned out; later confidence in its context adapts.

        Only the decision's `seq` is taken from the caller: the decision itself is read
        back from the journal, so a changed copy can't put bad data into the outcome.
        """
        worker = await self._when_ready()
        seq = decision.seq if isinstance(decision, Decision) else None
        if type(seq) is not int or not 0 < seq < 2**63:
            raise InvalidEventError(
                "record_outcome needs a Decision returned by process()", field="decision"
            )
        if not isinstance(success, bool | int) or success not in (0, 1):
            msg = f"success must be True or False, not {success!r}"
            raise InvalidEventError(msg, field="success")
        found = await worker.run(decision_at, worker.journal, seq)
        if found is None or found.stream != self.agent_id:
            msg = f"no decision of agent {self.agent_id!r} is journaled at seq {seq}"
            raise InvalidEventError(msg, field="decision")
        await self._append_records([OutcomeRecorded.of(found.decision, success=bool(success))])
        self._metrics.count("outcomes_success" if success else "outcomes_failure")

    async def set_rules(self, rules: RulesArg) -> str:
        """Journal a new set of custom rules (placed before the defaults); return its ruleset hash."""
        await self._when_ready()
        return await self._set_rules(_rules_from(rules) or ())

    def _change_rules_soon(self, rules: tuple[Rule, ...]) -> None:
        """Change the rules from synchronous code: journaled before any later decision."""
        if not self._ready.is_set():
            self._rules = rules  # start() journals them if they differ from the journal's
            return
        if rules == self._ledger.policy.custom_rules:
            return  # already in force (or queued): journal no change
        policy = self._ledger.policy_for(rules)
        self._ledger.append_soon([RulesChanged(rules=rules, ruleset=policy.ruleset)])
        log_decision.info("Rules changed: %d custom rules, ruleset %s", len(rules), policy.ruleset)

    async def _set_rules(self, parsed: tuple[Rule, ...]) -> str:
        policy = self._ledger.policy_for(parsed)
        await self._append_records([RulesChanged(rules=parsed, ruleset=policy.ruleset)])
        log_decision.info("Rules changed: %d custom rules, ruleset %s", len(parsed), policy.ruleset)
        return policy.ruleset

    def action(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        retry_on: Callable[[BaseException], bool] | None = None,
        fallback: Handler | None = None,
        resume: Resume = "retry",
    ) -> Callable[[Handler], Handler]:
        """Register a handler that carries out every decision of action `name`.

        The handler gets an ActionCall (decision, event, attempt, idempotency key) and
        runs in the background after the decision is durable, retried under `retry`
        (default: 3 attempts, 1 s doubling), behind a circuit breaker per action. Each
        attempt is journaled; its outcome feeds the confidence engine. After a crash,
        start() resumes unfinished actions (`resume="retry"`) or abandons them.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError("an action needs a non-empty name, e.g. 'restart_service'")
        if resume not in ("retry", "abandon"):
            raise ConfigurationError(f"resume must be 'retry' or 'abandon', not {resume!r}")

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError(f"an action handler must be callable, not {type(handler).__name__}")
            self._actions.register(
                ActionSpec(
                    name=name,
                    handler=handler,
                    retry=retry or RetryPolicy(),
                    breaker=breaker or BreakerPolicy(),
                    retry_on=retry_on,
                    fallback=fallback,
                    resume=resume,
                )
            )
            return handler

        return register

    async def wait_for_actions(self) -> None:
        """Wait until every action running now has finished (retries included)."""
        await self._actions.wait()

    async def event_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the latest events with their decisions, newest first, across restarts."""
        worker = await self._when_ready()
        if limit < 0:
            raise ConfigurationError("limit must not be negative")
        items = await worker.run(
            lambda: list(history(worker.journal, agent=self.agent_id, limit=limit))
        )
        return [item.summary() for item in items]

    # -- views -----------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        """The agent's projected state (read it; don't change it)."""
        return self._ledger.state

    @property
    def context_engine(self) -> ContextEngine:
        return self._ledger.policy.context_engine

    @property
    def decision_engine(self) -> DecisionEngine:
        return self._ledger.policy.decision_engine

    @property
    def confidence_engine(self) -> ConfidenceEngine:
        """A confidence engine holding a copy of the runtime's history.

        To feed an outcome into the runtime itself, use `record_outcome`: it is journaled.
        """
        return ConfidenceEngine(self._ledger.policy.confidence, self._ledger.history)

    @property
    def journal(self) -> Journal:
        """The journal this runtime writes.

        At durability "full" its connection belongs to the journal's thread while calls
        are in flight: read it between awaited calls of a single task, after stop(), or
        through a second SqliteJournal opened on the same file (WAL readers never block).
        """
        return self._require_started().journal

    def metrics(self) -> dict[str, Any]:
        """Return this runtime's counters and latency histogram."""
        snap = self._metrics.snapshot()
        s = self._ledger.state
        snap["actions"] = {
            "running": self._actions.running,
            "attempts": s.action_attempts,
            "failures": s.action_failures,
            "succeeded": s.actions_succeeded,
            "abandoned": s.actions_abandoned,
            "skipped": s.actions_skipped,
            "unfinished": len(s.open_actions),
        }
        snap["bus"] = {"delivered": self.bus.delivered, "errors": self.bus.errors}
        snap["commits"] = 0 if self._ledger.worker is None else self._ledger.worker.commits
        return snap

    def metrics_summary(self) -> dict[str, Any]:
        """A short summary of the metrics and the state, as the original examples print."""
        latency = self._metrics.snapshot()["latency_ms"]
        return {
            "agent_id": self.agent_id,
            "events_processed": self._metrics.counters.get("events_processed", 0),
            "events_in_journal": self._ledger.state.events,
            "decisions": self._ledger.state.decisions,
            "actions": dict(sorted(self._ledger.state.actions.items())),
            "outcomes": self._ledger.state.outcomes,
            "checkpoints": self._ledger.checkpoints,
            "handler_errors": self.bus.errors,
            "avg_latency_ms": latency["mean"],
        }

    def snapshot_summary(self) -> dict[str, Any]:
        """The state in brief: seqs, counts, the key/value state, and how start() rebuilt it."""
        s = self._ledger.state
        return {
            "agent_id": self.agent_id,
            "seq": s.seq,
            "stream_seq": s.stream_seq,
            "events": s.events,
            "decisions": s.decisions,
            "outcomes": s.outcomes,
            "state": dict(s.kv or {}),
            "snapshot_seq": self._ledger.last_rebuild.get("snapshot_seq"),
            "replayed": self._ledger.last_rebuild.get("replayed", 0),
        }

    # -- internals -------------------------------------------------------------

    async def _when_ready(self) -> JournalWorker:
        """The worker, once start() has finished rebuilding; a call made during start() waits."""
        if self._starting and not self._ready.is_set():
            await self._ready.wait()
        return self._require_started()

    def _require_started(self) -> JournalWorker:
        return self._ledger.require_worker()

    async def _append_records(self, records: list[Record]) -> list[Entry]:
        return await self._ledger.append_records(records)

    async def _load_decision(self, seq: int) -> tuple[Decision, dict[str, Any]] | None:
        """Read a journaled decision and its event back (for resuming its action)."""
        worker = self._require_started()
        found = await worker.run(decision_at, worker.journal, seq)
        return None if found is None else (found.decision, found.event.as_dict())


class _RuntimeStore:
    """The store the runtime's state and recovery engines write through."""

    __slots__ = ("_runtime",)
    is_async_store = True

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def append(self, batch: Sequence[Pending]) -> list[Entry]:
        await self._runtime._when_ready()
        entries, _ = await self._runtime._ledger.submit(lambda: list(batch))
        return entries

    async def latest(self, n: int, stream: str, *, kind: str) -> list[Entry]:
        worker = self._runtime._require_started()
        journal = worker.journal
        return await worker.run(lambda: list(journal.latest(n, stream, kind=kind)))

    async def load_state(self, stream: str) -> dict[str, Any] | None:
        await self._runtime._when_ready()
        kv = self._runtime.state.kv
        return None if kv is None else dict(kv)


def _field_names(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str | bytes):
        msg = f"sensitive_fields must be a list of field names, e.g. [{names!r}], not one string"
        raise ConfigurationError(msg)
    try:
        listed = list(names)
    except TypeError:
        msg = f"sensitive_fields must be a list of field names, not {type(names).__name__}"
        raise ConfigurationError(msg) from None
    for name in listed:
        if not isinstance(name, str) or not name:
            msg = f"sensitive_fields must hold non-empty strings; found {name!r}"
            raise ConfigurationError(msg)
    return frozenset(name.lower() for name in listed)


def _rules_from(rules: RulesArg) -> tuple[Rule, ...] | None:
    if rules is None:
        return None
    if isinstance(rules, str | os.PathLike):
        return load_rules(rules)
    return parse_rules(rules)


def _log_decision(d: Decision) -> None:
    log_runtime.info("Event received: %s", d.event_type)
    log_context.info("risk=%s stability=%s pressure=%.2f", d.risk, d.stability, d.pressure)
    log_confidence.info("confidence=%.2f", d.confidence)
    log_decision.info("ACTION: %s", d.action.upper())
    log_state.info("State persisted (seq %d)", d.seq)
