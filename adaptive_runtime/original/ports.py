"""What the original state and recovery engines need from a store, and an adapter for journals.

The engines never import the journal: they talk to whatever satisfies `Store`
(every Journal does) or `AsyncStore` (the Runtime's own port, which writes through
its group-commit writer and keeps its projection current).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from ..journal import is_journal
from ..projections.rebuild import rebuild
from ..records import Entry, Pending

__all__ = ["AsyncStore", "Store", "as_async_store"]


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
        # the same fold every state comes from; the journal must be one for that
        journal = self._journal
        if not is_journal(journal):
            raise TypeError("load_state needs a Journal: it folds the stream's entries")
        kv = rebuild(journal, stream).state.kv
        return None if kv is None else dict(kv)


def as_async_store(store: Store | AsyncStore) -> AsyncStore:
    """Return the store as an AsyncStore, adapting a synchronous journal."""
    # an AsyncStore says so; asking inspect would cost every `import adaptive_runtime`
    if getattr(store, "is_async_store", False) is True:
        return store  # type: ignore[return-value]
    if isinstance(store, Store):
        return _JournalStore(store)
    msg = f"expected a journal (or another Store), not {type(store).__name__}"
    raise TypeError(msg)
