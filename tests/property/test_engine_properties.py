"""Properties of the engines that must hold for any input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_runtime.engines import History, Policy, decide, learn, parse_event
from adaptive_runtime.engines.confidence import ConfidenceParams, score
from adaptive_runtime.errors import InvalidEventError

unit = st.floats(0, 1, allow_nan=False)
risks = st.sampled_from(["low", "medium", "high", "critical"])
contexts = st.sampled_from(["resource_pressure", "anomaly_signal", "latency_issue"])
outcomes = st.lists(st.tuples(contexts, risks, st.booleans()), max_size=30)
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


def history_from(policy: Policy, steps: list[tuple[str, str, bool]]) -> History:
    history = History()
    for context, risk, success in steps:
        history = learn(policy, history, context, risk, success)
    return history


@given(unit, risks, contexts, outcomes)
def test_confidence_stays_within_bounds(
    severity: float, risk: str, context: str, steps: list[tuple[str, str, bool]]
) -> None:
    """Whatever the history, confidence lies in [0.05, 0.99] and the weight in [0.6, 1.1]."""
    policy = Policy()
    result = score(ConfidenceParams(), history_from(policy, steps), severity, risk, context)
    assert 0.05 <= result.final <= 0.99
    assert 0.6 <= result.history_weight <= 1.1


@given(unit, contexts, st.lists(st.booleans(), max_size=20))
def test_low_risk_is_at_least_as_confident_as_high(
    severity: float, context: str, successes: list[bool]
) -> None:
    """At equal severity and equal history, low risk scores at least as high as high risk."""
    policy = Policy()
    steps = [(context, r, s) for s in successes for r in ("low", "high")]
    history = history_from(policy, steps)
    low = score(policy.confidence, history, severity, "low", context).final
    high = score(policy.confidence, history, severity, "high", context).final
    assert low >= high


@given(events, outcomes)
def test_decide_is_deterministic(
    event: dict[str, object], steps: list[tuple[str, str, bool]]
) -> None:
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
    from adaptive_runtime.engines import History, Policy, decide, learn, parse_event
    policy = Policy(rules=[("anomaly_signal", "medium", 0.5, "page_oncall", "custom")])
    history = History()
    out = []
    for i in range(300):
        kind = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "odd"][i % 5]
        ev = parse_event({"type": kind, "severity": (i * 37 % 100) / 100, "cpu": i * 13 % 101,
                          "memory": i * 7 % 101, "error_rate": (i % 10) / 10, "latency_ms": i * 97,
                          "tags": {"b": 1, "a": [i]}})
        d = decide(policy, history, ev, i)
        out.append(msgspec.msgpack.encode(d))
        history = learn(policy, history, d.context, d.risk, i % 3 != 0)
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
