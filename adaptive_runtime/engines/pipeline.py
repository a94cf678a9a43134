"""The whole decision, as one pure function the live path and replay both call."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ..records import Decision, Event, Rule
from .confidence import ConfidenceParams, History, record, score
from .context import ContextEngine
from .decision import DecisionEngine

__all__ = ["ENGINE_VERSION", "Policy", "decide", "learn"]

ENGINE_VERSION = 1
"""Bump when a formula changes, so old decisions are not 'verified' against new code."""


class Policy:
    """Everything a decision depends on besides the event and history.

    Only the custom rules vary, and they are journaled (RulesChanged); the context map
    and the confidence parameters are the engines' defaults. Anything that may vary
    must be journaled first: a knob that replay could not see does not exist.
    """

    __slots__ = ("confidence", "context_engine", "decision_engine", "ruleset")

    def __init__(self, *, rules: Iterable[Rule | Sequence[Any] | Mapping[str, Any]] = ()) -> None:
        self.context_engine = ContextEngine()
        self.decision_engine = DecisionEngine(custom_rules=rules)
        self.confidence = ConfidenceParams()
        fingerprint = (
            ENGINE_VERSION,
            self.decision_engine.rules,
            sorted(self.context_engine.context_map.items()),
            self.confidence,
        )
        digest = hashlib.blake2b(msgspec.msgpack.encode(fingerprint), digest_size=8)
        self.ruleset = digest.hexdigest()

    def __repr__(self) -> str:
        return f"Policy(ruleset={self.ruleset!r}, custom_rules={len(self.decision_engine.custom_rules)})"

    @property
    def custom_rules(self) -> tuple[Rule, ...]:
        return self.decision_engine.custom_rules


def decide(policy: Policy, history: History, event: Event, ts_ns: int) -> Decision:
    """Analyze, score and select: no I/O, no clock, no global state."""
    ctx = policy.context_engine.classify(event)
    conf = score(policy.confidence, history, event.severity, ctx.risk, ctx.context)
    match = policy.decision_engine.match(ctx.context, ctx.risk, conf.final)
    return Decision(
        action=match.action,
        confidence=conf.final,
        reason=match.reason,
        priority=match.priority,
        context=ctx.context,
        risk=ctx.risk,
        stability=ctx.stability,
        pressure=ctx.pressure,
        rule=match.rule,
        ruleset=policy.ruleset,
        event_type=event.type,
        base_confidence=conf.base,
        risk_factor=conf.risk_factor,
        history_weight=conf.history_weight,
        tags=ctx.tags,
        event_id=event.id,
        ts_ns=ts_ns,
    )


def learn(policy: Policy, history: History, context: str, risk: str, success: bool) -> History:
    """Fold one outcome into the history that its (context, risk) is scored by."""
    return record(policy.confidence, history, context, risk, success)
