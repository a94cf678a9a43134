"""The fleet policy's cooldown: at most one disruptive action per target per window."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from journal_support import assert_replays

from adaptive_runtime import ApprovalPolicy, FleetPolicy, Host, ManualClock
from adaptive_runtime.engines.decision import DecisionEngine
from adaptive_runtime.engines.fleet import FleetView, gate_in_fleet, observe
from adaptive_runtime.journal import Pending, SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.replay import what_if
from adaptive_runtime.records import HOST_STREAM, FleetPolicySet, SilenceMatcher, read_as
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9
COOL = FleetPolicy(cooldown=300.0)


async def test_64_producers_for_one_target_get_one_restart(tmp_path: Path) -> None:
    """64 concurrent events about one target: one restart, 63 degraded, each saying why;
    another target of the same agent, and another agent, get their own restart."""
    path = tmp_path / "c.db"
    clock = ManualClock(start_ns=START_NS)
    async with Host(path, durability="normal", clock=clock, fleet=COOL) as host:
        same = [
            host.process({**OVERLOAD, "agent_id": "web", "instance": "node-1", "n": i})
            for i in range(64)
        ]
        decided = await asyncio.gather(*same)
        other_target = await host.process({**OVERLOAD, "agent_id": "web", "instance": "node-2"})
        other_agent = await host.process({**OVERLOAD, "agent_id": "db", "instance": "node-1"})
        clock.advance(301)
        after = await host.process({**OVERLOAD, "agent_id": "web", "instance": "node-1"})
    restarts = [d for d in decided if d.action == "restart_service"]
    assert 1 == len(restarts)
    held = [d for d in decided if d.action != "restart_service"]
    assert 63 == len(held)
    assert {"restart_service"} == {d.degraded_from for d in held}
    assert all(
        d.fleet is not None
        and d.fleet.startswith("cooldown: restart_service for web/node-1 at most once per 300s")
        for d in held
    )
    assert ["restart_service"] * 3 == [other_target.action, other_agent.action, after.action]
    journal = SqliteJournal(path, create=False)
    try:
        assert verify_replay(journal).ok
        # what-if: without the cooldown, the 63 held restarts would have gone ahead
        without = what_if(journal, None, fleet=FleetPolicy())
        assert 63 == sum(1 for r in without if r.now.action == "restart_service")
    finally:
        journal.close()


def test_replay_with_a_changed_cooldown_shows_what_it_would_hold(tmp_path: Path) -> None:
    """Restarts 200 s apart pass a 120 s cooldown; `replay --rules` with 300 s holds them."""
    path = tmp_path / "r.db"

    async def run() -> None:
        clock = ManualClock(start_ns=START_NS)
        policy = FleetPolicy(cooldown=120.0)
        async with Host(path, durability="normal", clock=clock, fleet=policy) as host:
            for _ in range(4):
                await host.process({**OVERLOAD, "agent_id": "web"})
                clock.advance(200)

    asyncio.run(run())
    longer = tmp_path / "longer.toml"
    longer.write_text("rules = []\n\n[fleet]\ncooldown = 300\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaptive_runtime",
            "replay",
            "--db",
            str(path),
            "--rules",
            str(longer),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONHASHSEED": "1"},
    )
    assert 0 == out.returncode, out.stderr
    report = json.loads(out.stdout)
    assert 2 == report["changed"]  # the second and the fourth restart fall inside 300 s
    assert [{"from": "restart_service", "to": "throttle_requests", "count": 2}] == report["shifts"]


def test_the_gate_keys_on_agent_target_and_action() -> None:
    view = FleetView(policy=COOL)
    engine = DecisionEngine()
    from adaptive_runtime.engines.events import parse_event
    from adaptive_runtime.engines.learning import Outcomes
    from adaptive_runtime.engines.pipeline import Policy, decide

    policy = Policy()
    ts = START_NS
    first = decide(policy, Outcomes(), parse_event(OVERLOAD), ts)
    assert "restart_service" == first.action
    gated, _ = gate_in_fleet(view, first, "web", engine, "node-1")
    assert "restart_service" == gated.action
    observe(view, ts, "web", gated.context, gated.action, 2, "node-1")
    for agent, target, expected in [
        ("web", "node-1", "throttle_requests"),
        ("web", None, "restart_service"),
        ("web", "node-2", "restart_service"),
        ("api", "node-1", "restart_service"),
    ]:
        again, _ = gate_in_fleet(view, first, agent, engine, target)
        assert expected == again.action, (agent, target)
    later = decide(policy, Outcomes(), parse_event(OVERLOAD), ts + 300 * 10**9)
    assert "restart_service" == gate_in_fleet(view, later, "web", engine, "node-1")[0].action


async def test_on_cooldown_skip_keeps_the_decision_and_skips_its_action(tmp_path: Path) -> None:
    """With on_cooldown="skip", the held decision stands (restart_service, saying why) and
    only its action is skipped; a skipped restart does not restart the window."""
    path = tmp_path / "s.db"
    clock = ManualClock(start_ns=START_NS)
    ran: list[int] = []
    policy = FleetPolicy(cooldown=300.0, on_cooldown="skip")
    async with Host(path, durability="normal", clock=clock, fleet=policy) as host:

        @host.action("restart_service")
        async def restart(call: object) -> None:
            ran.append(call.decision.seq)  # type: ignore[attr-defined]

        first = await host.process({**OVERLOAD, "agent_id": "web"})
        clock.advance(200)
        held = await host.process({**OVERLOAD, "agent_id": "web"})
        clock.advance(101)  # 301 s after the first restart, 101 s after the skipped one
        after = await host.process({**OVERLOAD, "agent_id": "web"})
        await host.wait_for_actions()
    assert ["restart_service"] * 3 == [first.action, held.action, after.action]
    assert (None, True) == (held.degraded_from, held.fleet is not None)
    assert [first.seq, after.seq] == ran
    journal = SqliteJournal(path, create=False)
    try:
        from adaptive_runtime.records import ActionSkipped, read_as

        [skip] = [read_as(e, ActionSkipped) for e in journal.read(kind="ActionSkipped")]
        assert skip.reason.startswith("cooldown: restart_service for web at most once per 300s")
        assert verify_replay(journal).ok
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("how", "last"),
    [
        ("silence", None),
        ("fire_after silence", 0),
        ("dry run", 30),
        ("denied", None),
        ("approved", 0),
    ],
)
async def test_the_window_counts_a_restart_only_if_it_runs_or_stands_for_a_run(
    tmp_path: Path, how: str, last: int | None
) -> None:
    """A restart decided and then kept from running (skipped by a silence, or its approval
    denied) leaves the cooldown window (600 s), so the next one restarts. One that a dry
    run trials counts from its decision, 30 s before the next; one that runs later (a
    `fire_after` silence of 700 s owes it, or a person approves it 700 s on) counts from
    when it runs, not from its decision. Either way the next restart is degraded, saying
    how long ago the last one was (`last` s; None: not degraded). The journal replays."""
    path = tmp_path / "held.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(
        path,
        durability="normal",
        clock=clock,
        fleet=FleetPolicy(cooldown=600),
        dry_run=how == "dry run",
        approvals=(
            ApprovalPolicy(actions=("restart_service",), timeout_s=3600.0)
            if how in ("denied", "approved")
            else None
        ),
    )
    ran: list[int] = []

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    node = {**OVERLOAD, "agent_id": "web", "instance": "node-1"}
    async with host:
        if "silence" in how:
            await host.controls.add_silence(
                SilenceMatcher(agent="web"),
                ends_ns=START_NS + 700 * 10**9,
                comment="deploy",
                by="ops",
                fire_after=how.startswith("fire_after"),
            )
        held = await host.process({**node, "n": 1})
        if how == "denied":
            await host.controls.answer(held.seq, approve=False, by="alice")
        # the silence is over, and the cooldown from the decision; a dry run's is not
        clock.advance(30 if how == "dry run" else 700)
        if how == "approved":
            await host.controls.answer(held.seq, approve=True, by="alice")
        await host.controls.refresh()
        await host.wait_for_actions()
        after = await host.process({**node, "n": 2})
        await host.wait_for_actions()
    assert "restart_service" == held.action
    if last is None:
        assert ("restart_service", None, None) == (after.action, after.degraded_from, after.fleet)
    else:
        assert ("throttle_requests", "restart_service") == (after.action, after.degraded_from)
        assert f"(the last {last}s ago)" in str(after.fleet)
    runs = {
        "silence": [after.seq],
        "fire_after silence": [held.seq],
        "dry run": [],
        "denied": [],  # the second waits for approval too
        "approved": [held.seq],
    }
    assert runs[how] == ran
    assert_replays(path)


async def test_a_journal_decided_counting_every_decision_replays_so_until_a_host_sets_fold_2(
    tmp_path: Path,
) -> None:
    """A fleet policy journaled before fold 2 (no `fold` in its record) keeps counting
    every decision for a host that sets no policy, and replays that way; a host given the
    policy journals it again with fold 2, and from there a skipped restart leaves the
    window. Both stretches replay."""
    path = tmp_path / "old.db"
    journal = SqliteJournal(path, durability="normal")
    old = msgspec.msgpack.encode(["FleetPolicySet", FleetPolicy(cooldown=600)])
    journal.append([Pending(stream=HOST_STREAM, kind="FleetPolicySet", ts_ns=START_NS, body=old)])
    journal.close()
    node = {**OVERLOAD, "agent_id": "web", "instance": "node-1"}
    clock = ManualClock(start_ns=START_NS)
    decided = []
    for fleet in (None, FleetPolicy(cooldown=600)):
        host = Host(path, durability="normal", clock=clock, fleet=fleet)

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            pass

        async with host:
            await host.controls.add_silence(
                SilenceMatcher(agent="web"), ends_ns=clock.now_ns() + 10**10, comment="d", by="o"
            )
            decided.append(await host.process({**node, "n": len(decided)}))
            clock.advance(30)
            await host.controls.refresh()
            decided.append(await host.process({**node, "n": len(decided)}))
        clock.advance(3600)
    assert ["restart_service", "throttle_requests", "restart_service", "restart_service"] == [
        d.action for d in decided
    ]
    journal = SqliteJournal(path, create=False)
    try:
        folds = [read_as(e, FleetPolicySet).fold for e in journal.read(kind="FleetPolicySet")]
        assert [1, 2] == folds
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_a_denial_on_another_host_frees_the_budget_for_this_one(tmp_path: Path) -> None:
    """Two hosts on one file, a budget of one restart: host B's restart waits for approval
    and spends it, so host A's is degraded. Once B's is denied, A's next restart goes
    ahead, though A journaled nothing in between, and the journal replays: the denial
    is a fleet entry, so A's batch decided from a view without it is refused and decided
    again."""
    path = tmp_path / "two.db"
    clock = ManualClock(start_ns=START_NS)
    policy = FleetPolicy(budget=1, budget_window=600)
    approvals = ApprovalPolicy(actions=("restart_service",))
    a = Host(path, durability="normal", clock=clock, fleet=policy)
    b = Host(path, durability="normal", clock=clock, fleet=policy, approvals=approvals)
    for host in (a, b):

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            pass

    async with a, b:
        first = await a.process({**OVERLOAD, "agent_id": "web-a", "n": 0})
        clock.advance(700)  # out of the budget window
        waiting = await b.process({**OVERLOAD, "agent_id": "web-b"})
        held = await a.process({**OVERLOAD, "agent_id": "web-a", "n": 1})
        await b.controls.answer(waiting.seq, approve=False, by="alice")
        clock.advance(1)
        after = await a.process({**OVERLOAD, "agent_id": "web-a", "n": 2})
    assert ["restart_service"] * 2 == [first.action, waiting.action]
    assert ("restart_service", "restart_service") == (held.degraded_from, after.action)
    assert_replays(path)


async def test_a_run_another_host_owed_spends_the_budget_when_it_runs(tmp_path: Path) -> None:
    """Two hosts on one file, a budget of one restart per 600 s: host B's restart, decided
    inside a `fire_after` silence, runs when the silence ends 700 s later and counts from
    then, so host A's restart a second after is degraded, though A's view last saw B's
    decision out of the window. The run is a fleet entry, so A's batch decided without it
    is refused and decided again, and the journal replays. (A has no handler: its batch
    plans no action, so the operators' controls, which moved too, don't refuse it.)"""
    path = tmp_path / "two.db"
    clock = ManualClock(start_ns=START_NS)
    policy = FleetPolicy(budget=1, budget_window=600)
    a = Host(path, durability="normal", clock=clock, fleet=policy)
    b = Host(path, durability="normal", clock=clock, fleet=policy)
    ran: list[str] = []

    @b.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(call.decision.event_type)

    async with a, b:
        await b.controls.add_silence(
            SilenceMatcher(agent="web-b"),
            ends_ns=START_NS + 700 * 10**9,
            comment="deploy",
            by="ops",
            fire_after=True,
        )
        owed = await b.process({**OVERLOAD, "agent_id": "web-b"})
        await a.process({"type": "timeout", "severity": 0.3, "agent_id": "web-a"})
        clock.advance(700)
        await b.controls.refresh()  # the silence is over: B runs what it owed
        await b.wait_for_actions()
        clock.advance(1)
        after = await a.process({**OVERLOAD, "agent_id": "web-a"})
    assert ("restart_service", ["service_overload"]) == (owed.action, ran)
    assert "restart_service" == after.degraded_from
    assert "fleet budget spent: 1 of 1" in str(after.fleet)
    assert_replays(path)


async def test_a_fleet_policy_counted_by_a_fold_this_version_does_not_know_is_refused(
    tmp_path: Path,
) -> None:
    """A journal from a newer version, whose fleet policy counts its windows some other
    way, is a JournalVersionError at start and in replay (saying to upgrade), not decided
    from by the wrong count; an import refuses such a line."""
    from adaptive_runtime.engines.entries import check_entry
    from adaptive_runtime.errors import InvalidEventError, JournalVersionError
    from adaptive_runtime.records import FLEET_FOLD

    path = tmp_path / "newer.db"
    journal = SqliteJournal(path, durability="normal")
    body = msgspec.msgpack.encode(["FleetPolicySet", FleetPolicy(budget=2), FLEET_FOLD + 1])
    journal.append([Pending(stream=HOST_STREAM, kind="FleetPolicySet", ts_ns=START_NS, body=body)])
    journal.close()
    with pytest.raises(JournalVersionError, match=f"by fold {FLEET_FOLD + 1}, which this version"):
        async with Host(path, durability="normal") as host:
            await host.process({**OVERLOAD, "agent_id": "web"})
    journal = SqliteJournal(path, create=False)
    try:
        with pytest.raises(JournalVersionError, match="upgrade adaptive-runtime"):
            verify_replay(journal)
        assert 1 == journal.head().seq  # nothing was journaled
    finally:
        journal.close()
    with pytest.raises(InvalidEventError, match=f"fold is 1 to {FLEET_FOLD}"):
        check_entry("FleetPolicySet", body)
