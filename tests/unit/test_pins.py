"""Tests that pin values, not directions: every default rule, every threshold and its edge,
worked arithmetic, whole fold states and whole verify reports.

Each expected number is written as the arithmetic that gives it, so a changed weight,
threshold or operator is caught here even where a replay check (which compares the code
with itself) could not catch it.
"""

from __future__ import annotations

import math

import pytest

from adaptive_runtime.engines import ConfidenceParams, DecisionEngine, History, parse_event
from adaptive_runtime.engines.backoff import BreakerPolicy, breaker_allows, breaker_failed
from adaptive_runtime.engines.confidence import record, score, weight_of
from adaptive_runtime.engines.context import pressure_of, risk_of, stability_of, tags_of
from adaptive_runtime.engines.events import (
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_ITEMS,
    MAX_KEY_LENGTH,
    MAX_STRING_LENGTH,
    MAX_TYPE_LENGTH,
    REDACTED,
)
from adaptive_runtime.engines.learning import Outcomes
from adaptive_runtime.engines.learning import Tally as LearnedTally
from adaptive_runtime.errors import InvalidEventError
from adaptive_runtime.records import Breaker, LearningPolicy


def below(x: float) -> float:
    """The float just below x: one ulp under a threshold."""
    return math.nextafter(x, -math.inf)


# -- the rule table: one row per default rule ------------------------------------

