"""The fleet policy's cooldown: at most one disruptive action per target per window."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from adaptive_runtime import FleetPolicy, Host, ManualClock
from adaptive_runtime.engines.decision import DecisionEngine
from adaptive_runtime.engines.fleet import FleetView, gate_in_fleet, observe
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.replay import what_if

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


async def test_the_window_counts_a_restart_a_silence_kept_from_running(tmp_path: Path) -> None:
    """As the README says: the cooldown counts decisions, not runs. A restart decided and
    skipped inside a silence degrades the next one, decided after the silence ended,
    and the journal of both replays."""
    from adaptive_runtime.records import SilenceMatcher
    from adaptive_runtime.runtime.actions import ActionCall

    path = tmp_path / "held.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock, fleet=FleetPolicy(cooldown=600))
    ran: list[int] = []

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    node = {**OVERLOAD, "agent_id": "web", "instance": "node-1"}
    async with host:
        await host.controls.add_silence(
            SilenceMatcher(agent="web"), ends_ns=START_NS + 10 * 10**9, comment="deploy", by="ops"
        )
        held = await host.process({**node, "n": 1})
        clock.advance(30)  # the silence is over
        await host.controls.refresh()
        after = await host.process({**node, "n": 2})
        await host.wait_for_actions()
    assert ("restart_service", "throttle_requests") == (held.action, after.action)
    assert "restart_service" == after.degraded_from
    assert "(the last 30s ago)" in str(after.fleet)
    assert [] == ran
    journal = SqliteJournal(path, create=False)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()
