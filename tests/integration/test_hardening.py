"""Regressions for defects found by trying the runtime as a new user and as an attacker.

Each test is named after what broke; each failed before its fix.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import msgspec
import pytest

from adaptive_runtime import (
    ConfigurationError,
    Decision,
    DuplicateEventError,
    Event,
    InvalidEventError,
    ManualClock,
    Runtime,
)
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import DecisionMade, to_pending

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


def runtime_at(path: Path, **kwargs: object) -> Runtime:
    kwargs.setdefault("clock", ManualClock())
    return Runtime(agent_id="agent", path=path, durability="normal", **kwargs)  # type: ignore[arg-type]


def head_of(path: Path) -> int:
    journal = SqliteJournal(path, create=False)
    try:
        return journal.head().seq
    finally:
        journal.close()


# -- data that must never enter the journal --------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        Event(type="x", severity=math.nan, cpu=-5),
        Event(type=123),  # type: ignore[arg-type]
        Event(type="x", id=7),  # type: ignore[arg-type]
        Event(type="x", attrs={"severity": 2}),
        Event(type="x", attrs=[1]),  # type: ignore[arg-type]
        Event(type="x", attrs={"k": math.inf}),
    ],
)
async def test_hand_built_event_is_validated_like_a_dict_and_never_bricks_the_agent(
    tmp_path: Path, event: Event
) -> None:
    """A bad Event struct raises InvalidEventError, journals nothing, and start() still works."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        await runtime.process(OVERLOAD)
        with pytest.raises(InvalidEventError):
            await runtime.process(event)
    assert 2 == head_of(path)
    async with runtime_at(path) as runtime:  # used to raise JournalCorruptError for good
        assert 1 == runtime.state.events


async def test_hand_built_event_that_is_valid_is_decided_like_its_dict(tmp_path: Path) -> None:
    """A well-formed Event struct gets the same decision as the same dict."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        from_struct = await runtime.process(
            Event(type="service_overload", severity=0.82, cpu=94, memory=88)
        )
    assert ("restart_service", 0.7831) == (from_struct.action, from_struct.confidence)


async def test_record_outcome_reads_the_decision_from_the_journal_not_the_callers_copy(
    tmp_path: Path,
) -> None:
    """A changed copy of a decision (confidence="0.5") can't put bad data in the journal."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        d = await runtime.process(OVERLOAD)
        forged = msgspec.structs.replace(d, confidence="0.5", context="made_up")  # type: ignore[arg-type]
        await runtime.record_outcome(forged, success=True)
        assert 1 == runtime.state.outcomes
        assert ["resource_pressure/high"] == list(runtime.state.history.tallies)
    async with runtime_at(path) as runtime:
        assert 1 == runtime.state.outcomes


@pytest.mark.parametrize(
    ("change", "success"),
    [({"seq": 999}, True), ({"seq": -1}, True), ({"seq": "2"}, True), ({}, "yes")],
)
async def test_record_outcome_refuses_a_decision_that_is_not_journaled_or_a_bad_success(
    tmp_path: Path, change: dict[str, object], success: object
) -> None:
    """An unknown seq, a seq of the wrong type, or a non-boolean success is refused."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        d = await runtime.process(OVERLOAD)
        with pytest.raises(InvalidEventError):
            await runtime.record_outcome(
                msgspec.structs.replace(d, **change),  # type: ignore[arg-type]
                success=success,  # type: ignore[arg-type]
            )
    assert 2 == head_of(path)


async def test_record_outcome_refuses_another_agents_decision(tmp_path: Path) -> None:
    """An agent can't record an outcome for a decision another agent made."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        d = await runtime.process(OVERLOAD)
    async with Runtime(agent_id="other", path=path, durability="normal") as other:
        with pytest.raises(InvalidEventError, match="no decision of agent 'other'"):
            await other.record_outcome(d, success=True)