DEFAULT_TABLE = [
    # context, risk, confidence -> action, reason, priority, rule
    ("resource_pressure", "critical", 0.0, "scale_up_immediate", "critical_resource_pressure", "critical", "default[0]"),
    ("resource_pressure", "high", 0.85, "scale_up_immediate", "severe_resource_pressure", "high", "default[1]"),
    ("resource_pressure", "high", 0.70, "restart_service", "high_resource_pressure", "high", "default[2]"),
    ("resource_pressure", "high", 0.0, "throttle_requests", "resource_pressure_low_confidence", "high", "default[3]"),
    ("resource_pressure", "medium", 0.0, "optimize_resources", "medium_resource_pressure", "normal", "default[4]"),
    ("anomaly_signal", "critical", 0.0, "isolate_component", "critical_anomaly", "critical", "default[5]"),
    ("anomaly_signal", "high", 0.65, "rollback_deployment", "anomaly_with_confidence", "high", "default[6]"),
    ("anomaly_signal", "high", 0.0, "increase_monitoring", "anomaly_low_confidence", "high", "default[7]"),
    ("anomaly_signal", "low", 0.0, "flag_for_review", "anomaly_detected", "low", "default[8]"),
    ("latency_issue", "high", 0.0, "optimize_query", "latency_degradation", "high", "default[9]"),
    ("latency_issue", "medium", 0.0, "cache_warmup", "latency_signal", "normal", "default[10]"),
    ("security_signal", "low", 0.0, "trigger_security_audit", "security_event", "normal", "default[11]"),
    ("self_healing", "critical", 0.0, "run_recovery", "recovery_requested", "critical", "default[12]"),
    ("service_degradation", "high", 0.0, "circuit_breaker_open", "service_degraded_high", "high", "default[13]"),
    ("service_degradation", "low", 0.0, "health_check", "service_degraded", "low", "default[14]"),
    ("unknown_thing", "high", 0.99, "monitor_and_wait", "no_matching_rule", "high", "fallback"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("context", "risk", "confidence", "action", "reason", "priority", "rule"),
    DEFAULT_TABLE,
    ids=[row[-1] for row in DEFAULT_TABLE],
)
def test_each_default_rule_matches_exactly_its_row(
    context: str, risk: str, confidence: float, action: str, reason: str, priority: str, rule: str
) -> None:
    """The first rule that matches gives its action, reason, priority and label."""
    match = DecisionEngine().match(context, risk, confidence)
    assert (action, reason, priority, rule) == (
        match.action,
        match.reason,
        match.priority,
        match.rule,
    )


@pytest.mark.parametrize(
    ("context", "risk", "threshold", "at", "under"),
    [
        ("resource_pressure", "high", 0.85, "scale_up_immediate", "restart_service"),
        ("resource_pressure", "high", 0.70, "restart_service", "throttle_requests"),
        ("anomaly_signal", "high", 0.65, "rollback_deployment", "increase_monitoring"),
    ],
)
def test_min_conf_is_inclusive_and_one_ulp_below_falls_through(
    context: str, risk: str, threshold: float, at: str, under: str
) -> None:
    """Exactly on min_conf matches (>=); one ulp below goes to the next rule."""
    engine = DecisionEngine()
    assert at == engine.match(context, risk, threshold).action
    assert under == engine.match(context, risk, below(threshold)).action


def test_a_rule_priority_floor_raises_but_never_lowers() -> None:
    """security_signal is at least normal: low risk is raised, critical stays critical."""
    engine = DecisionEngine()
    assert "normal" == engine.match("security_signal", "low", 0.1).priority
    assert "critical" == engine.match("security_signal", "critical", 0.1).priority


# -- context: pressure, risk, stability, tags ------------------------------------


def test_pressure_of_a_worked_example_with_every_signal() -> None:
    """0.35 severity + 0.20 cpu + 0.20 memory + 0.15 error rate + 0.10 latency (capped)."""
    ev = parse_event(
        {
            "type": "x",
            "severity": 0.5,
            "cpu": 50,
            "memory": 40,
            "error_rate": 0.2,
            "latency_ms": 2500,
        }
    )
    expected = 0.35 * 0.5 + 0.20 * (50 / 100) + 0.20 * (40 / 100) + 0.15 * 0.2
    expected += 0.10 * min(2500 / 5000, 1.0)
    assert expected == pressure_of(ev)
    assert 0.435 == round(pressure_of(ev), 4)


def test_latency_alone_adds_at_most_a_tenth() -> None:
    """Latency past 5,000 ms counts as 5,000: it adds exactly 0.10, and 1,000 ms adds 0.02."""
    assert 0.10 == pressure_of(parse_event({"type": "x", "latency_ms": 60_000}))
    assert 0.10 * (1000 / 5000) == pressure_of(parse_event({"type": "x", "latency_ms": 1000}))


def test_pressure_is_capped_at_one() -> None:
    """Everything at its maximum sums past 1; the pressure is 1."""
    ev = parse_event(
        {"type": "x", "severity": 1, "cpu": 100, "memory": 100, "error_rate": 1, "latency_ms": 5000}
    )
    assert 1.0 == pressure_of(ev)


@pytest.mark.parametrize(
    ("pressure", "risk"),
    [
        (0.85, "critical"),
        (0.8451, "critical"),  # rounds to 0.85
        (0.845, "high"),  # stored just below 0.845, it rounds to 0.84
        (0.8449, "high"),
        (0.60, "high"),
        (0.5949, "medium"),
        (0.35, "medium"),
        (0.3449, "low"),
        (0.0, "low"),
    ],
)
def test_risk_is_classified_on_the_pressure_rounded_to_two_places(
    pressure: float, risk: str
) -> None:
    """Thresholds 0.85, 0.60 and 0.35, on round(pressure, 2)."""
    assert risk == risk_of(pressure)


@pytest.mark.parametrize(
    ("pressure", "stability"),
    [
        (0.85, "critical"),
        (below(0.85), "low"),
        (0.65, "low"),
        (below(0.65), "degraded"),
        (0.40, "degraded"),
        (below(0.40), "stable"),
    ],
)
def test_stability_thresholds_are_inclusive_on_the_raw_pressure(
    pressure: float, stability: str
) -> None:
    """Thresholds 0.85, 0.65 and 0.40, not rounded: one ulp below is the next level."""
    assert stability == stability_of(pressure)


def test_tags_name_each_signal_at_its_edges() -> None:
    """cpu/memory 90 critical, 75 high; error rate 0.5; latency 2,000 ms; severity 0.8."""
    at = parse_event(
        {
            "type": "x",
            "severity": 0.8,
            "cpu": 90,
            "memory": 75,
            "error_rate": 0.5,
            "latency_ms": 2000,
        }
    )
    assert ("cpu_critical", "memory_high", "error_spike", "latency_high", "severe") == tags_of(at)
    under = parse_event(
        {
            "type": "x",
            "severity": 0.79,
            "cpu": 89.9,
            "memory": 74.9,
            "error_rate": 0.49,
            "latency_ms": 1999,
        }
    )
    assert ("cpu_high",) == tags_of(under)


# -- confidence: exact weights -------------------------------------------------------

P = ConfidenceParams()


def test_the_weight_with_no_history_is_one() -> None:
    """The prior rate 0.8 over 2 outcomes maps to exactly 1.0: 0.6 + 0.5 x 0.8."""
    assert 1.0 == weight_of(P, History(), "c", "high")
    assert 0.6 + (1.1 - 0.6) * 0.8 == 1.0


def test_one_failure_weight() -> None:
    """One failure: rate (0 + 0.8 x 2) / (1 + 2); weight 0.6 + 0.5 x rate, to 4 places."""
    h = record(P, History(), "c", "high", False)
    rate = (0 + 0.8 * 2) / (1 + 2)
    assert round(0.6 + 0.5 * rate, 4) == weight_of(P, h, "c", "high") == 0.8667


def test_older_outcomes_fade_by_point_eight() -> None:
    """A success then a failure: the success counts 0.8, the failure 1."""
    h = record(P, record(P, History(), "c", "high", True), "c", "high", False)
    tally = h.tallies["c/high"]
    assert (0.8, 1.0) == (tally.successes, tally.failures)
    rate = (0.8 + 0.8 * 2) / (1.8 + 2)
    assert round(0.6 + 0.5 * rate, 4) == weight_of(P, h, "c", "high") == 0.9158
    assert 2 == h.outcomes


def test_two_failures_fade_too() -> None:
    """Two failures: 0.8 + 1 = 1.8 failures."""
    h = record(P, record(P, History(), "c", "high", False), "c", "high", False)
    assert (0.0, 1.8) == (h.tallies["c/high"].successes, h.tallies["c/high"].failures)
    assert round(0.6 + 0.5 * (1.6 / 3.8), 4) == weight_of(P, h, "c", "high") == 0.8105


def test_confidence_is_base_times_weight_clamped_and_rounded() -> None:
    """0.82 x 0.955 = 0.7831; after one failure in its key, 0.7831 x 0.8667 = 0.6787."""
    h = record(P, History(), "resource_pressure", "high", False)
    result = score(P, h, 0.82, "high", "resource_pressure")
    assert (0.7831, 0.955, 0.8667, round(0.7831 * 0.8667, 4)) == (
        result.base,
        result.risk_factor,
        result.history_weight,
        result.final,
    )
    assert 0.6787 == result.final
    assert 0.05 == score(P, History(), 0.0, "low", None).final  # floor
    assert 0.99 == score(P, History(), 1.0, "low", None).final  # ceiling


# -- back-off and breaker edges ------------------------------------------------------


def test_a_breaker_lets_a_probe_through_exactly_at_reset_after() -> None:
    """Open at t: one ns before t + reset_after it refuses; at t + reset_after it goes half-open."""
    policy = BreakerPolicy(failure_threshold=1, reset_after=30.0)
    opened = breaker_failed(policy, Breaker(), 1_000)
    assert ("open", 1, 1_000) == (opened.status, opened.failures, opened.opened_at_ns)
    assert (False, opened) == breaker_allows(policy, opened, 1_000 + 30 * 10**9 - 1)
    allowed, probe = breaker_allows(policy, opened, 1_000 + 30 * 10**9)
    assert (True, "half_open") == (allowed, probe.status)


def test_a_breaker_opens_at_its_threshold_not_before() -> None:
    """threshold 3: two failures stay closed, the third opens."""
    policy = BreakerPolicy(failure_threshold=3)
    b = breaker_failed(policy, breaker_failed(policy, Breaker(), 1), 2)
    assert ("closed", 2) == (b.status, b.failures)
    assert ("open", 3) == (
        breaker_failed(policy, b, 3).status,
        breaker_failed(policy, b, 3).failures,
    )


# -- input limits: at each limit, and one past ------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda n: {"type": "t" * n}, "type"),
        (lambda n: {"type": "x", "id": "i" * n}, "id"),
        (lambda n: {"type": "x", "k" * n: 1}, "k"),
        (lambda n: {"type": "x", "s": "v" * n}, "s"),
    ],
    ids=["type", "id", "key", "string"],
)
def test_text_limits_are_inclusive(make: object, field: str) -> None:
    """A value exactly at its limit passes; one character more is refused."""
    limits = {
        "type": MAX_TYPE_LENGTH,
        "id": MAX_ID_LENGTH,
        "k": MAX_KEY_LENGTH,
        "s": MAX_STRING_LENGTH,
    }
    limit = limits[field]
    parse_event(make(limit))  # type: ignore[operator]
    with pytest.raises(InvalidEventError):
        parse_event(make(limit + 1))  # type: ignore[operator]


