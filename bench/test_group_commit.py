"""Group commit at durability full: concurrent producers share fsyncs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import event, raw_run

from adaptive_runtime import Runtime

EVENTS = 64 * 24


def test_raw_batches_of_64(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Baseline: open, raw apsw committing 64 events (128 rows) per transaction at FULL, close."""
    benchmark.group = "group-commit-full"
    benchmark.extra_info.update(events=EVENTS, role="baseline")
    benchmark.pedantic(
        lambda path: raw_run(path, EVENTS, 2, per_commit=64),
        setup=lambda: ((fresh(),), {}),
        rounds=5,
    )


@pytest.mark.parametrize("producers", [1, 8, 64])
def test_producers(benchmark: Any, fresh: Callable[[], Path], producers: int) -> None:
    """Ours: `producers` tasks, each awaiting process() in turn, sharing commits."""
    n = EVENTS if producers > 1 else 300
    benchmark.group = "group-commit-full"
    benchmark.extra_info.update(events=n, role="ours", producers=producers)

    async def run(path: Path) -> None:
        async with Runtime(
            agent_id="bench", path=path, durability="full", checkpoint_every=10**9
        ) as runtime:

            async def produce(k: int) -> None:
                for i in range(k, n, producers):
                    await runtime.process(event(i))

            await asyncio.gather(*(produce(k) for k in range(producers)))

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=3
    )


def test_process_many_64(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours: process_many() with 64 events a call, at full (one commit each)."""
    benchmark.group = "group-commit-full"
    benchmark.extra_info.update(events=EVENTS, role="ours")

    async def run(path: Path) -> None:
        async with Runtime(
            agent_id="bench", path=path, durability="full", checkpoint_every=10**9
        ) as runtime:
            for start in range(0, EVENTS, 64):
                await runtime.process_many([event(i) for i in range(start, start + 64)])

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=3
    )
