"""Pins for the retry policy's refusals, word for word (see RELIABILITY.md)."""

from __future__ import annotations

import pytest

from adaptive_runtime.engines.backoff import RetryPolicy
from adaptive_runtime.errors import ConfigurationError


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int of at least 1, not 0"),
        ({"base_delay": -1.0}, "delays must not be negative and the multiplier must be at least 1"),
        ({"multiplier": 0.5}, "delays must not be negative and the multiplier must be at least 1"),
        ({"jitter": 1.0}, "jitter must be in [0, 1), not 1.0"),
        ({"attempt_timeout": 0.0}, "attempt_timeout must be a positive number of seconds, not 0.0"),
        ({"base_delay": float("nan")}, "base_delay must be a finite number, not nan"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number, not inf"),
        ({"total_timeout": -1.0}, "total_timeout must be seconds from 0 (or None), not -1.0"),
        ({"max_attempts": 2.5}, "max_attempts must be an int of at least 1, not 2.5"),
    ],
)
def test_a_bad_retry_policy_says_exactly_what_is_wrong(
    knobs: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        RetryPolicy(**knobs)  # type: ignore[arg-type]
    assert message == str(refused.value)
