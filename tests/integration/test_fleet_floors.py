"""Fleet floors: never act on more than a share of the fleet at once, keep some untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from journal_support import assert_replays

from adaptive_runtime import FleetPolicy, Host, ManualClock
from adaptive_runtime.errors import ConfigurationError
from adaptive_runtime.records import FleetPolicy as Policy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
QUIET = {"type": "anomaly_detected", "severity": 0.3}
START_NS = 1_764_000_000 * 10**9


async def run(path: Path, policy: FleetPolicy) -> list[str]:
    """Ten agents report in quietly, then each in turn is overloaded; the actions decided."""
    clock = ManualClock(start_ns=START_NS)
    async with Host(path, durability="normal", clock=clock, fleet=policy) as host:
        for i in range(10):
            await host.process({**QUIET, "agent_id": f"svc-{i}"})
        clock.advance(120)
        actions = []
        for i in range(10):
            actions.append((await host.process({**OVERLOAD, "agent_id": f"svc-{i}"})).action)
            clock.advance(1)
    return actions


async def test_max_share_bounds_the_agents_acted_on_at_once(tmp_path: Path) -> None:
    path = tmp_path / "share.db"
    actions = await run(path, FleetPolicy(max_share=0.3, budget_window=60.0))
    assert ["restart_service"] * 3 + ["throttle_requests"] * 7 == actions
    assert_replays(path)


async def test_min_untouched_keeps_agents_untouched(tmp_path: Path) -> None:
    actions = await run(tmp_path / "floor.db", FleetPolicy(min_untouched=8, budget_window=60.0))
    assert ["restart_service"] * 2 + ["throttle_requests"] * 8 == actions


async def test_the_floor_says_why(tmp_path: Path) -> None:
    clock = ManualClock(start_ns=START_NS)
    policy = FleetPolicy(max_share=0.5)
    async with Host(tmp_path / "w.db", durability="normal", clock=clock, fleet=policy) as host:
        await host.process({**QUIET, "agent_id": "b"})
        first = await host.process({**OVERLOAD, "agent_id": "a"})
        second = await host.process({**OVERLOAD, "agent_id": "b"})
    assert "restart_service" == first.action
    assert "fleet floor: acting on 2 of 2 agents within 60s passes max_share 0.5" == second.fleet
    assert "restart_service" == second.degraded_from


@pytest.mark.parametrize("bad", [{"max_share": 0}, {"max_share": 1.5}, {"min_untouched": -1}])
def test_bad_floors_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        Policy(**bad)  # type: ignore[arg-type]


def test_old_policies_keep_their_digest() -> None:
    """The floors and the cooldown count in the digest only when set."""
    assert "3da1b9cef1fe849e" == FleetPolicy(correlate_agents=5, budget=3).digest
