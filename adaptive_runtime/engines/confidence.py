"""Confidence: how sure a decision is, from the event's severity and what happened before.

With no history, confidence = clamp(severity x risk_factor, 0.05, 0.99). Outcomes
(recorded by the caller, or from executed actions) move it through a bounded history
weight, kept per (context, risk); each new outcome fades the older ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ..errors import InvalidEventError

__all__ = [
    "ANY_CONTEXT",
    "RISK_FACTORS",
    "ConfidenceParams",
    "ConfidenceResult",
    "History",
    "Tally",
]

RISK_FACTORS: Mapping[str, float] = {"low": 1.00, "medium": 0.98, "high": 0.955, "critical": 0.93}
ANY_CONTEXT = "*"
"""The context used when a caller gives only a risk, as the original API did."""


class ConfidenceParams(msgspec.Struct, frozen=True, kw_only=True):
    """The knobs of the confidence formula; part of every decision's ruleset hash."""

    floor: float = 0.05
    ceiling: float = 0.99
    min_weight: float = 0.6
    max_weight: float = 1.1
    prior_rate: float = 0.8
    """The success rate assumed before any outcome: it makes the weight exactly 1.0."""
    prior_strength: float = 2.0
    """How many outcomes the prior is worth."""
    fade: float = 0.8
    """Each new outcome in a key multiplies the weight of older ones by this."""


class Tally(msgspec.Struct, frozen=True, array_like=True):
    """Faded counts of successes and failures for one (context, risk)."""

    successes: float = 0.0
    failures: float = 0.0


class History(msgspec.Struct, frozen=True):
    """Outcomes so far, as a plain value a projection can fold and snapshot."""

    tallies: dict[str, Tally] = {}
    outcomes: int = 0


class ConfidenceResult(msgspec.Struct, frozen=True, kw_only=True):
    """The confidence and its parts, so a decision can be explained."""

    base: float
    risk_factor: float
    history_weight: float
    final: float


def _key(context: str | None, risk: str) -> str:
    return f"{context or ANY_CONTEXT}/{risk}"


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def score(
    params: ConfidenceParams, history: History, severity: float, risk: str, context: str | None
) -> ConfidenceResult:
    """Compute the confidence: a pure function of its arguments."""
    if risk not in RISK_FACTORS:
        msg = f"risk must be one of {', '.join(RISK_FACTORS)}, not {risk!r}"
        raise InvalidEventError(msg, field="risk")
    factor = RISK_FACTORS[risk]
    base = round(_clamp(severity * factor, params.floor, params.ceiling), 4)
    weight = weight_of(params, history, context, risk)
    final = round(_clamp(base * weight, params.floor, params.ceiling), 4)
    return ConfidenceResult(base=base, risk_factor=factor, history_weight=weight, final=final)


def weight_of(params: ConfidenceParams, history: History, context: str | None, risk: str) -> float:
    """Map a key's faded success rate into [min_weight, max_weight]; no history gives 1.0."""
    tally = history.tallies.get(_key(context, risk))
    if tally is None:
        return 1.0
    n = tally.successes + tally.failures
    rate = (tally.successes + params.prior_rate * params.prior_strength) / (
        n + params.prior_strength
    )
    span = params.max_weight - params.min_weight
    return round(params.min_weight + span * rate, 4)


def record(
    params: ConfidenceParams, history: History, context: str | None, risk: str, success: bool
) -> History:
    """Return the history with one more outcome: older ones in that key fade first."""
    if risk not in RISK_FACTORS:
        msg = f"risk must be one of {', '.join(RISK_FACTORS)}, not {risk!r}"
        raise InvalidEventError(msg, field="risk")
    key = _key(context, risk)
    old = history.tallies.get(key, Tally())
    new = Tally(
        old.successes * params.fade + (1.0 if success else 0.0),
        old.failures * params.fade + (0.0 if success else 1.0),
    )
    tallies = dict(history.tallies)
    tallies[key] = new
    return History(tallies, history.outcomes + 1)
