"""A Host serving 1,000 agents: 64 producers spread across them, at durability full."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import event

from adaptive_runtime import Host

AGENTS = 1000
PRODUCERS = 64
EVENTS = 64 * 24


def test_host_1000_agents_64_producers(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours: 64 tasks, each event for one of 1,000 agents, sharing commits across agents.

    Beside test_raw_batches_of_64 (group-commit-full) in the report.
    """
    benchmark.group = "group-commit-full"
    benchmark.extra_info.update(events=EVENTS, role="ours", agents=AGENTS, producers=PRODUCERS)

    async def run(path: Path) -> None:
        async with Host(path, durability="full", checkpoint_every=10**9) as host:

            async def produce(k: int) -> None:
                for i in range(k, EVENTS, PRODUCERS):
                    await host.agent(f"agent-{(i * 7) % AGENTS:04d}").process(event(i))

            await asyncio.gather(*(produce(k) for k in range(PRODUCERS)))

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=3
    )
