"""The append-only, hash-chained journal: a protocol and its backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    GENESIS_DIGEST,
    Durability,
    Entry,
    Head,
    Journal,
    Ownership,
    Pending,
    Readers,
    Snapshot,
    VerifyReport,
    has_ownership,
    has_readers,
    is_journal,
)
from .memory import MemoryJournal, MemoryStore
from .sqlite import SCHEMA_VERSION, SqliteJournal

if TYPE_CHECKING:
    from .writer import JournalWorker

__all__ = [
    "GENESIS_DIGEST",
    "SCHEMA_VERSION",
    "Durability",
    "Entry",
    "Head",
    "Journal",
    "JournalWorker",
    "MemoryJournal",
    "MemoryStore",
    "Ownership",
    "Pending",
    "Readers",
    "Snapshot",
    "SqliteJournal",
    "VerifyReport",
    "has_ownership",
    "has_readers",
    "is_journal",
]


def __getattr__(name: str) -> Any:
    # the group-commit writer brings in asyncio: loaded when a runtime asks for it
    if name == "JournalWorker":
        from .writer import JournalWorker

        return JournalWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
