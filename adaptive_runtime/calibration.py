"""How well confidences predicted outcomes: ECE, the Brier score and a reliability table.

A pure function of (confidence, success) pairs, shared by `adaptive-runtime stats`
(over recorded outcomes) and the simulator (over simulated ones).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = ["BINS", "Bin", "Calibration", "calibrate"]

BINS = 10
"""Reliability bins: confidence [0, 0.1), [0.1, 0.2) ... [0.9, 1.0]."""


class Bin(msgspec.Struct, frozen=True, kw_only=True):
    """One confidence band: how many outcomes, how confident on average, how often right."""

    low: float
    high: float
    n: int
    confidence: float | None
    success_rate: float | None


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    outcomes: int
    ece: float | None
    """Expected calibration error: the outcome-weighted mean gap between each bin's mean
    confidence and its success rate (0 is perfect). None without outcomes."""
    brier: float | None
    """The mean squared gap between confidence and outcome (1 or 0). None without outcomes."""
    bins: tuple[Bin, ...]


def calibrate(pairs: Iterable[tuple[float, bool]]) -> Calibration:
    """Measure (confidence, success) pairs against each other."""
    counts, confidences, successes = [0] * BINS, [0.0] * BINS, [0] * BINS
    brier, total = 0.0, 0
    for confidence, success in pairs:
        b = min(max(int(confidence * BINS), 0), BINS - 1)
        counts[b] += 1
        confidences[b] += confidence
        successes[b] += bool(success)
        brier += (confidence - bool(success)) ** 2
        total += 1
    ece = 0.0
    bins: list[Bin] = []
    for i, (n, conf, ok) in enumerate(zip(counts, confidences, successes, strict=True)):
        if n:
            ece += n / total * abs(conf / n - ok / n)
        bins.append(
            Bin(
                low=i / BINS,
                high=(i + 1) / BINS,
                n=n,
                confidence=round(conf / n, 4) if n else None,
                success_rate=round(ok / n, 4) if n else None,
            )
        )
    return Calibration(
        outcomes=total,
        ece=round(ece, 4) if total else None,
        brier=round(brier / total, 4) if total else None,
        bins=tuple(bins),
    )
