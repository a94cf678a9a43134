"""The engines on their own: context, confidence, rules, back-off, the breaker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_runtime.clock import ManualClock
from adaptive_runtime.engines import (
    Breaker,
    BreakerPolicy,
    ConfidenceEngine,
    ContextEngine,
    DecisionEngine,
    Outcomes,
    Policy,
    RecoveryEngine,
    RetryPolicy,
    decide,
    delay_for,
    learn,
    load_rules,
    parse_event,
)
from adaptive_runtime.engines.backoff import breaker_allows, breaker_failed, breaker_succeeded
from adaptive_runtime.errors import InvalidEventError, InvalidRulesError
from adaptive_runtime.journal import MemoryJournal
from adaptive_runtime.records import LearningPolicy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


def test_context_labels_and_custom_map() -> None:
    """Known types map to their labels, unknown ones to unknown_<type>, custom maps extend."""
    engine = ContextEngine({"gpu_hot": "resource_pressure"})
    assert "latency_issue" == engine.analyze({"type": "timeout"}).context
    assert "unknown_disk_full" == engine.analyze({"type": "disk_full"}).context
    assert "resource_pressure" == engine.analyze({"type": "gpu_hot"}).context


def test_context_clamps_out_of_range_inputs() -> None:
    """cpu=400 counts as 100: one wild reading cannot make the risk high on its own."""
    result = ContextEngine().analyze({"type": "service_overload", "cpu": 400})
    assert (0.2, "low") == (result.pressure, result.risk)


def test_context_tags_name_the_signals() -> None:
    """Tags say which signals stand out."""
    assert ("cpu_critical", "memory_high", "severe") == ContextEngine().analyze(OVERLOAD).tags


def test_confidence_parts_explain_the_final_value() -> None:
    """With no history: base = severity x risk factor, weight 1.0, final = base."""
    result = ConfidenceEngine().calculate(OVERLOAD, context_risk="high")
    assert (result.base, result.risk_factor, result.history_weight, result.final) == (
        0.7831,
        0.955,
        1.0,
        0.7831,
    )


def test_confidence_is_clamped() -> None:
    """Confidence never leaves [0.05, 0.99]."""
    engine = ConfidenceEngine()
    assert 0.05 == engine.calculate({"type": "x", "severity": 0}, "low").final
    for _ in range(20):
        engine.record_outcome(success=True, confidence=0.9, context_risk="low")
    assert 0.99 == engine.calculate({"type": "x", "severity": 1}, "low").final


@pytest.mark.parametrize("success", ["no", None, 2, 0.5])
def test_an_outcome_that_is_no_bool_is_refused(success: object) -> None:
    """record_outcome(success="no") counted a success ("no" is truthy); the runtime's own
    record_outcome refuses it."""
    engine = ConfidenceEngine()
    with pytest.raises(InvalidEventError, match="success must be True or False"):
        engine.record_outcome(success=success, context_risk="low")  # type: ignore[arg-type]
    assert 0 == engine.history.outcomes


def test_failures_lower_the_action_s_own_confidence_and_move_the_decision() -> None:
    """Three failed restarts in resource_pressure/high drop the restart's own estimate below
    its 0.70 gate: throttle wins the walk, at its own (untried) confidence."""
    policy, history = Policy(), Outcomes()
    event = parse_event(OVERLOAD)
    first = decide(policy, history, event, 0)
    assert ("restart_service", 0.7831) == (first.action, first.confidence)
    for _ in range(3):
        history = learn(policy, history, "resource_pressure", "high", "restart_service", False)
    failures = 1 + 0.98 + 0.98**2
    assert round(4 * 0.7831 / (failures + 4), 4) == 0.4513  # the restart's estimate now
    after = decide(policy, history, event, 0)
    assert ("throttle_requests", "default[3]", 0.7831) == (
        after.action,
        after.rule,
        after.confidence,
    )
    assert after.instead_of is None  # the walk chose throttle; no alternative beat it


def test_successes_restore_the_action_and_the_untried_one_gets_its_turn() -> None:
    """After failures, a run of successes lifts the restart's estimate back over its gate, so
    the walk picks it again; the untried scale-up, with the larger optimism, is tried first."""
    event = parse_event(OVERLOAD)
    walk_only = Policy(learning=LearningPolicy(alternatives=False))
    history = Outcomes()
    for success in [False] * 3 + [True] * 6:
        history = learn(walk_only, history, "resource_pressure", "high", "restart_service", success)
    walked = decide(walk_only, history, event, 0)
    assert ("restart_service", True) == (walked.action, walked.confidence >= 0.70)
    explored = decide(Policy(), history, event, 0)
    assert ("scale_up_immediate", "restart_service") == (explored.action, explored.instead_of)
    assert (0.7831, "better_record_than_restart_service") == (
        explored.confidence,
        explored.reason,
    )


def test_old_outcomes_fade() -> None:
    """A failure followed by many successes weighs less than a fresh failure."""
    engine = ConfidenceEngine()
    engine.record_outcome(success=False, context_risk="high")
    fresh = engine.weight("high")
    for _ in range(10):
        engine.record_outcome(success=True, context_risk="high")
    engine.record_outcome(success=False, context_risk="high")
    assert engine.weight("high") > fresh
    assert 0.6 <= fresh < 1.0


def test_history_is_per_context_risk_and_action() -> None:
    """Outcomes in one context, or of another action, don't move an action's confidence."""
    policy, history = Policy(), Outcomes()
    history = learn(policy, history, "anomaly_signal", "high", "restart_service", False)
    history = learn(policy, history, "resource_pressure", "high", "throttle_requests", False)
    assert 0.7831 == decide(policy, history, parse_event(OVERLOAD), 0).confidence


def test_custom_rules_go_first_and_are_named() -> None:
    """A custom 5-tuple outranks the defaults and is reported as custom[i]."""
    engine = DecisionEngine(
        custom_rules=[
            ("my_context", "high", 0.70, "my_action", "my_reason"),
            ("resource_pressure", None, 0.0, "page_oncall", "custom"),
        ]
    )
    match = engine.decide({}, "resource_pressure", "critical", 0.5)
    assert ("page_oncall", "custom[1]", "critical") == (match.action, match.rule, match.priority)
    assert "my_action" == engine.decide({}, "my_context", "high", 0.8).action
    assert "monitor_and_wait" == engine.decide({}, "my_context", "high", 0.5).action


def test_security_priority_is_at_least_normal() -> None:
    """security_signal has a minimum priority of normal, even at low risk."""
    assert "normal" == DecisionEngine().decide({}, "security_signal", "low", 0.3).priority


def test_explain_lists_rules_tried_with_reasons() -> None:
    """explain() shows the earlier rules that didn't match, and why."""
    checks = DecisionEngine().explain("resource_pressure", "high", 0.7831)
    assert ["default[0]", "default[1]", "default[2]"] == [c.rule for c in checks]
    assert "risk is high, rule wants critical" == checks[0].why
    assert "confidence 0.7831 is below 0.85" == checks[1].why
    assert checks[2].matched


