"""Pins for learning: each number of the estimate, the bonus, the fade and the choice.

Written as the arithmetic that gives each value, so that a changed constant or operator
shows here (see RELIABILITY.md, "Mutation testing").
"""

from __future__ import annotations

import math

import msgspec
import pytest

from adaptive_runtime.engines import Outcomes, Policy, decide, learn, parse_event
from adaptive_runtime.engines.learning import (
    CEILING,
    FLOOR,
    RISK_FACTORS,
    Estimate,
    Learning,
    Tally,
    base_confidence,
    estimate,
    key,
    record,
)
from adaptive_runtime.engines.pipeline import choose, weigh
from adaptive_runtime.errors import ConfigurationError, InvalidEventError
from adaptive_runtime.records import LearningPolicy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 95, "memory": 80}
PRIOR = round(0.82 * 0.955, 4)  # 0.7831: resource_pressure/high


def test_the_risk_factors_floor_and_ceiling() -> None:
    assert {"low": 1.0, "medium": 0.98, "high": 0.955, "critical": 0.93} == dict(RISK_FACTORS)
    assert (0.05, 0.99) == (FLOOR, CEILING)
    assert (0.93, 0.93) == base_confidence(1.0, "critical")
    assert (0.99, 1.0) == base_confidence(1.0, "low")  # the ceiling
    assert (0.05, 1.0) == base_confidence(0.0, "low")  # the floor
    assert (round(0.12345 * 0.98, 4), 0.98) == base_confidence(0.12345, "medium")  # 4 places
    with pytest.raises(InvalidEventError) as bad:
        base_confidence(0.5, "severe")
    assert "risk must be one of low, medium, high, critical, not 'severe'" == str(bad.value)
    assert "risk" == bad.value.field


def test_the_estimate_is_the_beta_mean_with_the_prior_worth_k() -> None:
    learning = Learning()
    assert 4.0 == learning.k
    assert 0.6 == learning.estimate(0.6, None)  # no record: the prior itself
    # (2 + 4 x 0.6) / (2 + 1 + 4) = 4.4 / 7
    assert round(4.4 / 7, 4) == learning.estimate(0.6, Tally(2.0, 1.0)) == 0.6286
    assert 0.99 == learning.estimate(0.99, Tally(100.0, 0.0))  # clamped at the ceiling
    assert 0.05 == learning.estimate(0.05, Tally(0.0, 100.0))  # and at the floor
    k2 = Learning(LearningPolicy(prior_strength=2.0))
    assert round((2 + 2 * 0.6) / 5, 4) == k2.estimate(0.6, Tally(2.0, 1.0)) == 0.64


def test_the_bonus_shrinks_with_the_faded_count() -> None:
    learning = Learning()
    assert 0.2 / math.sqrt(4) == learning.optimism(None) == 0.1  # untried: n = 0
    assert 0.2 / math.sqrt(4 + 5) == learning.optimism(Tally(2.0, 3.0))
    assert 0.0 == Learning(LearningPolicy(bonus=0.0)).optimism(None)


def test_each_outcome_fades_the_older_ones_of_that_action_only() -> None:
    learning = Learning(LearningPolicy(fade=0.5))
    out = Outcomes()
    out = record(learning, out, "c", "high", "a", True)
    out = record(learning, out, "c", "high", "a", False)
    out = record(learning, out, "c", "high", "b", True)
    # a: success then failure: successes 1 x 0.5, failures 0 x 0.5 + 1
    assert {"c/high": {"a": Tally(0.5, 1.0), "b": Tally(1.0, 0.0)}} == out.tallies
    assert 3 == out.outcomes
    assert "*/low" == key(None, "low")
    assert "ctx/low" == key("ctx", "low")
    with pytest.raises(InvalidEventError) as bad:
        record(learning, out, "c", "extreme", "a", True)
    assert "risk must be one of low, medium, high, critical, not 'extreme'" == str(bad.value)
    assert "risk" == bad.value.field


def test_estimate_explains_an_action_with_its_parts() -> None:
    learning = Learning()
    out = Outcomes({"c/high": {"a": Tally(1.23456, 0.54321)}}, 2)
    assert Estimate(
        action="a",
        prior=0.6,
        successes=1.2346,
        failures=0.5432,
        value=round((1.23456 + 2.4) / (1.77777 + 4), 4),
        bonus=round(0.2 / math.sqrt(5.77777), 4),
    ) == estimate(learning, out, "c", "high", "a", 0.6)
    untried = estimate(learning, out, "c", "high", "b", 0.6)
    assert (0.0, 0.0, 0.6, 0.1) == (
        untried.successes,
        untried.failures,
        untried.value,
        untried.bonus,
    )


def test_tallies_encode_as_pairs_for_snapshots() -> None:
    """The snapshot layout: each tally is [successes, failures]."""
    out = Outcomes({"c/high": {"a": Tally(1.0, 2.0)}}, 3)
    assert {"tallies": {"c/high": {"a": [1.0, 2.0]}}, "outcomes": 3} == msgspec.json.decode(
        msgspec.json.encode(out)
    )