def test_attribute_count_depth_and_items_limits_are_inclusive() -> None:
    """64 attributes, nesting 4 deep and 256 items pass; one more of each is refused."""
    parse_event({"type": "x", **{f"a{i}": i for i in range(MAX_ATTRIBUTES)}})
    with pytest.raises(InvalidEventError):
        parse_event({"type": "x", **{f"a{i}": i for i in range(MAX_ATTRIBUTES + 1)}})
    deep: object = 1
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    parse_event({"type": "x", "d": deep})
    with pytest.raises(InvalidEventError, match="nested more than"):
        parse_event({"type": "x", "d": [deep]})
    parse_event({"type": "x", "l": list(range(MAX_ITEMS))})
    with pytest.raises(InvalidEventError, match="items"):
        parse_event({"type": "x", "l": list(range(MAX_ITEMS + 1))})


def test_numbers_at_their_maximum_pass_and_above_are_clamped() -> None:
    """cpu 100 is 100; cpu 100.5 counts as 100; severity 1 is 1; negative is refused."""
    assert 100.0 == parse_event({"type": "x", "cpu": 100}).cpu
    assert 100.0 == parse_event({"type": "x", "cpu": 100.5}).cpu
    assert 1.0 == parse_event({"type": "x", "severity": 1}).severity
    with pytest.raises(InvalidEventError):
        parse_event({"type": "x", "cpu": -0.001})


