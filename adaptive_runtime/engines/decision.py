"""Decision: pick an action from a rule table, first match wins, custom rules first."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from .._checks import MAX_LABEL_LENGTH
from ..errors import InvalidEventError, InvalidRulesError
from ..records import Rule
from .context import RISK_LEVELS

__all__ = [
    "DEFAULT_RULES",
    "FALLBACK",
    "PRIORITIES",
    "Candidate",
    "DecisionEngine",
    "DecisionResult",
    "RuleCheck",
    "RuleMatch",
    "parse_new_rules",
    "parse_rules",
]

PRIORITIES = ("low", "normal", "high", "critical")
PRIORITY_OF_RISK: Mapping[str, str] = {
    "low": "low",
    "medium": "normal",
    "high": "high",
    "critical": "critical",
}


def _r(
    context: str,
    risk: str | None,
    min_conf: float,
    action: str,
    reason: str,
    priority: str | None = None,
    alternatives: tuple[str, ...] = (),
) -> Rule:
    return Rule(
        context=context,
        risk=risk,
        min_conf=min_conf,
        action=action,
        reason=reason,
        priority=priority,
        alternatives=alternatives,
    )


_RELIEVE_PRESSURE = ("restart_service", "throttle_requests")


DEFAULT_RULES: tuple[Rule, ...] = (
    _r(
        "resource_pressure",
        "critical",
        0.0,
        "scale_up_immediate",
        "critical_resource_pressure",
        alternatives=_RELIEVE_PRESSURE,
    ),
    _r("resource_pressure", "high", 0.85, "scale_up_immediate", "severe_resource_pressure"),
    _r("resource_pressure", "high", 0.70, "restart_service", "high_resource_pressure"),
    _r("resource_pressure", "high", 0.0, "throttle_requests", "resource_pressure_low_confidence"),
    _r(
        "resource_pressure",
        "medium",
        0.0,
        "optimize_resources",
        "medium_resource_pressure",
        alternatives=_RELIEVE_PRESSURE,
    ),
    _r(
        "anomaly_signal",
        "critical",
        0.0,
        "isolate_component",
        "critical_anomaly",
        alternatives=("rollback_deployment",),
    ),
    _r("anomaly_signal", "high", 0.65, "rollback_deployment", "anomaly_with_confidence"),
    _r("anomaly_signal", "high", 0.0, "increase_monitoring", "anomaly_low_confidence"),
    _r(
        "anomaly_signal",
        None,
        0.0,
        "flag_for_review",
        "anomaly_detected",
        alternatives=("increase_monitoring",),
    ),
    _r("latency_issue", "high", 0.0, "optimize_query", "latency_degradation"),
    _r(
        "latency_issue",
        None,
        0.0,
        "cache_warmup",
        "latency_signal",
        alternatives=("circuit_breaker_open", "isolate_component"),
    ),
    _r(
        "security_signal",
        None,
        0.0,
        "trigger_security_audit",
        "security_event",
        "normal",
        alternatives=("isolate_component",),
    ),
    _r(
        "self_healing",
        None,
        0.0,
        "run_recovery",
        "recovery_requested",
        alternatives=("restart_service",),
    ),
    _r("service_degradation", "high", 0.0, "circuit_breaker_open", "service_degraded_high"),
    _r(
        "service_degradation",
        None,
        0.0,
        "health_check",
        "service_degraded",
        alternatives=("circuit_breaker_open", "restart_service", "rollback_deployment"),
    ),
)
"""The rule table. `alternatives` name actions that may compete with a rule's own on
their record (engines.learning); with no outcomes recorded they never win."""
FALLBACK = Rule(
    context=None, risk=None, min_conf=0.0, action="monitor_and_wait", reason="no_matching_rule"
)


class RuleMatch(msgspec.Struct, frozen=True, kw_only=True):
    """The action a rule table chose, and which rule chose it."""

    action: str
    reason: str
    priority: str
    rule: str
    rules_hash: str
    """A hash of the rule table that made the match (a Decision's `ruleset` hashes more)."""


class DecisionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the original project's `DecisionEngine.decide` returned, plus the rule that matched."""

    action: str
    confidence: float
    reason: str
    priority: str
    metadata: dict[str, Any] = {}
    """The event type, context and risk decided on (as in the original), and the rule."""
    rule: str = ""
    rules_hash: str = ""


class RuleCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One rule weighed against a decision: did it match, and why (not)."""

    rule: str
    definition: Rule
    matched: bool
    why: str


class Candidate(msgspec.Struct, frozen=True):
    """An action a context and risk may get, and the first rule that names it."""

    action: str
    label: str
    rule: Rule


class DecisionEngine:
    """Select actions from the default table, with custom rules placed before it."""

    __slots__ = ("_custom", "_rules", "_scopes", "rules_hash")

    def __init__(
        self,
        custom_rules: Iterable[Rule | Sequence[Any] | Mapping[str, Any]] | None = None,
        packs: Sequence[tuple[str, tuple[Rule, ...]]] = (),
    ) -> None:
        self._custom = parse_rules(custom_rules or ())
        labelled = [(f"custom[{i}]", r) for i, r in enumerate(self._custom)]
        for name, rules in packs:  # plugins' rule packs, between the custom rules and defaults
            labelled += [(f"{name}[{i}]", r) for i, r in enumerate(rules)]
        labelled += [(f"default[{i}]", r) for i, r in enumerate(DEFAULT_RULES)]
        self._rules: tuple[tuple[str, Rule], ...] = tuple(labelled)
        self._scopes: dict[
            tuple[str, str], tuple[tuple[tuple[str, Rule], ...], tuple[Candidate, ...]]
        ] = {}
        self.rules_hash = hashlib.blake2b(
            msgspec.msgpack.encode(self.rules), digest_size=8
        ).hexdigest()

    def __repr__(self) -> str:
        return f"DecisionEngine(custom_rules={len(self._custom)})"

    @property
    def custom_rules(self) -> tuple[Rule, ...]:
        return self._custom

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule in the order it is tried."""
        return tuple(rule for _, rule in self._rules)

    def decide(self, event: object, context: str, risk: str, confidence: float) -> DecisionResult:
        """The original API: pick an action and return it with the confidence and metadata.

        A risk outside low..critical, or a confidence outside 0..1, is an InvalidEventError,
        as the confidence engine's `calculate` refuses it: no rule could match it, and the
        fallback would read as a decision.
        """
        if not isinstance(context, str):
            msg = f"context must be a string, not {type(context).__name__}"
            raise InvalidEventError(msg, field="context")
        if risk not in RISK_LEVELS:
            msg = f"risk must be one of {', '.join(RISK_LEVELS)}, not {risk!r}"
            raise InvalidEventError(msg, field="risk")
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= confidence <= 1.0
        ):
            msg = f"confidence must be a number from 0 to 1, not {confidence!r}"
            raise InvalidEventError(msg, field="confidence")
        match = self.match(context, risk, confidence)
        event_type = (
            event.get("type") if isinstance(event, Mapping) else getattr(event, "type", None)
        )
        return DecisionResult(
            action=match.action,
            confidence=round(confidence, 4),
            reason=match.reason,
            priority=match.priority,
            metadata={
                "event_type": event_type,
                "context": context,
                "risk": risk,
                "rule": match.rule,
            },
            rule=match.rule,
            rules_hash=match.rules_hash,
        )

    def match(self, context: str, risk: str, confidence: float) -> RuleMatch:
        """Return the first rule that matches; `monitor_and_wait` when none does."""
        for label, rule in self._rules:  # the hot path: the same tests as _checks, no allocation
            if (
                (rule.context is None or rule.context == context)
                and (rule.risk is None or rule.risk == risk)
                and confidence >= rule.min_conf
            ):
                return _match(label, rule, risk, self.rules_hash)
        return _match("fallback", FALLBACK, risk, self.rules_hash)

    def scope(
        self, context: str, risk: str
    ) -> tuple[tuple[tuple[str, Rule], ...], tuple[Candidate, ...]]:
        """The rules that apply to a context and risk, in order, and every action they name.

        Candidates come in rule order, each rule's action before its alternatives; an
        action named twice keeps its first rule (whose min_conf gates it).
        """
        found = self._scopes.get((context, risk))
        if found is not None:
            return found
        rules = tuple(
            (label, rule)
            for label, rule in self._rules
            if (rule.context is None or rule.context == context)
            and (rule.risk is None or rule.risk == risk)
        )
        named: dict[str, Candidate] = {}
        for label, rule in rules:
            for action in (rule.action, *rule.alternatives):
                if action not in named:
                    named[action] = Candidate(action, label, rule)
        found = self._scopes[(context, risk)] = (rules, tuple(named.values()))
        return found

    def explain_all(self, context: str, risk: str, confidence: float) -> list[RuleCheck]:
        """Every rule of the table, in order, each with whether it matches."""
        return list(self._checks(context, risk, confidence))

    def match_rule(self, label: str, rule: Rule, risk: str) -> RuleMatch:
        """The match one given rule makes at a risk (its priority raised as the rule says)."""
        return _match(label, rule, risk, self.rules_hash)

    def explain(
        self,
        context: str,
        risk: str,
        confidence: float,
        estimates: Mapping[str, float] | None = None,
    ) -> list[RuleCheck]:
        """Return every rule tried, up to and including the one that matched.

        With `estimates`, each rule is weighed with its own action's confidence (the
        learned walk); actions not in it get `confidence`.
        """
        tried: list[RuleCheck] = []
        for check in self._checks(context, risk, confidence, estimates):
            tried.append(check)
            if check.matched:
                return tried
        tried.append(
            RuleCheck(rule="fallback", definition=FALLBACK, matched=True, why="no rule matched")
        )
        return tried

    def _checks(
        self,
        context: str,
        risk: str,
        confidence: float,
        estimates: Mapping[str, float] | None = None,
    ) -> Iterator[RuleCheck]:
        for label, rule in self._rules:
            own = confidence if estimates is None else estimates.get(rule.action, confidence)
            if rule.context is not None and rule.context != context:
                why = f"context is {context}, rule wants {rule.context}"
            elif rule.risk is not None and rule.risk != risk:
                why = f"risk is {risk}, rule wants {rule.risk}"
            elif own < rule.min_conf:
                why = f"confidence {own:.4f} is below {rule.min_conf:.2f}"
            else:
                yield RuleCheck(rule=label, definition=rule, matched=True, why="all conditions met")
                continue
            yield RuleCheck(rule=label, definition=rule, matched=False, why=why)


