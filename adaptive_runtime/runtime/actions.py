"""Carry out decided actions durably: every attempt journaled, retried with back-off,
guarded by a circuit breaker per action, and resumed after a crash."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .._awaiting import resolve
from .._checks import check_functions
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
from ..engines.events import fingerprint_of, target_of
from ..errors import (
    ActionTimeoutError,
    AgentOwnedElsewhere,
    ConfigurationError,
    JournalUnavailableError,
)
from ..journal.base import Journal
from ..records import (
    ActionAbandoned,
    ActionAwaitingApproval,
    ActionEscalated,
    ActionFailed,
    ActionScheduled,
    ActionSkipped,
    ActionStarted,
    ActionSucceeded,
    ActionVerified,
    ActionVerifying,
    Breaker,
    Decision,
    DecisionMade,
    Entry,
    EventReceived,
    OutcomeRecorded,
    Record,
    own_copy,
    read_as,
    read_record,
)

if TYPE_CHECKING:
    from ..clock import Clock
    from .ledger import Ledger

__all__ = ["ActionCall", "ActionScheduler", "ActionSpec", "register_action"]

log = logging.getLogger("adaptive_runtime.RECOVERY_ENGINE")

JOURNAL_RETRIES = 8
"""Tries, after a step of an action could not be journaled, to resume it from what the
journal holds: pauses of 0.05 s doubling up to 2 s, about 7 s in all. Past them the action
is left open, for the next start (or the host taking the agent over) to resume."""

Resume = Literal["retry", "abandon"]


class ActionCall(msgspec.Struct, frozen=True, kw_only=True):
    """What an action handler receives."""

    decision: Decision
    event: dict[str, Any]
    attempt: int
    key: str
    """The idempotency key, `agent:decision_seq`: the same for every attempt, across restarts."""


Handler = Callable[[ActionCall], Awaitable[Any] | Any]

Holding = Callable[[str, dict[str, Any], Decision, str, int], str | None]
"""(agent, event, decision, action, now in ns) -> why the operator's controls keep an
action that no person started from running now, or None."""


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """How to tell that an action worked: a handler's return is not proof.

    `within` seconds after the handler returns, the evidence is, in this order: an
    outcome recorded for the decision meanwhile (a resolved alert records one); else the
    `probe` (called with the ActionCall; truthy: the symptom cleared); else no repeat of
    the event in the agent's stream meanwhile (its fingerprint, if it has one; else the
    same type for the same target).
    """

    within: float
    probe: Handler | None = None

    def __post_init__(self) -> None:
        if isinstance(self.within, bool) or not isinstance(self.within, int | float):
            raise ConfigurationError(f"within must be seconds, not {self.within!r}")
        if not 0 < self.within <= 86400:
            raise ConfigurationError(
                f"within must be above 0 and at most a day, not {self.within!r}"
            )
        if self.probe is not None and not callable(self.probe):
            raise ConfigurationError("probe must be callable")


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A registered action handler and the policies it runs under."""

    name: str
    handler: Handler
    retry: RetryPolicy
    breaker: BreakerPolicy
    retry_on: Callable[[BaseException], bool] | None = None
    fallback: Handler | None = None
    resume: Resume = "retry"
    verify: Verification | None = None
    escalate: tuple[str, ...] = ()
    """The ladder walked when a check of this action fails: each next action in turn."""