def test_redaction_reaches_lists_and_every_depth() -> None:
    """A sensitive key is redacted at depth 1, 2 and 3, case-insensitively, and inside lists."""
    ev = parse_event(
        {
            "type": "x",
            "token": "t0",
            "a": {"token": "t1", "b": {"Token": "t2", "keep": 1}},
            "l": [{"token": "t3"}, [{"password": "p"}]],
        },
        redact=frozenset({"token", "password"}),
    )
    assert {
        "token": REDACTED,
        "a": {"token": REDACTED, "b": {"Token": REDACTED, "keep": 1}},
        "l": [{"token": REDACTED}, [{"password": REDACTED}]],
    } == ev.attrs


# -- the fold: whole states, and idempotence ---------------------------------------


def _journal_of(*records_and_ts: tuple[object, int]) -> list[object]:
    from adaptive_runtime.journal import MemoryJournal
    from adaptive_runtime.records import to_pending

    journal = MemoryJournal()
    entries = []
    for body, ts in records_and_ts:
        [entry] = journal.append([to_pending("a", body, ts)])  # type: ignore[arg-type]
        entries.append(entry)
    return entries


def _decision(expected_action: str = "restart_service") -> object:
    from adaptive_runtime.engines import Policy, decide

    d = decide(
        Policy(),
        History(),
        parse_event({"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}),
        5,
    )
    assert expected_action == d.action
    return d


def test_the_fold_of_every_record_kind_gives_this_exact_state() -> None:
    """A scripted stream: each kind changes exactly what it should, and nothing else."""
    from adaptive_runtime.projections import AgentState, evolve
    from adaptive_runtime.projections.agent import DecisionSummary, OpenAction
    from adaptive_runtime.records import (
        ActionAbandoned,
        ActionFailed,
        ActionScheduled,
        ActionSkipped,
        ActionStarted,
        ActionSucceeded,
        CheckpointCreated,
        DecisionMade,
        Event,
        EventReceived,
        OutcomeRecorded,
        Rule,
        RulesChanged,
        StatePatched,
    )

    d = _decision()
    rule = Rule(context=None, risk=None, min_conf=0.0, action="a", reason="r")
    open_b = Breaker("open", 2, 7)
    entries = _journal_of(
        (EventReceived(Event(type="service_overload")), 10),  # 1
        (DecisionMade(d), 10),  # 2
        (ActionScheduled(action="restart_service", breaker=Breaker()), 10),  # 3
        (ActionStarted(decision_seq=2, action="restart_service", attempt=1), 11),  # 4
        (
            ActionFailed(
                decision_seq=2,
                action="restart_service",
                attempt=1,
                error="e",
                breaker=open_b,
                retry_in=2.5,
            ),
            12,
        ),  # 5
        (OutcomeRecorded.of(msgspec_replace(d, seq=2), success=False), 13),  # 6
        (StatePatched(values={"k": 1}), 14),  # 7
        (StatePatched(values={"j": 2}), 15),  # 8
        (CheckpointCreated(state={"k": 1}), 16),  # 9
        (RulesChanged(rules=(rule,), ruleset="h", learning=LearningPolicy(fade=0.5)), 17),  # 10
        (ActionSkipped(action="restart_service", reason="circuit breaker open"), 18),  # 11
    )
    state = AgentState(stream="a")
    for entry in entries:
        evolve(state, entry)  # type: ignore[arg-type]
    expected_history = Outcomes(
        {"resource_pressure/high": {"restart_service": LearnedTally(0.0, 1.0)}}, 1
    )
    assert (
        AgentState(
            stream="a",
            seq=11,
            stream_seq=11,
            ts_ns=18,
            events=1,
            decisions=1,
            outcomes=1,
            successes=0,
            actions={"restart_service": 1},
            priorities={"high": 1},
            history=expected_history,
            rules=(rule,),
            learning=LearningPolicy(fade=0.5),
            kv={"k": 1, "j": 2},
            checkpoints=1,
            recent=[
                DecisionSummary(
                    2, 10, "service_overload", "restart_service", "high", 0.7831, "high"
                )
            ],
            last_decision_seq=2,
            breakers={"restart_service": open_b},
            open_actions={2: OpenAction("restart_service", 1, False, 12 + round(2.5 * 1e9), True)},
            action_attempts=1,
            action_failures=1,
            actions_succeeded=0,
            actions_abandoned=0,
            actions_skipped=1,
        )
        == state
    )
    # folding any entry again changes nothing: the fold skips what it has seen
    before = msgspec_encode(state)
    for entry in entries:
        evolve(state, entry)  # type: ignore[arg-type]
    assert before == msgspec_encode(state)
    # a success closes the action and its breaker; an abandon closes it too
    closing = _journal_of(
        (EventReceived(Event(type="service_overload")), 10),
        (DecisionMade(d), 10),
        (ActionScheduled(action="restart_service", breaker=Breaker()), 10),
        (
            ActionSucceeded(decision_seq=2, action="restart_service", attempt=1, breaker=Breaker()),
            11,
        ),
        (EventReceived(Event(type="service_overload")), 12),
        (DecisionMade(d), 12),
        (ActionScheduled(action="restart_service", breaker=Breaker()), 12),
        (ActionAbandoned(decision_seq=6, action="restart_service", attempts=3, reason="x"), 13),
    )
    done = AgentState(stream="a")
    for entry in closing:
        evolve(done, entry)  # type: ignore[arg-type]
    assert ({}, 1, 1) == (done.open_actions, done.actions_succeeded, done.actions_abandoned)


def test_the_fold_keeps_the_latest_twenty_decisions() -> None:
    """recent holds 20 summaries: the 21st pushes out the first, and not before."""
    from adaptive_runtime.projections import AgentState, evolve
    from adaptive_runtime.projections.agent import RECENT
    from adaptive_runtime.records import DecisionMade

    d = _decision()
    entries = _journal_of(*[(DecisionMade(d), i) for i in range(RECENT + 1)])
    state = AgentState(stream="a")
    for entry in entries[:RECENT]:
        evolve(state, entry)  # type: ignore[arg-type]
    assert (20, 1) == (len(state.recent), state.recent[0].seq)
    evolve(state, entries[RECENT])  # type: ignore[arg-type]
    assert (20, 2) == (len(state.recent), state.recent[0].seq)


def msgspec_encode(value: object) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(value)


def msgspec_replace(value: object, **changes: object) -> object:
    import msgspec

    return msgspec.structs.replace(value, **changes)  # type: ignore[type-var]


def test_decisions_journal_as_arrays_and_old_map_entries_still_read_and_replay() -> None:
    """A Decision is an array of its fields; one journaled as a map by an earlier version reads,
    folds and replays the same."""
    import msgspec

    from adaptive_runtime.journal import MemoryJournal, Pending
    from adaptive_runtime.projections import AgentState, evolve, verify_replay
    from adaptive_runtime.records import (
        DecisionMade,
        EventReceived,
        encode_record,
        read_record,
        to_pending,
    )

    event = parse_event(
        {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88, "id": "e"}
    )
    d = _decision()
    old_fields = [
        "action",
        "confidence",
        "reason",
        "priority",
        "context",
        "risk",
        "stability",
        "pressure",
        "rule",
        "ruleset",
        "event_type",
        "base_confidence",
        "risk_factor",
        "history_weight",
        "tags",
        "event_id",
        "ts_ns",
        "seq",
        "event_seq",
    ]
    legacy = msgspec.msgpack.encode(
        ["DecisionMade", {name: getattr(d, name) for name in old_fields}]
    )
    array = encode_record(DecisionMade(d))  # type: ignore[arg-type]
    assert len(array) < len(legacy) * 0.6  # the keys were about half of every decision
    journal = MemoryJournal()
    journal.append(
        [
            to_pending("a", EventReceived(msgspec.structs.replace(event, id=None)), 5),
            Pending(stream="a", kind="DecisionMade", ts_ns=5, body=legacy),
        ]
    )
    entry = journal.get(2)
    assert entry is not None
    assert DecisionMade(d) == read_record(entry)  # type: ignore[arg-type]
    state = evolve(AgentState(stream="a"), entry)
    assert ({"restart_service": 1}, "high") == (state.actions, state.recent[0].risk)
    assert verify_replay(journal).ok


# -- context: the map, the levels, analysers ------------------------------------------


def test_the_built_in_context_map_row_by_row() -> None:
    """Each known event type gets its context; anything else is unknown_<type>."""
    from adaptive_runtime.engines import ContextEngine

    engine = ContextEngine()
    assert {
        "service_overload": "resource_pressure",
        "memory_leak": "resource_pressure",
        "anomaly_detected": "anomaly_signal",
        "timeout": "latency_issue",
        "auth_failure": "security_signal",
        "recovery_needed": "self_healing",
        "degraded_service": "service_degradation",
        "disk_full": "unknown_disk_full",
    } == {t: engine.analyze({"type": t}).context for t in (
        "service_overload", "memory_leak", "anomaly_detected", "timeout", "auth_failure",
        "recovery_needed", "degraded_service", "disk_full",
    )}  # fmt: skip


def test_risk_levels_and_the_reported_pressure() -> None:
    """Four levels, low to critical; the pressure is reported to 4 places."""
    from adaptive_runtime.engines import ContextEngine
    from adaptive_runtime.engines.context import RISK_LEVELS

    assert ("low", "medium", "high", "critical") == RISK_LEVELS
    result = ContextEngine().analyze({"type": "x", "severity": 0.123456})
    assert round(0.35 * 0.123456, 4) == result.pressure == 0.0432


def test_context_results_are_frozen_and_overrides_take_keywords() -> None:
    """A ContextResult can't be changed; a ContextOverride is built with keywords."""
    from adaptive_runtime.engines import ContextEngine
    from adaptive_runtime.engines.context import ContextOverride

    result = ContextEngine().analyze({"type": "x"})
    with pytest.raises(AttributeError):
        result.context = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ContextOverride("x")  # type: ignore[misc]


def _engine_with(*answers: object) -> object:
    from adaptive_runtime.engines import ContextEngine

    return ContextEngine(analysers=[(f"p{i}", lambda ev, a=a: a) for i, a in enumerate(answers)])


def test_an_analyser_answer_sets_context_risk_and_adds_tags() -> None:
    """The first valid answer wins; its risk replaces the pressure's; new tags are added once."""
    from adaptive_runtime.engines.context import ContextOverride

    ev = parse_event({"type": "x", "severity": 0.9})  # pressure 0.315: low, tag "severe"
    engine = _engine_with(
        None,  # passes
        ContextOverride(context="c", risk="critical", tags=("severe", "mine")),
        ContextOverride(context="later"),
    )
    result = engine.classify(ev)  # type: ignore[attr-defined]
    assert ("c", "critical", ("severe", "mine")) == (result.context, result.risk, result.tags)
    no_risk = _engine_with(ContextOverride(context="c")).classify(ev)  # type: ignore[attr-defined]
    assert ("c", "low", ("severe",)) == (no_risk.context, no_risk.risk, no_risk.tags)


@pytest.mark.parametrize(
    ("answer", "valid"),
    [
        ({"context": "x"}, True),  # one character is enough
        ({"context": ""}, False),
        ({"context": "c" * 64}, True),
        ({"context": "c" * 65}, False),
        ({"context": "c", "risk": None}, True),
        ({"context": "c", "risk": "high"}, True),
        ({"context": "c", "risk": "severe"}, False),
        ({"context": "c", "tags": ("t",)}, True),
        ({"context": "c", "tags": ("",)}, False),
        ({"context": "c", "tags": ("t" * 64,)}, True),
        ({"context": "c", "tags": ("t" * 65,)}, False),
        ({"context": "c", "tags": ["t"]}, False),  # a list, not a tuple
    ],
)
def test_an_analyser_answer_is_used_only_when_well_formed(
    answer: dict[str, object], valid: bool
) -> None:
    """Malformed answers are passed over for the built-in map."""
    from adaptive_runtime.engines.context import ContextOverride

    engine = _engine_with(ContextOverride(**answer))  # type: ignore[arg-type]
    context = engine.classify(parse_event({"type": "timeout"})).context  # type: ignore[attr-defined]
    assert (answer["context"] if valid else "latency_issue") == context


# -- retry policy: defaults, validation edges, exact delays -------------------------


def test_retry_policy_defaults() -> None:
    """3 attempts, 1 s doubling, at most 30 s a wait, 10% jitter, no time limits."""
    from adaptive_runtime.engines.backoff import RetryPolicy

    p = RetryPolicy()
    assert (3, 1.0, 2.0, 30.0, 0.1, None, None) == (
        p.max_attempts,
        p.base_delay,
        p.multiplier,
        p.max_delay,
        p.jitter,
        p.total_timeout,
        p.attempt_timeout,
    )
    with pytest.raises(AttributeError):
        p.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("knobs", "ok"),
    [
        ({"max_attempts": 1}, True),
        ({"max_attempts": 0}, False),
        ({"base_delay": 0.0}, True),
        ({"base_delay": -0.001}, False),
        ({"max_delay": 0.0}, True),
        ({"max_delay": 0.5}, True),
        ({"max_delay": -0.001}, False),
        ({"multiplier": 1.0}, True),
        ({"multiplier": 1.5}, True),
        ({"multiplier": 0.999}, False),
        ({"jitter": 0.0}, True),
        ({"jitter": 0.999}, True),
        ({"jitter": 1.0}, False),
        ({"jitter": -0.001}, False),
        ({"attempt_timeout": 0.5}, True),
        ({"attempt_timeout": 1e-9}, True),
        ({"attempt_timeout": 0.0}, False),
        # a NaN passed every bound, and its wait could not be journaled
        ({"base_delay": float("nan")}, False),
        ({"multiplier": float("nan")}, False),
        ({"max_delay": float("inf")}, False),
        ({"jitter": float("nan")}, False),
        ({"attempt_timeout": float("nan")}, False),
        ({"total_timeout": 0.0}, True),
        ({"total_timeout": -1.0}, False),
        ({"total_timeout": float("nan")}, False),
        ({"base_delay": "1"}, False),
        ({"max_attempts": 2.5}, False),
    ],
)
def test_retry_policy_knobs_at_their_edges(knobs: dict[str, float], ok: bool) -> None:
    """Each bound is where the message says: on it passes, past it is a ConfigurationError."""
    from adaptive_runtime.engines.backoff import RetryPolicy
    from adaptive_runtime.errors import ConfigurationError

    if ok:
        RetryPolicy(**knobs)  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigurationError):
            RetryPolicy(**knobs)  # type: ignore[arg-type]


