"""Pins for the rule table's engine: matching edges, explain's checks, rule parsing and its
messages, the labels and hashes (see RELIABILITY.md, "Mutation testing")."""

from __future__ import annotations

import pytest

from adaptive_runtime.engines import DecisionEngine
from adaptive_runtime.engines.decision import (
    FALLBACK,
    PRIORITY_OF_RISK,
    DecisionResult,
    parse_rules,
)
from adaptive_runtime.errors import InvalidRulesError
from adaptive_runtime.records import Rule


def test_the_fallback_and_the_risk_priorities() -> None:
    assert (
        Rule(
            context=None,
            risk=None,
            min_conf=0.0,
            action="monitor_and_wait",
            reason="no_matching_rule",
        )
        == FALLBACK
    )
    assert {"low": "low", "medium": "normal", "high": "high", "critical": "critical"} == dict(
        PRIORITY_OF_RISK
    )
    # an unknown risk (a rule table used directly) gets "normal", as medium does
    engine = DecisionEngine()
    assert ("monitor_and_wait", "fallback", "normal") == (
        engine.match("nothing", "medium", 0.0).action,
        engine.match("nothing", "medium", 0.0).rule,
        engine.match("nothing", "medium", 0.0).priority,
    )
    assert "normal" == engine.match("nothing", "odd", 0.5).priority


def test_min_conf_is_met_exactly_on_it() -> None:
    engine = DecisionEngine([("c", None, 0.7, "a", "r")])
    assert "a" == engine.match("c", "high", 0.7).action
    assert "monitor_and_wait" == engine.match("c", "high", 0.6999).action
    checks = engine.explain("c", "high", 0.7)
    assert (True, "all conditions met") == (checks[0].matched, checks[0].why)
    below = engine.explain("c", "high", 0.6999)
    assert "confidence 0.6999 is below 0.70" == below[0].why


def test_explain_lists_every_check_with_its_reason() -> None:
    engine = DecisionEngine([("c", "high", 0.5, "a", "r")])
    tried = engine.explain("other", "low", 0.9)
    assert "context is other, rule wants c" == tried[0].why
    assert tried[-1].rule == "fallback"
    assert (True, "no rule matched", FALLBACK) == (
        tried[-1].matched,
        tried[-1].why,
        tried[-1].definition,
    )
    assert "risk is low, rule wants high" == engine.explain("c", "low", 0.9)[0].why
    # explain_all goes on past the first match: every rule, each with whether it matched
    every = engine.explain_all("c", "high", 0.9)
    assert len(every) == len(engine.rules)
    assert [True] == [c.matched for c in every if c.rule == "custom[0]"]


def test_estimates_give_each_rule_its_own_confidence_in_explain() -> None:
    engine = DecisionEngine()
    own = {"scale_up_immediate": 0.9, "restart_service": 0.1, "throttle_requests": 0.5}
    tried = engine.explain("resource_pressure", "high", 0.0, own)
    assert ["default[0]", "default[1]"] == [c.rule for c in tried]
    assert tried[-1].matched
    gated = engine.explain("resource_pressure", "high", 0.0, {**own, "scale_up_immediate": 0.2})
    assert "confidence 0.1000 is below 0.70" == gated[2].why


def test_a_rule_raises_priority_only_upward() -> None:
    engine = DecisionEngine(
        [
            {
                "context": "c",
                "risk": None,
                "min_conf": 0.0,
                "action": "a",
                "reason": "r",
                "priority": "normal",
            }
        ]
    )
    assert "normal" == engine.match("c", "low", 0.5).priority
    assert "normal" == engine.match("c", "medium", 0.5).priority  # equal: unchanged
    assert "high" == engine.match("c", "high", 0.5).priority


def test_decide_returns_the_original_result_shape() -> None:
    engine = DecisionEngine()
    result = engine.decide({"type": "service_overload"}, "resource_pressure", "high", 0.781234)
    assert (
        DecisionResult(
            action="restart_service",
            confidence=0.7812,
            reason="high_resource_pressure",
            priority="high",
            metadata={
                "event_type": "service_overload",
                "context": "resource_pressure",
                "risk": "high",
                "rule": "default[2]",
            },
            rule="default[2]",
            rules_hash=engine.rules_hash,
        )
        == result
    )

    class Typed:
        type = "typed_event"

    assert "typed_event" == engine.decide(Typed(), "x", "low", 0.5).metadata["event_type"]
    assert (None, "", "") == (
        engine.decide(object(), "x", "low", 0.5).metadata["event_type"],
        DecisionResult(action="a", confidence=0.5, reason="r", priority="low").rule,
        DecisionResult(action="a", confidence=0.5, reason="r", priority="low").rules_hash,
    )
    assert {} == DecisionResult(action="a", confidence=0.5, reason="r", priority="low").metadata


