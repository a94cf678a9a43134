"""The original project's 12 engine tests, with only their imports changed."""

import pytest

from adaptive_runtime.engines import (
    ConfidenceEngine,
    ContextEngine,
    DecisionEngine,
    RecoveryEngine,
    StateEngine,
)
from adaptive_runtime.journal import MemoryStore


@pytest.mark.asyncio
async def test_state_save_and_load():
    engine = StateEngine(MemoryStore(), "test-agent")
    await engine.save_state({"foo": "bar", "score": 0.9})
    state = await engine.load_state()
    assert "bar" == state["foo"]
    assert 0.9 == state["score"]


@pytest.mark.asyncio
async def test_state_patch():
    engine = StateEngine(MemoryStore(), "test-agent")
    await engine.save_state({"x": 1})
    result = await engine.patch_state({"y": 2})
    assert 1 == result["x"]
    assert 2 == result["y"]


def test_context_high_risk():
    result = ContextEngine().analyze(
        {"type": "service_overload", "severity": 0.9, "cpu": 95, "memory": 90}
    )
    assert result.risk in ("high", "critical")
    assert "resource_pressure" in result.context


def test_context_low_risk():
    result = ContextEngine().analyze(
        {"type": "service_overload", "severity": 0.1, "cpu": 20, "memory": 20}
    )
    assert "low" == result.risk


def test_confidence_range():
    engine = ConfidenceEngine()
    for risk in ("low", "medium", "high", "critical"):
        result = engine.calculate({"severity": 0.5, "type": "x"}, risk)
        assert 0 < result.final <= 1


def test_confidence_decreases_with_risk():
    engine = ConfidenceEngine()
    low = engine.calculate({"severity": 0.3, "type": "x"}, "low").final
    high = engine.calculate({"severity": 0.3, "type": "x"}, "high").final
    assert low > high


def test_decision_critical_overload():
    result = DecisionEngine().decide(
        {"type": "service_overload"}, "resource_pressure", "critical", 0.5
    )
    assert "scale_up_immediate" == result.action
    assert "critical" == result.priority


def test_decision_anomaly():
    result = DecisionEngine().decide({"type": "anomaly_detected"}, "anomaly_signal", "low", 0.99)
    assert "flag_for_review" == result.action


def test_decision_fallback():
    result = DecisionEngine().decide({"type": "unknown_xyz"}, "unknown_xyz", "low", 0.5)
    assert "monitor_and_wait" == result.action


@pytest.mark.asyncio
async def test_recovery_checkpoint_and_restore():
    store = MemoryStore()
    await store.connect()
    engine = RecoveryEngine(store, "test-recovery")
    meta = await engine.create_checkpoint({"health": "ok", "version": "1.2.3"})
    assert meta.snapshot_id >= 1
    restored = await engine.restore_latest()
    assert restored is not None
    assert "ok" == restored.get("state", restored).get("health")


@pytest.mark.asyncio
async def test_retry_succeeds_on_second_attempt():
    store = MemoryStore()
    engine = RecoveryEngine(store, "retry-test", max_retries=3, base_delay=0.01)
    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        if calls < 2:
            raise RuntimeError("first call fails")
        return "ok"

    assert "ok" == await engine.retry(flaky)
    assert 2 == calls


@pytest.mark.asyncio
async def test_retry_uses_fallback():
    store = MemoryStore()
    engine = RecoveryEngine(store, "retry-test", max_retries=2, base_delay=0.01)

    async def always_fail():
        raise RuntimeError("always")

    async def fallback():
        return "fallback"

    assert "fallback" == await engine.retry(always_fail, fallback=fallback)
