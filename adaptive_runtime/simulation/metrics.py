"""How good a run's choices and confidences were, measured against the simulator's truth."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .run import Step
from .scenario import Scenario

__all__ = ["BINS", "Bin", "Summary", "calibration", "follow_times", "summarise"]

BINS = 10
"""Reliability bins: confidence [0, 0.1), [0.1, 0.2) ... [0.9, 1.0]."""


class Bin(msgspec.Struct, frozen=True, kw_only=True):
    """One confidence band: how many outcomes, how confident on average, how often right."""

    low: float
    high: float
    n: int
    confidence: float | None
    success_rate: float | None


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


def calibration(steps: Sequence[Step]) -> tuple[float, float, list[Bin]]:
    """ECE, Brier score and the reliability table of confidences against outcomes."""
    if not steps:
        return 0.0, 0.0, []
    counts, confidences, successes = [0] * BINS, [0.0] * BINS, [0] * BINS
    brier = 0.0
    for s in steps:
        b = min(int(s.confidence * BINS), BINS - 1)
        counts[b] += 1
        confidences[b] += s.confidence
        successes[b] += s.success
        brier += (s.confidence - s.success) ** 2
    ece = 0.0
    table: list[Bin] = []
    for i, (n, conf, ok) in enumerate(zip(counts, confidences, successes, strict=True)):
        low, high = i / BINS, (i + 1) / BINS
        if n:
            ece += n / len(steps) * abs(conf / n - ok / n)
        table.append(
            Bin(
                low=low,
                high=high,
                n=n,
                confidence=round(conf / n, 4) if n else None,
                success_rate=round(ok / n, 4) if n else None,
            )
        )
    return round(ece, 4), round(brier / len(steps), 4), table


def follow_times(
    scenario: Scenario, steps: Sequence[Step], *, share: float = 0.05
) -> tuple[int, ...]:
    """For each shift, how many events it took to stop choosing the action the shift broke.

    The broken action is the one the shift lowers the most. "Stopped" means: from that
    event on, at most `share` of the fault's events get the broken action (exploration
    may still try it now and then). 0: it was never chosen for the fault after the shift.
    """
    out: list[int] = []
    for shift in scenario.shift:
        fault = scenario.fault_named(shift.fault)
        drops = {a: fault.success.get(a, fault.success["*"]) - p for a, p in shift.success.items()}
        broken = max(sorted(drops), key=lambda a: drops[a])
        after = [s for s in steps if s.t >= shift.at and s.fault == shift.fault]
        # walk back from the end: the earliest event from which the broken share stays low
        stopped_at, chosen = len(after), 0
        for i in range(len(after) - 1, -1, -1):
            chosen += after[i].action == broken
            if chosen <= share * (len(after) - i):
                stopped_at = i
        out.append(
            0
            if stopped_at == 0
            else after[stopped_at - 1].t - shift.at + 1
            if stopped_at < len(after)
            else steps[-1].t - shift.at + 1
        )
    return tuple(out)


def summarise(scenario: Scenario, steps: Sequence[Step], *, last: int = 1000) -> Summary:
    n = len(steps)
    ece, brier, _ = calibration(steps)
    ece_last, _, _ = calibration(steps[-last:])
    return Summary(
        events=n,
        expected_success=round(sum(s.p for s in steps) / n, 4),
        regret_candidates=round(sum(s.best_candidate - s.p for s in steps) / n, 4),
        regret_any=round(sum(s.best_any - s.p for s in steps) / n, 4),
        ece=ece,
        ece_last=ece_last,
        brier=brier,
        follow=follow_times(scenario, steps),
    )
