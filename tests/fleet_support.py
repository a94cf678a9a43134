"""Fleets of hosts sharing one journal, for the SQLite and PostgreSQL fleet tests."""

from __future__ import annotations

import asyncio

from adaptive_runtime import Host, ManualClock
from adaptive_runtime.records import FleetPolicy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


async def fleet_of_two_hosts(journal: str, durability: str) -> list[str]:
    """Two hosts on one journal, each deciding for agents of its own at once, under one
    fleet budget of 5 disruptive actions: the action of every decision made."""
    policy = FleetPolicy(budget=5, budget_window=600.0)
    clock = ManualClock()
    first = Host(journal, fleet=policy, durability=durability, clock=clock)  # type: ignore[arg-type]
    second = Host(journal, fleet=policy, durability=durability, clock=clock)  # type: ignore[arg-type]
    async with first, second:

        async def decide(host: Host, name: str) -> list[str]:
            return [
                (await host.agent(f"{name}-{i % 4}").process(OVERLOAD)).action for i in range(12)
            ]

        taken = await asyncio.gather(
            decide(first, "a"), decide(second, "b"), decide(first, "c"), decide(second, "d")
        )
    return [action for actions in taken for action in actions]
