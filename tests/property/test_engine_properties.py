"""Properties of the engines that must hold for any input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_runtime.engines import Outcomes, Policy, decide, learn, parse_event
from adaptive_runtime.engines.learning import Learning, Tally, base_confidence
from adaptive_runtime.errors import InvalidEventError
from adaptive_runtime.records import LearningPolicy

unit = st.floats(0, 1, allow_nan=False)
risks = st.sampled_from(["low", "medium", "high", "critical"])
contexts = st.sampled_from(["resource_pressure", "anomaly_signal", "latency_issue"])
actions = st.sampled_from(["restart_service", "throttle_requests", "scale_up_immediate"])
outcomes = st.lists(st.tuples(contexts, risks, actions, st.booleans()), max_size=30)
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "service_overload",
                "anomaly_detected",
                "timeout",
                "auth_failure",
                "recovery_needed",
                "degraded_service",
                "custom_thing",
            ]
        )
    },
    optional={
        "severity": unit,
        "cpu": st.floats(0, 500, allow_nan=False),
        "memory": st.floats(0, 100, allow_nan=False),
        "error_rate": unit,
        "latency_ms": st.integers(0, 10**7),
    },
)


Steps = list[tuple[str, str, str, bool]]


def history_from(policy: Policy, steps: Steps) -> Outcomes:
    history = Outcomes()
    for context, risk, action, success in steps:
        history = learn(policy, history, context, risk, action, success)
    return history


@given(events, outcomes)
def test_confidence_stays_within_bounds(event: dict[str, object], steps: Steps) -> None:
    """Whatever the history, confidence and its prior lie in [0.05, 0.99]."""
    policy = Policy()
    d = decide(policy, history_from(policy, steps), parse_event(event), 0)
    assert 0.05 <= d.confidence <= 0.99
    assert 0.05 <= d.base_confidence <= 0.99


@given(unit, st.lists(st.booleans(), max_size=20))
def test_low_risk_is_at_least_as_confident_as_high(severity: float, successes: list[bool]) -> None:
    """At equal severity and an equal record, an action at low risk scores at least as high."""
    learning, tally = Learning(), Tally()
    for success in successes:
        tally = Tally(tally.successes * 0.98 + success, tally.failures * 0.98 + (not success))
    low = learning.estimate(base_confidence(severity, "low")[0], tally)
    high = learning.estimate(base_confidence(severity, "high")[0], tally)
    assert low >= high


def _record(learning: Learning, outcomes: list[bool]) -> Outcomes:
    history = Outcomes()
    policy = Policy(learning=learning.policy)
    for success in outcomes:
        history = learn(policy, history, "resource_pressure", "high", "restart_service", success)
    return history


def _confidence(policy: Policy, history: Outcomes) -> float:
    """The confidence of the restart the OVERLOAD-like event gets (a rule pinned to it)."""
    event = parse_event({"type": "service_overload", "severity": 0.82, "cpu": 95, "memory": 80})
    d = decide(policy, history, event, 0)
    assert "restart_service" == d.action
    return d.confidence


pinned = Policy(
    rules=[("resource_pressure", "high", 0.0, "restart_service", "pinned")],
    learning=LearningPolicy(alternatives=False),
)


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.data())
def test_a_success_in_place_of_a_failure_never_lowers_confidence(
    outcomes: list[bool], data: st.DataObject
) -> None:
    """Turning any one recorded failure into a success never lowers the action's confidence,
    and turning a success into a failure never raises it (faded counts, default policy)."""
    i = data.draw(st.integers(0, len(outcomes) - 1))
    flipped = [*outcomes[:i], not outcomes[i], *outcomes[i + 1 :]]
    before = _confidence(pinned, _record(pinned.learning, outcomes))
    after = _confidence(pinned, _record(pinned.learning, flipped))
    if outcomes[i]:
        assert after <= before
    else:
        assert after >= before


@given(st.lists(st.booleans(), max_size=40))
def test_another_success_never_lowers_confidence_and_a_failure_never_raises_it(
    outcomes: list[bool],
) -> None:
    """With nothing faded (fade 1), one more success never lowers the confidence, one more
    failure never raises it; with fading, a success still counts for more than a failure."""
    unfaded = Policy(
        rules=pinned.custom_rules, learning=LearningPolicy(alternatives=False, fade=1.0)
    )
    for policy in (unfaded, pinned):
        now = _confidence(policy, _record(policy.learning, outcomes))
        win = _confidence(policy, _record(policy.learning, [*outcomes, True]))
        loss = _confidence(policy, _record(policy.learning, [*outcomes, False]))
        assert loss <= win
        if policy is unfaded:
            assert loss <= now <= win


@given(events, outcomes)
def test_decide_is_deterministic(event: dict[str, object], steps: Steps) -> None:
    """The same inputs give the same decision, to the byte."""
    import msgspec

    policy = Policy()
    history = history_from(policy, steps)
    first = msgspec.msgpack.encode(decide(policy, history, parse_event(event), 7))
    again = msgspec.msgpack.encode(
        decide(Policy(), history_from(Policy(), steps), parse_event(dict(event)), 7)
    )
    assert first == again


SCRIPT = textwrap.dedent(
    """
    import hashlib, msgspec
    from adaptive_runtime.engines import Outcomes, Policy, decide, learn, parse_event
    policy = Policy(rules=[("anomaly_signal", "medium", 0.5, "page_oncall", "custom")])
    history = Outcomes()
    out = []
    for i in range(300):
        kind = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "odd"][i % 5]
        ev = parse_event({"type": kind, "severity": (i * 37 % 100) / 100, "cpu": i * 13 % 101,
                          "memory": i * 7 % 101, "error_rate": (i % 10) / 10, "latency_ms": i * 97,
                          "tags": {"b": 1, "a": [i]}})
        d = decide(policy, history, ev, i)
        out.append(msgspec.msgpack.encode(d))
        history = learn(policy, history, d.context, d.risk, d.action, i % 3 != 0)
    print(hashlib.sha256(b"".join(out)).hexdigest())
    """
)


def test_decide_gives_same_bytes_under_any_hash_seed() -> None:
    """Subprocesses under different PYTHONHASHSEED values make byte-identical decisions."""
    digests = set()
    for seed in ("0", "1", "12345", "random"):
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        digests.add(run.stdout.strip())
    assert len(digests) == 1, digests


hostile = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.binary(),
        st.integers(min_value=10**20, max_value=10**30),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.one_of(st.text(), st.integers()), children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    st.one_of(
        hostile,
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["type", "severity", "cpu", "memory", "error_rate", "latency_ms", "id", "extra"]
                ),
                st.text(max_size=5),
            ),
            hostile,
            max_size=8,
        ),
    )
)
def test_hostile_input_only_ever_raises_invalid_event(raw: object) -> None:
    """Any input either parses to an Event or raises InvalidEventError; nothing else escapes."""
    try:
        event = parse_event(raw)
    except InvalidEventError:
        return
    assert 0.0 <= event.severity <= 1.0
    assert 0.0 <= event.cpu <= 100.0


def _risk_by_rounding(pressure: float) -> str:
    """risk_of as first written: round to two places, then compare."""
    from adaptive_runtime.engines.context import RISK_THRESHOLDS

    rounded = round(pressure, 2)
    for threshold, label in RISK_THRESHOLDS:
        if rounded >= threshold:
            return label
    return "low"


@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 1))
def test_risk_of_compares_as_rounding_to_two_places_would(pressure: float) -> None:
    from adaptive_runtime.engines.context import risk_of

    assert _risk_by_rounding(pressure) == risk_of(pressure)


def test_risk_of_agrees_with_rounding_at_every_float_near_each_threshold() -> None:
    """The floats around each threshold, and around each boundary found for it."""
    import math

    from adaptive_runtime.engines.context import _RISK_BOUNDS, RISK_THRESHOLDS, risk_of

    starts = [t for t, _ in RISK_THRESHOLDS] + [t - 0.005 for t, _ in RISK_THRESHOLDS]
    starts += [least for least, _ in _RISK_BOUNDS]
    for start in starts:
        low = high = start
        for _ in range(2000):
            for x in (low, high):
                assert _risk_by_rounding(x) == risk_of(x), x
            low, high = math.nextafter(low, 0.0), math.nextafter(high, 2.0)
