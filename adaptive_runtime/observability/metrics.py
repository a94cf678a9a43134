"""Counters and a latency histogram, owned by one Runtime: never shared between instances."""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["LATENCY_BUCKETS_MS", "Metrics"]

LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)


class Metrics:
    """Counts by name, and how long `process()` took, in fixed buckets."""

    __slots__ = ("_buckets", "_latency_count", "_latency_max", "_latency_sum", "counters")

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self._latency_count = 0
        self._latency_sum = 0.0
        self._latency_max = 0.0

    def __repr__(self) -> str:
        return f"Metrics(counters={len(self.counters)}, observed={self._latency_count})"

    def count(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def observe_ms(self, ms: float) -> None:
        """Record one latency in milliseconds."""
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        self._latency_count += 1
        self._latency_sum += ms
        if ms > self._latency_max:
            self._latency_max = ms

    def histogram(self) -> tuple[tuple[float, ...], tuple[int, ...], float, int]:
        """(bucket bounds in ms, the count in each bucket with the overflow last, sum in ms, count)."""
        return LATENCY_BUCKETS_MS, tuple(self._buckets), self._latency_sum, self._latency_count

    def snapshot(self) -> dict[str, Any]:
        """Return a copy of everything, safe to keep or serialize."""
        bounds = [*(f"le_{b:g}ms" for b in LATENCY_BUCKETS_MS), "inf"]
        count = self._latency_count
        return {
            "counters": dict(sorted(self.counters.items())),
            "latency_ms": {
                "count": count,
                "mean": round(self._latency_sum / count, 4) if count else 0.0,
                "max": round(self._latency_max, 4),
                "p50": self._quantile(0.5),
                "p99": self._quantile(0.99),
                "buckets": dict(zip(bounds, self._buckets, strict=True)),
            },
        }

    def _quantile(self, q: float) -> float | None:
        """The upper bound of the bucket that holds quantile q (None past the last bound)."""
        if not self._latency_count:
            return 0.0
        target = q * self._latency_count
        running = 0
        for bound, n in zip(LATENCY_BUCKETS_MS, self._buckets, strict=False):
            running += n
            if running >= target:
                return bound
        return None
