"""The whole decision, as one pure function the live path and replay both call."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from ..records import Decision, Event, LearningPolicy, PluginRef, Rule
from .confidence import ConfidenceParams
from .context import Analyser, ContextEngine, ContextResult
from .decision import FALLBACK, DecisionEngine, RuleMatch
from .learning import Estimate, Learning, Outcomes, Tally, base_confidence, estimate, key, record

__all__ = ["ENGINE_VERSION", "PluginSet", "Policy", "choose", "decide", "learn", "weigh"]

ENGINE_VERSION = 2
"""Bump when a formula changes, so old decisions are not 'verified' against new code.

2: confidence is each action's own learned estimate, and alternatives compete.
"""


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

    The custom rules and the learning policy vary, and they are journaled
    (RulesChanged); the plugins are journaled by the host (PluginsSet); the context map
    is the engines' default. Anything that may vary must be journaled first: a knob that
    replay could not see does not exist.
    """

    __slots__ = (
        "confidence",
        "context_engine",
        "decision_engine",
        "learning",
        "plugins",
        "ruleset",
    )

    def __init__(
        self,
        *,
        rules: Iterable[Rule | Sequence[Any] | Mapping[str, Any]] = (),
        plugins: PluginSet | None = None,
        learning: LearningPolicy | None = None,
    ) -> None:
        plugins = plugins or PluginSet()
        self.learning = Learning(learning)
        self.plugins = plugins
        self.context_engine = ContextEngine(analysers=plugins.analysers)
        self.decision_engine = DecisionEngine(custom_rules=rules, packs=plugins.packs)
        self.confidence = ConfidenceParams()
        """The original ConfidenceEngine's parameters (runtime.confidence_engine)."""
        fingerprint: tuple[Any, ...] = (
            ENGINE_VERSION,
            self.decision_engine.rules,
            sorted(self.context_engine.context_map.items()),
            self.learning.policy,
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


def decide(policy: Policy, outcomes: Outcomes, event: Event, ts_ns: int) -> Decision:
    """Analyze, score and select: no I/O, no clock, no global state."""
    ctx = policy.context_engine.classify(event)
    prior, factor = base_confidence(event.severity, ctx.risk)
    record_of = outcomes.tallies.get(key(ctx.context, ctx.risk))
    instead_of = None
    if not record_of:  # nothing learned here yet: the rule table with the prior, as always
        match = policy.decision_engine.match(ctx.context, ctx.risk, prior)
        confidence = prior
    else:
        match, confidence, instead_of = choose(policy, record_of, ctx.context, ctx.risk, prior)
    scored = Scored(prior, factor, round(confidence / prior, 4), confidence)
    return decision_of(policy, policy.ruleset, event, ts_ns, ctx, scored, match, instead_of)


class Scored(NamedTuple):
    """A decision's confidence and its parts."""

    base: float
    risk_factor: float
    history_weight: float
    final: float


def decision_of(
    policy: Policy,
    ruleset: str,
    event: Event,
    ts_ns: int,
    ctx: ContextResult,
    scored: Scored,
    match: RuleMatch,
    instead_of: str | None = None,
) -> Decision:
    """Assemble the Decision from what each engine said."""
    return Decision(
        plugins=policy.plugins.labels,
        instead_of=instead_of,
        action=match.action,
        confidence=scored.final,
        reason=match.reason,
        priority=match.priority,
        context=ctx.context,
        risk=ctx.risk,
        stability=ctx.stability,
        pressure=ctx.pressure,
        rule=match.rule,
        ruleset=ruleset,
        event_type=event.type,
        base_confidence=scored.base,
        risk_factor=scored.risk_factor,
        history_weight=scored.history_weight,
        tags=ctx.tags,
        event_id=event.id,
        ts_ns=ts_ns,
    )


def choose(
    policy: Policy, record_of: dict[str, Tally], context: str, risk: str, prior: float
) -> tuple[RuleMatch, float, str | None]:
    """Walk the rules with each action's own estimate, then let the alternatives compete.

    Returns the match, its confidence (the chosen action's estimate, never the bonus),
    and the action the rules chose when an alternative replaced it.
    """
    learning, engine = policy.learning, policy.decision_engine
    rules, candidates = engine.scope(context, risk)
    label, rule = "fallback", FALLBACK
    for label_i, rule_i in rules:
        if learning.estimate(prior, record_of.get(rule_i.action)) >= rule_i.min_conf:
            label, rule = label_i, rule_i
            break
    tally = record_of.get(rule.action)
    confidence = learning.estimate(prior, tally)
    match = engine.match_rule(label, rule, risk)
    if not learning.policy.alternatives:
        return match, confidence, None
    gated = learning.policy.respect_gates
    best, best_score = None, confidence + learning.optimism(tally)
    for candidate in candidates:
        if candidate.action == rule.action:
            continue
        tally = record_of.get(candidate.action)
        value = learning.estimate(prior, tally)
        if gated and value < candidate.rule.min_conf:
            continue
        score = value + learning.optimism(tally)
        if score > best_score:
            best, best_score, confidence = candidate, score, value
    if best is None:
        return match, confidence, None
    alt = engine.match_rule(best.label, best.rule, risk)
    return (
        RuleMatch(
            action=best.action,
            reason="better_record_than_" + rule.action,
            priority=alt.priority,
            rule=best.label,
            rules_hash=alt.rules_hash,
        ),
        confidence,
        rule.action,
    )


def weigh(
    policy: Policy, outcomes: Outcomes, context: str, risk: str, prior: float
) -> tuple[Estimate, ...]:
    """Every action the rules name for a scope, with its estimate and bonus (for explain).

    Empty when the scope has no record: then the plain rule table decided, at the prior.
    """
    if not outcomes.tallies.get(key(context, risk)):
        return ()
    _, candidates = policy.decision_engine.scope(context, risk)
    actions = [c.action for c in candidates] or [FALLBACK.action]
    return tuple(
        estimate(policy.learning, outcomes, context, risk, action, prior) for action in actions
    )


def learn(
    policy: Policy, outcomes: Outcomes, context: str, risk: str, action: str, success: bool
) -> Outcomes:
    """Fold one outcome into the record of the action it was for."""
    return record(policy.learning, outcomes, context, risk, action, success)