def test_a_record_that_does_not_round_trip_is_refused_before_the_journal() -> None:
    """The guard at the journal's door: a wrong-typed field never becomes an entry."""
    good = Decision(
        action="a",
        confidence=0.5,
        reason="r",
        priority="low",
        context="c",
        risk="low",
        stability="stable",
        pressure=0.1,
        rule="default[0]",
        ruleset="x",
        event_type="t",
        base_confidence=0.5,
        risk_factor=1.0,
        history_weight=1.0,
    )
    to_pending("s", DecisionMade(good), 1)
    for bad in (
        msgspec.structs.replace(good, confidence="0.5"),  # type: ignore[arg-type]
        msgspec.structs.replace(good, pressure=math.nan),
        msgspec.structs.replace(good, action=object()),  # type: ignore[arg-type]
        msgspec.structs.replace(good, ts_ns=2**64),
    ):
        with pytest.raises(InvalidEventError):
            to_pending("s", DecisionMade(bad), 1)


async def test_an_event_whose_encoded_size_passes_the_bound_is_refused_before_it_is_built(
    tmp_path: Path,
) -> None:
    """Attributes sharing one 256 x 256 x 4 KB structure (1 GB encoded) are refused at once."""
    inner = ["a" * 4096] * 256
    shared = [inner] * 256
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        with pytest.raises(InvalidEventError, match="larger than 1,048,576 bytes"):
            await runtime.process({"type": "x", "a": shared, "b": shared, "c": shared})
        ok = {"type": "x", "blob": ["a" * 4000] * 100}  # about 400 KB: under the default
        await runtime.process(ok)
    async with runtime_at(path, max_event_bytes=100_000) as small:
        with pytest.raises(InvalidEventError, match="larger than 100,000 bytes"):
            await small.process(ok)
    assert 2 == head_of(path)


def test_max_event_bytes_must_be_a_sensible_int(tmp_path: Path) -> None:
    """A bound that is not an int of at least 1 KiB is a ConfigurationError."""
    for bad in (0, 10, 1.5e6, "1MB"):
        with pytest.raises(ConfigurationError, match="max_event_bytes"):
            runtime_at(tmp_path / "j.db", max_event_bytes=bad)


async def test_an_event_id_reused_for_another_body_raises_when_called_one_after_the_other(
    tmp_path: Path,
) -> None:
    """The second call with the same id and another body is a DuplicateEventError, not a replay."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        first = await runtime.process({**OVERLOAD, "id": "evt-1"})
        again = await runtime.process({**OVERLOAD, "id": "evt-1"})
        assert first == again
        reordered = {"id": "evt-1", **dict(reversed(list(OVERLOAD.items())))}
        assert first == await runtime.process(reordered)
        with pytest.raises(DuplicateEventError) as raised:
            await runtime.process({**OVERLOAD, "severity": 0.9, "id": "evt-1"})
        assert ("evt-1", first.event_seq) == (raised.value.event_id, raised.value.seq)


async def test_an_event_id_reused_for_another_body_raises_when_called_concurrently(
    tmp_path: Path,
) -> None:
    """Concurrent calls with one id and two bodies: one decision, one DuplicateEventError."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        results = await asyncio.gather(
            runtime.process({**OVERLOAD, "id": "evt-2"}),
            runtime.process({**OVERLOAD, "severity": 0.9, "id": "evt-2"}),
            return_exceptions=True,
        )
    assert [Decision, DuplicateEventError] == [type(r) for r in results]


def test_sensitive_fields_given_as_one_string_is_refused(tmp_path: Path) -> None:
    """sensitive_fields="password" used to redact nothing (it iterated the letters)."""
    with pytest.raises(ConfigurationError, match="not one string"):
        runtime_at(tmp_path / "j.db", sensitive_fields="password")
    with pytest.raises(ConfigurationError, match="non-empty strings"):
        runtime_at(tmp_path / "j.db", sensitive_fields=["password", 3])


