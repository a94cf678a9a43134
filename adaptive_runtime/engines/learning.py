"""Learning: each action's chance of success, estimated from the outcomes it has had.

An action's confidence is a Beta estimate of its success in one (context, risk):

    estimate = (successes + k x prior) / (successes + failures + k)

where the prior is the documented no-history confidence, clamp(severity x risk factor),
worth `k` outcomes, and every new outcome of that (context, risk, action) fades the
older ones by `fade`. With no outcomes the estimate is the prior, exactly.

Choosing (see `choose`): the rules are walked with each action's own estimate against
its rule's `min_conf`, as the original walked them with one confidence; then the other
actions the rules name for that context and risk (their actions and `alternatives`)
compete on estimate + bonus / sqrt(k + n), an optimism that shrinks as an action is
tried. The rules' choice wins ties, so with no history nothing changes. `min_conf`
gates the walk; with `respect_gates` it gates the alternatives too, at the price of
never finding that a gated action works better than the one the walk reaches.
"""

from __future__ import annotations

import math

import msgspec

from ..errors import InvalidEventError
from ..records import LearningPolicy
from .confidence import RISK_FACTORS

__all__ = [
    "RISK_FACTORS",
    "Estimate",
    "Learning",
    "LearningPolicy",
    "Outcomes",
    "Tally",
    "base_confidence",
    "estimate",
    "record",
]

FLOOR, CEILING = 0.05, 0.99
"""Every confidence is clamped into [FLOOR, CEILING] and rounded to 4 places."""
MAX_HISTORY_WEIGHT = round(CEILING / FLOOR, 4)
"""A decision's history_weight is its confidence over its prior: at most 19.8."""


class Tally(msgspec.Struct, frozen=True, array_like=True):
    """Faded counts of one action's successes and failures in one (context, risk)."""

    successes: float = 0.0
    failures: float = 0.0


class Outcomes(msgspec.Struct, frozen=True):
    """Every action's faded record, by "context/risk" then action: a value folds keep."""

    tallies: dict[str, dict[str, Tally]] = {}
    outcomes: int = 0


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """One action's confidence and what it was made from, so it can be explained."""

    action: str
    prior: float
    successes: float
    """Faded: each later outcome of the action multiplied the earlier ones by `fade`."""
    failures: float
    value: float
    """(successes + k x prior) / (successes + failures + k), clamped, 4 places."""
    bonus: float = 0.0
    """The optimism it competed with: c / sqrt(k + n)."""


class Learning:
    """The learning policy with the arithmetic it implies (frozen; safe to share)."""

    __slots__ = ("k", "policy")

    def __init__(self, policy: LearningPolicy | None = None) -> None:
        self.policy = policy or LearningPolicy()
        self.k = self.policy.prior_strength

    def __repr__(self) -> str:
        return f"Learning({self.policy!r})"

    def estimate(self, prior: float, tally: Tally | None) -> float:
        """The Beta estimate of success: the prior alone when there is no record."""
        if tally is None:
            return prior
        n = tally.successes + tally.failures
        return _clamp4((tally.successes + self.k * prior) / (n + self.k))

    def optimism(self, tally: Tally | None) -> float:
        """The bonus an alternative competes with: large when untried, fading with use."""
        n = 0.0 if tally is None else tally.successes + tally.failures
        return self.policy.bonus / math.sqrt(self.k + n)


def key(context: str | None, risk: str) -> str:
    return f"{context or '*'}/{risk}"


def _clamp4(value: float) -> float:
    return round(max(FLOOR, min(CEILING, value)), 4)


def base_confidence(severity: float, risk: str) -> tuple[float, float]:
    """The no-history confidence and the risk factor: clamp(severity x factor), 4 places."""
    factor = RISK_FACTORS.get(risk)
    if factor is None:
        msg = f"risk must be one of {', '.join(RISK_FACTORS)}, not {risk!r}"
        raise InvalidEventError(msg, field="risk")
    return _clamp4(severity * factor), factor


def estimate(
    learning: Learning, outcomes: Outcomes, context: str, risk: str, action: str, prior: float
) -> Estimate:
    """One action's estimate with its parts (for explain; `choose` computes the same number)."""
    tally = outcomes.tallies.get(key(context, risk), {}).get(action)
    s, f = (0.0, 0.0) if tally is None else (tally.successes, tally.failures)
    return Estimate(
        action=action,
        prior=prior,
        successes=round(s, 4),
        failures=round(f, 4),
        value=learning.estimate(prior, tally),
        bonus=round(learning.optimism(tally), 4),
    )


def record(
    learning: Learning,
    outcomes: Outcomes,
    context: str,
    risk: str,
    action: str,
    success: bool,
) -> Outcomes:
    """The outcomes with one more for (context, risk, action); its older ones fade first."""
    if risk not in RISK_FACTORS:
        msg = f"risk must be one of {', '.join(RISK_FACTORS)}, not {risk!r}"
        raise InvalidEventError(msg, field="risk")
    k = key(context, risk)
    actions = dict(outcomes.tallies.get(k, {}))
    old = actions.get(action, Tally())
    fade = learning.policy.fade
    actions[action] = Tally(
        old.successes * fade + (1.0 if success else 0.0),
        old.failures * fade + (0.0 if success else 1.0),
    )
    tallies = dict(outcomes.tallies)
    tallies[k] = actions
    return Outcomes(tallies, outcomes.outcomes + 1)