def register_action(
    scheduler: ActionScheduler,
    agent: str | None,
    name: str,
    retry: RetryPolicy | None,
    breaker: BreakerPolicy | None,
    retry_on: Callable[[BaseException], bool] | None,
    fallback: Handler | None,
    resume: Resume,
    *,
    verify: Verification | None = None,
    escalate: Sequence[str] = (),
) -> Callable[[Handler], Handler]:
    """The decorator that registers an action handler, host-wide or for one agent."""
    if callable(name):  # @runtime.action without the action's name
        raise ConfigurationError(
            "name the action the handler carries out: @runtime.action('restart_service')"
        )
    if not isinstance(name, str) or not name:
        raise ConfigurationError("an action needs a non-empty name, e.g. 'restart_service'")
    if resume not in ("retry", "abandon"):
        raise ConfigurationError(f"resume must be 'retry' or 'abandon', not {resume!r}")
    policies: tuple[tuple[str, object, type], ...] = (
        ("retry", retry, RetryPolicy),
        ("breaker", breaker, BreakerPolicy),
    )
    for what, policy, kind in policies:
        if policy is not None and not isinstance(policy, kind):  # a dict failed at the first call
            raise ConfigurationError(
                f"{what} must be a {kind.__name__}, e.g. {kind.__name__}(...), not"
                f" {type(policy).__name__}"
            )
    check_functions(retry_on=retry_on, fallback=fallback)
    if verify is not None and not isinstance(verify, Verification):
        raise ConfigurationError(f"verify must be a Verification, not {type(verify).__name__}")
    if isinstance(escalate, str) or not all(isinstance(a, str) and a for a in escalate):
        raise ConfigurationError(
            "escalate must be a list of action names, e.g. ['rollback_deployment']"
        )
    if escalate and verify is None:
        raise ConfigurationError("escalate needs verify=: a ladder is walked when a check fails")

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
                verify=verify,
                escalate=tuple(escalate),
            ),
            agent,
        )
        return handler

    return register


def _named(handler: object) -> str:
    """A handler as an error message names it: its qualified name, else its repr."""
    return str(getattr(handler, "__qualname__", None) or repr(handler))


