"""The live feed's reads: shared between the streams at one place, and never left for
the next poll when a commit lands while a stream reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adaptive_runtime import Host, ManualClock
from adaptive_runtime.service import feed as feed_module
from adaptive_runtime.service.feed import Feed

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
NEVER = 3600.0
"""A poll no test waits for: a message that comes, comes because of a commit."""


class PageReads(list[int]):
    """The feed's page reads through the host (each item: the seq read after)."""

    def __init__(self) -> None:
        super().__init__()
        self.returned = asyncio.Event()
        """Set when a page read has returned (to the streams that share it)."""


def counting_page_reads(host: Host, monkeypatch: pytest.MonkeyPatch) -> PageReads:
    reads = PageReads()
    read = host.read

    async def counted(fn: Any, *args: Any) -> Any:
        if fn is not feed_module._page:
            return await read(fn, *args)
        reads.append(args[0])
        try:
            return await read(fn, *args)
        finally:
            reads.returned.set()

    monkeypatch.setattr(host, "read", counted)
    return reads


async def first_message(stream: AsyncIterator[tuple[int, str, str]]) -> tuple[int, str]:
    async for seq, name, _ in stream:
        if seq:  # not a heartbeat
            return seq, name
    raise AssertionError("the stream ended")


async def test_streams_at_one_place_share_one_read_per_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each open stream read the journal on each commit and made its messages itself, so
    that a commit cost as many reads as there were streams open."""
    async with Host(tmp_path / "j.db", durability="normal", clock=ManualClock()) as host:
        feed = Feed(host, poll=NEVER)
        reads = counting_page_reads(host, monkeypatch)
        streams = [feed.stream(0) for _ in range(20)]
        waiting = [asyncio.ensure_future(first_message(s)) for s in streams]
        # the read runs on a reader thread: wait for it, then let the streams reach their
        # wait (a few turns of the loop, no thread and no clock involved)
        await asyncio.wait_for(reads.returned.wait(), 10)
        for _ in range(100):
            if len(feed._waiters) == 20:
                break
            await asyncio.sleep(0)
        assert 20 == len(feed._waiters)
        assert [0] == reads  # one read for the 20, all at seq 0
        decided = await host.agent("svc").process(OVERLOAD)
        got = await asyncio.wait_for(asyncio.gather(*waiting), 10)
        assert [(decided.seq, "decision")] * 20 == got
        assert [0, 0] == reads  # and one more for the commit
        feed.close()
        for stream in streams:
            await stream.aclose()


async def test_a_commit_during_a_read_is_not_left_for_the_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that landed while a stream read (or sent what it read) woke no one: the
    stream was not waiting yet, so it waited a whole poll before it read again."""
    async with Host(tmp_path / "j.db", durability="normal", clock=ManualClock()) as host:
        feed = Feed(host, poll=NEVER)
        read = host.read
        decided: list[Any] = []

        async def read_then_commit(fn: Any, *args: Any) -> Any:
            page = await read(fn, *args)
            if fn is feed_module._page and not decided:  # after the read, before the wait
                decided.append(await host.agent("svc").process(OVERLOAD))
            return page

        monkeypatch.setattr(host, "read", read_then_commit)
        stream = feed.stream(0)
        got = await asyncio.wait_for(first_message(stream), 10)
        assert (decided[0].seq, "decision") == got
        feed.close()
        await stream.aclose()