def test_a_retry_that_runs_past_what_a_float_holds_waits_max_delay() -> None:
    """base x multiplier^(n-1) passes a float's range at attempt 1,025 with multiplier 2:
    ** raised OverflowError there, in the middle of a long retry."""
    from adaptive_runtime.engines.backoff import RetryPolicy, delay_for

    long = RetryPolicy(max_attempts=5000, base_delay=1.0, multiplier=2.0, max_delay=60.0)
    assert 60.0 >= delay_for(long, 1100, "k") >= 60.0 * 0.9
    assert 60.0 >= delay_for(long, 4999, "k") >= 60.0 * 0.9
    assert 0.0 == delay_for(RetryPolicy(base_delay=0.0, multiplier=10.0), 2000, "k")


def test_delay_for_is_the_jittered_exponential_written_out() -> None:
    """raw = min(base x mult^(n-1), max); unit from blake2b(key:n); delay = raw x (1 + j(2u - 1)), capped."""
    import hashlib

    from adaptive_runtime.engines.backoff import RetryPolicy, delay_for

    def unit(key: str, attempt: int) -> float:
        digest = hashlib.blake2b(f"{key}:{attempt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    p = RetryPolicy(base_delay=2.0, multiplier=3.0, max_delay=30.0, jitter=0.25)
    for attempt in (1, 2, 3, 4):
        raw = min(2.0 * 3.0 ** (attempt - 1), 30.0)
        expected = min(raw * (1.0 + 0.25 * (2.0 * unit("k", attempt) - 1.0)), 30.0)
        assert expected == delay_for(p, attempt, "k")
    assert 30.0 >= delay_for(p, 4, "k")  # 54 s raw: capped, jitter and all
    assert 6.0 == delay_for(RetryPolicy(base_delay=2.0, multiplier=3.0, jitter=0.0), 2, "k")


@pytest.mark.parametrize(
    ("knobs", "says"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be an int of at least 1, not 0"),
        ({"failure_threshold": 2.5}, "failure_threshold must be an int of at least 1"),
        ({"reset_after": -1.0}, "reset_after must be seconds from 0, not -1.0"),
        ({"reset_after": float("nan")}, "reset_after must be seconds from 0, not nan"),
        ({"reset_after": "30"}, "reset_after must be seconds from 0"),
    ],
)
def test_a_breaker_policy_that_could_not_work_is_refused(
    knobs: dict[str, object], says: str
) -> None:
    """BreakerPolicy checked nothing: a threshold of 0 or -1, or a NaN wait, was taken."""
    from adaptive_runtime.engines.backoff import BreakerPolicy
    from adaptive_runtime.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=says):
        BreakerPolicy(**knobs)  # type: ignore[arg-type]
    BreakerPolicy(failure_threshold=1, reset_after=0.0)  # the edges pass


