"""The same workload on the eventsourcing library with its SQLite persistence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import event

from adaptive_runtime import Runtime

EVENTS = 1000


def test_eventsourcing_sqlite(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Peer: one aggregate event saved (and committed) per operational event."""
    pytest.importorskip("eventsourcing")
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate
    from eventsourcing.domain import event as es_event

    class Agent(Aggregate):  # type: ignore[misc]
        @es_event("Decided")  # type: ignore[untyped-decorator]
        def decided(self, etype: str, severity: float, action: str, confidence: float) -> None:
            pass

    benchmark.group = "peer"
    benchmark.extra_info.update(events=EVENTS, role="peer")

    def run(path: Path) -> None:
        app = Application(
            env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        )
        agent = Agent()
        app.save(agent)
        for i in range(EVENTS):
            e = event(i)
            agent.decided(str(e["type"]), float(e["severity"]), "restart_service", 0.78)  # type: ignore[arg-type]
            app.save(agent)

    benchmark.pedantic(run, setup=lambda: ((fresh(),), {}), rounds=3)


def test_adaptive_runtime_same_workload(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours, on the same workload: decide and journal each event (durability normal)."""
    benchmark.group = "peer"
    benchmark.extra_info.update(events=EVENTS, role="ours")

    async def run(path: Path) -> None:
        async with Runtime(agent_id="bench", path=path, durability="normal") as runtime:
            for i in range(EVENTS):
                await runtime.process(event(i))

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=3
    )
