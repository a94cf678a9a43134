"""process() end to end, beside raw apsw inserting event + decision in one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import event, raw_connection, raw_insert

from adaptive_runtime import Runtime

EVENTS = {"normal": 2000, "full": 300}
SYNC = {"normal": 1, "full": 2}


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_raw_insert(benchmark: Any, fresh: Callable[[], Path], durability: str) -> None:
    """Baseline: one BEGIN IMMEDIATE ... COMMIT per event, two rows each."""
    n = EVENTS[durability]
    benchmark.group = f"process-{durability}"
    benchmark.extra_info.update(events=n, role="baseline")
    benchmark.pedantic(
        lambda conn: raw_insert(conn, n),
        setup=lambda: ((raw_connection(fresh(), SYNC[durability]),), {}),
        rounds=5,
    )


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_process(benchmark: Any, fresh: Callable[[], Path], durability: str) -> None:
    """Ours: validate, decide, journal, fold; one awaited process() after another."""
    n = EVENTS[durability]
    benchmark.group = f"process-{durability}"
    benchmark.extra_info.update(events=n, role="ours")

    async def run(path: Path) -> None:
        async with Runtime(
            agent_id="bench", path=path, durability=durability, checkpoint_every=10**9
        ) as runtime:
            for i in range(n):
                await runtime.process(event(i))

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=5
    )