def test_packs_sit_between_custom_rules_and_defaults_with_their_labels() -> None:
    pack = (Rule(context="c", risk=None, min_conf=0.0, action="from_pack", reason="p"),)
    engine = DecisionEngine([("c", "high", 0.0, "custom_first", "r")], packs=[("trading", pack)])
    assert ["custom[0]", "trading[0]", "default[0]"] == [label for label, _ in engine._rules[:3]]
    assert ("from_pack", "trading[0]") == (
        engine.match("c", "low", 0.1).action,
        engine.match("c", "low", 0.1).rule,
    )
    assert 16 == len(engine.rules_hash)  # 8 bytes, hex
    assert "DecisionEngine(custom_rules=1)" == repr(engine)
    assert engine.rules_hash != DecisionEngine().rules_hash


def test_scopes_are_cached_and_list_candidates_once_each() -> None:
    engine = DecisionEngine()
    first = engine.scope("resource_pressure", "critical")
    assert first is engine.scope("resource_pressure", "critical")
    assert ["scale_up_immediate", "restart_service", "throttle_requests"] == [
        c.action for c in first[1]
    ]
    assert ["default[0]", "default[0]", "default[0]"] == [c.label for c in first[1]]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"context": "c"}, "rules must be a list of rules, not a single value"),
        ("c", "rules must be a list of rules, not a single value"),
        ([5], "rule 0: expected a 5-tuple or a table, not int"),
        (
            [("c", None, 0.5, "a")],
            "rule 0: expected (context, risk, min_conf, action, reason), got 4 values",
        ),
        (
            [{"context": "c", "action": "a", "reason": "r", "colour": 1}],
            "rule 0: unknown keys ['colour']; expected context, risk, min_conf, action, reason,"
            " priority, alternatives",
        ),
        ([("", None, 0.5, "a", "r")], "rule 0: context must be a non-empty string or null, not ''"),
        ([(5, None, 0.5, "a", "r")], "rule 0: context must be a non-empty string or null, not 5"),
        (
            [("c", "severe", 0.5, "a", "r")],
            "rule 0: risk must be one of low, medium, high, critical, 'any' or null, not 'severe'",
        ),
        ([("c", None, 1.5, "a", "r")], "rule 0: min_conf must be a number from 0 to 1, not 1.5"),
        ([("c", None, True, "a", "r")], "rule 0: min_conf must be a number from 0 to 1, not True"),
        ([("c", None, "x", "a", "r")], "rule 0: min_conf must be a number from 0 to 1, not 'x'"),
        (
            [{"context": "c", "action": "a", "reason": "r", "alternatives": "b"}],
            "rule 0: alternatives must be a list of action names, not 'b'",
        ),
        (
            [{"context": "c", "action": "a", "reason": "r", "alternatives": 5}],
            "rule 0: alternatives must be a list of action names, not 5",
        ),
        (
            [{"context": "c", "action": "a", "reason": "r", "alternatives": [" "]}],
            "rule 0: alternatives must be non-empty action names, not ' '",
        ),
        (
            [{"context": "c", "action": "a", "reason": "r", "alternatives": [3]}],
            "rule 0: alternatives must be non-empty action names, not 3",
        ),
        (
            [{"context": "c", "action": "a", "reason": "r", "priority": "urgent"}],
            "rule 0: priority must be one of low, normal, high, critical or null, not 'urgent'",
        ),
    ],
)
def test_bad_rules_are_refused_with_this_exact_message(raw: object, message: str) -> None:
    with pytest.raises(InvalidRulesError) as refused:
        parse_rules(raw)  # type: ignore[arg-type]
    assert message == str(refused.value)


def test_rule_forms_parse_to_the_same_rule() -> None:
    tuple_form, dict_form = parse_rules(
        [
            ("c", "any", 1.0, "a", "r"),
            {
                "context": None,
                "risk": None,
                "action": "a",
                "reason": "r",
                "alternatives": ["b", "c"],
            },
        ]
    )
    assert Rule(context="c", risk=None, min_conf=1.0, action="a", reason="r") == tuple_form
    assert (
        Rule(context=None, risk=None, min_conf=0.0, action="a", reason="r", alternatives=("b", "c"))
        == dict_form
    )
    assert (tuple_form,) == parse_rules([tuple_form])


def test_the_engine_s_records_are_frozen_and_built_by_keyword() -> None:
    from adaptive_runtime.engines.decision import Candidate, RuleCheck, RuleMatch

    engine = DecisionEngine()
    match = engine.match("resource_pressure", "high", 0.9)
    result = engine.decide({}, "resource_pressure", "high", 0.9)
    check = engine.explain("resource_pressure", "high", 0.9)[0]
    candidate = engine.scope("resource_pressure", "high")[1][0]
    for record in (match, result, check, candidate):
        with pytest.raises(AttributeError):
            record.rule = "x"  # type: ignore[misc, union-attr]
    for kind in (RuleMatch, DecisionResult):
        with pytest.raises(TypeError):
            kind("a", "b", "c", "d", "e")
    with pytest.raises(TypeError):
        RuleCheck("a", check.definition, True, "why")  # type: ignore[misc]
    assert isinstance(candidate, Candidate)
