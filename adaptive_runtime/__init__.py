"""Adaptive Runtime: decide what to do about operational events, journal it, replay it.

The names below load on first use, so that a command such as `adaptive-runtime head`
pays only for what it uses (the event loop, the runtime, the engines load with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ActionTimeoutError,
    AdaptiveRuntimeError,
    ConfigurationError,
    DecisionTooSlowError,
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

if TYPE_CHECKING:
    from .clock import Clock, ManualClock, SystemClock
    from .engines.backoff import BreakerPolicy, RetryPolicy
    from .records import (
        ApprovalPolicy,
        Decision,
        Event,
        FleetPolicy,
        LearningPolicy,
        Rule,
        SilenceMatcher,
    )
    from .runtime import ActionCall, Agent, EventBus, Host, Runtime, Verification

__all__ = [
    "ActionCall",
    "ActionTimeoutError",
    "AdaptiveRuntimeError",
    "Agent",
    "ApprovalPolicy",
    "BreakerPolicy",
    "Clock",
    "ConfigurationError",
    "Decision",
    "DecisionTooSlowError",
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
    "LearningPolicy",
    "ManualClock",
    "NotAJournalError",
    "ReplayMismatchError",
    "RetryPolicy",
    "Rule",
    "Runtime",
    "RuntimeNotStartedError",
    "SilenceMatcher",
    "StreamConflictError",
    "SystemClock",
    "Verification",
]
__version__ = "0.1.0"

_LAZY = {
    "Clock": "adaptive_runtime.clock",
    "ManualClock": "adaptive_runtime.clock",
    "SystemClock": "adaptive_runtime.clock",
    "BreakerPolicy": "adaptive_runtime.engines.backoff",
    "RetryPolicy": "adaptive_runtime.engines.backoff",
    "Decision": "adaptive_runtime.records",
    "Event": "adaptive_runtime.records",
    "FleetPolicy": "adaptive_runtime.records",
    "LearningPolicy": "adaptive_runtime.records",
    "Rule": "adaptive_runtime.records",
    "ApprovalPolicy": "adaptive_runtime.records",
    "SilenceMatcher": "adaptive_runtime.records",
    "Verification": "adaptive_runtime.runtime",
    "ActionCall": "adaptive_runtime.runtime",
    "Agent": "adaptive_runtime.runtime",
    "EventBus": "adaptive_runtime.runtime",
    "Host": "adaptive_runtime.runtime",
    "Runtime": "adaptive_runtime.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value