def test_ruleset_hash_changes_with_rules() -> None:
    """Decisions carry a hash of the rules: other rules, another hash; same rules, same hash."""
    assert Policy().ruleset == Policy().ruleset
    assert Policy().ruleset != Policy(rules=[("x", None, 0, "a", "b")]).ruleset


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (("ctx", "extreme", 0.5, "a", "r"), "risk must be one of"),
        (("ctx", "high", 1.5, "a", "r"), "min_conf must be a number from 0 to 1"),
        (("ctx", "high", 0.5, "", "r"), "action must be a non-empty string"),
        (("ctx", "high", 0.5), "expected (context, risk, min_conf, action, reason)"),
        (
            {
                "context": "c",
                "risk": "high",
                "min_conf": 0.1,
                "action": "a",
                "reason": "r",
                "colour": 1,
            },
            "unknown keys",
        ),
    ],
)
def test_bad_rule_says_which_and_why(rule: object, message: str) -> None:
    """A bad rule raises InvalidRulesError naming its index and the problem."""
    with pytest.raises(
        InvalidRulesError, match="rule 1: " + message.replace("(", r"\(").replace(")", r"\)")
    ) as caught:
        DecisionEngine(custom_rules=[("ok", None, 0.0, "a", "r"), rule])  # type: ignore[list-item]
    assert 1 == caught.value.index