class ActionScheduler:
    """Runs every decided action of a host: handlers registered host-wide or per agent.

    Each action journals through its agent's ledger; a breaker is kept per (agent, action)
    in that agent's state. The scheduler knows an agent only by the ledger it is given.
    """

    __slots__ = (
        "_attempts",
        "_cap",
        "_clock",
        "_decisions",
        "_deferred",
        "_holding",
        "_moved",
        "_names",
        "_reserved",
        "_targets",
        "_tasks",
        "controls_seen",
        "dry_run",
        "specs",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        dry_run: bool = False,
        max_in_flight: Callable[[], int | None] = lambda: None,
        holding: Holding = lambda agent, event, decision, action, ts_ns: None,
        controls_seen: Callable[[], int] = lambda: 0,
    ) -> None:
        self._clock = clock
        self._cap = max_in_flight
        """The fleet policy's max_in_flight now (None: no cap)."""
        self._holding = holding
        """Why the operator's controls keep an action no person started from running now
        (a silence, an approval it needs), or None: asked by why_held()."""
        self.controls_seen = controls_seen
        """The `~host` stream_seq the controls `holding` asks have read: a batch gated by
        why_held() is journaled against it (RuntimeBatch.controls_seen)."""
        self._deferred: dict[str, deque[tuple[tuple[str, int], Callable[[], None]]]] = {}
        """Starts owed from before (resumed, retried, approved, fired after a silence) that
        found their target at max_in_flight, by target: each starts, in order, as a place
        frees; with the (agent, decision seq) each is for."""
        self._moved: list[asyncio.Future[None]] = []
        """wait() calls waiting for a place under max_in_flight to free: answered when one
        may have (futures of the loop each was made on, so a host can start on another)."""
        self.dry_run = dry_run
        """Run no handler. A decided action is journaled as skipped (see plan()'s `hold`);
        one owed later (resumed after a stop, retried from the dead letters, approved, or
        fired after a silence) is not started: it stays owed, for a host that runs them."""
        self.specs: dict[tuple[str | None, str], ActionSpec] = {}
        """Keyed by (agent, action); agent None is a handler for every agent."""
        self._tasks: dict[asyncio.Task[None], str] = {}
        """Running actions, with the agent each is for."""
        self._targets: dict[asyncio.Task[None], str] = {}
        """Running actions, with the target each acts on (for max_in_flight)."""
        self._decisions: dict[asyncio.Task[None], tuple[str, int]] = {}
        """Running actions, with the (agent, decision seq) each is for."""
        self._reserved: dict[int, str] = {}
        """Actions planned in a batch not committed yet, by the batch's token: a place each
        holds under max_in_flight until it starts, or its batch fails."""
        self._names: dict[asyncio.Task[None], str] = {}
        """Running actions, with the name of the action each carries out."""
        self._attempts: dict[asyncio.Future[Any], asyncio.Task[Any]] = {}
        """Handler attempts running in a task of their own (under an attempt_timeout), with
        the action's task each belongs to."""

    def why_held(
        self, ledger: Ledger, event: dict[str, Any], decision: Decision, action: str
    ) -> str | None:
        """Why `action`, for `decision`, must not start by itself now, as a dead letter's
        reason, or None: it may. For an action no person started and no decision planned
        just now: an escalation step, or one a `fire_after` silence owes. The controls
        say `silenced` or `needs_approval`; its breaker, open, says `breaker_open`, as it
        would skip a decision of it. (A person's yes, an approval or a retry, is not asked.)"""
        now = self._clock.now_ns()
        held = self._holding(ledger.agent_id, event, decision, action, now)
        if held is not None:
            return held
        spec = self.spec_for(ledger.agent_id, action)
        if spec is not None:
            allowed, _ = breaker_allows(spec.breaker, ledger.breakers.get(action, Breaker()), now)
            if not allowed:
                return "breaker_open"
        return None

    def register(self, spec: ActionSpec, agent: str | None = None) -> None:
        """Take the handler of an action (host-wide, or for one agent, which comes first).

        The same registration again is a no-op; another handler or policy for the same
        action and scope is refused: the one registered first would never run again.
        """
        key = (agent, spec.name)
        known = self.specs.get(key)
        if known is not None and known != spec:
            where = "host-wide" if agent is None else f"for agent {agent!r}"
            msg = (
                f"action {spec.name!r} has a handler {where} already"
                f" ({_named(known.handler)}); registering {_named(spec.handler)} as well would"
                " replace it without a word: register each action once (one handler may"
                " branch on call.decision)"
            )
            raise ConfigurationError(msg)
        self.specs[key] = spec

    def spec_for(self, agent: str, action: str) -> ActionSpec | None:
        """The handler for an agent's action: its own, else the host-wide one."""
        return self.specs.get((agent, action)) or self.specs.get((None, action))

    def running(self, agent: str | None = None) -> int:
        """How many actions are running, or waiting for a place under max_in_flight (for
        one agent, or for all)."""
        waiting = [owner for queue in self._deferred.values() for (owner, _), _ in queue]
        if agent is None:
            return len(self._tasks) + len(waiting)
        return sum(1 for owner in [*self._tasks.values(), *waiting] if owner == agent)

    def _busy(self, key: str) -> int:
        """Actions running, or planned in a batch not committed yet, for a target."""
        # copies: a batch decided again after a conflict is built on the journal's thread
        busy = sum(1 for k in list(self._reserved.values()) if k == key)
        return busy + sum(1 for k in list(self._targets.values()) if k == key)

    def plan(
        self,
        ledger: Ledger,
        action: str,
        now_ns: int,
        *,
        hold: str | None = None,
        approval: ActionAwaitingApproval | None = None,
        target: str | None = None,
        max_in_flight: int | None = None,
        token: int | None = None,
    ) -> Record | None:
        """The record to journal beside a decision: scheduled, skipped, awaiting approval,
        or none (no handler).

        `hold` is why the action must not run (a dry run, a silence): then it is skipped.
        `approval` is the request to journal instead of scheduling it (the breaker allowing).
        Past `max_in_flight` actions running (or planned) for the target, it is skipped; a
        scheduled one holds its place under `token` until start() or release().
        """
        spec = self.spec_for(ledger.agent_id, action)
        if token is not None:
            self._reserved.pop(token, None)  # a batch built again plans afresh
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
        if max_in_flight is not None:
            key = _target_key(ledger.agent_id, target)
            busy = self._busy(key)
            if busy >= max_in_flight:
                where = ledger.agent_id if target is None else f"{ledger.agent_id}/{target}"
                many = "action" if busy == 1 else "actions"
                reason = f"{busy} {many} in flight for {where}; max_in_flight is {max_in_flight}"
                return ActionSkipped(action=action, reason=reason)
            if token is not None:
                self._reserved[token] = key
        return ActionScheduled(action=action, breaker=breaker)  # folded into the view as queued

    def release(self, token: int) -> None:
        """Give back the place a planned action held (its batch failed, or it won't start)."""
        key = self._reserved.pop(token, None)
        if key is not None:
            self._start_deferred(key)

    def _start_deferred(self, key: str) -> None:
        """A place under max_in_flight may have freed for a target: start what waits for it."""
        queue = self._deferred.get(key)
        if queue is None:
            return
        cap = self._cap()
        while queue and (cap is None or self._busy(key) < cap):
            _, start = queue.popleft()
            start()
        if not queue:
            del self._deferred[key]
        moved, self._moved = self._moved, []
        for waiter in moved:
            if not waiter.done():
                waiter.set_result(None)

    def start(
        self,
        ledger: Ledger,
        decision: Decision,
        event: dict[str, Any],
        first_attempt: int = 1,
        wait: float = 0.0,
        *,
        action: str | None = None,
        verify_only: bool = False,
        token: int | None = None,
        started_ns: int | None = None,
    ) -> None:
        """Run an action in the background; process() does not wait for it.

        `action` is a step of an escalation ladder (default: the decision's own action);
        `verify_only` runs just the check of a handler that already returned;
        `started_ns` is when a resumed run began (total_timeout counts from it).
        An action owed from before (`token` None: resumed, retried, approved, fired after
        a silence) whose target is at the fleet's max_in_flight waits for a place: the cap
        holds, and a person's yes is not dropped. A new decision's place was held by plan().
        """
        if token is not None:
            self._reserved.pop(token, None)  # its place is now the running task's
        if self.dry_run:
            log.warning(
                "dry run: %s for decision %d of agent %s is not started; it stays owed, and a"
                " host that runs handlers carries it out when it serves the agent",
                action or decision.action,
                decision.seq,
                ledger.agent_id,
            )
            return
        key = _target_key(ledger.agent_id, target_of(event))
        if token is None and (cap := self._cap()) is not None and self._busy(key) >= cap:
            what = action or decision.action
            log.info(
                "%s for decision %d of agent %s waits for a place: max_in_flight is %d",
                what,
                decision.seq,
                ledger.agent_id,
                cap,
            )
            start = partial(
                self._run,
                ledger,
                decision,
                event,
                first_attempt,
                wait,
                action,
                verify_only,
                started_ns,
            )
            self._deferred.setdefault(key, deque()).append(((ledger.agent_id, decision.seq), start))
            return
        try:
            self._run(ledger, decision, event, first_attempt, wait, action, verify_only, started_ns)
        finally:
            self._start_deferred(key)  # no task was made, maybe: its held place is free

    def _run(
        self,
        ledger: Ledger,
        decision: Decision,
        event: dict[str, Any],
        first_attempt: int,
        wait: float,
        action: str | None,
        verify_only: bool,
        started_ns: int | None,
    ) -> None:
        """Start an action's task now (start() has checked the dry run and max_in_flight)."""
        spec = self.spec_for(ledger.agent_id, action or decision.action)
        if spec is None:
            if action is not None:
                log.warning("no handler for %s, owed to decision %d", action, decision.seq)
            return
        run = _Run(self._clock, ledger, spec, self)
        work = (
            run.verify(decision, event, first_attempt, wait)
            if verify_only
            else run.run(decision, event, first_attempt, wait, started_ns)
        )
        task = asyncio.get_running_loop().create_task(self._carried(ledger, decision.seq, work))
        self._targets[task] = _target_key(ledger.agent_id, target_of(event))
        self._tasks[task] = ledger.agent_id
        self._decisions[task] = (ledger.agent_id, decision.seq)
        self._names[task] = spec.name
        task.add_done_callback(self._forget)

    async def _carried(self, ledger: Ledger, seq: int, work: Awaitable[None]) -> None:
        """Run an action's work. When one of its steps can't be journaled (the journal
        away, or its answer lost), resume the action from what the journal holds once the
        journal answers, as a host taking the agent over would. The task used to end with
        the error, and the action stayed open, unresumed, while the host ran on. When the
        agent was taken over by another host (this one paused or cut off past its lease),
        the action stops here: its new owner resumes it from the journal."""
        try:
            await work
        except AgentOwnedElsewhere as exc:
            log.warning(
                "the action of decision %d of agent %s stops here: %s; the agent's new owner"
                " resumes it from the journal",
                seq,
                ledger.agent_id,
                exc,
            )
            return
        except JournalUnavailableError as exc:
            log.warning(
                "a step of the action of decision %d of agent %s could not be journaled (%s);"
                " resuming it from the journal once it answers",
                seq,
                ledger.agent_id,
                exc,
            )
        else:
            return
        pause = 0.05
        for _ in range(JOURNAL_RETRIES):
            await self._clock.sleep(pause)
            try:
                await ledger.catch_up()
                await self.resume(ledger, only=seq, why="its journal could not be reached")
                return
            except JournalUnavailableError:
                pause = min(pause * 2, 2.0)
        log.error(
            "the action of decision %d of agent %s is left open: the journal did not answer;"
            " the next start resumes it",
            seq,
            ledger.agent_id,
        )

    def start_recovered(self, ledger: Ledger, batches: list[list[Entry]]) -> None:
        """Start the actions of batches journaled while their callers heard an error (the
        answer lost, found by a catch-up) or stopped waiting (cancelled): each one still
        open, not yet started, and not running here. One that started or finished
        meanwhile is left alone."""
        for entries in batches:
            made = next((e for e in entries if e.kind == DecisionMade.__name__), None)
            received = next((e for e in entries if e.kind == EventReceived.__name__), None)
            if made is None or received is None:
                continue
            opened = ledger.state.open_actions.get(made.seq)
            if opened is None or opened.attempt or opened.verifying:
                continue
            if self._here(ledger.agent_id, made.seq):
                continue
            decision = msgspec.structs.replace(
                read_as(made, DecisionMade).decision, seq=made.seq, event_seq=received.seq
            )
            log.info(
                "action %s of decision %d of agent %s: its decision was journaled while the "
                "caller heard an error or was cancelled; starting it now",
                opened.action,
                made.seq,
                ledger.agent_id,
            )
            self.start(ledger, decision, read_as(received, EventReceived).event.as_dict())

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        key = self._targets.pop(task, None)
        self._decisions.pop(task, None)
        self._names.pop(task, None)
        if key is not None:
            self._start_deferred(key)

    def attempt_started(self, attempt: asyncio.Future[Any]) -> None:
        """A handler's attempt runs in a task of its own (see handler_here)."""
        task = asyncio.current_task()
        if task is not None:
            self._attempts[attempt] = task
            attempt.add_done_callback(self._attempts.pop)

    def handler_here(self) -> tuple[str, str, int] | None:
        """(agent, action, decision seq) of the action whose handler runs in this task."""
        task = asyncio.current_task()
        if task is None:
            return None
        owner = self._attempts.get(task, task)
        found, name = self._decisions.get(owner), self._names.get(owner)
        if found is None or name is None:
            return None
        return found[0], name, found[1]

    def refuse_waiting_here(self, what: str, agent: str | None = None, instead: str = "") -> None:
        """Raise ConfigurationError if this task runs an action handler that `what` would
        wait for: it would wait for itself, for ever."""
        here = self.handler_here()
        if here is None or (agent is not None and here[0] != agent):
            return
        owner, action, seq = here
        msg = (
            f"{what} was awaited inside the handler of {action} for decision {seq} of agent"
            f" {owner!r}: it waits for every action running, that one too, so it would wait"
            f" for ever{instead}"
        )
        raise ConfigurationError(msg)

    async def wait(self, agent: str | None = None) -> None:
        """Wait until every action running now (of one agent, or all) has finished.

        Cancelling this wait (a timeout around it, say) never cancels the actions. Awaited
        inside an action's handler it would wait for that handler: ConfigurationError.
        """
        self.refuse_waiting_here("wait_for_actions()", agent)
        while True:
            tasks = [t for t, owner in self._tasks.items() if agent is None or owner == agent]
            if tasks:
                await asyncio.wait(tasks)
            elif self._waiting(agent):  # their place is held by a batch not committed yet
                moved = asyncio.get_running_loop().create_future()
                self._moved.append(moved)
                await moved
            else:
                return

    def _waiting(self, agent: str | None) -> bool:
        return any(
            agent is None or owner == agent
            for queue in self._deferred.values()
            for (owner, _), _ in queue
        )

    def _here(self, agent: str, seq: int) -> bool:
        """Whether a decision's action runs here, or waits here for a place."""
        return (agent, seq) in self._decisions.values() or any(
            found == (agent, seq) for queue in self._deferred.values() for found, _ in queue
        )

    async def interrupt(self, agent: str | None = None) -> None:
        """Cancel running actions; each journals its attempt in flight as interrupted. Those
        waiting for a place under max_in_flight stay owed: the next start resumes them."""
        for key, queue in list(self._deferred.items()):
            kept = deque(item for item in queue if agent not in (None, item[0][0]))
            if kept:
                self._deferred[key] = kept
            else:
                del self._deferred[key]
        tasks = [t for t, owner in self._tasks.items() if agent is None or owner == agent]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def resume(
        self,
        ledger: Ledger,
        *,
        upto: int | None = None,
        only: int | None = None,
        why: str = "the process stopped",
    ) -> None:
        """Find an agent's actions that began but never finished; resume or abandon each
        (with `upto`, only those of decisions at or before that seq: another host's; with
        `only`, the action of that decision alone, whose run here could not journal a step:
        `why` is said of an attempt it cut short). A dry run leaves them as they are,
        journaling nothing: a host that runs handlers resumes them."""
        if self.dry_run:
            for seq, open_action in sorted(ledger.state.open_actions.items()):
                if (only is None or seq == only) and (upto is None or seq <= upto):
                    log.warning(
                        "dry run: %s for decision %d of agent %s is unfinished and stays so;"
                        " a host that runs handlers resumes it when it serves the agent",
                        open_action.action,
                        seq,
                        ledger.agent_id,
                    )
            return
        for seq, open_action in sorted(ledger.state.open_actions.items()):
            if only is not None and seq != only:
                continue
            if upto is not None and (seq > upto or self._here(ledger.agent_id, seq)):
                continue  # this host's own, or running here
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
            if open_action.verifying:  # the handler returned; only its check is owed
                due = max(0.0, (open_action.due_ns - self._clock.now_ns()) / 1e9)
                self.start(ledger, decision, event, 1, due, action=spec.name, verify_only=True)
                continue
            run = _Run(self._clock, ledger, spec, self)
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
            now = self._clock.now_ns()
            # total_timeout counts from the run's first attempt, the time stopped included:
            # a restart long after must not run a stale action (no limit, nothing to read)
            started = None
            if spec.retry.total_timeout is not None:
                started = await ledger.run_started_ns(seq, spec.name) or now
            if open_action.running:
                delay = run.next_delay(decision, attempt)
                late = delay is not None and _past_time_limit(
                    spec, started, now + round(delay * 1e9)
                )
                await run.interrupted(seq, attempt, why, None if late else delay)
                if delay is None or late:
                    await run.abandon(
                        decision, attempt, "time_limit" if late else "attempts_exhausted"
                    )
                    continue
                wait = delay
            elif not open_action.retrying:
                # it had given up; the process stopped before the abandon was journaled
                await run.abandon(decision, attempt, "gave_up_before_restart")
                continue
            elif _past_time_limit(spec, started, max(now, open_action.due_ns)):
                await run.abandon(decision, attempt, "time_limit")
                continue
            else:
                wait = max(0.0, (open_action.due_ns - now) / 1e9)
            log.info("Resuming %s for decision %d at attempt %d", spec.name, seq, attempt + 1)
            self.start(
                ledger, decision, event, attempt + 1, wait, action=spec.name, started_ns=started
            )