class _FixedClock:
    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"_FixedClock({self.value!r})"

    def now_ns(self) -> object:
        return self.value

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("reading", [1.7e18, -1, 2**63, "now", None])
async def test_a_bad_clock_is_a_configuration_error_naming_the_clock(
    tmp_path: Path, reading: object
) -> None:
    """A clock that returns a float, a negative number or 2**63 is blamed, not the event."""
    path = tmp_path / "j.db"
    async with runtime_at(path, clock=_FixedClock(reading)) as runtime:
        with pytest.raises(ConfigurationError, match=r"the clock _FixedClock\("):
            await runtime.process(OVERLOAD)
        assert 0 == runtime.state.events
    assert 0 == head_of(path)


def test_a_clock_without_now_ns_is_refused_at_construction(tmp_path: Path) -> None:
    """An object that is not a clock is a ConfigurationError when the runtime is built."""
    with pytest.raises(ConfigurationError, match="now_ns"):
        runtime_at(tmp_path / "j.db", clock=object())


async def test_replay_still_verifies_after_refused_input(tmp_path: Path) -> None:
    """After every refusal above, the journal still replays to the same decisions."""
    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        await runtime.process(OVERLOAD)
        for bad in (
            Event(type="x", severity=math.nan),
            {"type": "x", "a": [["a" * 4096] * 256] * 256},
        ):
            with pytest.raises(InvalidEventError):
                await runtime.process(bad)
        await runtime.process({**OVERLOAD, "severity": 0.91})
    journal = SqliteJournal(path, create=False)
    try:
        report = verify_replay(journal)
    finally:
        journal.close()
    assert (True, 2) == (report.ok, report.decisions)


# -- tampering and crafted files -------------------------------------------------


def _forge_newest_snapshot(path: Path, key: bytes | None) -> int:
    """Rewrite the newest snapshot (rules, key/value state, counts) as an attacker would."""
    import sqlite3

    from adaptive_runtime.journal._keys import snapshot_mac
    from adaptive_runtime.projections import decode_state, encode_state
    from adaptive_runtime.records import Rule

    db = sqlite3.connect(path)
    sid, stream, seq, digest, version, state = db.execute(
        "SELECT id, stream, seq, digest, version, state FROM snapshots ORDER BY id DESC LIMIT 1"
    ).fetchone()
    forged = decode_state(state)
    forged.rules = (
        Rule(context=None, risk=None, min_conf=0.0, action="delete_everything", reason="forged"),
    )
    forged.kv = {"owner": "attacker"}
    forged.decisions += 100
    body = encode_state(forged)
    mac = snapshot_mac(key, stream, seq, digest, version, body)
    db.execute("UPDATE snapshots SET state = ?, checksum = ? WHERE id = ?", (body, mac, sid))
    db.commit()
    db.close()
    return int(seq)


async def _journal_with_snapshots(path: Path) -> None:
    async with runtime_at(path, checkpoint_every=4) as runtime:
        await runtime.state_engine.save_state({"owner": "ops"})
        for _ in range(5):
            await runtime.process(OVERLOAD)


async def test_a_forged_snapshot_without_the_key_is_never_decided_from(tmp_path: Path) -> None:
    """A rewritten snapshot with a recomputed unkeyed checksum is skipped: state and rules are the chain's."""
    path = tmp_path / "j.db"
    await _journal_with_snapshots(path)
    _forge_newest_snapshot(path, key=None)
    async with runtime_at(path) as runtime:
        assert {"owner": "ops"} == runtime.state.kv
        assert () == runtime.state.rules
        assert 5 == runtime.state.decisions
        assert "restart_service" == (await runtime.process(OVERLOAD)).action


