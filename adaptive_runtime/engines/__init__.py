"""The engines: pure decision logic (context, confidence, rules, back-off) and the
shell-side state and recovery engines, which receive a store and never import one."""

from __future__ import annotations

from .backoff import Breaker, BreakerPolicy, RetryPolicy, delay_for
from .confidence import ConfidenceEngine, ConfidenceParams, ConfidenceResult, History
from .context import ContextEngine, ContextResult
from .decision import DEFAULT_RULES, DecisionEngine, RuleCheck, RuleMatch, load_rules
from .events import parse_event
from .pipeline import Policy, decide, learn
from .recovery import CheckpointMeta, RecoveryEngine, manual_time
from .state import StateEngine

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
