"""The agent's key/value memory, journaled as StatePatched entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..clock import Clock, SystemClock
from ..engines.events import check_values
from ..records import StatePatched, to_pending
from .ports import AsyncStore, Store, as_async_store

__all__ = ["StateEngine"]


class StateEngine:
    """Save, load and patch an agent's state; every change is a journal entry."""

    __slots__ = ("_clock", "_store", "agent_id")

    def __init__(
        self, store: Store | AsyncStore, agent_id: str, *, clock: Clock | None = None
    ) -> None:
        self._store = as_async_store(store)
        self._clock = clock or SystemClock()
        self.agent_id = agent_id

    def __repr__(self) -> str:
        return f"StateEngine(agent_id={self.agent_id!r})"

    async def save_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the whole state."""
        return await self._write(state, replace=True)

    async def patch_state(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge keys into the state and return the result."""
        return await self._write(patch, replace=False)

    async def load_state(self) -> dict[str, Any] | None:
        """Return the state, or None if nothing was ever saved."""
        return await self._store.load_state(self.agent_id)

    async def _write(self, values: Mapping[str, Any], *, replace: bool) -> dict[str, Any]:
        record = StatePatched(values=check_values(values), replace=replace)
        await self._store.append([to_pending(self.agent_id, record, self._clock.now_ns())])
        state = await self._store.load_state(self.agent_id)
        return state or {}
