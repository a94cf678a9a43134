"""process() end to end, beside raw apsw inserting event + decision in one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FrameCounter, event, raw_run

from adaptive_runtime import Runtime

EVENTS = {"normal": 2000, "full": 300}
SYNC = {"normal": 1, "full": 2}


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_raw_insert(benchmark: Any, fresh: Callable[[], Path], durability: str) -> None:
    """Baseline: open, one BEGIN IMMEDIATE ... COMMIT per event (two rows each), close."""
    n = EVENTS[durability]
    benchmark.group = f"process-{durability}"
    benchmark.extra_info.update(events=n, role="baseline")
    counter = FrameCounter()
    benchmark.pedantic(
        lambda path: raw_run(path, n, SYNC[durability], hook=counter),
        setup=lambda: ((fresh(),), {}),
        rounds=5,
    )
    benchmark.extra_info.update(pages_per_commit=round(counter.frames / counter.commits, 2))


def test_process_full_on_caller(benchmark: Any, fresh: Callable[[], Path]) -> None:
    """Ours at full, committing on the caller's thread (Runtime(commit_on_caller=True))."""
    n = EVENTS["full"]
    benchmark.group = "process-full"
    benchmark.extra_info.update(events=n, role="ours")

    async def run(path: Path) -> None:
        async with Runtime(
            agent_id="bench",
            path=path,
            durability="full",
            checkpoint_every=10**9,
            commit_on_caller=True,
        ) as runtime:
            for i in range(n):
                await runtime.process(event(i))

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=5
    )


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
            # normal: the journal's checkpointer thread counts; full: SQLite checkpoints
            # after a commit, so count with a hook that does what its autocheckpoint does
            checkpointer = runtime.journal._checkpointer  # type: ignore[attr-defined]
            if checkpointer is None:
                checkpointer = FrameCounter()
                runtime.journal._conn.set_wal_hook(checkpointer)  # type: ignore[attr-defined]
            for i in range(n):
                await runtime.process(event(i))
            seen["commits"] += checkpointer.commits
            seen["frames"] += getattr(checkpointer, "frames_written", None) or checkpointer.frames
            seen["checkpoints"] += checkpointer.checkpoints
            seen["events"] += n

    benchmark.pedantic(
        lambda path: asyncio.run(run(path)), setup=lambda: ((fresh(),), {}), rounds=5
    )
    benchmark.extra_info.update(
        pages_per_commit=round(seen["frames"] / seen["commits"], 2),
        checkpoints_per_10k=round(seen["checkpoints"] * 10_000 / seen["events"], 1),
    )