MAX_ERROR = 500
"""The most of a handler's error that is journaled, in characters."""


def error_text(exc: BaseException) -> str:
    """A handler's exception as the journal keeps it: its type and message, at most
    MAX_ERROR characters of valid UTF-8.

    A message may hold lone surrogates (a command's output decoded with
    surrogateescape), which no record can encode, or a __str__ may raise: either way
    the failure is journaled, with what could be read of it, rather than left unjournaled
    with its action shown running for ever.
    """
    name = type(exc).__name__
    try:
        text = f"{name}: {exc}"
    except Exception:
        text = f"{name} (its message could not be read)"
    if len(text) > MAX_ERROR:
        text = text[:MAX_ERROR]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_ERROR]


def _past_time_limit(spec: ActionSpec, started_ns: int | None, next_ns: int) -> bool:
    """Whether an attempt at next_ns would begin past the run's total_timeout, as
    after_failure judges a wait (counted from the run's first attempt, `started_ns`)."""
    limit = spec.retry.total_timeout
    return limit is not None and started_ns is not None and (next_ns - started_ns) / 1e9 > limit


class _Run:
    """One action of one decision, carried out attempt by attempt, journaled as it goes."""

    __slots__ = ("_clock", "_ledger", "_scheduler", "_spec")

    def __init__(
        self, clock: Clock, ledger: Ledger, spec: ActionSpec, scheduler: ActionScheduler
    ) -> None:
        self._clock = clock
        self._ledger = ledger
        self._spec = spec
        self._scheduler = scheduler

    def _outcome(self, decision: Decision, success: bool) -> OutcomeRecorded:
        """The outcome of this run's action (a step of a ladder is not the decision's own)."""
        own = msgspec.structs.replace(decision, action=self._spec.name)
        return OutcomeRecorded.of(own, success=success)

    async def run(
        self,
        decision: Decision,
        event: dict[str, Any],
        attempt: int,
        wait: float,
        started_ns: int | None = None,
    ) -> None:
        spec, clock = self._spec, self._clock
        if wait > 0:
            await clock.sleep(wait)
        if started_ns is None:  # a new run; a resumed one goes on counting from its start
            started_ns = clock.now_ns()
        key = f"{self._ledger.agent_id}:{decision.seq}"
        while True:
            await self.append(
                ActionStarted(decision_seq=decision.seq, action=spec.name, attempt=attempt)
            )
            crash_point("action.started")
            # each call its own copy: a handler that changes it changes neither the next
            # attempt's event nor what the check after it looks for (as on a resumed run)
            call = ActionCall(decision=decision, event=own_copy(event), attempt=attempt, key=key)
            try:
                await self._call(call)
            except asyncio.CancelledError:
                await self._cancelled(decision, attempt)
                raise
            except Exception as exc:
                # the fallback, if it runs, is given the event as journaled, not this attempt's
                delay = await self._failed(
                    msgspec.structs.replace(call, event=own_copy(event)), exc, started_ns
                )
                if delay is None:
                    return
                await clock.sleep(delay)
                attempt += 1
                continue
            crash_point("action.ran")
            succeeded = ActionSucceeded(
                decision_seq=decision.seq,
                action=spec.name,
                attempt=attempt,
                breaker=breaker_succeeded(self._breaker()),
            )
            log.info("%s for decision %d succeeded on attempt %d", spec.name, decision.seq, attempt)
            if spec.verify is None:
                await self.append(succeeded, self._outcome(decision, True))
                return
            due = clock.now_ns() + round(spec.verify.within * 1e9)
            await self.append(
                succeeded, ActionVerifying(decision_seq=decision.seq, action=spec.name, due_ns=due)
            )
            await self.verify(decision, event, attempt, spec.verify.within)
            return

    async def verify(
        self, decision: Decision, event: dict[str, Any], attempt: int, wait: float
    ) -> None:
        """Check, `wait` seconds on, whether the action worked; journal the outcome found, and
        walk the escalation ladder if it did not."""
        spec = self._spec
        if wait > 0:
            await self._clock.sleep(wait)
        call = ActionCall(
            decision=decision,
            event=own_copy(event),
            attempt=attempt,
            key=f"{self._ledger.agent_id}:{decision.seq}",
        )
        ok, evidence, recorded = await self._check(call)
        records: list[Record] = [
            ActionVerified(decision_seq=decision.seq, action=spec.name, ok=ok, evidence=evidence)
        ]
        if not recorded:
            records.append(self._outcome(decision, ok))
        ladder = self._ladder(decision)
        step = 0 if spec.name == decision.action else ladder.index(spec.name) + 1
        following = None
        if not ok and step < len(ladder):
            following = ladder[step]
            records.append(
                ActionEscalated(
                    decision_seq=decision.seq, action=following, step=step + 1, reason=evidence
                )
            )
            held: list[str | None] = [None]

            def gated() -> list[Record]:
                # asked as the batch is built, from the controls it is journaled against:
                # if they move on before its commit, it is built again (see controls_seen)
                held[0] = self._scheduler.why_held(self._ledger, event, decision, ladder[step])
                if held[0] is None:
                    return records
                # a person's call: a dead letter, to retry or dismiss
                return [
                    *records,
                    ActionAbandoned(
                        decision_seq=decision.seq, action=ladder[step], attempts=0, reason=held[0]
                    ),
                ]

            await self._ledger.append_built(gated, controls_seen=self._scheduler.controls_seen)
            if held[0] is not None:
                log.warning(
                    "%s for decision %d is not run: %s; it is a dead letter, for a person to"
                    " retry or dismiss",
                    following,
                    decision.seq,
                    held[0],
                )
                following = None
        else:
            if not ok:
                records.append(
                    ActionAbandoned(
                        decision_seq=decision.seq,
                        action=spec.name,
                        attempts=attempt,
                        reason="verification_failed",
                    )
                )
            await self.append(*records)
        log.log(
            logging.INFO if ok else logging.WARNING,
            "%s for decision %d %s: %s",
            spec.name,
            decision.seq,
            "verified" if ok else "did not work",
            evidence,
        )
        if following is not None:
            self._scheduler.start(self._ledger, decision, event, action=following)

    def _ladder(self, decision: Decision) -> tuple[str, ...]:
        first = self._scheduler.spec_for(self._ledger.agent_id, decision.action)
        return () if first is None else first.escalate

    async def _check(self, call: ActionCall) -> tuple[bool, str, bool]:
        """(worked, the evidence, whether an outcome was recorded already)."""
        spec, decision = self._spec, call.decision
        assert spec.verify is not None
        worker = self._ledger.worker
        later = await worker.run(_after, worker.journal, self._ledger.agent_id, decision.seq)
        since = 0
        for entry in later:
            record = read_record(entry)
            if isinstance(record, ActionVerifying) and record.decision_seq == decision.seq:
                since = entry.seq  # the last check begun for this decision
        for entry in later:
            record = read_record(entry)
            if (
                entry.seq > since
                and isinstance(record, OutcomeRecorded)
                and record.decision_seq == decision.seq
            ):
                verdict = "success" if record.success else "failure"
                return (
                    record.success,
                    f"an outcome ({verdict}) was recorded at seq {entry.seq}",
                    True,
                )
        if spec.verify.probe is not None:
            try:
                ok = bool(await resolve(spec.verify.probe(call)))
            except Exception as exc:
                return False, f"the probe failed: {error_text(exc)}"[:MAX_ERROR], False
            return ok, "the probe found the symptom " + ("cleared" if ok else "still there"), False
        target, fingerprint = target_of(call.event), fingerprint_of(call.event)
        for entry in later:
            record = read_record(entry)
            if entry.seq > since and isinstance(record, EventReceived):
                ev = record.event
                if fingerprint is not None:  # the symptom is its fingerprint, when it has one
                    again = fingerprint_of(ev.attrs) == fingerprint
                else:
                    again = ev.type == decision.event_type and target_of(ev.attrs) == target
                if again:
                    return False, f"the symptom came back: {ev.type} at seq {entry.seq}", False
        what = f"fingerprint {fingerprint}" if fingerprint is not None else decision.event_type
        where = "" if target is None or fingerprint is not None else f" for {target}"
        return True, f"no {what}{where} within {spec.verify.within:g}s", False

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
        self._scheduler.attempt_started(attempt)
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
        retryable = self._retryable(exc)
        error = error_text(exc)
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

    def _retryable(self, exc: Exception) -> bool:
        """Whether retry_on lets this error be retried; an error it raises on is not (the
        failure is journaled and the action abandoned, its fallback run: a person can
        retry the dead letter)."""
        retry_on = self._spec.retry_on
        if retry_on is None:
            return True
        try:
            return bool(retry_on(exc))
        except Exception:
            log.exception(
                "retry_on of %s raised on %s; taken as not retryable",
                self._spec.name,
                type(exc).__name__,
            )
            return False

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
            self._outcome(decision, False),
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


def _after(journal: Journal, agent: str, seq: int) -> list[Entry]:
    """An agent's entries after a seq (a decision's, when its action is checked)."""
    return list(journal.read(agent, after=seq))


def _target_key(agent: str, target: str | None) -> str:
    return f"{agent}\x1f{target or ''}"
