"""process() end to end, beside raw apsw inserting event + decision in one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FrameCounter, event, raw_connection, raw_insert

from adaptive_runtime import Runtime

EVENTS = {"normal": 2000, "full": 300}
SYNC = {"normal": 1, "full": 2}


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_raw_insert(benchmark: Any, fresh: Callable[[], Path], durability: str) -> None:
    """Baseline: one BEGIN IMMEDIATE ... COMMIT per event, two rows each."""
    n = EVENTS[durability]
    benchmark.group = f"process-{durability}"
    benchmark.extra_info.update(events=n, role="baseline")
    counter = FrameCounter()

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        conn = raw_connection(fresh(), SYNC[durability])
        conn.set_wal_hook(counter)
        return (conn,), {}

    benchmark.pedantic(lambda conn: raw_insert(conn, n), setup=setup, rounds=5)
    benchmark.extra_info.update(pages_per_commit=round(counter.frames / counter.commits, 2))


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_process(benchmark: Any, fresh: Callable[[], Path], durability: str) -> None:
    """Ours: validate, decide, journal, fold; one awaited process() after another."""
    n = EVENTS[durability]
    benchmark.group = f"process-{durability}"
    benchmark.extra_info.update(events=n, role="ours")

    seen = {"commits": 0, "frames": 0, "checkpoints": 0, "events": 0}

    async def run(path: Path) -> None:
        async with Runtime(
            agent_id="bench", path=path, durability=durability, checkpoint_every=10**9
        ) as runtime:
            for i in range(n):
                await runtime.process(event(i))
            checkpointer = runtime.journal._checkpointer  # type: ignore[attr-defined]
            seen["commits"] += checkpointer.commits
            seen["frames"] += checkpointer.frames_written
            seen["checkpoints"] += checkpointer.checkpoints
            seen["events"] += n

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=5
    )
    benchmark.extra_info.update(
        pages_per_commit=round(seen["frames"] / seen["commits"], 2),
        checkpoints_per_10k=round(seen["checkpoints"] * 10_000 / seen["events"], 1),
    )
