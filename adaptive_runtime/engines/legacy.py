"""Engine 1, kept so journals written before engine 2 still re-decide byte for byte.

Engine 1 scored one confidence per event: the prior times a history weight in
[0.6, 1.1] from outcomes pooled per (context, risk) (engines.confidence, which the
original ConfidenceEngine still uses), and walked the rule table with it. Its
ruleset hash covered the rules as they were then (no `alternatives`), the context
map and the confidence parameters. Replay and explain use this module only for a
decision whose journaled ruleset is engine 1's hash of the policy in force.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ..records import Decision, Event, Rule
from .confidence import ConfidenceParams, History, score
from .pipeline import Policy, Scored, decision_of

__all__ = ["ENGINE_1", "decide_v1", "ruleset_v1"]

ENGINE_1 = 1


class _RuleV1(msgspec.Struct, frozen=True, kw_only=True):
    """A rule as engine 1 encoded it for its hash."""

    context: str | None
    risk: str | None
    min_conf: float
    action: str
    reason: str
    priority: str | None = None


def _v1(rule: Rule) -> _RuleV1:
    return _RuleV1(
        context=rule.context,
        risk=rule.risk,
        min_conf=rule.min_conf,
        action=rule.action,
        reason=rule.reason,
        priority=rule.priority,
    )


def ruleset_v1(policy: Policy) -> str:
    """The ruleset hash engine 1 gave the same rules, context map and plugins."""
    fingerprint: tuple[Any, ...] = (
        ENGINE_1,
        tuple(_v1(r) for r in policy.decision_engine.rules),
        sorted(policy.context_engine.context_map.items()),
        ConfidenceParams(),
    )
    if policy.plugins.refs:
        fingerprint += (policy.plugins.refs,)
    digest = hashlib.blake2b(msgspec.msgpack.encode(fingerprint), digest_size=8)
    return digest.hexdigest()


def decide_v1(policy: Policy, history: History, event: Event, ts_ns: int) -> Decision:
    """Decide as engine 1 did: one pooled confidence, the first rule it clears."""
    ctx = policy.context_engine.classify(event)
    conf = score(ConfidenceParams(), history, event.severity, ctx.risk, ctx.context)
    match = policy.decision_engine.match(ctx.context, ctx.risk, conf.final)
    scored = Scored(conf.base, conf.risk_factor, conf.history_weight, conf.final)
    return decision_of(policy, ruleset_v1(policy), event, ts_ns, ctx, scored, match)
