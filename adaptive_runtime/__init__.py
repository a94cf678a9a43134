"""Adaptive Runtime: decide what to do about operational events, journal it, replay it."""

from __future__ import annotations

from .errors import (
    AdaptiveRuntimeError,
    DuplicateEventError,
    InvalidEventError,
    InvalidRulesError,
    JournalBusyError,
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalVersionError,
    NotAJournalError,
    ReplayMismatchError,
    RuntimeNotStartedError,
    StreamConflictError,
)

__all__ = [
    "AdaptiveRuntimeError",
    "DuplicateEventError",
    "InvalidEventError",
    "InvalidRulesError",
    "JournalBusyError",
    "JournalClosedError",
    "JournalCorruptError",
    "JournalError",
    "JournalVersionError",
    "NotAJournalError",
    "ReplayMismatchError",
    "RuntimeNotStartedError",
    "StreamConflictError",
]
__version__ = "0.1.0"
