"""Where time comes from: injected, so tests and replay never read the wall clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of time: stamps entries and paces back-off."""

    def now_ns(self) -> int:
        """Return nanoseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The wall clock and real sleeps."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SystemClock()"

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told: `sleep` advances it instead of waiting."""

    __slots__ = ("_now_ns", "slept")

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now_ns = start_ns
        self.slept: list[float] = []
        """Every sleep asked for, in order: the back-off schedule as it happened."""

    def __repr__(self) -> str:
        return f"ManualClock(now_ns={self._now_ns})"

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now_ns += round(seconds * 1e9)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)  # still yield, so other tasks run as they would
