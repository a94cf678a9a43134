"""What the shell-side engines (state, checkpoints) need from a store, and an adapter for journals.

The engines never import the journal: they talk to whatever satisfies `Store`
(every Journal does) or `AsyncStore` (the Runtime's own port, which writes through
its group-commit writer and keeps its projection current).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..records import Entry, Pending, StatePatched, read_as

__all__ = ["AsyncStore", "Store", "apply_patch", "as_async_store"]


@runtime_checkable
class Store(Protocol):
    """The part of the Journal protocol the engines use."""

    def append(self, batch: Sequence[Pending], *, expected: int | None = None) -> list[Entry]: ...

    def read(
        self, stream: str | None = None, *, after: int = 0, kind: str | None = None
    ) -> Iterator[Entry]: ...

    def latest(
        self, n: int, stream: str | None = None, *, kind: str | None = None
    ) -> Iterator[Entry]: ...


@runtime_checkable
class AsyncStore(Protocol):
    """An asynchronous store, as the engines see it (it sets `is_async_store = True`)."""

    is_async_store: bool

    async def append(self, batch: Sequence[Pending]) -> list[Entry]: ...

    async def latest(self, n: int, stream: str, *, kind: str) -> list[Entry]: ...

    async def load_state(self, stream: str) -> dict[str, Any] | None: ...


def apply_patch(state: Mapping[str, Any] | None, patch: StatePatched) -> dict[str, Any]:
    """Return the key/value state after one StatePatched entry."""
    if patch.replace or state is None:
        return dict(patch.values)
    merged = dict(state)
    merged.update(patch.values)
    return merged


class _JournalStore:
    """Serve AsyncStore from a synchronous journal, for engines used on their own."""

    __slots__ = ("_journal",)
    is_async_store = True

    def __init__(self, journal: Store) -> None:
        self._journal = journal

    async def append(self, batch: Sequence[Pending]) -> list[Entry]:
        return self._journal.append(batch)

    async def latest(self, n: int, stream: str, *, kind: str) -> list[Entry]:
        return list(self._journal.latest(n, stream, kind=kind))

    async def load_state(self, stream: str) -> dict[str, Any] | None:
        state: dict[str, Any] | None = None
        for entry in self._journal.read(stream, kind="StatePatched"):
            state = apply_patch(state, read_as(entry, StatePatched))
        return state


def as_async_store(store: Store | AsyncStore) -> AsyncStore:
    """Return the store as an AsyncStore, adapting a synchronous journal."""
    # an AsyncStore says so; asking inspect would cost every `import adaptive_runtime`
    if getattr(store, "is_async_store", False) is True:
        return store  # type: ignore[return-value]
    if isinstance(store, Store):
        return _JournalStore(store)
    msg = f"expected a journal (or another Store), not {type(store).__name__}"
    raise TypeError(msg)
