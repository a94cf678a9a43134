"""One table from errors to what each face reports: the command line's exit code, an HTTP status.

Every face maps an error through `outcome_of`, so the same failure means the same thing
everywhere: bad input is exit 2 (HTTP 4xx), an unusable journal is exit 3 (HTTP 503).
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import (
    AdaptiveRuntimeError,
    AgentOwnedElsewhere,
    AlreadyAnsweredError,
    ConfigurationError,
    DecisionTooSlowError,
    DuplicateEventError,
    InvalidEventError,
    InvalidImportError,
    InvalidRulesError,
    JournalBusyError,
    JournalError,
    JournalUnavailableError,
    ReplayMismatchError,
    RuntimeNotStartedError,
    StreamConflictError,
)

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_JOURNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "Outcome",
    "outcome_of",
]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_JOURNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Outcome(NamedTuple):
    """How a face reports one kind of failure."""

    exit_code: int
    http_status: int
    title: str


_TABLE: tuple[tuple[type[BaseException], Outcome], ...] = (
    (KeyboardInterrupt, Outcome(EXIT_INTERRUPTED, 499, "interrupted")),
    (DuplicateEventError, Outcome(EXIT_USAGE, 409, "event id reused with another body")),
    (StreamConflictError, Outcome(EXIT_JOURNAL, 409, "stream moved on")),
    (InvalidEventError, Outcome(EXIT_USAGE, 422, "invalid event")),
    (AlreadyAnsweredError, Outcome(EXIT_USAGE, 409, "already answered")),
    (InvalidRulesError, Outcome(EXIT_USAGE, 422, "invalid rules")),
    (InvalidImportError, Outcome(EXIT_USAGE, 422, "invalid import")),
    (ConfigurationError, Outcome(EXIT_USAGE, 400, "invalid setting")),
    (DecisionTooSlowError, Outcome(EXIT_JOURNAL, 503, "deciding took too long")),
    (ReplayMismatchError, Outcome(EXIT_CHECK_FAILED, 500, "replay differs from the journal")),
    (RuntimeNotStartedError, Outcome(EXIT_JOURNAL, 503, "not started")),
    (AgentOwnedElsewhere, Outcome(EXIT_JOURNAL, 409, "agent owned by another host")),
    (JournalBusyError, Outcome(EXIT_JOURNAL, 503, "journal busy")),
    (JournalUnavailableError, Outcome(EXIT_JOURNAL, 503, "journal server unreachable")),
    (JournalError, Outcome(EXIT_JOURNAL, 503, "journal unusable")),
    (LookupError, Outcome(EXIT_USAGE, 404, "not found")),
    (ValueError, Outcome(EXIT_USAGE, 400, "bad request")),
    (OverflowError, Outcome(EXIT_USAGE, 400, "number out of range")),
    (OSError, Outcome(EXIT_JOURNAL, 503, "storage unavailable")),
    (AdaptiveRuntimeError, Outcome(EXIT_JOURNAL, 500, "runtime error")),
)


def outcome_of(exc: BaseException) -> Outcome | None:
    """The outcome of an error this table knows (first match wins); None for any other."""
    for kind, outcome in _TABLE:
        if isinstance(exc, kind):
            return outcome
    return None
