"""The fleet policy's dedup_window: repeats of a fingerprint are journaled, and decided once."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptive_runtime import ConfigurationError, FleetPolicy, Host, ManualClock
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.replay import what_if
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9


async def test_repeats_within_the_window_are_recorded_and_decided_once(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    clock = ManualClock(start_ns=START_NS)
    ran: list[str] = []
    async with Host(
        path, durability="normal", clock=clock, fleet=FleetPolicy(dedup_window=300)
    ) as host:

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            ran.append(call.event["agent_id"])

        event = {**OVERLOAD, "agent_id": "web", "fingerprint": "a1b2"}
        first = await host.process(event)
        clock.advance(30)
        again = await host.process({**event, "cpu": 99})
        clock.advance(30)
        third = await host.process(event)
        other_agent = await host.process({**event, "agent_id": "db"})
        other_print = await host.process({**event, "fingerprint": "c3d4"})
        clock.advance(300)
        later = await host.process(event)
        await host.wait_for_actions()
    assert "restart_service" == first.action
    for repeat in (again, third):
        assert ("monitor_and_wait", "restart_service") == (repeat.action, repeat.degraded_from)
        assert repeat.fleet is not None
        assert repeat.fleet.startswith("repeat of fingerprint a1b2, first decided at stream seq 2")
    assert ["restart_service"] * 3 == [other_agent.action, other_print.action, later.action]
    assert ["web", "db", "web", "web"] == ran
    journal = SqliteJournal(path, create=False)
    try:
        assert 12 == sum(1 for e in journal.read() if e.kind in ("EventReceived", "DecisionMade"))
        assert verify_replay(journal).ok
        # what-if without the window: the two repeats would have restarted too
        assert 2 == len(what_if(journal, None, fleet=FleetPolicy()))
    finally:
        journal.close()


def test_a_bad_window_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        FleetPolicy(dedup_window=0)
