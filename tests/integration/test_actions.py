"""Durable actions: retried with back-off, journaled attempt by attempt, behind a breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from journal_support import assert_replays

from adaptive_runtime import (
    ActionCall,
    BreakerPolicy,
    ConfigurationError,
    Host,
    InvalidEventError,
    LearningPolicy,
    ManualClock,
    RetryPolicy,
    Runtime,
    Verification,
)
from adaptive_runtime.cli import main
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.agent import OpenAction
from adaptive_runtime.projections.controls import unfinished_actions
from adaptive_runtime.records import ActionFailed, decode_record

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
NO_JITTER = RetryPolicy(max_attempts=3, base_delay=1.0, jitter=0.0)


class Flaky:
    """A fake action that fails its first `failures` calls, then succeeds; it logs every call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, call: ActionCall) -> None:
        self.calls.append((call.key, call.attempt))
        if len(self.calls) <= self.failures:
            raise ConnectionError(f"restart refused ({len(self.calls)})")


def kinds(path: Path) -> list[str]:
    return [e.kind for e in SqliteJournal(path).read() if e.kind.startswith(("Action", "Outcome"))]


async def test_flaky_action_is_retried_with_backoff_and_journaled(tmp_path: Path) -> None:
    """Two failures then success: three attempts, waits of 1 s and 2 s, every step journaled."""
    clock = ManualClock()
    flaky = Flaky(failures=2)
    async with Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal"
    ) as runtime:
        runtime.action("restart_service", retry=NO_JITTER)(flaky)
        d = await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
        assert [(f"a:{d.seq}", 1), (f"a:{d.seq}", 2), (f"a:{d.seq}", 3)] == flaky.calls
        assert [1.0, 2.0] == clock.slept
        assert {
            k: runtime.metrics()["actions"][k]
            for k in ("attempts", "failures", "succeeded", "abandoned", "unfinished")
        } == {"attempts": 3, "failures": 2, "succeeded": 1, "abandoned": 0, "unfinished": 0}
    assert kinds(tmp_path / "j.db") == [
        "ActionScheduled",
        "ActionStarted",
        "ActionFailed",
        "ActionStarted",
        "ActionFailed",
        "ActionStarted",
        "ActionSucceeded",
        "OutcomeRecorded",
    ]
    failed = [
        decode_record(e.body) for e in SqliteJournal(tmp_path / "j.db").read(kind="ActionFailed")
    ]
    assert [(f.attempt, f.retry_in, f.error) for f in failed if isinstance(f, ActionFailed)] == [
        (1, 1.0, "ConnectionError: restart refused (1)"),
        (2, 2.0, "ConnectionError: restart refused (2)"),
    ]


class _Unreadable(Exception):
    def __str__(self) -> str:
        raise ValueError("no message here")


async def test_a_failure_whose_message_no_record_can_hold_is_journaled_all_the_same(
    tmp_path: Path,
) -> None:
    """A handler's error with lone surrogates (a command's stderr decoded with
    surrogateescape) made ActionFailed unencodable, and one whose __str__ raised broke
    the journaling: either way the failure went unjournaled, with a traceback, and the
    action was shown running for ever, never retried nor abandoned. Both are journaled now."""
    clock = ManualClock()
    errors: list[Exception] = [
        RuntimeError("stderr: " + b"\xff\xfe".decode("utf-8", "surrogateescape")),
        _Unreadable(),
        ConnectionError("x" * 2000),
    ]

    async def handler(call: ActionCall) -> None:
        raise errors[call.attempt - 1]

    async with Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal"
    ) as runtime:
        runtime.action("restart_service", retry=NO_JITTER)(handler)
        await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
        assert {} == runtime.state.open_actions
        assert 1 == runtime.metrics()["actions"]["abandoned"]
    failed = [
        decode_record(e.body) for e in SqliteJournal(tmp_path / "j.db").read(kind="ActionFailed")
    ]
    said = [f.error for f in failed if isinstance(f, ActionFailed)]
    assert [
        "RuntimeError: stderr: \\udcff\\udcfe",
        "_Unreadable (its message could not be read)",
        "ConnectionError: " + "x" * (500 - len("ConnectionError: ")),
    ] == said
    assert_replays(tmp_path / "j.db")


