"""Adaptive Runtime: decide what to do about operational events, journal it, replay it."""

from __future__ import annotations

from .clock import Clock, ManualClock, SystemClock
from .engines.backoff import BreakerPolicy, RetryPolicy
from .errors import (
    ActionTimeoutError,
    AdaptiveRuntimeError,
    ConfigurationError,
    DuplicateEventError,
    InvalidEventError,
    InvalidImportError,
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
from .records import Decision, Event, FleetPolicy, Rule
from .runtime import ActionCall, Agent, EventBus, Host, Runtime

__all__ = [
    "ActionCall",
    "ActionTimeoutError",
    "AdaptiveRuntimeError",
    "Agent",
    "BreakerPolicy",
    "Clock",
    "ConfigurationError",
    "Decision",
    "DuplicateEventError",
    "Event",
    "EventBus",
    "FleetPolicy",
    "Host",
    "InvalidEventError",
    "InvalidImportError",
    "InvalidRulesError",
    "JournalBusyError",
    "JournalClosedError",
    "JournalCorruptError",
    "JournalError",
    "JournalVersionError",
    "ManualClock",
    "NotAJournalError",
    "ReplayMismatchError",
    "RetryPolicy",
    "Rule",
    "Runtime",
    "RuntimeNotStartedError",
    "StreamConflictError",
    "SystemClock",
]
__version__ = "0.1.0"