def test_verify_checks_every_snapshot_against_the_chain(tmp_path: Path) -> None:
    """verify replays each stream and names a forged snapshot's seq, exit 1, key or no key."""
    import json
    import subprocess
    import sys

    path = tmp_path / "j.db"
    asyncio.run(_journal_with_snapshots(path))
    cmd = [sys.executable, "-m", "adaptive_runtime", "verify", "--db", str(path)]
    clean = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert 0 == clean.returncode, clean.stdout
    assert "snapshots checked against the chain" in clean.stdout
    key = (tmp_path / "j.db.key").read_bytes()  # the attacker read the key too
    seq = _forge_newest_snapshot(path, key=key)
    forged = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert 1 == forged.returncode
    assert f"FORGED OR DAMAGED SNAPSHOT: agent agent, seq {seq}" in forged.stdout
    assert "in decisions, rules, kv" in forged.stdout
    report = json.loads(
        subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60).stdout
    )
    assert False is report["ok"]
    assert [seq] == [s["seq"] for s in report["snapshots"] if not s["ok"]]


def test_verify_checks_the_fleet_snapshot_against_the_whole_chain(tmp_path: Path) -> None:
    """A host with a fleet policy snapshots its fleet view at stop, at the journal's seq
    (in its own stream, where that seq is no entry): verify called every such journal
    "FORGED OR DAMAGED SNAPSHOT ... not an entry of this stream", exit 1. The fleet
    snapshot is now held against the fleet view the whole chain gives at its seq, so a
    sound one passes and a rewritten one is named."""
    import sqlite3
    import subprocess
    import sys

    from adaptive_runtime import FleetPolicy, Host, ManualClock
    from adaptive_runtime.journal._keys import snapshot_mac
    from adaptive_runtime.projections.fleet import FLEET_VERSION, decode_view

    path = tmp_path / "fleet.db"

    async def decide() -> None:
        policy = FleetPolicy(budget=3, budget_window=60.0, correlate_agents=3)
        async with Host(path, fleet=policy, clock=ManualClock()) as host:
            for i in range(6):
                await host.agent(f"web-{i}").process(OVERLOAD)

    asyncio.run(decide())
    cmd = [sys.executable, "-m", "adaptive_runtime", "verify", "--db", str(path)]
    sound = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert 0 == sound.returncode, sound.stdout
    db = sqlite3.connect(path)
    sid, stream, seq, digest, state = db.execute(
        "SELECT id, stream, seq, digest, state FROM snapshots WHERE version = ?", (FLEET_VERSION,)
    ).fetchone()
    forged = decode_view(state)
    forged.disruptive = []  # the budget spent, forgotten: three more restarts allowed
    body = msgspec.msgpack.encode(forged)
    key = (tmp_path / "fleet.db.key").read_bytes()
    mac = snapshot_mac(key, stream, seq, digest, FLEET_VERSION, body)
    db.execute("UPDATE snapshots SET state = ?, checksum = ? WHERE id = ?", (body, mac, sid))
    db.commit()
    db.close()
    caught = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert 1 == caught.returncode
    assert f"FORGED OR DAMAGED SNAPSHOT: agent ~host, seq {seq}" in caught.stdout
    assert "differs from the fleet view the chain gives" in caught.stdout
    assert "in disruptive" in caught.stdout