def _match(label: str, rule: Rule, risk: str, rules_hash: str) -> RuleMatch:
    priority = PRIORITY_OF_RISK.get(risk, "normal")
    if rule.priority is not None and PRIORITIES.index(rule.priority) > PRIORITIES.index(priority):
        priority = rule.priority
    return RuleMatch(
        action=rule.action, reason=rule.reason, priority=priority, rule=label, rules_hash=rules_hash
    )


def parse_rules(raw: Iterable[Rule | Sequence[Any] | Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Validate rules given as Rule, 5-tuples or dicts; say which one is wrong and why."""
    if isinstance(raw, str | bytes | Mapping):
        raise InvalidRulesError("rules must be a list of rules, not a single value")
    if not isinstance(raw, Iterable):
        raise InvalidRulesError(f"rules must be a list of rules, not {type(raw).__name__}")
    return tuple(_parse_rule(i, item) for i, item in enumerate(raw))


def parse_new_rules(raw: Iterable[Rule | Sequence[Any] | Mapping[str, Any]]) -> tuple[Rule, ...]:
    """parse_rules for rules that come in to be journaled and to make decisions that are:
    each text they hold (a context, an action, a reason, an alternative) must also be a
    label a record can hold (printable, at most MAX_LABEL_LENGTH).

    Only at the door, not in parse_rules: rules journaled before this check came in are
    still read (and decide) as they were.
    """
    rules = parse_rules(raw)
    for index, rule in enumerate(rules):
        named = [("context", rule.context), ("action", rule.action), ("reason", rule.reason)]
        for name, text in named + [("alternatives", alt) for alt in rule.alternatives]:
            if text is None:
                continue
            if len(text) > MAX_LABEL_LENGTH:
                msg = f"rule {index}: {name} is {len(text)} characters long; at most {MAX_LABEL_LENGTH}"
                raise InvalidRulesError(msg, index=index)
            if not text.isprintable():  # a lone surrogate is not printable either
                msg = f"rule {index}: {name} must be printable text, not {text!r}"
                raise InvalidRulesError(msg, index=index)
    return rules


def _parse_rule(index: int, item: Rule | Sequence[Any] | Mapping[str, Any]) -> Rule:
    def bad(why: str) -> InvalidRulesError:
        return InvalidRulesError(f"rule {index}: {why}", index=index)

    if isinstance(item, Rule):
        fields: dict[str, Any] = msgspec.structs.asdict(item)
    elif isinstance(item, Mapping):
        unknown = sorted(
            set(item)
            - {"context", "risk", "min_conf", "action", "reason", "priority", "alternatives"}
        )
        if unknown:
            raise bad(
                f"unknown keys {unknown}; expected context, risk, min_conf, action, reason,"
                " priority, alternatives"
            )
        fields = dict(item)
    elif isinstance(item, Sequence) and not isinstance(item, str | bytes):
        if len(item) != 5:
            raise bad(f"expected (context, risk, min_conf, action, reason), got {len(item)} values")
        fields = dict(zip(("context", "risk", "min_conf", "action", "reason"), item, strict=True))
    else:
        raise bad(f"expected a 5-tuple or a table, not {type(item).__name__}")
    context, risk = fields.get("context"), fields.get("risk")
    min_conf, priority = fields.get("min_conf", 0.0), fields.get("priority")
    if risk == "any":
        risk = None
    if context is not None and (not isinstance(context, str) or not context):
        raise bad(f"context must be a non-empty string or null, not {context!r}")
    if risk is not None and risk not in RISK_LEVELS:
        raise bad(f"risk must be one of {', '.join(RISK_LEVELS)}, 'any' or null, not {risk!r}")
    if (
        isinstance(min_conf, bool)
        or not isinstance(min_conf, int | float)
        or not 0.0 <= min_conf <= 1.0
    ):
        raise bad(f"min_conf must be a number from 0 to 1, not {min_conf!r}")
    for name in ("action", "reason"):
        value = fields.get(name)
        if not isinstance(value, str) or not value.strip():
            raise bad(f"{name} must be a non-empty string, not {value!r}")
    alternatives = fields.get("alternatives", ())
    if isinstance(alternatives, str) or not isinstance(alternatives, Sequence):
        raise bad(f"alternatives must be a list of action names, not {alternatives!r}")
    for alt in alternatives:
        if not isinstance(alt, str) or not alt.strip():
            raise bad(f"alternatives must be non-empty action names, not {alt!r}")
    if priority is not None and priority not in PRIORITIES:
        raise bad(f"priority must be one of {', '.join(PRIORITIES)} or null, not {priority!r}")
    return Rule(
        context=context,
        risk=risk,
        min_conf=float(min_conf),
        action=fields["action"],
        reason=fields["reason"],
        priority=priority,
        alternatives=tuple(alternatives),
    )