async def test_each_handler_call_gets_the_event_as_journaled(tmp_path: Path) -> None:
    """Every attempt, the check after the last one, the fallback and each event handler
    were handed one dict (or shallow copies of it): a handler that changed it, nested
    labels included, changed what the next attempt, the check and the other handlers saw,
    unlike a run resumed from the journal. Each is handed a copy of its own now."""
    clock = ManualClock()
    event = {**OVERLOAD, "target": "api", "labels": {"team": "core"}}
    seen: list[tuple[str, object, object]] = []

    def spoil(what: str, given: dict[str, object]) -> None:
        labels = given["labels"]
        assert isinstance(labels, dict)
        seen.append((what, given.get("target"), dict(labels)))
        given["target"] = "elsewhere"
        labels["team"] = "spoiled"

    async def probe(call: ActionCall) -> bool:
        spoil("probe", call.event)
        return True

    async def restart(call: ActionCall) -> None:
        spoil(f"attempt {call.attempt}", call.event)
        if call.attempt == 1:
            raise ConnectionError("refused")

    async with Runtime(agent_id="a", path=tmp_path / "j.db", clock=clock) as runtime:

        @runtime.bus.subscribe("service_overload")
        async def first(given: dict[str, object]) -> None:
            spoil("bus 1", given)

        @runtime.bus.subscribe("service_overload")
        async def second(given: dict[str, object]) -> None:
            spoil("bus 2", given)

        runtime.action(
            "restart_service", retry=NO_JITTER, verify=Verification(within=5.0, probe=probe)
        )(restart)
        await runtime.process(event)
        await runtime.bus.drain()
        await runtime.wait_for_actions()
    as_sent = ("api", {"team": "core"})
    assert {
        "bus 1": as_sent,
        "bus 2": as_sent,
        "attempt 1": as_sent,
        "attempt 2": as_sent,
        "probe": as_sent,
    } == {what: (target, labels) for what, target, labels in seen}


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"retry": {"max_attempts": 2}}, "retry must be a RetryPolicy"),
        ({"breaker": {"failure_threshold": 3}}, "breaker must be a BreakerPolicy"),
        ({"retry_on": "ConnectionError"}, "retry_on must be a function"),
        ({"fallback": "restart"}, "fallback must be a function"),
    ],
)
def test_an_action_setting_of_the_wrong_kind_is_refused_at_registration(
    settings: dict[str, object], says: str
) -> None:
    """retry={"max_attempts": 2} was registered, and failed only when the action first ran."""
    runtime = Runtime(agent_id="ops", path="unused.db")
    with pytest.raises(ConfigurationError, match=says):
        runtime.action("restart_service", **settings)  # type: ignore[arg-type]


async def test_explain_of_a_step_planned_with_a_decision_names_that_decision() -> None:
    """`explain` of an ActionScheduled (its seq, as the stream and `tail` show it) said only
    "no decision at seq 3"; an outcome or an attempt named its decision, but a step planned
    in the decision's own transaction carries no decision_seq."""
    from adaptive_runtime.projections.audit import explain

    async with Runtime(persist=False, clock=ManualClock()) as runtime:

        @runtime.action("restart_service")
        async def restart(call: ActionCall) -> None:
            pass

        decision = await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
        journal = runtime.journal
        assert "ActionScheduled" == journal.get(decision.seq + 1).kind  # type: ignore[union-attr]
        with pytest.raises(LookupError) as caught:
            explain(journal, decision.seq + 1)
    said = f"it holds the ActionScheduled of the decision at seq {decision.seq}"
    assert f"no decision at seq {decision.seq + 1}: {said}" == str(caught.value).strip("'\"")


async def test_a_second_handler_for_an_action_is_refused_not_swapped_in() -> None:
    """A second `@runtime.action("restart_service")` replaced the first without a word,
    so the first never ran. The same registration again changes nothing; a handler for
    one agent still comes before the host-wide one."""
    runtime = Runtime(agent_id="ops", persist=False, clock=ManualClock())
    ran: list[str] = []

    async def first(call: ActionCall) -> None:
        ran.append("first")

    async def second(call: ActionCall) -> None:
        ran.append("second")

    runtime.action("restart_service")(first)
    runtime.action("restart_service")(first)  # the same again: a no-op
    with pytest.raises(ConfigurationError) as caught:
        runtime.action("restart_service")(second)
    assert (
        "action 'restart_service' has a handler for agent 'ops' already (test_a_second_handler"
        "_for_an_action_is_refused_not_swapped_in.<locals>.first); registering test_a_second"
        "_handler_for_an_action_is_refused_not_swapped_in.<locals>.second as well would"
        " replace it without a word: register each action once (one handler may branch on"
        " call.decision)"
    ) == str(caught.value)
    with pytest.raises(ConfigurationError, match="has a handler for agent 'ops' already"):
        runtime.action("restart_service", retry=RetryPolicy(max_attempts=1))(first)
    async with runtime:
        await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
    assert ["first"] == ran
    host = Host("memory:", clock=ManualClock())
    host.action("restart_service")(second)
    with pytest.raises(ConfigurationError, match="has a handler host-wide already"):
        host.action("restart_service")(first)
    host.agent("ops").action("restart_service")(first)  # its own scope: it comes first
    assert first is host.actions.spec_for("ops", "restart_service").handler  # type: ignore[union-attr]
    assert second is host.actions.spec_for("web", "restart_service").handler  # type: ignore[union-attr]