def test_a_fleet_snapshot_of_an_earlier_version_is_noted_not_called_forged(
    tmp_path: Path,
) -> None:
    """After an upgrade that changes the fleet view's shape, the fleet snapshots an earlier
    version wrote (at the journal's seq, not one of `~host`'s) were held against `~host`
    alone and called "FORGED OR DAMAGED" (exit 1). Each is now noted as of another
    version, not used and not compared; one whose seq is past the head is still named."""
    import sqlite3

    from adaptive_runtime import FleetPolicy, Host, ManualClock
    from adaptive_runtime.journal import SqliteJournal
    from adaptive_runtime.projections.fleet import HOST_STREAM
    from adaptive_runtime.projections.rebuild import check_snapshots

    path = tmp_path / "fleet.db"

    async def decide() -> None:
        async with Host(path, fleet=FleetPolicy(budget=3), clock=ManualClock()) as host:
            for i in range(3):
                await host.agent(f"web-{i}").process(OVERLOAD)

    asyncio.run(decide())
    journal = SqliteJournal(path, create=False)
    head = journal.head().seq
    for seq in (head - 1, head - 2):
        journal.put_snapshot(HOST_STREAM, seq, b"\x90", version="fleet-view/1", ts_ns=1)
    journal.close()
    db = sqlite3.connect(path)  # one moved past the head, as only a hand at the file can
    db.execute("UPDATE snapshots SET seq = ? WHERE seq = ?", (head + 5, head - 2))
    db.commit()
    db.close()
    journal = SqliteJournal(path, create=False)
    try:
        checks = [c for c in check_snapshots(journal) if c.stream == HOST_STREAM]
    finally:
        journal.close()
    older = {c.seq: (c.ok, c.problem) for c in checks if c.seq in (head - 1, head + 5)}
    assert {
        head - 1: (True, "version 'fleet-view/1': not used, not compared"),
        head + 5: (False, f"covers seq {head + 5}, which is not in the journal"),
    } == older
    assert all(c.ok for c in checks if c.seq not in older)


# -- concurrency -----------------------------------------------------------------


class _AlwaysOvertaken:
    """A journal where another writer appends to the stream just before each plain append."""

    def __init__(self) -> None:
        from adaptive_runtime.journal import MemoryJournal

        self.inner = MemoryJournal()
        self.intrusions = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def append_many(self, batches, expected=None):  # type: ignore[no-untyped-def]
        from adaptive_runtime.records import StatePatched

        for batch in batches:
            self.intrusions += 1
            record = StatePatched(values={"intruder": self.intrusions})
            self.inner.append([to_pending(batch[0].stream, record, 1)])
        return self.inner.append_many(batches, expected)


async def test_a_writer_overtaken_on_every_try_still_makes_progress() -> None:
    """After a conflict the runtime decides again under the write lock, so it can't lose twice.

    It used to retry 8 times and give up with StreamConflictError(actual=-1).
    """
    journal = _AlwaysOvertaken()
    async with Runtime(agent_id="agent", journal=journal, clock=ManualClock()) as runtime:  # type: ignore[arg-type]
        decisions = [await runtime.process(OVERLOAD) for _ in range(3)]
        await runtime.record_outcome(decisions[0], success=True)
        assert {"intruder": journal.intrusions} == runtime.state.kv
        assert 1 == runtime.state.outcomes
    assert 4 == journal.intrusions  # one per process() call and one for the outcome
    assert [3, 6, 9] == [d.seq for d in decisions]
    assert verify_replay(journal.inner).ok


# -- durable actions -------------------------------------------------------------


def _action_steps(path: Path) -> list[tuple[str, str]]:
    from adaptive_runtime.records import ActionAbandoned, ActionFailed, decode_record

    journal = SqliteJournal(path, create=False)
    try:
        steps = []
        for entry in journal.read():
            record = decode_record(entry.body)
            if isinstance(record, ActionFailed):
                steps.append((entry.kind, record.error))
            elif isinstance(record, ActionAbandoned):
                steps.append((entry.kind, record.reason))
            elif entry.kind.startswith("Action"):
                steps.append((entry.kind, ""))
        return steps
    finally:
        journal.close()


async def test_a_handler_that_never_returns_is_cut_off_by_attempt_timeout(tmp_path: Path) -> None:
    """Each attempt is cancelled at attempt_timeout, journaled as failed, and finally abandoned."""
    from adaptive_runtime import RetryPolicy

    path = tmp_path / "j.db"
    never = asyncio.Event()
    cancelled = []

    async with runtime_at(path) as runtime:

        @runtime.action(
            "restart_service",
            retry=RetryPolicy(max_attempts=2, base_delay=1.0, jitter=0.0, attempt_timeout=5.0),
        )
        async def hang(call: object) -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        await runtime.process(OVERLOAD)
        await asyncio.wait_for(runtime.wait_for_actions(), 30)  # a guard against a hang only
        assert 2 == len(cancelled)
        assert [5.0, 1.0, 5.0] == runtime.clock.slept  # timeout, back-off, timeout
    timed_out = (
        "ActionTimeoutError: attempt {} ran past its attempt_timeout of 5s and was cancelled"
    )
    assert [
        ("ActionScheduled", ""),
        ("ActionStarted", ""),
        ("ActionFailed", timed_out.format(1)),
        ("ActionStarted", ""),
        ("ActionFailed", timed_out.format(2)),
        ("ActionAbandoned", "attempts_exhausted"),
    ] == _action_steps(path)


