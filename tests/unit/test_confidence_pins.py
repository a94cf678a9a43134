"""Pins for the original's confidence formula (the standalone ConfidenceEngine): factors,
the pooled key, rounding, messages and its records (see RELIABILITY.md, "Mutation testing")."""

from __future__ import annotations

import msgspec
import pytest

from adaptive_runtime.engines.confidence import (
    ANY_CONTEXT,
    RISK_FACTORS,
    ConfidenceParams,
    ConfidenceResult,
    History,
    Tally,
    record,
    score,
)
from adaptive_runtime.errors import InvalidEventError

P = ConfidenceParams()


def test_each_risk_factor_scores_the_same_severity() -> None:
    assert {"low": 1.0, "medium": 0.98, "high": 0.955, "critical": 0.93} == dict(RISK_FACTORS)
    for risk, factor in (("low", 1.0), ("medium", 0.98), ("high", 0.955), ("critical", 0.93)):
        result = score(P, History(), 0.5, risk, None)
        assert (
            ConfidenceResult(
                base=round(0.5 * factor, 4),
                risk_factor=factor,
                history_weight=1.0,
                final=round(0.5 * factor, 4),
            )
            == result
        )
    assert 0.1235 == score(P, History(), 0.12345, "low", None).base  # 4 places


def test_outcomes_without_a_context_pool_under_the_any_key() -> None:
    assert "*" == ANY_CONTEXT
    h = record(P, History(), None, "high", False)
    assert {"*/high": Tally(0.0, 1.0)} == h.tallies


def test_an_unknown_risk_is_refused_with_this_message() -> None:
    message = "risk must be one of low, medium, high, critical, not 'extreme'"
    with pytest.raises(InvalidEventError) as scored:
        score(P, History(), 0.5, "extreme", None)
    assert (message, "risk") == (str(scored.value), scored.value.field)
    with pytest.raises(InvalidEventError) as recorded:
        record(P, History(), None, "extreme", True)
    assert (message, "risk") == (str(recorded.value), recorded.value.field)


def test_its_records_are_frozen_keyword_built_and_tallies_are_pairs() -> None:
    with pytest.raises(AttributeError):
        P.fade = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        ConfidenceParams(0.1)  # type: ignore[misc]
    result = score(P, History(), 0.5, "low", None)
    with pytest.raises(AttributeError):
        result.final = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ConfidenceResult(0.5, 1.0, 1.0, 0.5)  # type: ignore[misc]
    tally = Tally(1.0, 2.0)
    with pytest.raises(AttributeError):
        tally.failures = 0.0  # type: ignore[misc]
    history = History({"c/high": tally}, 3)
    with pytest.raises(AttributeError):
        history.outcomes = 4  # type: ignore[misc]
    assert [1.0, 2.0] == msgspec.json.decode(msgspec.json.encode(tally))
