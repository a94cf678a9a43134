"""The whole decision, as one pure function the live path and replay both call."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ..records import Decision, Event, PluginRef, Rule
from .confidence import ConfidenceParams, History, record, score
from .context import Analyser, ContextEngine
from .decision import DecisionEngine

__all__ = ["ENGINE_VERSION", "PluginSet", "Policy", "decide", "learn"]

ENGINE_VERSION = 1
"""Bump when a formula changes, so old decisions are not 'verified' against new code."""


class PluginSet:
    """The plugins in force, as the engines see them: who they are, their analysers, their rules.

    Loading them is the shell's work (adaptive_runtime.plugins); this is what it hands over.
    """

    __slots__ = ("analysers", "labels", "packs", "refs")

    def __init__(
        self,
        refs: tuple[PluginRef, ...] = (),
        analysers: Sequence[tuple[str, Analyser]] = (),
        packs: Sequence[tuple[str, tuple[Rule, ...]]] = (),
    ) -> None:
        self.refs = refs
        self.analysers = tuple(analysers)
        self.packs = tuple(packs)
        self.labels = tuple(f"{r.name}=={r.version}" for r in refs)

    def __repr__(self) -> str:
        return f"PluginSet({', '.join(self.labels) or 'none'})"


class Policy:
    """Everything a decision depends on besides the event and history.

    Only the custom rules vary, and they are journaled (RulesChanged); the context map
    and the confidence parameters are the engines' defaults. Anything that may vary
    must be journaled first: a knob that replay could not see does not exist.
    """

    __slots__ = ("confidence", "context_engine", "decision_engine", "plugins", "ruleset")

    def __init__(
        self,
        *,
        rules: Iterable[Rule | Sequence[Any] | Mapping[str, Any]] = (),
        plugins: PluginSet | None = None,
    ) -> None:
        plugins = plugins or PluginSet()
        self.plugins = plugins
        self.context_engine = ContextEngine(analysers=plugins.analysers)
        self.decision_engine = DecisionEngine(custom_rules=rules, packs=plugins.packs)
        self.confidence = ConfidenceParams()
        fingerprint: tuple[Any, ...] = (
            ENGINE_VERSION,
            self.decision_engine.rules,
            sorted(self.context_engine.context_map.items()),
            self.confidence,
        )
        if plugins.refs:  # journals without plugins keep the hashes they always had
            fingerprint += (plugins.refs,)
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
        plugins=policy.plugins.labels,
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
