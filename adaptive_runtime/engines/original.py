"""The original project's confidence engine: a stateful object over the pure scoring functions.

The pure core (confidence.score and .record) takes a History and returns values; this
class keeps a History for callers who use the engine on its own, as the original README
does, and takes the original's arguments, some of which the core has no use for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidEventError
from ..records import Event
from .confidence import (
    ConfidenceParams,
    ConfidenceResult,
    History,
    Tally,
    record,
    score,
    weight_of,
)
from .events import severity
from .learning import Outcomes

__all__ = ["ConfidenceEngine", "pooled"]


class ConfidenceEngine:
    """Score confidence; keeps a History that `record_outcome` adapts.

    The scoring itself is the pure `score(history, ...)`; this class holds a history
    for callers who use the engine on its own, as the original README does.
    """

    __slots__ = ("history", "params")

    def __init__(
        self, params: ConfidenceParams | None = None, history: History | None = None
    ) -> None:
        self.params = params or ConfidenceParams()
        self.history = history or History()

    def __repr__(self) -> str:
        return f"ConfidenceEngine(outcomes={self.history.outcomes})"

    def calculate(
        self, event: Event | Mapping[str, Any], context_risk: str, *, context: str | None = None
    ) -> ConfidenceResult:
        """Return the confidence for an event at a risk level (and optionally a context).

        Only the event's severity counts, so `{"severity": 0.5}` is enough, as in the original.
        """
        if isinstance(event, Event):
            raw: object = event.severity
        elif isinstance(event, Mapping):
            raw = event.get("severity", 0.0)
        else:
            msg = f"an event must be a dict, not {type(event).__name__}"
            raise InvalidEventError(msg)
        return score(self.params, self.history, severity(raw), context_risk, context)

    def record_outcome(
        self,
        *,
        success: bool,
        confidence: float = 0.0,
        context_risk: str,
        context: str | None = None,
    ) -> History:
        """Feed one outcome back; later scores in the same (context, risk) adapt."""
        del confidence  # kept for the original API; calibration reads it from the journal
        if not isinstance(success, bool | int) or success not in (0, 1):  # "no" is truthy
            msg = f"success must be True or False, not {success!r}"
            raise InvalidEventError(msg, field="success")
        success = bool(success)
        self.history = record(self.params, self.history, context, context_risk, success)
        return self.history

    def weight(self, context_risk: str, *, context: str | None = None) -> float:
        """Return the history weight in force for a (context, risk)."""
        return weight_of(self.params, self.history, context, context_risk)


def pooled(outcomes: Outcomes) -> History:
    """An agent's per-action outcomes summed per (context, risk), as the original engine keeps them."""
    tallies = {}
    for scope, actions in outcomes.tallies.items():
        tallies[scope] = Tally(
            sum(t.successes for t in actions.values()), sum(t.failures for t in actions.values())
        )
    return History(tallies, outcomes.outcomes)
