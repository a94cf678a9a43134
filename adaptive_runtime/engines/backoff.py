"""Retry timing and the circuit breaker, as pure functions of their inputs."""

from __future__ import annotations

import hashlib
import math

import msgspec

from ..errors import ConfigurationError
from ..records import Breaker, finite_number

__all__ = [
    "Breaker",
    "BreakerPolicy",
    "RetryPolicy",
    "after_failure",
    "breaker_allows",
    "breaker_failed",
    "breaker_succeeded",
    "delay_for",
]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often, and how far apart, to try again."""

    max_attempts: int = 3
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    """No single wait is longer than this."""
    jitter: float = 0.1
    """Each wait moves by up to this fraction, up or down, the same way every time for a key."""
    total_timeout: float | None = None
    """Give up rather than start a wait that would end past this many seconds."""
    attempt_timeout: float | None = None
    """Cancel an attempt still running after this many seconds; it counts as failed."""

    def __post_init__(self) -> None:
        # a NaN passes every comparison below, and its wait can't be journaled: the attempt
        # after the first failure would be left started for good
        for name in ("base_delay", "multiplier", "max_delay", "jitter"):
            if not finite_number(getattr(self, name)):
                raise ConfigurationError(
                    f"{name} must be a finite number, not {getattr(self, name)!r}"
                )
        if self.total_timeout is not None and not (
            finite_number(self.total_timeout) and self.total_timeout >= 0
        ):
            raise ConfigurationError(
                f"total_timeout must be seconds from 0 (or None), not {self.total_timeout!r}"
            )
        if self.attempt_timeout is not None and not (
            finite_number(self.attempt_timeout) and self.attempt_timeout > 0
        ):
            raise ConfigurationError(
                f"attempt_timeout must be a positive number of seconds, not {self.attempt_timeout}"
            )
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be an int of at least 1, not {self.max_attempts}"
            )
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError(
                "delays must not be negative and the multiplier must be at least 1"
            )
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"jitter must be in [0, 1), not {self.jitter}")


def _grown(policy: RetryPolicy, attempt: int) -> float:
    """base x multiplier^(attempt - 1), uncapped: infinite past what a float holds (a long
    retry at multiplier 2 passes it at attempt 1,025, where ** raises OverflowError)."""
    if policy.base_delay == 0:
        return 0.0
    try:
        return float(policy.base_delay * policy.multiplier ** (attempt - 1))
    except OverflowError:
        return math.inf


def delay_for(policy: RetryPolicy, attempt: int, key: str) -> float:
    """Return the wait after failed `attempt` (1-based): exponential, capped, with fixed jitter."""
    raw = min(_grown(policy, attempt), policy.max_delay)
    if not policy.jitter:
        return raw
    digest = hashlib.blake2b(f"{key}:{attempt}".encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64  # in [0, 1), a pure function of (key, attempt)
    return min(raw * (1.0 + policy.jitter * (2.0 * unit - 1.0)), policy.max_delay)


def after_failure(
    policy: RetryPolicy,
    attempt: int,
    elapsed: float,
    key: str,
    *,
    retryable: bool = True,
    breaker_open: bool = False,
) -> tuple[float | None, str | None]:
    """What follows failed `attempt`: (the wait before the next one, None) or (None, why not).

    The one retry rule, for the recovery engine's retry() and for durable actions alike:
    no retry for an error the predicate rejects, past the attempt limit, with the breaker
    open, or when the wait would end past total_timeout (counted from the first attempt).
    """
    if not retryable:
        return None, "not_retryable"
    if attempt >= policy.max_attempts:
        return None, "attempts_exhausted"
    if breaker_open:
        return None, "breaker_open"
    delay = delay_for(policy, attempt, key)
    if policy.total_timeout is not None and elapsed + delay > policy.total_timeout:
        return None, "time_limit"
    return delay, None


class BreakerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When a breaker opens, and when it lets a probe through."""

    failure_threshold: int = 5
    """Consecutive failures that open the breaker."""
    reset_after: float = 30.0
    """Seconds an open breaker waits before it lets one probe through (half-open)."""

    def __post_init__(self) -> None:
        if type(self.failure_threshold) is not int or self.failure_threshold < 1:
            raise ConfigurationError(
                f"failure_threshold must be an int of at least 1, not {self.failure_threshold!r}"
            )
        if not (finite_number(self.reset_after) and self.reset_after >= 0):
            raise ConfigurationError(
                f"reset_after must be seconds from 0, not {self.reset_after!r}"
            )


def breaker_allows(policy: BreakerPolicy, breaker: Breaker, now_ns: int) -> tuple[bool, Breaker]:
    """Say whether a call may go ahead now, and the breaker after asking."""
    if breaker.status == "closed":
        return True, breaker
    if breaker.status == "open":
        if now_ns - breaker.opened_at_ns >= policy.reset_after * 1e9:
            return True, Breaker("half_open", breaker.failures, breaker.opened_at_ns)
        return False, breaker
    return False, breaker  # half-open: one probe is already out


def breaker_succeeded(breaker: Breaker) -> Breaker:
    """A success closes the breaker and clears its count."""
    del breaker
    return Breaker()


def breaker_failed(policy: BreakerPolicy, breaker: Breaker, now_ns: int) -> Breaker:
    """A failure counts; enough of them, or a failed probe, open the breaker."""
    failures = breaker.failures + 1
    if breaker.status == "half_open" or failures >= policy.failure_threshold:
        return Breaker("open", failures, now_ns)
    return Breaker("closed", failures, 0)
