"""Call user code that may be sync or async, without importing inspect on the hot path."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar, cast

T = TypeVar("T")


async def resolve(value: Awaitable[T] | T) -> T:
    """Await `value` if it is awaitable; otherwise return it as it is."""
    if hasattr(value, "__await__"):
        return await cast(Awaitable[T], value)
    return value
