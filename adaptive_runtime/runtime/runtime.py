"""The Runtime: one agent's events in, decisions out, everything journaled, state rebuilt on start.

A Runtime is a Host that serves one agent: the same code path, under the original
project's API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from ..clock import Clock
from ..engines.backoff import BreakerPolicy, RetryPolicy
from ..engines.context import ContextEngine
from ..engines.decision import DecisionEngine
from ..engines.events import MAX_EVENT_BYTES
from ..engines.original import ConfidenceEngine
from ..errors import AdaptiveRuntimeError, ConfigurationError
from ..journal import Durability, Journal
from ..observability.logs import logger_for
from ..projections import AgentState
from ..records import Decision, Event, Rule
from .actions import Handler, Resume, Verification
from .agent import Agent
from .host import Host, check_agent_id, check_flag
from .original import OriginalAPI
from .rules import LearningArg, RulesArg

__all__ = ["Runtime"]

log_runtime = logger_for("RUNTIME")

DEFAULT_PATH = "adaptive_runtime.db"


class Runtime(OriginalAPI):
    """Decide about events for one agent, journal every step, and recover by replay.

    `process()` returns only once the event and its decision are durable (at the
    journal's durability). Concurrent calls share commits. Decisions are always made
    from the state that the journal, replayed up to that point, gives.

    `journal` may name the journal by URL (`sqlite:///path`, `memory:`) or be a Journal
    object (then `path` and `persist` are not given); otherwise it is the SQLite file at
    `path`, by default `adaptive_runtime.db` (or memory, with `persist=False`).
    `durability` is "full" (the default) or "normal"; a Journal object keeps the one it
    was opened at, and another given here is refused.
    `sensitive_fields` names event attributes (at any depth, case-insensitively)
    whose values are replaced by "[redacted]" before they reach the journal, the
    logs, the event bus or an error message.

    `commit_on_caller=True` commits on the caller's thread even at durability "full"
    (not on PostgreSQL, whose round trips stay off the loop), so the event loop waits
    on each fsync (and on the WAL checkpoint SQLite runs after a commit once the log
    holds 1,000 pages): faster for a script or batch job with one producer and nothing
    else on its loop; a server keeps the default, which leaves the loop free while the
    journal's thread syncs.

    `dry_run=True` decides and journals everything and runs no handler: each action
    that would have run is journaled as skipped ("dry run"), to trial a policy live.
    """

    def __init__(
        self,
        agent_id: str = "default",
        path: str | os.PathLike[str] | None = None,
        *,
        checkpoint_every: int = 100,
        durability: Durability | None = None,
        clock: Clock | None = None,
        rules: RulesArg = None,
        learning: LearningArg = None,
        journal: Journal | str | None = None,
        persist: bool = True,
        sensitive_fields: Iterable[str] = (),
        max_event_bytes: int = MAX_EVENT_BYTES,
        commit_on_caller: bool = False,
        plugins: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> None:
        check_agent_id(agent_id)
        check_flag("persist", persist)
        if path is not None and not isinstance(path, str | os.PathLike):
            msg = f"path must be a file path (a str or a Path), not {type(path).__name__}"
            raise ConfigurationError(msg)
        if journal is not None and (path is not None or not persist):
            given = "path" if path is not None else "persist=False"
            msg = f"give the journal once: journal= names it, so {given} would be ignored; drop one"
            raise ConfigurationError(msg)
        self.agent_id = agent_id
        self.path = os.fspath(path if path is not None else DEFAULT_PATH)
        where: Journal | str | os.PathLike[str] = (
            journal if journal is not None else self.path if persist else "memory:"
        )
        self._host = Host(
            where,
            default_agent=agent_id,
            durability=durability,
            clock=clock,
            checkpoint_every=checkpoint_every,
            rules=rules,
            learning=learning,
            sensitive_fields=sensitive_fields,
            max_event_bytes=max_event_bytes,
            commit_on_caller=commit_on_caller,
            plugins=plugins,
            only_agent=agent_id,
            dry_run=dry_run,
        )
        self._agent: Agent = self._host.agent(agent_id)
        self.checkpoint_every = checkpoint_every
        self.durability: Durability = self._host.durability
        self.max_event_bytes = max_event_bytes
        self.clock: Clock = self._host.clock
        self.bus = self._host.bus
        self.state_engine = self._agent.state_engine
        self.recovery_engine = self._agent.recovery_engine

    def __repr__(self) -> str:
        return f"Runtime(agent_id={self.agent_id!r}, host={self._host!r})"

    @property
    def host(self) -> Host:
        """The host this runtime is: one agent, served the same way as a fleet."""
        return self._host

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and rebuild the state; no decision is made before this ends."""
        already = self._host.started
        await self._host.start()
        if not already:
            ledger = await self._host.ledger(self.agent_id)
            log_runtime.info(
                "Runtime started: agent %s, %d entries (snapshot at seq %s, %d replayed)",
                self.agent_id,
                ledger.state.stream_seq,
                ledger.last_rebuild.get("snapshot_seq"),
                ledger.last_rebuild.get("replayed", 0),
            )

    async def stop(
        self, *, actions: Literal["wait", "interrupt"] = "wait", wait_for_handlers: bool = True
    ) -> None:
        """Finish work in flight, snapshot the state, and close the journal.

        `actions="wait"` lets running actions finish, retries included; "interrupt"
        cancels them and journals each attempt in flight as interrupted, so that the
        next start() resumes it.
        """
        await self._host.stop(actions=actions, wait_for_handlers=wait_for_handlers)

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
        return await self._agent.recover()

    # -- the work --------------------------------------------------------------

    async def process(self, event: Mapping[str, Any] | Event) -> Decision:
        """Decide about one event; return once the event and the decision are journaled.

        An event whose `id` was processed before returns the recorded decision and
        appends nothing. Bad input raises InvalidEventError and journals nothing.
        """
        return await self._agent.process(event)

    async def process_many(
        self, events: Sequence[Mapping[str, Any] | Event]
    ) -> list[Decision | AdaptiveRuntimeError]:
        """Decide about several events in order, journaled in one commit; one result each.

        Each result is the event's Decision, or the error that event alone met: a bad
        event never stops the others.
        """
        return await self._agent.process_many(events)

    async def record_outcome(
        self, decision: Decision, *, success: bool, id: str | None = None
    ) -> bool:
        """Journal how a decision turned out; later confidence in its context adapts.

        Only the decision's `seq` is taken from the caller: the decision itself is read
        back from the journal, so a changed copy can't put bad data into the outcome.
        With an `id`, the outcome is journaled once however often it is sent: the same
        id again returns False and journals nothing (the same id for another decision
        or result is a DuplicateEventError). Else it returns True.
        """
        return await self._agent.record_outcome(decision, success=success, id=id)

    async def set_rules(self, rules: RulesArg, *, learning: LearningArg = None) -> str:
        """Journal a new set of custom rules (placed before the defaults); return its ruleset hash.

        `learning` changes how outcomes are learned from too (None: keep the one in force).
        """
        return await self._agent.set_rules(rules, learning=learning)

    def _change_rules_soon(self, rules: tuple[Rule, ...]) -> None:
        """Change the rules from synchronous code: journaled before any later decision."""
        if not self._host.started:
            self._host.rules = rules  # start() journals them if they differ from the journal's
            return
        self._agent.change_rules_soon(rules)

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
        """Register a handler that carries out every decision of action `name`.

        The handler gets an ActionCall (decision, event, attempt, idempotency key) and
        runs in the background after the decision is durable, retried under `retry`
        (default: 3 attempts, 1 s doubling), behind a circuit breaker per action. Each
        attempt is journaled; its outcome feeds the confidence engine. After a crash,
        start() resumes unfinished actions (`resume="retry"`) or abandons them.
        """
        return self._agent.action(
            name,
            retry=retry,
            breaker=breaker,
            retry_on=retry_on,
            fallback=fallback,
            resume=resume,
            verify=verify,
            escalate=escalate,
        )

    async def wait_for_actions(self) -> None:
        """Wait until every action running now has finished (retries included)."""
        await self._agent.wait_for_actions()

    async def event_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the latest events with their decisions, newest first, across restarts."""
        return await self._agent.event_history(limit)

    # -- views -----------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        """The agent's projected state (read it; don't change it)."""
        return self._agent.state

    @property
    def context_engine(self) -> ContextEngine:
        return self._agent.context_engine

    @property
    def decision_engine(self) -> DecisionEngine:
        return self._agent.decision_engine

    @property
    def confidence_engine(self) -> ConfidenceEngine:
        """A confidence engine holding a copy of the runtime's history.

        To feed an outcome into the runtime itself, use `record_outcome`: it is journaled.
        """
        return self._agent.confidence_engine

    @property
    def journal(self) -> Journal:
        """The journal this runtime writes.

        While the runtime runs, reading it is safe from any thread. On SQLite the reads
        take turns with the commits on its one connection, so at durability "full" a
        read made while a commit is in flight waits for its fsync (on the event loop, if
        made there). For reads that never wait on a commit, use `journal.reader()` where
        the journal has one (SQLite: a second connection, and WAL readers never block;
        PostgreSQL: a pool of its own).
        """
        return self._host.journal

    def metrics(self) -> dict[str, Any]:
        """Return this runtime's counters and latency histogram."""
        return self._agent.metrics()

    def metrics_summary(self) -> dict[str, Any]:
        """A short summary of the metrics and the state, as the original examples print."""
        metrics = self._agent.metrics()
        state = self.state
        ledger = self._host.loaded(self.agent_id)
        return {
            "agent_id": self.agent_id,
            "events_processed": metrics["counters"].get("events_processed", 0),
            "events_in_journal": state.events,
            "decisions": state.decisions,
            "actions": dict(sorted(state.actions.items())),
            "outcomes": state.outcomes,
            "snapshots": 0 if ledger is None else ledger.snapshots_written,
            "handler_errors": self.bus.errors,
            "avg_latency_ms": metrics["latency_ms"]["mean"],
        }

    def snapshot_summary(self) -> dict[str, Any]:
        """The state in brief: seqs, counts, the key/value state, and how start() rebuilt it."""
        return self._agent.snapshot_summary()