def test_an_action_decorator_without_its_name_says_to_name_it() -> None:
    """`@runtime.action` bare said only that the action needs a non-empty name."""
    runtime = Runtime(agent_id="ops", path="unused.db")
    with pytest.raises(ConfigurationError, match=r"@runtime.action\('restart_service'\)"):

        @runtime.action  # type: ignore[arg-type]
        async def restart(call: ActionCall) -> None: ...


async def test_process_does_not_wait_for_actions() -> None:
    """process() returns while its action is still running."""
    gate = asyncio.Event()
    async with Runtime(persist=False, clock=ManualClock()) as runtime:

        @runtime.action("restart_service")
        async def slow(call: ActionCall) -> None:
            await gate.wait()

        await runtime.process(OVERLOAD)
        assert 1 == runtime.metrics()["actions"]["running"]
        gate.set()
        await runtime.wait_for_actions()
        assert 1 == runtime.metrics()["actions"]["succeeded"]


async def test_failing_action_lowers_confidence_until_the_decision_changes(tmp_path: Path) -> None:
    """Restarts that keep failing are abandoned, feed failures back, and throttling takes over."""
    async with Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=ManualClock(), durability="normal"
    ) as runtime:
        runtime.action(
            "restart_service", retry=RetryPolicy(max_attempts=2, base_delay=0.5, jitter=0.0)
        )(Flaky(failures=100))
        actions = []
        for _ in range(4):
            d = await runtime.process(OVERLOAD)
            actions.append(d.action)
            await runtime.wait_for_actions()
        assert ["restart_service", "throttle_requests"] == [actions[0], actions[-1]]
        assert runtime.state.actions_abandoned >= 1
    assert verify_replay(SqliteJournal(tmp_path / "j.db")).ok


@pytest.mark.parametrize(
    ("error", "retry_on", "journaled"),
    [
        (
            PermissionError("not allowed"),
            lambda e: not isinstance(e, PermissionError),
            "PermissionError: not allowed",
        ),
        # raised out of the journaling of the failure: the attempt went unjournaled, the
        # action stayed 'running' for ever, and no fallback ran
        (
            TimeoutError("no answer"),
            lambda e: e.response.status >= 500,
            "TimeoutError: no answer",
        ),
    ],
    ids=["rejected", "predicate-raises"],
)
async def test_an_error_the_retry_predicate_rejects_or_raises_on_is_not_retried(
    error: Exception, retry_on: Callable[[BaseException], bool], journaled: str
) -> None:
    """A permanent error stops at once, and the fallback runs: whether retry_on said so
    or raised on it (`e.response.status` on a TimeoutError)."""
    used: list[int] = []

    async def fallback(call: ActionCall) -> None:
        used.append(call.attempt)

    async def fail(call: ActionCall) -> None:
        raise error

    clock = ManualClock()
    async with Runtime(persist=False, clock=clock) as runtime:
        runtime.action("restart_service", retry=NO_JITTER, retry_on=retry_on, fallback=fallback)(
            fail
        )
        await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
        assert ([1], [], {}) == (used, clock.slept, runtime.state.open_actions)
        failed = [decode_record(e.body) for e in runtime.journal.read(kind="ActionFailed")]
        assert [(journaled, None)] == [
            (f.error, f.retry_in) for f in failed if isinstance(f, ActionFailed)
        ]
        reasons = [
            decode_record(e.body).reason for e in runtime.journal.read(kind="ActionAbandoned")
        ]  # type: ignore[union-attr]
        assert ["fallback_used"] == reasons


