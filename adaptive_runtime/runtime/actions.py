"""Carry out decided actions durably: every attempt journaled, retried with back-off,
guarded by a circuit breaker per action, and resumed after a crash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .._awaiting import resolve
from .._crashpoints import crash_point
from ..engines.backoff import (
    BreakerPolicy,
    RetryPolicy,
    after_failure,
    breaker_allows,
    breaker_failed,
    breaker_succeeded,
    delay_for,
)
from ..errors import ActionTimeoutError, ConfigurationError
from ..records import (
    ActionAbandoned,
    ActionAwaitingApproval,
    ActionFailed,
    ActionScheduled,
    ActionSkipped,
    ActionStarted,
    ActionSucceeded,
    Breaker,
    Decision,
    OutcomeRecorded,
    Record,
)

if TYPE_CHECKING:
    from ..clock import Clock
    from .ledger import Ledger

__all__ = ["ActionCall", "ActionScheduler", "ActionSpec", "register_action"]

log = logging.getLogger("adaptive_runtime.RECOVERY_ENGINE")

Resume = Literal["retry", "abandon"]


class ActionCall(msgspec.Struct, frozen=True, kw_only=True):
    """What an action handler receives."""

    decision: Decision
    event: dict[str, Any]
    attempt: int
    key: str
    """The idempotency key, `agent:decision_seq`: the same for every attempt, across restarts."""


Handler = Callable[[ActionCall], Awaitable[Any] | Any]


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A registered action handler and the policies it runs under."""

    name: str
    handler: Handler
    retry: RetryPolicy
    breaker: BreakerPolicy
    retry_on: Callable[[BaseException], bool] | None = None
    fallback: Handler | None = None
    resume: Resume = "retry"


def register_action(
    scheduler: ActionScheduler,
    agent: str | None,
    name: str,
    retry: RetryPolicy | None,
    breaker: BreakerPolicy | None,
    retry_on: Callable[[BaseException], bool] | None,
    fallback: Handler | None,
    resume: Resume,
) -> Callable[[Handler], Handler]:
    """The decorator that registers an action handler, host-wide or for one agent."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError("an action needs a non-empty name, e.g. 'restart_service'")
    if resume not in ("retry", "abandon"):
        raise ConfigurationError(f"resume must be 'retry' or 'abandon', not {resume!r}")

    def register(handler: Handler) -> Handler:
        if not callable(handler):
            raise TypeError(f"an action handler must be callable, not {type(handler).__name__}")
        scheduler.register(
            ActionSpec(
                name=name,
                handler=handler,
                retry=retry or RetryPolicy(),
                breaker=breaker or BreakerPolicy(),
                retry_on=retry_on,
                fallback=fallback,
                resume=resume,
            ),
            agent,
        )
        return handler

    return register


class ActionScheduler:
    """Runs every decided action of a host: handlers registered host-wide or per agent.

    Each action journals through its agent's ledger; a breaker is kept per (agent, action)
    in that agent's state. The scheduler knows an agent only by the ledger it is given.
    """

    __slots__ = ("_clock", "_tasks", "specs")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.specs: dict[tuple[str | None, str], ActionSpec] = {}
        """Keyed by (agent, action); agent None is a handler for every agent."""
        self._tasks: dict[asyncio.Task[None], str] = {}
        """Running actions, with the agent each is for."""

    def register(self, spec: ActionSpec, agent: str | None = None) -> None:
        self.specs[(agent, spec.name)] = spec

    def spec_for(self, agent: str, action: str) -> ActionSpec | None:
        """The handler for an agent's action: its own, else the host-wide one."""
        return self.specs.get((agent, action)) or self.specs.get((None, action))

    def running(self, agent: str | None = None) -> int:
        """How many actions are running (for one agent, or for all)."""
        if agent is None:
            return len(self._tasks)
        return sum(1 for owner in self._tasks.values() if owner == agent)

    def plan(
        self,
        ledger: Ledger,
        action: str,
        now_ns: int,
        *,
        hold: str | None = None,
        approval: ActionAwaitingApproval | None = None,
    ) -> Record | None:
        """The record to journal beside a decision: scheduled, skipped, awaiting approval,
        or none (no handler).

        `hold` is why the action must not run (a dry run, a silence): then it is skipped.
        `approval` is the request to journal instead of scheduling it (the breaker allowing).
        """
        spec = self.spec_for(ledger.agent_id, action)
        if spec is None:
            return None
        if hold is not None:
            return ActionSkipped(action=action, reason=hold)
        allowed, breaker = breaker_allows(
            spec.breaker, ledger.breakers.get(action, Breaker()), now_ns
        )
        if not allowed:
            return ActionSkipped(
                action=action, reason=f"circuit breaker {breaker.status.replace('_', '-')}"
            )
        if approval is not None:
            return approval
        return ActionScheduled(action=action, breaker=breaker)  # folded into the view as queued

    def start(
        self,
        ledger: Ledger,
        decision: Decision,
        event: dict[str, Any],
        first_attempt: int = 1,
        wait: float = 0.0,
    ) -> None:
        """Run an action in the background; process() does not wait for it."""
        spec = self.spec_for(ledger.agent_id, decision.action)
        if spec is None:
            return
        task = asyncio.get_running_loop().create_task(
            _Run(self._clock, ledger, spec).run(decision, event, first_attempt, wait)
        )
        self._tasks[task] = ledger.agent_id
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def wait(self, agent: str | None = None) -> None:
        """Wait until every action running now (of one agent, or all) has finished.

        Cancelling this wait (a timeout around it, say) never cancels the actions.
        """
        while True:
            tasks = [t for t, owner in self._tasks.items() if agent is None or owner == agent]
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def interrupt(self, agent: str | None = None) -> None:
        """Cancel running actions; each journals its attempt in flight as interrupted."""
        tasks = [t for t, owner in self._tasks.items() if agent is None or owner == agent]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def resume(self, ledger: Ledger) -> None:
        """Find an agent's actions that began but never finished; resume or abandon each."""
        for seq, open_action in sorted(ledger.state.open_actions.items()):
            spec = self.spec_for(ledger.agent_id, open_action.action)
            if spec is None:
                log.warning(
                    "action %s of decision %d of agent %s is unfinished but has no handler; "
                    "it stays pending",
                    open_action.action,
                    seq,
                    ledger.agent_id,
                )
                continue
            found = await ledger.load_decision(seq)
            if found is None:
                continue
            decision, event = found.decision, found.event.as_dict()
            run = _Run(self._clock, ledger, spec)
            if spec.resume == "abandon":
                await run.append(
                    ActionAbandoned(
                        decision_seq=seq,
                        action=spec.name,
                        attempts=open_action.attempt,
                        reason="resume_abandoned",
                    )
                )
                continue
            attempt = open_action.attempt
            if open_action.running:
                delay = run.next_delay(decision, attempt)
                await run.interrupted(seq, attempt, "the process stopped", delay)
                if delay is None:
                    await run.abandon(decision, attempt, "attempts_exhausted")
                    continue
                wait = delay
            elif not open_action.retrying:
                # it had given up; the process stopped before the abandon was journaled
                await run.abandon(decision, attempt, "gave_up_before_restart")
                continue
            else:
                wait = max(0.0, (open_action.due_ns - self._clock.now_ns()) / 1e9)
            log.info("Resuming %s for decision %d at attempt %d", spec.name, seq, attempt + 1)
            self.start(ledger, decision, event, attempt + 1, wait)


