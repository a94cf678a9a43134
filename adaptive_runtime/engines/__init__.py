"""The engines: pure decision logic (validation, context, confidence, rules, back-off, the
fleet gate). No I/O, no clock, no store: a pure function of what it is given.

The original project imported its state and recovery engines, and rule-file loading,
from here too. They do I/O, so they live in `adaptive_runtime.original` and
`adaptive_runtime.rulefiles`; their names still resolve here, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .backoff import Breaker, BreakerPolicy, RetryPolicy, delay_for
from .confidence import ConfidenceParams, ConfidenceResult, History
from .context import ContextEngine, ContextResult
from .decision import DEFAULT_RULES, DecisionEngine, RuleCheck, RuleMatch
from .events import parse_event
from .learning import Learning, Outcomes
from .original import ConfidenceEngine
from .pipeline import Policy, decide, learn

__all__ = [
    "DEFAULT_RULES",
    "Breaker",
    "BreakerPolicy",
    "CheckpointMeta",
    "ConfidenceEngine",
    "ConfidenceParams",
    "ConfidenceResult",
    "ContextEngine",
    "ContextResult",
    "DecisionEngine",
    "History",
    "Learning",
    "Outcomes",
    "Policy",
    "RecoveryEngine",
    "RetryPolicy",
    "RuleCheck",
    "RuleMatch",
    "StateEngine",
    "decide",
    "delay_for",
    "learn",
    "load_rules",
    "manual_time",
    "parse_event",
]

_ELSEWHERE = {
    "CheckpointMeta": "adaptive_runtime.original.recovery",
    "RecoveryEngine": "adaptive_runtime.original.recovery",
    "manual_time": "adaptive_runtime.original.recovery",
    "StateEngine": "adaptive_runtime.original.state",
    "load_rules": "adaptive_runtime.rulefiles",
}


def __getattr__(name: str) -> Any:
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
