"""The live feed: decisions, actions, outcomes, incidents and operators' requests as
Server-Sent Events, by seq.

Each message's SSE id is its entry's journal seq. A client that reconnects with
`Last-Event-ID: <seq>` gets every message after it: the feed reads the journal
(`seq > last`), so it can neither skip an entry nor repeat one. It wakes on this
host's commits, and polls too, so entries that other hosts of a shared journal
commit arrive within a poll. Streams at the same place share one read, and the
messages made from it: a commit costs one read for all the streams that had caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from itertools import islice
from typing import NamedTuple

import msgspec

from ..errors import JournalUnavailableError
from ..journal.base import Head, Journal
from ..journal.follow import Retrying
from ..projections.messages import message_of
from ..records import Entry
from ..runtime.host import Host

__all__ = ["Feed"]

log = logging.getLogger("adaptive_runtime.service")

PAGE = 500
HEARTBEAT_EVERY_S = 15.0


class _Page(NamedTuple):
    """What a stream reads in one go: the messages of up to PAGE entries after a seq."""

    messages: list[tuple[int, str, str]]
    """(seq, event name, JSON data) of each entry the feed shows."""
    last: int
    """The seq of the last entry read (shown or not), or the seq read after if none."""
    full: bool
    """PAGE entries were read: more may follow at once."""


class Feed:
    """Wakes every open stream when this host commits; `close()` ends them all."""

    def __init__(self, host: Host, *, poll: float = 1.0) -> None:
        self._host = host
        self.poll = poll
        self._waiters: set[asyncio.Future[None]] = set()
        self._commits = 0
        """How many commits of this host the feed has been told of: a stream that read
        before the latest one reads again rather than wait for the next."""
        self._reading: dict[tuple[int, int], asyncio.Future[_Page]] = {}
        """Reads in flight, by (after, commits when begun): a stream shares one only if
        no commit came since it began."""
        self.closed = False
        self._outage = False
        """Whether a stream found the journal unreachable and no stream that waited for it
        has read it since: the outage and its end are logged once for all the streams."""
        self._unwatch = host.watch(self._on_commit)

    def _on_commit(self, entries: list[Entry]) -> None:
        self._commits += 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """End every stream after what it has already read (the server is shutting down)."""
        self.closed = True
        self._unwatch()
        self._wake()

    async def _wait(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.discard(waiter)

    async def head(self) -> int:
        return (await self._host.read(_head)).seq

    async def _read(self, after: int, commits: int) -> _Page:
        """The page after `after`, read once for every stream that asks for it while the
        read is in flight and no commit has come since it began."""
        key = (after, commits)
        shared = self._reading.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._host.read(_page, after))
            self._reading[key] = shared

            def done(read: asyncio.Future[_Page]) -> None:
                self._reading.pop(key, None)
                if not read.cancelled():
                    read.exception()  # retrieved: each stream awaiting it has it raised

            shared.add_done_callback(done)
        # shielded: a stream that goes away (its client gone) leaves the read to the others
        return await asyncio.shield(shared)

    async def stream(
        self, after: int, *, follow: bool = True
    ) -> AsyncIterator[tuple[int, str, str]]:
        """(seq, event name, JSON data) of each message after `after`, as they commit.

        With `follow=False` it ends once it has caught up; otherwise when the feed closes.
        A comment-only heartbeat, (0, "", ""), comes after each quiet stretch. Following,
        it waits out a journal that can't be reached (a database server restarting),
        trying again every poll and then less often, and carries on after the last
        message it gave; not following, it raises JournalUnavailableError.
        """
        position = after
        quiet = 0.0
        retrying = Retrying(self.poll)
        while True:
            commits = self._commits
            try:
                page = await self._read(position, commits)
            except JournalUnavailableError as exc:
                if not follow or self.closed:
                    raise
                _, pause = retrying.failed()
                if not self._outage:  # said once for all the streams
                    self._outage = True
                    log.warning("the live streams wait for the journal: %s", exc)
                await self._wait(pause)
                quiet += pause
                if quiet >= HEARTBEAT_EVERY_S:
                    quiet = 0.0
                    yield 0, "", ""
                continue
            if retrying.answered() and self._outage:
                self._outage = False
                log.warning("the journal answers again: the live streams carry on")
            for message in page.messages:
                yield message
            position = page.last
            if page.full:
                continue
            if self.closed or not follow:
                return
            if self._commits != commits:  # a commit came while this stream read or sent
                continue
            await self._wait(self.poll)
            quiet = 0.0 if page.messages else quiet + self.poll
            if quiet >= HEARTBEAT_EVERY_S:
                quiet = 0.0
                yield 0, "", ""


def _head(journal: Journal) -> Head:
    return journal.head()


def _page(journal: Journal, after: int) -> _Page:
    """Read and encode a page (on a reader thread: off the event loop)."""
    entries = list(islice(journal.read(after=after), PAGE))
    messages = []
    for entry in entries:
        message = message_of(entry)
        if message is not None:
            messages.append((entry.seq, message[0], msgspec.json.encode(message[1]).decode()))
    return _Page(messages, entries[-1].seq if entries else after, len(entries) == PAGE)
