"""Where time comes from: injected, so tests and replay never read the wall clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from .errors import ConfigurationError

__all__ = ["MAX_TS_NS", "CheckedClock", "Clock", "ManualClock", "SystemClock", "checked"]

MAX_TS_NS = 2**63 - 1
"""The latest time a journal entry can carry (a signed 64-bit integer)."""


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


class CheckedClock:
    """A caller's clock, checked on every read: a bad reading is the clock's fault, said so."""

    __slots__ = ("inner",)

    def __init__(self, inner: Clock) -> None:
        if not callable(getattr(inner, "now_ns", None)) or not callable(
            getattr(inner, "sleep", None)
        ):
            msg = f"clock must have now_ns() and async sleep(seconds), like SystemClock; got {inner!r}"
            raise ConfigurationError(msg)
        self.inner = inner

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)  # a ManualClock's advance(), slept...

    def now_ns(self) -> int:
        value = self.inner.now_ns()
        if type(value) is not int or not 0 <= value <= MAX_TS_NS:
            msg = (
                f"the clock {self.inner!r} returned {value!r} from now_ns(); it must return an "
                f"int of nanoseconds since the Unix epoch, from 0 to 2**63-1"
            )
            raise ConfigurationError(msg)
        return value

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def checked(clock: Clock) -> Clock:
    """Return the clock wrapped in its checks (once: a checked clock is returned as it is)."""
    return clock if isinstance(clock, CheckedClock | SystemClock) else CheckedClock(clock)
