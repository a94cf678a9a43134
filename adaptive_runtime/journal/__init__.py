"""The append-only, hash-chained journal: a protocol and its backends."""

from __future__ import annotations

from .base import (
    GENESIS_DIGEST,
    Durability,
    Entry,
    Head,
    Journal,
    Pending,
    Snapshot,
    VerifyReport,
)
from .memory import MemoryJournal, MemoryStore
from .sqlite import SCHEMA_VERSION, SqliteJournal
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
    "Pending",
    "Snapshot",
    "SqliteJournal",
    "VerifyReport",
]
