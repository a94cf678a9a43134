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