async def test_breaker_opens_skips_then_half_open_probe_closes_it(tmp_path: Path) -> None:
    """After two failures the breaker opens and actions are skipped; after reset_after a probe closes it."""
    clock = ManualClock()
    flaky = Flaky(failures=2)
    policy = BreakerPolicy(failure_threshold=2, reset_after=60.0)
    walk_only = LearningPolicy(alternatives=False)  # the same action whatever the outcomes
    async with Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal", learning=walk_only
    ) as runtime:
        runtime.action("flag_for_review", retry=RetryPolicy(max_attempts=1), breaker=policy)(flaky)
        anomaly = {"type": "anomaly_detected", "severity": 0.3}
        failed = []
        for _ in range(2):
            failed.append((await runtime.process(anomaly)).seq)
            await runtime.wait_for_actions()
        assert "open" == runtime.state.breakers["flag_for_review"].status
        d = await runtime.process(anomaly)
        assert "flag_for_review" == d.action  # the decision is still made and journaled
        await runtime.wait_for_actions()
        assert (2, 1) == (len(flaky.calls), runtime.state.actions_skipped)
        # the two abandoned attempts are failures of their decisions; the skip is no outcome
        outcomes = [decode_record(e.body) for e in runtime.journal.read(kind="OutcomeRecorded")]
        assert [(failed[0], False), (failed[1], False)] == [
            (o.decision_seq, o.success)  # type: ignore[union-attr]
            for o in outcomes
        ]
    async with Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal"
    ) as runtime:
        runtime.action("flag_for_review", retry=RetryPolicy(max_attempts=1), breaker=policy)(flaky)
        assert "open" == runtime.state.breakers["flag_for_review"].status  # survived the restart
        clock.advance(61)
        await runtime.process(anomaly)
        await runtime.wait_for_actions()
        assert 3 == len(flaky.calls)
        assert "closed" == runtime.state.breakers["flag_for_review"].status
    assert "ActionSkipped" in kinds(tmp_path / "j.db")