def test_rules_load_from_toml_and_json(tmp_path: Path) -> None:
    """Rules files in TOML and JSON give the same rules; a bad one names the rule."""
    toml = tmp_path / "rules.toml"
    toml.write_text(
        '[[rules]]\ncontext = "resource_pressure"\nrisk = "high"\nmin_conf = 0.5\naction = "drain_node"\nreason = "ops_policy"\n'
    )
    js = tmp_path / "rules.json"
    js.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "context": "resource_pressure",
                        "risk": "high",
                        "min_conf": 0.5,
                        "action": "drain_node",
                        "reason": "ops_policy",
                    }
                ]
            }
        )
    )
    assert load_rules(toml) == load_rules(js)
    assert (
        DecisionEngine(custom_rules=load_rules(toml))
        .decide({}, "resource_pressure", "high", 0.6)
        .action
        == "drain_node"
    )
    js.write_text(
        json.dumps([{"context": "c", "risk": "nope", "min_conf": 0, "action": "a", "reason": "r"}])
    )
    with pytest.raises(InvalidRulesError, match=r"rules.json: rule 0: risk must be"):
        load_rules(js)
    toml.write_text("[[rules]\n")
    with pytest.raises(InvalidRulesError, match="not valid TOML"):
        load_rules(toml)
    for file, text in [(toml, "rules = {}"), (js, '{"rules": {}}')]:
        file.write_text(text.replace("{}", "[" * 100_000 + "]" * 100_000))  # past 3.13's json too
        with pytest.raises(InvalidRulesError, match=r"not valid (TOML|JSON): nested too deeply"):
            load_rules(file)


def test_backoff_schedule_is_capped_and_deterministic() -> None:
    """Waits double up to the cap, jitter stays within bounds and repeats for the same key."""
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=10.0, jitter=0.1)
    waits = [delay_for(policy, n, "evt-1") for n in range(1, 8)]
    assert waits == [delay_for(policy, n, "evt-1") for n in range(1, 8)]
    assert waits != [delay_for(policy, n, "evt-2") for n in range(1, 8)]
    for n, wait in enumerate(waits, start=1):
        raw = min(2.0 ** (n - 1), 10.0)
        assert raw * 0.9 <= wait <= min(raw * 1.1, 10.0)
    assert [delay_for(RetryPolicy(max_delay=10, jitter=0), n, "k") for n in range(1, 6)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
    ]


async def test_retry_waits_on_the_injected_clock_and_not_after_last() -> None:
    """Three failures with three attempts: two waits, none after the last, then the error."""
    clock = ManualClock()
    engine = RecoveryEngine(
        MemoryJournal(), "a", max_retries=3, base_delay=1.0, jitter=0, clock=clock
    )
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await engine.retry(fail)
    assert (3, [1.0, 2.0]) == (calls, clock.slept)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"fn": 5}, "fn must be a function, not int"),
        ({"fallback": "later"}, "fallback must be a function, not str"),
        ({"retry_on": True}, "retry_on must be a function, not bool"),
        ({"on_failure": 1.0}, "on_failure must be a function, not float"),
        ({"policy": {"max_retries": 2}}, "policy must be a RetryPolicy, e.g. RetryPolicy"),
    ],
)
async def test_retry_refuses_a_setting_of_the_wrong_kind_before_any_call(
    given: dict[str, object], says: str
) -> None:
    """retry(5) called 5, failed with TypeError, and retried it with the waits between; a
    fallback of the wrong kind failed only once every attempt had."""
    from adaptive_runtime.errors import ConfigurationError

    clock = ManualClock()
    engine = RecoveryEngine(MemoryJournal(), "a", clock=clock)
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConfigurationError, match=says):
        await engine.retry(**{"fn": fail, **given})  # type: ignore[arg-type]
    assert ([], []) == (calls, clock.slept)


async def test_retry_predicate_stops_at_permanent_errors() -> None:
    """An error the predicate rejects is raised at once, with no wait."""
    clock = ManualClock()
    engine = RecoveryEngine(MemoryJournal(), "a", clock=clock)

    def boom() -> None:
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        await engine.retry(boom, retry_on=lambda e: isinstance(e, ConnectionError))
    assert [] == clock.slept


async def test_retry_total_timeout_gives_up_early() -> None:
    """A wait that would end past total_timeout is not started."""
    clock = ManualClock()
    engine = RecoveryEngine(
        MemoryJournal(),
        "a",
        max_retries=10,
        base_delay=1.0,
        jitter=0,
        total_timeout=5.0,
        clock=clock,
    )
    seen: list[tuple[int, float | None]] = []

    async def fail() -> None:
        raise TimeoutError

    async def note(attempt: int, error: BaseException, delay: float | None) -> None:
        seen.append((attempt, delay))

    with pytest.raises(TimeoutError):
        await engine.retry(fail, on_failure=note)
    assert [1.0, 2.0] == clock.slept
    assert [(1, 1.0), (2, 2.0), (3, None)] == seen


