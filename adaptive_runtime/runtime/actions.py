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
    breaker_allows,
    breaker_failed,
    breaker_succeeded,
    delay_for,
)
from ..errors import ActionTimeoutError
from ..records import (
    ActionAbandoned,
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
    from ..projections import AgentState
    from .runtime import Runtime

__all__ = ["ActionCall", "ActionRunner", "ActionSpec"]

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


class ActionRunner:
    """Schedules, runs and resumes a runtime's actions; journals through the runtime."""

    __slots__ = ("_runtime", "_tasks", "breakers", "specs")

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.specs: dict[str, ActionSpec] = {}
        self.breakers: dict[str, Breaker] = {}
        """The breakers as of the last record queued (ahead of the committed state)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, spec: ActionSpec) -> None:
        self.specs[spec.name] = spec

    def sync(self, state: AgentState) -> None:
        """Take the breakers from the committed state (after a rebuild or a catch-up)."""
        self.breakers = dict(state.breakers)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def plan(self, action: str, now_ns: int) -> Record | None:
        """The record to journal beside a decision: scheduled, skipped, or none (no handler)."""
        spec = self.specs.get(action)
        if spec is None:
            return None
        allowed, breaker = breaker_allows(
            spec.breaker, self.breakers.get(action, Breaker()), now_ns
        )
        if not allowed:
            return ActionSkipped(
                action=action, reason=f"circuit breaker {breaker.status.replace('_', '-')}"
            )
        self.breakers[action] = breaker
        return ActionScheduled(action=action, breaker=breaker)

    def start(
        self, decision: Decision, event: dict[str, Any], first_attempt: int = 1, wait: float = 0.0
    ) -> None:
        """Run an action in the background; process() does not wait for it."""
        spec = self.specs[decision.action]
        task = asyncio.get_running_loop().create_task(
            self._run(spec, decision, event, first_attempt, wait)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Wait until every action running now has finished.

        Cancelling this wait (a timeout around it, say) never cancels the actions.
        """
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def interrupt(self) -> None:
        """Cancel running actions; each journals its attempt in flight as interrupted."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def resume(self) -> None:
        """Find actions that began but never finished, and resume or abandon each by policy."""
        runtime = self._runtime
        for seq, open_action in sorted(runtime.state.open_actions.items()):
            spec = self.specs.get(open_action.action)
            if spec is None:
                log.warning(
                    "action %s of decision %d is unfinished but has no handler; it stays pending",
                    open_action.action,
                    seq,
                )
                continue
            found = await runtime._load_decision(seq)
            if found is None:
                continue
            decision, event = found
            if spec.resume == "abandon":
                await self._append(
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
                delay = self._next_delay(spec, decision, attempt)
                await self._interrupted(seq, spec.name, attempt, "the process stopped", delay)
                if delay is None:
                    await self._abandon(spec, decision, attempt, "attempts_exhausted")
                    continue
                wait = delay
            elif not open_action.retrying:
                # it had given up; the process stopped before the abandon was journaled
                await self._abandon(spec, decision, attempt, "gave_up_before_restart")
                continue
            else:
                wait = max(0.0, (open_action.due_ns - runtime.clock.now_ns()) / 1e9)
            log.info("Resuming %s for decision %d at attempt %d", spec.name, seq, attempt + 1)
            self.start(decision, event, attempt + 1, wait)

    # -- one action ------------------------------------------------------------

    async def _run(
        self, spec: ActionSpec, decision: Decision, event: dict[str, Any], attempt: int, wait: float
    ) -> None:
        clock = self._runtime.clock
        if wait > 0:
            await clock.sleep(wait)
        started_ns = clock.now_ns()
        key = f"{self._runtime.agent_id}:{decision.seq}"
        while True:
            await self._append(
                ActionStarted(decision_seq=decision.seq, action=spec.name, attempt=attempt)
            )
            crash_point("action.started")
            call = ActionCall(decision=decision, event=event, attempt=attempt, key=key)
            try:
                await self._call(spec, call)
            except asyncio.CancelledError:
                await self._cancelled(spec, decision, attempt)
                raise
            except Exception as exc:
                delay = await self._failed(spec, call, exc, started_ns)
                if delay is None:
                    return
                await clock.sleep(delay)
                attempt += 1
                continue
            crash_point("action.ran")
            breaker = breaker_succeeded(self.breakers.get(spec.name, Breaker()))
            self.breakers[spec.name] = breaker
            await self._append(
                ActionSucceeded(
                    decision_seq=decision.seq, action=spec.name, attempt=attempt, breaker=breaker
                ),
                OutcomeRecorded.of(decision, success=True),
            )
            log.info("%s for decision %d succeeded on attempt %d", spec.name, decision.seq, attempt)
            return

    async def _call(self, spec: ActionSpec, call: ActionCall) -> None:
        """Run one attempt of the handler, cancelled past the policy's attempt_timeout."""
        result = spec.handler(call)
        if not hasattr(result, "__await__"):
            return
        limit = spec.retry.attempt_timeout
        if limit is None:
            await result
            return
        attempt = asyncio.ensure_future(result)
        timer = asyncio.ensure_future(self._runtime.clock.sleep(limit))
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

    async def _cancelled(self, spec: ActionSpec, decision: Decision, attempt: int) -> None:
        """Journal an attempt cut off by cancellation as interrupted, for start() to resume."""
        open_action = self._runtime.state.open_actions.get(decision.seq)
        if open_action is None or not open_action.running or open_action.attempt != attempt:
            return  # its start is not journaled yet: the next start() sees a crash and resumes
        try:
            await self._interrupted(
                decision.seq,
                spec.name,
                attempt,
                "the action was cancelled",
                self._next_delay(spec, decision, attempt),
            )
        except Exception:  # the journal may be closing; a restart resumes it all the same
            log.exception("could not journal the interruption of %s", spec.name)

    async def _failed(
        self, spec: ActionSpec, call: ActionCall, exc: Exception, started_ns: int
    ) -> float | None:
        """Journal a failed attempt; abandon the action or return the wait before the next one."""
        now = self._runtime.clock.now_ns()
        breaker = breaker_failed(spec.breaker, self.breakers.get(spec.name, Breaker()), now)
        self.breakers[spec.name] = breaker
        reason = self._give_up_reason(
            spec, exc, call.attempt, breaker, (now - started_ns) / 1e9, call.key
        )
        delay = None if reason else delay_for(spec.retry, call.attempt, call.key)
        error = f"{type(exc).__name__}: {exc}"[:500]
        seq = call.decision.seq
        await self._append(
            ActionFailed(
                decision_seq=seq,
                action=spec.name,
                attempt=call.attempt,
                error=error,
                breaker=breaker,
                retry_in=delay,
            )
        )
        crash_point("action.failed")
        log.warning(
            "%s for decision %d failed on attempt %d: %s", spec.name, seq, call.attempt, error
        )
        if delay is None:
            await self._abandon(
                spec, call.decision, call.attempt, reason or "attempts_exhausted", call
            )
            return None
        log.info(
            "%s: retrying in %.2fs (attempt %d of %d)",
            spec.name,
            delay,
            call.attempt + 1,
            spec.retry.max_attempts,
        )
        return delay

    def _give_up_reason(
        self,
        spec: ActionSpec,
        exc: BaseException,
        attempt: int,
        breaker: Breaker,
        elapsed: float,
        key: str,
    ) -> str | None:
        if spec.retry_on is not None and not spec.retry_on(exc):
            return "not_retryable"
        if attempt >= spec.retry.max_attempts:
            return "attempts_exhausted"
        if breaker.status == "open":
            return "breaker_open"
        limit = spec.retry.total_timeout
        if limit is not None and elapsed + delay_for(spec.retry, attempt, key) > limit:
            return "time_limit"
        return None

    def _next_delay(self, spec: ActionSpec, decision: Decision, attempt: int) -> float | None:
        if attempt >= spec.retry.max_attempts:
            return None
        return delay_for(spec.retry, attempt, f"{self._runtime.agent_id}:{decision.seq}")

    async def _abandon(
        self,
        spec: ActionSpec,
        decision: Decision,
        attempts: int,
        reason: str,
        call: ActionCall | None = None,
    ) -> None:
        if spec.fallback is not None and call is not None:
            try:
                await resolve(spec.fallback(call))
                reason = "fallback_used"
            except Exception:
                log.exception(
                    "the fallback of %s for decision %d failed too", spec.name, decision.seq
                )
        await self._append(
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

    async def _interrupted(
        self, seq: int, action: str, attempt: int, why: str, retry_in: float | None
    ) -> None:
        """Journal an attempt that never got its result as failed, so that it can be resumed."""
        error = f"interrupted: {why} during this attempt"
        breaker = self.breakers.get(action, Breaker())
        await self._append(
            ActionFailed(
                decision_seq=seq,
                action=action,
                attempt=attempt,
                error=error,
                breaker=breaker,
                retry_in=retry_in,
            )
        )

    async def _append(self, *records: Record) -> None:
        await self._runtime._append_records(list(records))


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's outcome, so that asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()