class _Run:
    """One action of one decision, carried out attempt by attempt, journaled as it goes."""

    __slots__ = ("_clock", "_ledger", "_spec")

    def __init__(self, clock: Clock, ledger: Ledger, spec: ActionSpec) -> None:
        self._clock = clock
        self._ledger = ledger
        self._spec = spec

    async def run(
        self, decision: Decision, event: dict[str, Any], attempt: int, wait: float
    ) -> None:
        spec, clock = self._spec, self._clock
        if wait > 0:
            await clock.sleep(wait)
        started_ns = clock.now_ns()
        key = f"{self._ledger.agent_id}:{decision.seq}"
        while True:
            await self.append(
                ActionStarted(decision_seq=decision.seq, action=spec.name, attempt=attempt)
            )
            crash_point("action.started")
            call = ActionCall(decision=decision, event=event, attempt=attempt, key=key)
            try:
                await self._call(call)
            except asyncio.CancelledError:
                await self._cancelled(decision, attempt)
                raise
            except Exception as exc:
                delay = await self._failed(call, exc, started_ns)
                if delay is None:
                    return
                await clock.sleep(delay)
                attempt += 1
                continue
            crash_point("action.ran")
            await self.append(
                ActionSucceeded(
                    decision_seq=decision.seq,
                    action=spec.name,
                    attempt=attempt,
                    breaker=breaker_succeeded(self._breaker()),
                ),
                OutcomeRecorded.of(decision, success=True),
            )
            log.info("%s for decision %d succeeded on attempt %d", spec.name, decision.seq, attempt)
            return

    async def _call(self, call: ActionCall) -> None:
        """Run one attempt of the handler, cancelled past the policy's attempt_timeout."""
        result = self._spec.handler(call)
        if not hasattr(result, "__await__"):
            return
        limit = self._spec.retry.attempt_timeout
        if limit is None:
            await result
            return
        attempt = asyncio.ensure_future(result)
        timer = asyncio.ensure_future(self._clock.sleep(limit))
        try:
            await asyncio.wait({attempt, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            timed_out = not attempt.done()
            if timed_out:
                attempt.cancel()
                # a handler may take its time to unwind: its end is not waited for
                attempt.add_done_callback(_consume)
        if timed_out:
            msg = f"attempt {call.attempt} ran past its attempt_timeout of {limit:g}s and was cancelled"
            raise ActionTimeoutError(msg)
        attempt.result()

    async def _cancelled(self, decision: Decision, attempt: int) -> None:
        """Journal an attempt cut off by cancellation as interrupted, for start() to resume."""
        open_action = self._ledger.state.open_actions.get(decision.seq)
        if open_action is None or not open_action.running or open_action.attempt != attempt:
            return  # its start is not journaled yet: the next start() sees a crash and resumes
        try:
            await self.interrupted(
                decision.seq,
                attempt,
                "the action was cancelled",
                self.next_delay(decision, attempt),
            )
        except Exception:  # the journal may be closing; a restart resumes it all the same
            log.exception("could not journal the interruption of %s", self._spec.name)

    async def _failed(self, call: ActionCall, exc: Exception, started_ns: int) -> float | None:
        """Journal a failed attempt; abandon the action or return the wait before the next one."""
        spec = self._spec
        retryable = spec.retry_on is None or spec.retry_on(exc)
        error = f"{type(exc).__name__}: {exc}"[:500]
        seq = call.decision.seq
        then: list[tuple[float | None, str | None]] = []

        def failed() -> list[Record]:
            # read the breaker and queue its successor with no await between: none is lost
            now = self._clock.now_ns()
            breaker = breaker_failed(spec.breaker, self._breaker(), now)
            delay, reason = after_failure(
                spec.retry,
                call.attempt,
                (now - started_ns) / 1e9,
                call.key,
                retryable=retryable,
                breaker_open=breaker.status == "open",
            )
            then.append((delay, reason))
            return [
                ActionFailed(
                    decision_seq=seq,
                    action=spec.name,
                    attempt=call.attempt,
                    error=error,
                    breaker=breaker,
                    retry_in=delay,
                )
            ]

        await self._ledger.append_built(failed)
        delay, reason = then[-1]  # the last build is the one journaled
        crash_point("action.failed")
        log.warning(
            "%s for decision %d failed on attempt %d: %s", spec.name, seq, call.attempt, error
        )
        if delay is None:
            await self.abandon(call.decision, call.attempt, reason or "attempts_exhausted", call)
            return None
        log.info(
            "%s: retrying in %.2fs (attempt %d of %d)",
            spec.name,
            delay,
            call.attempt + 1,
            spec.retry.max_attempts,
        )
        return delay

    def next_delay(self, decision: Decision, attempt: int) -> float | None:
        """The wait before the attempt after `attempt`; None when no attempt follows."""
        if attempt >= self._spec.retry.max_attempts:
            return None
        return delay_for(self._spec.retry, attempt, f"{self._ledger.agent_id}:{decision.seq}")

    async def abandon(
        self, decision: Decision, attempts: int, reason: str, call: ActionCall | None = None
    ) -> None:
        spec = self._spec
        if spec.fallback is not None and call is not None:
            try:
                await resolve(spec.fallback(call))
                reason = "fallback_used"
            except Exception:
                log.exception(
                    "the fallback of %s for decision %d failed too", spec.name, decision.seq
                )
        await self.append(
            ActionAbandoned(
                decision_seq=decision.seq, action=spec.name, attempts=attempts, reason=reason
            ),
            OutcomeRecorded.of(decision, success=False),
        )
        log.warning(
            "%s for decision %d abandoned after %d attempts (%s)",
            spec.name,
            decision.seq,
            attempts,
            reason,
        )

    async def interrupted(self, seq: int, attempt: int, why: str, retry_in: float | None) -> None:
        """Journal an attempt that never got its result as failed, so that it can be resumed."""
        await self.append(
            ActionFailed(
                decision_seq=seq,
                action=self._spec.name,
                attempt=attempt,
                error=f"interrupted: {why} during this attempt",
                breaker=self._breaker(),
                retry_in=retry_in,
            )
        )

    def _breaker(self) -> Breaker:
        return self._ledger.breakers.get(self._spec.name, Breaker())

    async def append(self, *records: Record) -> None:
        await self._ledger.append_records(list(records))


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's outcome, so that asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()