async def test_a_handler_within_its_attempt_timeout_succeeds(tmp_path: Path) -> None:
    """A prompt handler is not cut off by the timeout racing it."""
    from adaptive_runtime import RetryPolicy

    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        runtime.action("restart_service", retry=RetryPolicy(attempt_timeout=0.5))(lambda call: None)

        @runtime.action("scale_up_immediate", retry=RetryPolicy(attempt_timeout=0.5))
        async def quick(call: object) -> str:
            return "done"

        await runtime.process(OVERLOAD)
        await runtime.process({**OVERLOAD, "severity": 0.91, "cpu": 96, "memory": 92})
        await runtime.wait_for_actions()
    assert 2 == [kind for kind, _ in _action_steps(path)].count("ActionSucceeded")


def test_attempt_timeout_must_be_positive() -> None:
    """attempt_timeout of zero or less is a ConfigurationError."""
    from adaptive_runtime import RetryPolicy

    for bad in (0.0, -1.0):
        with pytest.raises(ConfigurationError, match="attempt_timeout"):
            RetryPolicy(attempt_timeout=bad)


async def test_cancelling_a_waiter_never_cancels_the_actions(tmp_path: Path) -> None:
    """A timeout around wait_for_actions() used to cancel the actions and journal nothing."""
    path = tmp_path / "j.db"
    release = asyncio.Event()
    async with runtime_at(path) as runtime:

        @runtime.action("restart_service")
        async def slow(call: object) -> None:
            await release.wait()

        await runtime.process(OVERLOAD)
        waiter = asyncio.ensure_future(runtime.wait_for_actions())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert 1 == runtime.metrics()["actions"]["running"]
        release.set()
        await runtime.wait_for_actions()
        assert 1 == runtime.metrics()["actions"]["succeeded"]


async def test_an_action_cancelled_by_any_route_is_journaled_as_interrupted(
    tmp_path: Path,
) -> None:
    """Cancelling an action's task journals its attempt as interrupted; the next start resumes it."""
    path = tmp_path / "j.db"
    started = asyncio.Event()
    calls: list[int] = []

    def register(runtime: Runtime) -> None:
        @runtime.action("restart_service")
        async def handler(call: object) -> None:
            calls.append(call.attempt)  # type: ignore[attr-defined]
            if len(calls) == 1:
                started.set()
                await asyncio.Event().wait()

    async with runtime_at(path) as runtime:
        register(runtime)
        await runtime.process(OVERLOAD)
        await started.wait()
        for task in list(runtime.host.actions._tasks):
            task.cancel()
        await runtime.wait_for_actions()
        assert not any(a.running for a in runtime.state.open_actions.values())
    assert (
        "ActionFailed",
        "interrupted: the action was cancelled during this attempt",
    ) == _action_steps(path)[-1]
    again = runtime_at(path)
    register(again)  # before start(): start() resumes unfinished actions
    async with again:
        await again.wait_for_actions()
    assert [1, 2] == calls
    assert ("ActionSucceeded", "") == _action_steps(path)[-1]


# -- the original project's code -------------------------------------------------


