"""The error tree: every failure the library raises is an AdaptiveRuntimeError."""

from __future__ import annotations

__all__ = [
    "ActionTimeoutError",
    "AdaptiveRuntimeError",
    "AgentOwnedElsewhere",
    "AlreadyAnsweredError",
    "ConfigurationError",
    "DecisionTooSlowError",
    "DuplicateEventError",
    "EventTooLargeError",
    "InvalidEventError",
    "InvalidImportError",
    "InvalidRulesError",
    "JournalBusyError",
    "JournalClosedError",
    "JournalCorruptError",
    "JournalError",
    "JournalUnavailableError",
    "JournalVersionError",
    "NotAJournalError",
    "ReplayMismatchError",
    "RuntimeNotStartedError",
    "StreamConflictError",
]


class AdaptiveRuntimeError(Exception):
    """Base of every error this library raises."""


class InvalidEventError(AdaptiveRuntimeError, ValueError):
    """An event failed validation; nothing was journaled."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EventTooLargeError(InvalidEventError):
    """An event larger, once encoded, than the bound it was checked against
    (a host's `max_event_bytes`); nothing was journaled."""


class ConfigurationError(AdaptiveRuntimeError, ValueError):
    """An argument or setting is invalid; nothing was started, opened or written."""


class InvalidRulesError(AdaptiveRuntimeError, ValueError):
    """A rule set failed validation; the active rules are unchanged."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class AlreadyAnsweredError(AdaptiveRuntimeError):
    """An approval request was answered already, or a dead letter's retry or dismissal
    asked for already (carried out or not yet): the first answer journaled stands, and
    nothing was journaled for this one. `answer` is what it was: "approved", "denied",
    "retried" or "dismissed"."""

    def __init__(self, message: str, *, decision_seq: int, answer: str, by: str) -> None:
        super().__init__(message)
        self.decision_seq = decision_seq
        self.answer = answer
        self.by = by


class InvalidImportError(AdaptiveRuntimeError, ValueError):
    """A line of an import file is not an entry this journal may hold; nothing was imported."""

    def __init__(self, message: str, *, line: int, seq: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.seq = seq


class ActionTimeoutError(AdaptiveRuntimeError, TimeoutError):
    """An action's attempt ran past its `attempt_timeout` and was cancelled."""


class DecisionTooSlowError(AdaptiveRuntimeError, TimeoutError):
    """Deciding took longer than the host allows (a slow plugin); nothing was journaled."""


class RuntimeNotStartedError(AdaptiveRuntimeError):
    """The runtime was used before `start()` finished or after `stop()`."""


class ReplayMismatchError(AdaptiveRuntimeError):
    """Re-deciding a journaled event gave a different decision."""

    def __init__(self, message: str, *, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class JournalError(AdaptiveRuntimeError):
    """The journal could not do what was asked."""


class JournalClosedError(JournalError):
    """The journal was used after it was closed."""


class JournalBusyError(JournalError):
    """Another writer held the journal for longer than the busy timeout."""


class NotAJournalError(JournalError):
    """The file exists but is not an Adaptive Runtime journal."""


class JournalVersionError(JournalError):
    """The journal was written by a newer schema than this code understands."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class JournalCorruptError(JournalError):
    """The journal's contents are damaged or were tampered with."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class DuplicateEventError(JournalError):
    """An event id was reused with a different body."""

    def __init__(self, message: str, *, event_id: str, seq: int) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.seq = seq


class StreamConflictError(JournalError):
    """The stream moved on since the caller last read it (optimistic concurrency)."""

    def __init__(self, message: str, *, stream: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.stream = stream
        self.expected = expected
        self.actual = actual


class JournalUnavailableError(JournalError):
    """The journal's server can't be reached (down, restarting, or the network is)."""


class AgentOwnedElsewhere(JournalError):
    """Another host owns this agent (or took it over): this host may not write its stream."""

    def __init__(self, message: str, *, agent: str, owner: str | None, epoch: int | None) -> None:
        super().__init__(message)
        self.agent = agent
        self.owner = owner
        self.epoch = epoch