def test_a_fleet_policy_takes_lists_and_refuses_a_bare_string() -> None:
    """disruptive="restart_service" was taken letter by letter, and could not be journaled;
    a window of True was taken as 1 s."""
    from adaptive_runtime import FleetPolicy
    from adaptive_runtime.errors import ConfigurationError

    assert ("restart_service",) == FleetPolicy(disruptive=["restart_service"]).disruptive  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="disruptive must be a list of action names"):
        FleetPolicy(disruptive="restart_service")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="correlate_window must be seconds"):
        FleetPolicy(correlate_window=True)


def test_breaker_policy_defaults_and_transitions_written_out() -> None:
    """5 failures open it, 30 s before a probe; a failed probe reopens it; closed keeps no time."""
    p = BreakerPolicy()
    assert (5, 30.0) == (p.failure_threshold, p.reset_after)
    with pytest.raises(AttributeError):
        p.failure_threshold = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerPolicy(5)  # type: ignore[misc]
    assert Breaker("closed", 1, 0) == breaker_failed(p, Breaker(), 99)
    probe = Breaker("half_open", 1, 7)
    assert Breaker("open", 2, 99) == breaker_failed(p, probe, 99)  # below the threshold, yet open


def test_after_failure_retries_by_default() -> None:
    """Without a retry predicate's verdict, an error is retryable."""
    from adaptive_runtime.engines.backoff import RetryPolicy, after_failure

    assert (1.0, None) == after_failure(RetryPolicy(jitter=0.0), 1, 0.0, "k")


