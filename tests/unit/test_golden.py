"""The original README's examples, reproduced exactly by a fresh runtime's engines."""

from __future__ import annotations

import pytest

from adaptive_runtime.engines import History, Policy, decide, parse_event

GOLDEN = [
    # event, action, confidence (None: the README gives none), reason, priority
    (
        {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88},
        "restart_service",
        0.7831,
        "high_resource_pressure",
        "high",
    ),
    (
        {"type": "service_overload", "severity": 0.91, "cpu": 96, "memory": 92},
        "scale_up_immediate",
        None,
        None,
        "high",
    ),
    (
        {"type": "anomaly_detected", "severity": 0.74, "error_rate": 0.6},
        "flag_for_review",
        None,
        None,
        "normal",
    ),
    ({"type": "auth_failure", "severity": 0.55}, "trigger_security_audit", None, None, "normal"),
    ({"type": "timeout", "severity": 0.45, "latency_ms": 4200}, "cache_warmup", None, None, "low"),
    ({"type": "recovery_needed", "severity": 0.30}, "run_recovery", None, None, "low"),
]


@pytest.mark.parametrize(
    ("event", "action", "confidence", "reason", "priority"), GOLDEN, ids=lambda v: str(v)[:30]
)
def test_golden_case(
    event: dict[str, object],
    action: str,
    confidence: float | None,
    reason: str | None,
    priority: str,
) -> None:
    """Each README example, as the first event a fresh runtime sees."""
    decision = decide(Policy(), History(), parse_event(event), 0)
    assert action == decision.action
    assert priority == decision.priority
    if confidence is not None:
        assert confidence == decision.confidence
    if reason is not None:
        assert reason == decision.reason


def context_line(event: dict[str, object]) -> str:
    d = decide(Policy(), History(), parse_event(event), 0)
    return f"risk={d.risk} stability={d.stability} pressure={d.pressure:.2f}"


def test_readme_log_line_for_service_overload() -> None:
    """The README's first log excerpt: risk=high stability=low pressure=0.65."""
    event = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
    assert "risk=high stability=low pressure=0.65" == context_line(event)


def test_readme_log_line_for_low_risk_anomaly() -> None:
    """The README's second excerpt: a low-risk anomaly at 0.62 confidence, flagged [low]."""
    event = {"type": "anomaly_detected", "severity": 0.62, "cpu": 30, "memory": 21.5}
    d = decide(Policy(), History(), parse_event(event), 0)
    assert "risk=low stability=stable pressure=0.32" == context_line(event)
    assert ("flag_for_review", "low", 0.62) == (d.action, d.priority, d.confidence)


def test_anomaly_at_0349_rounds_into_medium() -> None:
    """Risk is classified on the pressure rounded to 2 places: 0.349 is medium."""
    d = decide(Policy(), History(), parse_event(GOLDEN[2][0]), 0)
    assert (0.349, "medium") == (d.pressure, d.risk)