def test_decision_engine_decide_returns_the_original_decision_result() -> None:
    """decide() gives action, confidence, reason, priority and metadata, as the original did."""
    from adaptive_runtime.engines import DecisionEngine

    result = DecisionEngine().decide(
        {"type": "service_overload"}, "resource_pressure", "high", 0.78123
    )
    assert (
        "restart_service",
        0.7812,
        "high_resource_pressure",
        "high",
        {
            "event_type": "service_overload",
            "context": "resource_pressure",
            "risk": "high",
            "rule": "default[2]",
        },
    ) == (result.action, result.confidence, result.reason, result.priority, result.metadata)


@pytest.mark.parametrize(
    ("context", "risk", "confidence", "says"),
    [
        ("resource_pressure", "hgih", 0.9, "risk must be one of low, medium, high, critical"),
        ("resource_pressure", "high", 78, "confidence must be a number from 0 to 1, not 78"),
        ("resource_pressure", "high", "0.9", "confidence must be a number from 0 to 1"),
        (None, "high", 0.9, "context must be a string, not NoneType"),
    ],
)
def test_decision_engine_decide_refuses_a_risk_or_confidence_no_rule_can_match(
    context: object, risk: str, confidence: object, says: str
) -> None:
    """decide(event, ctx, "hgih", 0.9) answered monitor_and_wait, the fallback, as if it were
    a decision, and a confidence of 78 (a percent) matched every rule; calculate() refuses
    such a risk."""
    from adaptive_runtime.engines import DecisionEngine
    from adaptive_runtime.errors import InvalidEventError

    with pytest.raises(InvalidEventError, match=says):
        DecisionEngine().decide({"type": "service_overload"}, context, risk, confidence)  # type: ignore[arg-type]


def test_confidence_needs_only_the_severity() -> None:
    """calculate({"severity": 0.5}, "low") works without a type, as the original's tests call it."""
    from adaptive_runtime.engines import ConfidenceEngine

    assert 0.5 == ConfidenceEngine().calculate({"severity": 0.5}, "low").final
    with pytest.raises(InvalidEventError, match="severity"):
        ConfidenceEngine().calculate({"severity": -1}, "low")


CUSTOM = [("resource_pressure", "high", 0.0, "my_action", "my_reason")]


async def test_assigning_decision_engine_changes_the_journaled_rules(tmp_path: Path) -> None:
    """runtime._decision = DecisionEngine(custom_rules=...) is a journaled rule change, in order."""
    from adaptive_runtime.engines import DecisionEngine

    path = tmp_path / "j.db"
    async with runtime_at(path) as runtime:
        runtime._decision = DecisionEngine(custom_rules=CUSTOM)
        d = await runtime.process(OVERLOAD)  # made right after the assignment: the new rules
        assert ("my_action", "custom[0]") == (d.action, d.rule)
        assert runtime._decision.custom_rules == runtime.state.rules
    again = runtime_at(path)
    again._decision = DecisionEngine(custom_rules=CUSTOM)  # before start: applied by start()
    async with again:
        assert "my_action" == (await again.process(OVERLOAD)).action
    journal = SqliteJournal(path, create=False)
    try:
        kinds = [e.kind for e in journal.read()]
        assert verify_replay(journal).ok
    finally:
        journal.close()
    # one RulesChanged: the second assignment matched the rules already journaled
    assert [
        "RulesChanged",
        "EventReceived",
        "DecisionMade",
        "EventReceived",
        "DecisionMade",
    ] == kinds


async def test_original_private_names_answer(tmp_path: Path) -> None:
    """_recovery.retry, _state.current, _context and _confidence work as the scripts used them."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        await runtime.state_engine.save_state({"health": "ok"})
        await runtime.process(OVERLOAD)
        assert {
            "health": "ok",
            "last_event": "service_overload",
            "last_action": "restart_service",
            "last_risk": "high",
            "last_confidence": 0.7831,
        } == runtime._state.current
        assert "done" == await runtime._recovery.retry(lambda: "done")
        assert "resource_pressure" == runtime._context.analyze(OVERLOAD).context
        assert 0.7831 == runtime._confidence.calculate(OVERLOAD, "high").final
