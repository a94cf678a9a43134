"""How good a run's choices and confidences were, measured against the simulator's truth."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..calibration import calibrate
from .run import Step
from .scenario import Scenario, Shift

__all__ = ["Summary", "broken_action", "follow_times", "summarise"]


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    expected_success: float
    """The mean true chance of the actions chosen (no outcome noise)."""
    regret_candidates: float
    """The mean gap to the best action the rules name for each context and risk."""
    regret_any: float
    """The mean gap to the best action of all."""
    ece: float
    ece_last: float
    """Expected calibration error over the last 1,000 events (or all, if fewer)."""
    brier: float
    follow: tuple[int, ...]
    """Per shift: events from the shift to the last choice of the action it broke (0: none)."""


def broken_action(scenario: Scenario, shift: Shift) -> str:
    """The action a shift lowers the most (ties: the first by name)."""
    fault = scenario.fault_named(shift.fault)
    drops = {a: fault.success.get(a, fault.success["*"]) - p for a, p in shift.success.items()}
    return max(sorted(drops), key=lambda a: drops[a])


def follow_times(
    scenario: Scenario, steps: Sequence[Step], *, share: float = 0.05
) -> tuple[int, ...]:
    """For each shift, how many events it took to stop choosing the action the shift broke.

    "Stopped" at an event means: from there to the end of the run, at most `share` of
    the fault's events got the broken action (exploration may still try it now and then).
    The count is in events of the whole run since the shift; 0 means it was stopped from
    the shift on. A run that never stops counts every event to its end.
    """
    out: list[int] = []
    for shift in scenario.shift:
        broken = broken_action(scenario, shift)
        after = [s for s in steps if s.t >= shift.at and s.fault == shift.fault]
        stopped_at, chosen = len(after), 0
        for i in range(len(after) - 1, -1, -1):  # from the end: the longest low-share tail
            chosen += after[i].action == broken
            if chosen <= share * (len(after) - i):
                stopped_at = i
        if stopped_at == 0:
            out.append(0)
        elif stopped_at < len(after):
            out.append(after[stopped_at].t - shift.at)
        else:
            out.append(steps[-1].t + 1 - shift.at)
    return tuple(out)


def summarise(scenario: Scenario, steps: Sequence[Step], *, last: int = 1000) -> Summary:
    n = len(steps)
    whole = calibrate((s.confidence, s.success) for s in steps)
    tail = calibrate((s.confidence, s.success) for s in steps[-last:])
    return Summary(
        events=n,
        expected_success=round(sum(s.p for s in steps) / n, 4),
        regret_candidates=round(sum(s.best_candidate - s.p for s in steps) / n, 4),
        regret_any=round(sum(s.best_any - s.p for s in steps) / n, 4),
        ece=whole.ece or 0.0,
        ece_last=tail.ece or 0.0,
        brier=whole.brier or 0.0,
        follow=follow_times(scenario, steps),
    )