def test_breaker_opens_half_opens_and_closes() -> None:
    """closed -> open after the threshold -> half-open after reset_after -> closed on success."""
    policy = BreakerPolicy(failure_threshold=2, reset_after=10.0)
    b = Breaker()
    b = breaker_failed(policy, b, 0)
    assert ("closed", True) == (b.status, breaker_allows(policy, b, 0)[0])
    b = breaker_failed(policy, b, 1_000)
    assert "open" == b.status
    assert (False, b) == breaker_allows(policy, b, 5 * 10**9)
    allowed, b = breaker_allows(policy, b, 11 * 10**9)
    assert (True, "half_open") == (allowed, b.status)
    assert not breaker_allows(policy, b, 11 * 10**9)[0]
    assert Breaker() == breaker_succeeded(b)


def test_failed_probe_reopens_the_breaker() -> None:
    """A half-open breaker whose probe fails opens again from now."""
    policy = BreakerPolicy(failure_threshold=5, reset_after=10.0)
    b = Breaker("half_open", 5, 0)
    b = breaker_failed(policy, b, 42)
    assert ("open", 42) == (b.status, b.opened_at_ns)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": 5}, "type"),
        ({"type": "a b"}, "type"),
        ({"type": "x", "severity": "high"}, "severity"),
        ({"type": "x", "severity": float("nan")}, "severity"),
        ({"type": "x", "cpu": float("inf")}, "cpu"),
        ({"type": "x", "cpu": -1}, "cpu"),
        ({"type": "x", "memory": True}, "memory"),
        ({"type": "x", "latency_ms": 10**10000}, "latency_ms"),
        ({"type": "x", "extra": {}}, "extra"),
        ({"type": "x", 1: "a"}, "1"),
        ({"type": "x", "id": 7}, "id"),
        ({"type": "x", "id": "a\x00b"}, "id"),  # PostgreSQL's text holds no NUL
        ({"type": "x", "id": "outcome:x"}, "id"),  # the key of the outcome with id x
        ({"type": "x", "id": "approval:3"}, "id"),  # the key of seq 3's approval answer
        ({"type": "x", "id": "dead-letter:9"}, "id"),  # of a dead letter's retry
        ({"type": "x", "note": "a" * 5000}, "note"),
        ({"type": "x", "note": "\ud800"}, "note"),
        ({"type": "x", "deep": [[[[[1]]]]]}, "deep[0][0][0]"),
        ({"type": "x", "big": 10**10000}, "big"),
        ({"type": "x", "obj": object()}, "obj"),
    ],
)
def test_hostile_event_names_the_field(event: dict[object, object], field: str) -> None:
    """Each bad event raises InvalidEventError (also a ValueError) naming the field."""
    with pytest.raises(InvalidEventError) as caught:
        parse_event(event)
    assert field == caught.value.field
    assert isinstance(caught.value, ValueError)


def test_event_keeps_unknown_fields_as_attributes() -> None:
    """Keys beyond the known fields are kept, and come back in as_dict()."""
    event = parse_event({"type": "x", "region": "eu", "shards": [1, 2], "cpu": 50})
    assert {"region": "eu", "shards": [1, 2]} == event.attrs
    assert "eu" == event.as_dict()["region"]


@pytest.mark.parametrize(
    ("attempt", "elapsed", "retryable", "breaker_open", "expected"),
    [
        (1, 0.0, True, False, (1.0, None)),
        (2, 0.0, True, False, (2.0, None)),
        (3, 0.0, True, False, (None, "attempts_exhausted")),
        (1, 0.0, False, False, (None, "not_retryable")),
        (1, 0.0, True, True, (None, "breaker_open")),
        (2, 8.0, True, False, (2.0, None)),  # 8 + 2 = 10: exactly at the limit, still allowed
        (2, 8.5, True, False, (None, "time_limit")),
    ],
)
def test_after_failure_is_the_one_retry_rule(
    attempt: int,
    elapsed: float,
    retryable: bool,
    breaker_open: bool,
    expected: tuple[float | None, str | None],
) -> None:
    """The wait after a failed attempt, or the reason to give up, for retry() and actions alike."""
    from adaptive_runtime.engines.backoff import after_failure

    policy = RetryPolicy(max_attempts=3, base_delay=1.0, jitter=0.0, total_timeout=10.0)
    assert expected == after_failure(
        policy, attempt, elapsed, "k", retryable=retryable, breaker_open=breaker_open
    )