def test_the_learning_policy_is_checked_at_each_edge() -> None:
    for ok in (
        {"fade": 1.0},
        {"fade": 1e-9},
        {"prior_strength": 1000.0},
        {"bonus": 0.0},
        {"bonus": 10.0},
    ):
        LearningPolicy(**ok)  # type: ignore[arg-type]
    for bad, says in (
        ({"fade": 0.0}, "LearningPolicy.fade must be a number above 0 and at most 1, not 0.0"),
        ({"fade": 1.01}, "LearningPolicy.fade must be a number above 0 and at most 1"),
        ({"prior_strength": 0.0}, "LearningPolicy.prior_strength must be a number above 0"),
        ({"prior_strength": 1000.5}, "at most 1000"),
        ({"bonus": -0.01}, "LearningPolicy.bonus must be a number from 0 to 10"),
        ({"bonus": 10.5}, "from 0 to 10"),
        ({"bonus": math.nan}, "LearningPolicy.bonus"),
        ({"fade": True}, "LearningPolicy.fade"),
        ({"fade": "0.9"}, "LearningPolicy.fade must be a number"),  # was a bare TypeError
    ):
        with pytest.raises(ConfigurationError, match=says):
            LearningPolicy(**bad)  # type: ignore[arg-type]
    assert repr(Learning()).startswith("Learning(LearningPolicy(prior_strength=4.0")


def _record(*steps: tuple[str, bool]) -> dict[str, Tally]:
    out = Outcomes()
    policy = Policy()
    for action, success in steps:
        out = learn(policy, out, "resource_pressure", "high", action, success)
    return out.tallies["resource_pressure/high"]


def test_choose_walks_with_own_estimates_then_lets_alternatives_compete() -> None:
    """Three failed restarts: the walk reaches throttle (gate 0); scale-up, untried, ties
    with it on estimate + bonus, and the tie goes to the rules' choice."""
    policy = Policy()
    match, confidence, instead = choose(
        policy, _record(*[("restart_service", False)] * 3), "resource_pressure", "high", PRIOR
    )
    assert ("throttle_requests", "default[3]", PRIOR, None) == (
        match.action,
        match.rule,
        confidence,
        instead,
    )
    assert "resource_pressure_low_confidence" == match.reason


def test_an_alternative_wins_only_by_more_than_the_rule_s_score() -> None:
    """After a failed throttle, scale-up (untried: PRIOR + 0.1) beats throttle's
    (4 x PRIOR) / 5 + 0.2 / sqrt(5); it reports its own estimate, not the bonus."""
    policy = Policy()
    tallies = _record(*[("restart_service", False)] * 3, ("throttle_requests", False))
    match, confidence, instead = choose(policy, tallies, "resource_pressure", "high", PRIOR)
    assert ("scale_up_immediate", PRIOR, "throttle_requests") == (match.action, confidence, instead)
    assert ("default[1]", "better_record_than_throttle_requests", "high") == (
        match.rule,
        match.reason,
        match.priority,
    )
    walk_only = Policy(learning=LearningPolicy(alternatives=False))
    assert (
        "throttle_requests"
        == choose(walk_only, tallies, "resource_pressure", "high", PRIOR)[0].action
    )
    gated = Policy(learning=LearningPolicy(respect_gates=True))
    # scale-up's own estimate (the prior, 0.7831) is under its rule's 0.85 gate
    assert (
        "throttle_requests" == choose(gated, tallies, "resource_pressure", "high", PRIOR)[0].action
    )


def test_decide_reports_the_estimate_and_its_weight_against_the_prior() -> None:
    policy = Policy()
    tallies = Outcomes({"resource_pressure/high": {"restart_service": Tally(3.0, 0.0)}}, 3)
    d = decide(policy, tallies, parse_event(OVERLOAD), 5)
    value = round((3 + 4 * PRIOR) / 7, 4)
    assert ("restart_service", value, PRIOR, 0.955) == (
        d.action,
        d.confidence,
        d.base_confidence,
        d.risk_factor,
    )
    assert round(value / PRIOR, 4) == d.history_weight
    assert None is d.instead_of


def test_weigh_lists_every_candidate_of_the_scope_in_rule_order() -> None:
    policy = Policy()
    out = Outcomes({"resource_pressure/high": {"restart_service": Tally(0.0, 1.0)}}, 1)
    rows = weigh(policy, out, "resource_pressure", "high", PRIOR)
    assert ["scale_up_immediate", "restart_service", "throttle_requests"] == [
        r.action for r in rows
    ]
    assert round(4 * PRIOR / 5, 4) == rows[1].value
    assert () == weigh(policy, Outcomes(), "resource_pressure", "high", PRIOR)
    # a scope no rule names: the fallback action is the one candidate
    unknown = Outcomes({"mystery/low": {"monitor_and_wait": Tally(1.0, 0.0)}}, 1)
    assert ["monitor_and_wait"] == [r.action for r in weigh(policy, unknown, "mystery", "low", 0.5)]


def test_records_of_learning_are_frozen_and_built_by_keyword() -> None:
    tally = Tally(1.0, 2.0)
    with pytest.raises(AttributeError):
        tally.successes = 5.0  # type: ignore[misc]
    made = Estimate(action="a", prior=0.5, successes=0.0, failures=0.0, value=0.5)
    assert 0.0 == made.bonus
    with pytest.raises(AttributeError):
        made.value = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Estimate("a", 0.5, 0.0, 0.0, 0.5)  # type: ignore[misc]