async def test_interrupted_action_resumes_at_the_next_attempt_and_replay_runs_nothing(
    tmp_path: Path,
) -> None:
    """stop(actions="interrupt") journals the attempt in flight; the next start resumes it once."""
    gate, entered = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def hang_then_work(call: ActionCall) -> None:
        calls.append(call.attempt)
        entered.set()
        if call.attempt == 1:
            await gate.wait()

    clock = ManualClock()
    runtime = Runtime(agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal")
    runtime.action("restart_service", retry=NO_JITTER)(hang_then_work)
    await runtime.start()
    await runtime.process(OVERLOAD)
    await entered.wait()
    await runtime.stop(actions="interrupt")
    assert [1] == calls
    assert 1 == len(runtime.state.open_actions)

    again = Runtime(agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal")
    again.action("restart_service", retry=NO_JITTER)(hang_then_work)
    async with again:
        await again.wait_for_actions()
        assert [1, 2] == calls
        assert {} == again.state.open_actions
    third = Runtime(agent_id="a", path=tmp_path / "j.db", clock=clock, durability="normal")
    third.action("restart_service", retry=NO_JITTER)(hang_then_work)
    async with third:
        await third.wait_for_actions()
    assert [1, 2] == calls  # finished actions are never run again, and replay runs no handler
    assert verify_replay(SqliteJournal(tmp_path / "j.db")).ok


async def test_the_actions_command_lists_what_a_start_would_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`actions` (no --failed) lists unfinished actions: one interrupted at attempt 1 is
    retrying until a start resumes and finishes it; then none is listed."""
    gate, entered = asyncio.Event(), asyncio.Event()
    path = tmp_path / "j.db"
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)

    async def hang(call: ActionCall) -> None:
        entered.set()
        if call.attempt == 1:
            await gate.wait()

    runtime = Runtime(agent_id="a", path=path, clock=clock, durability="normal")
    runtime.action("restart_service", retry=NO_JITTER)(hang)
    await runtime.start()
    decision = await runtime.process(OVERLOAD)
    await entered.wait()
    await runtime.stop(actions="interrupt")
    journal = SqliteJournal(path)
    try:
        [left] = unfinished_actions(journal)
    finally:
        journal.close()
    assert ("a", decision.seq, "restart_service", "retrying", 1) == (
        left.agent,
        left.decision_seq,
        left.action,
        left.state,
        left.attempt,
    )
    assert 0 == main(["actions", "--db", str(path)])
    shown = capsys.readouterr().out
    assert f"{decision.seq}    a      restart_service  retrying  1" in shown
    assert "1 action not finished; a host takes them up when it starts." in shown

    again = Runtime(agent_id="a", path=path, clock=clock, durability="normal")
    again.action("restart_service", retry=NO_JITTER)(hang)
    async with again:
        await again.wait_for_actions()
    assert 0 == main(["actions", "--db", str(path)])
    assert "No action is waiting to run, retry or be verified." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("open_action", "state"),
    [
        (OpenAction("x"), "scheduled"),
        (OpenAction("x", attempt=1, running=True), "running"),
        (OpenAction("x", attempt=1), "retrying"),
        (OpenAction("x", attempt=3, retrying=False), "failed"),
        (OpenAction("x", attempt=1, verifying=True), "verifying"),
    ],
)
def test_an_unfinished_action_is_named_by_where_it_stands(
    open_action: OpenAction, state: str
) -> None:
    assert state == open_action.step


async def test_resume_abandon_policy(tmp_path: Path) -> None:
    """With resume="abandon", an unfinished action is journaled as abandoned, not run."""
    gate, entered = asyncio.Event(), asyncio.Event()

    async def hang(call: ActionCall) -> None:
        entered.set()
        await gate.wait()

    runtime = Runtime(
        agent_id="a", path=tmp_path / "j.db", clock=ManualClock(), durability="normal"
    )
    runtime.action("restart_service")(hang)
    await runtime.start()
    await runtime.process(OVERLOAD)
    await entered.wait()
    await runtime.stop(actions="interrupt")
    calls: list[int] = []
    again = Runtime(agent_id="a", path=tmp_path / "j.db", clock=ManualClock(), durability="normal")
    again.action("restart_service", resume="abandon")(lambda call: calls.append(call.attempt))
    async with again:
        await again.wait_for_actions()
        assert ([], 1) == (calls, again.state.actions_abandoned)


def test_action_registration_is_checked() -> None:
    """Bad registrations fail at once with a clear message."""
    runtime = Runtime(persist=False)
    with pytest.raises(ValueError, match="non-empty name"):
        runtime.action("")
    with pytest.raises(ValueError, match="resume must be"):
        runtime.action("x", resume="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_batch_decides_each_event_from_the_ones_before_it(
    tmp_path: Path, durability: str
) -> None:
    """process_many plans each action from the batches before it in the same call: after
    a half-open breaker's one probe is planned, the rest of the batch is skipped. At
    "normal" commits run inline (the state is the decision view); at "full" they don't."""
    path = tmp_path / "j.db"
    clock = ManualClock()
    policy = BreakerPolicy(failure_threshold=1, reset_after=60.0)
    walk_only = LearningPolicy(alternatives=False)
    anomaly = {"type": "anomaly_detected", "severity": 0.3}
    async with Runtime(
        agent_id="a", path=path, clock=clock, durability=durability, learning=walk_only
    ) as runtime:
        runtime.action("flag_for_review", retry=RetryPolicy(max_attempts=1), breaker=policy)(
            Flaky(failures=1)
        )
        await runtime.process(anomaly)
        await runtime.wait_for_actions()
        assert "open" == runtime.state.breakers["flag_for_review"].status
        clock.advance(61)
        results = await runtime.process_many([anomaly, {"type": ""}, anomaly, anomaly])
        assert isinstance(results[1], InvalidEventError)
        first = results[0].event_seq  # type: ignore[union-attr]
        planned = [
            e.kind
            for e in runtime.journal.read()
            if e.kind in ("ActionScheduled", "ActionSkipped") and e.seq > first
        ]
        assert ["ActionScheduled", "ActionSkipped", "ActionSkipped"] == planned
        assert 2 == runtime.state.actions_skipped
        await runtime.wait_for_actions()  # the probe succeeds and closes the breaker
        assert "closed" == runtime.state.breakers["flag_for_review"].status
        # the next call decides from the committed state, the batch and the probe included
        await runtime.process(anomaly)
        assert "ActionScheduled" == list(runtime.journal.read())[-1].kind
        await runtime.wait_for_actions()
    assert_replays(path)


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_an_action_whose_answer_was_lost_starts_at_the_next_append(
    tmp_path: Path, durability: str
) -> None:
    """A decision journaled while its caller heard an error (the answer lost) keeps its
    action: this host finds the batch when it next catches up, and starts the action once.
    A batch that failed before writing is not journaled, and its action never runs."""
    from journal_support import FaultyJournal

    from adaptive_runtime.errors import JournalUnavailableError

    path = tmp_path / "j.db"
    calls: list[str] = []

    async def handler(call: ActionCall) -> None:
        calls.append(call.key)

    async with Host(path, clock=ManualClock(), durability=durability) as host:  # type: ignore[arg-type]
        runtime = host.agent("a")
        runtime.action("restart_service")(handler)
        journal = FaultyJournal.installed_in(host)
        journal.armed = ("before", "a")
        with pytest.raises(JournalUnavailableError):
            await runtime.process({**OVERLOAD, "id": "never"})
        journal.armed = ("after", "a")
        with pytest.raises(JournalUnavailableError):
            await runtime.process({**OVERLOAD, "id": "lost"})
        await runtime.wait_for_actions()
        assert [] == calls  # not started yet: the host has not seen it journaled
        later = await runtime.process({**OVERLOAD, "id": "later"})
        await runtime.wait_for_actions()
        recorded = await runtime.process({**OVERLOAD, "id": "lost"})  # the journaled decision
        assert sorted([f"a:{recorded.seq}", f"a:{later.seq}"]) == sorted(calls)
        assert {} == runtime.state.open_actions
        assert 2 == runtime.state.actions_succeeded
    assert [e.event_id for e in SqliteJournal(path).read(kind="EventReceived")] == [
        "lost",
        "later",
    ]
    async with Runtime(agent_id="a", path=path, clock=ManualClock()) as again:
        again.action("restart_service")(handler)
        await again.wait_for_actions()
    assert 2 == len(calls)  # finished: a restart runs nothing again
    assert_replays(path)


async def test_an_action_decided_again_after_a_conflict_survives_a_lost_answer(
    tmp_path: Path,
) -> None:
    """Another writer moved the agent's stream, so its event is decided again under the
    journal's write lock; that commit's answer is lost. The action it scheduled starts at
    the agent's next decision, once."""
    from journal_support import FaultyJournal

    from adaptive_runtime.errors import JournalUnavailableError
    from adaptive_runtime.records import StatePatched, to_pending

    path = tmp_path / "j.db"
    calls: list[str] = []

    async def handler(call: ActionCall) -> None:
        calls.append(call.key)

    async with Host(path, clock=ManualClock(), durability="full") as host:  # type: ignore[arg-type]
        runtime = host.agent("a")
        runtime.action("restart_service")(handler)
        await runtime.load()
        journal = FaultyJournal.installed_in(host)
        journal.inner.append([to_pending("a", StatePatched(values={"other": 1}), 1)])
        journal.armed_caught_up = "after"
        with pytest.raises(JournalUnavailableError):
            await runtime.process({**OVERLOAD, "id": "lost"})
        later = await runtime.process({**OVERLOAD, "id": "later"})
        await runtime.wait_for_actions()
        recorded = await runtime.process({**OVERLOAD, "id": "lost"})
        assert sorted([f"a:{recorded.seq}", f"a:{later.seq}"]) == sorted(calls)
        assert {} == runtime.state.open_actions
    assert_replays(path)


@pytest.mark.parametrize("fault", ["before", "after"])
@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_an_action_whose_step_could_not_be_journaled_is_resumed_while_the_host_runs(
    tmp_path: Path, durability: str, fault: str
) -> None:
    """The journal failed the append of an action's result ("before": nothing written;
    "after": written, the answer lost). The action's task ended with the error, and the
    action stayed open while the host ran on: found in CI, on PostgreSQL, where a host's
    actions were left open at the end of the fleet kill loop. It is now resumed from what
    the journal holds: ended if its result was journaled, else its attempt is journaled
    as cut short and the next one runs, as after a crash."""
    from journal_support import FaultyJournal

    path = tmp_path / "j.db"
    calls: list[int] = []
    async with Host(path, clock=ManualClock(), durability=durability) as host:  # type: ignore[arg-type]
        runtime = host.agent("a")
        journal = FaultyJournal.installed_in(host)

        @runtime.action("restart_service", retry=NO_JITTER)
        async def handler(call: ActionCall) -> None:
            calls.append(call.attempt)
            if len(calls) == 1:
                journal.armed = (fault, "a")  # the append of this attempt's result fails

        decision = await runtime.process(OVERLOAD)
        for _ in range(20):  # the resume runs in a task of its own, after the first ends
            await runtime.wait_for_actions()
        assert {} == runtime.state.open_actions
        assert 1 == runtime.state.actions_succeeded
    steps = [
        (e.kind, getattr(decode_record(e.body), "attempt", None))
        for e in SqliteJournal(path).read()
        if e.kind.startswith("Action")
    ]
    if fault == "after":  # the result was journaled: nothing more to do
        assert [1] == calls
        assert [
            ("ActionScheduled", None),
            ("ActionStarted", 1),
            ("ActionSucceeded", 1),
        ] == steps
    else:  # nothing journaled: the attempt was cut short, and the next one ran
        assert [1, 2] == calls
        assert [
            ("ActionScheduled", None),
            ("ActionStarted", 1),
            ("ActionFailed", 1),
            ("ActionStarted", 2),
            ("ActionSucceeded", 2),
        ] == steps
        failed = [
            decode_record(e.body) for e in SqliteJournal(path).read() if e.kind == "ActionFailed"
        ]
        assert isinstance(failed[0], ActionFailed)
        assert "its journal could not be reached" in failed[0].error
    assert decision.seq > 0
    assert_replays(path)


@pytest.mark.parametrize("when", ["waiting", "answered"])
@pytest.mark.parametrize(
    ("durability", "call"),
    # at normal, process_many commits inline and answers without a wait: nothing to cancel
    [("normal", "process"), ("full", "process"), ("full", "process_many")],
)
async def test_a_call_cancelled_after_its_decision_was_queued_still_starts_its_action(
    tmp_path: Path, durability: str, call: str, when: str
) -> None:
    """A caller cancelled (a timeout around process(), say) once its batch was queued: the
    batch commits all the same, and its action was journaled as scheduled. That action
    now starts as soon as the commit is answered. Before, nothing started it until the
    next start() of the agent; process_many also kept the places its actions held under a
    fleet's max_in_flight.

    "waiting": cancelled while waiting for the commit (at durability normal, while the
    call yields to the loop after its inline commit); "answered": cancelled after its
    commit was answered, before the call resumed to hear it.
    """
    path = tmp_path / "j.db"
    ran: list[str] = []
    cancelled = 0
    async with Host(path, clock=ManualClock(), durability=durability) as host:  # type: ignore[arg-type]
        runtime = host.agent("a")

        @runtime.action("restart_service")
        async def handler(c: ActionCall) -> None:
            ran.append(c.key)

        pending: list[asyncio.Task[object]] = []

        def cancel_pending_soon(entries: object) -> None:
            for task in pending:  # runs before the commit's caller is answered
                asyncio.get_running_loop().call_soon(task.cancel)

        if when == "answered":
            host.watch(cancel_pending_soon)
        for _ in range(40):
            if call == "process":
                coro = runtime.process(OVERLOAD)
            else:
                coro = runtime.process_many([OVERLOAD, OVERLOAD])
            task: asyncio.Task[object] = asyncio.ensure_future(coro)
            pending.append(task)
            await asyncio.sleep(0)  # the call runs up to its first wait: its batch is queued
            if when == "waiting":
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
            pending.clear()
        await runtime.process({"type": "timeout", "severity": 0.1})  # answered after the rest
        await runtime.wait_for_actions()
        scheduled = [
            e.stream_seq for e in SqliteJournal(path).read() if e.kind == "ActionScheduled"
        ]
        assert cancelled > 0
        assert {} == runtime.state.open_actions
        assert len(scheduled) == len(ran)
    assert_replays(path)


async def test_a_cancelled_process_many_gives_back_its_places_under_max_in_flight(
    tmp_path: Path,
) -> None:
    """process_many cancelled while its commit was on its way kept the place each of its
    actions held under the fleet's max_in_flight: with max_in_flight=1, every later
    decision for that target was skipped as "1 action in flight", though none ran."""
    from adaptive_runtime import FleetPolicy

    path = tmp_path / "j.db"
    ran: list[int] = []
    async with Host(
        path, clock=ManualClock(), durability="full", fleet=FleetPolicy(max_in_flight=1)
    ) as host:  # type: ignore[arg-type]
        runtime = host.agent("web")

        @runtime.action("restart_service")
        async def handler(c: ActionCall) -> None:
            ran.append(c.decision.seq)

        task = asyncio.ensure_future(runtime.process_many([OVERLOAD]))
        await asyncio.sleep(0)  # queued, waiting for its commit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        later = await runtime.process(OVERLOAD)
        await runtime.wait_for_actions()
    assert later.seq in ran
    assert 2 == len(ran)  # the cancelled call's action ran too
    assert 0 == sum(1 for _ in SqliteJournal(path).read(kind="ActionSkipped"))


async def test_a_call_cancelled_while_its_host_stops_leaves_its_action_to_the_next_start(
    tmp_path: Path,
) -> None:
    """A stopping host starts nothing for a cancelled call whose batch commits during the
    stop: the action stays open in the journal, and the next start runs it, once."""
    path = tmp_path / "j.db"
    ran: list[str] = []

    def serve(host: Host) -> None:
        @host.agent("a").action("restart_service")
        async def handler(c: ActionCall) -> None:
            ran.append(c.key)

    host = Host(path, clock=ManualClock(), durability="full")  # type: ignore[arg-type]
    serve(host)
    await host.start()
    task = asyncio.ensure_future(host.agent("a").process(OVERLOAD))
    await asyncio.sleep(0)  # queued, waiting for its commit
    stopping = asyncio.ensure_future(host.stop())
    await asyncio.sleep(0)  # the stop has begun
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stopping
    assert [] == ran
    assert 1 == sum(1 for _ in SqliteJournal(path).read(kind="ActionScheduled"))
    again = Host(path, clock=ManualClock(), durability="full")  # type: ignore[arg-type]
    serve(again)  # before the start, which resumes the action
    async with again:
        await again.agent("a").load()
        await again.wait_for_actions()
    assert ["a:2"] == ran


@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("call", ["stop", "wait_for_actions"])
async def test_stop_or_wait_inside_a_handler_is_refused_not_a_hang_and_a_scheduled_stop_works(
    tmp_path: Path, call: str, timeout: float | None
) -> None:
    """An action handler that awaited runtime.stop() (or wait_for_actions()) waited for
    itself: the action never finished, and neither did the stop. It now raises
    ConfigurationError saying to schedule the stop instead, which then stops cleanly.
    With an attempt_timeout the handler runs in a task of its own: refused the same."""
    from adaptive_runtime import ConfigurationError

    path = tmp_path / "j.db"
    said: list[str] = []
    scheduled: list[asyncio.Task[None]] = []
    runtime = Runtime(agent_id="a", path=path, clock=ManualClock(), durability="full")

    @runtime.action("restart_service", retry=RetryPolicy(attempt_timeout=timeout))
    async def handler(c: ActionCall) -> None:
        try:
            await (runtime.stop() if call == "stop" else runtime.wait_for_actions())
        except ConfigurationError as exc:
            said.append(str(exc))
        if call == "stop":  # what the message says to do instead
            scheduled.append(asyncio.get_running_loop().create_task(runtime.stop()))

    await runtime.start()
    decision = await runtime.process(OVERLOAD)
    await asyncio.wait_for(runtime.wait_for_actions(), 60)  # a guard: a hang fails, not waits
    assert 1 == len(said)
    assert f"inside the handler of restart_service for decision {decision.seq}" in said[0]
    if call == "stop":
        assert "create_task(runtime.stop())" in said[0]
        await asyncio.wait_for(scheduled[0], 60)
        assert not runtime.host.started
    else:
        await runtime.stop()
    assert ["ActionScheduled", "ActionStarted", "ActionSucceeded", "OutcomeRecorded"] == kinds(path)


async def test_stop_inside_an_event_handler_is_refused_unless_it_does_not_wait_for_handlers(
    tmp_path: Path,
) -> None:
    """An event handler that awaited runtime.stop() waited for itself (stop() waits for the
    handlers running): it now raises ConfigurationError; stop(wait_for_handlers=False)
    is what a handler may call."""
    from adaptive_runtime import ConfigurationError

    said: list[str] = []
    runtime = Runtime(agent_id="a", path=tmp_path / "j.db", clock=ManualClock())

    @runtime.bus.subscribe("service_overload")
    async def on_overload(event: dict[str, object]) -> None:
        try:
            await runtime.stop()
        except ConfigurationError as exc:
            said.append(str(exc))
            await runtime.stop(wait_for_handlers=False)

    await runtime.start()
    await runtime.process(OVERLOAD)
    await asyncio.wait_for(runtime.bus.drain(), 60)  # a guard: a hang fails, not waits
    assert not runtime.host.started
    assert 1 == len(said)
    assert "inside an event handler" in said[0]