DEFAULT_ALTERNATIVES = {
    "default[0]": ("restart_service", "throttle_requests"),
    "default[4]": ("restart_service", "throttle_requests"),
    "default[5]": ("rollback_deployment",),
    "default[8]": ("increase_monitoring",),
    "default[10]": ("circuit_breaker_open", "isolate_component"),
    "default[11]": ("isolate_component",),
    "default[12]": ("restart_service",),
    "default[14]": ("circuit_breaker_open", "restart_service", "rollback_deployment"),
}


def test_the_default_rules_name_these_alternatives_and_no_others() -> None:
    """Each default rule's alternatives, pinned: they are what learning may try instead."""
    from adaptive_runtime.engines.decision import DEFAULT_RULES

    named = {f"default[{i}]": r.alternatives for i, r in enumerate(DEFAULT_RULES) if r.alternatives}
    assert DEFAULT_ALTERNATIVES == named


def test_a_rule_s_priority_raises_the_decision_s_up_to_high() -> None:
    """A custom rule at priority high lifts a low-risk decision to high; critical stays."""
    engine = DecisionEngine(
        custom_rules=[
            {
                "context": "c",
                "risk": None,
                "min_conf": 0.0,
                "action": "a",
                "reason": "r",
                "priority": "high",
            }
        ]
    )
    assert "high" == engine.decide({}, "c", "low", 0.5).priority
    assert "critical" == engine.decide({}, "c", "critical", 0.5).priority
