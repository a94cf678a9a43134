"""Context: what kind of trouble an event is, and how bad (risk, stability, pressure)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ..records import RISK_LEVELS, Event
from .events import parse_event

__all__ = [
    "DEFAULT_CONTEXT_MAP",
    "RISK_LEVELS",
    "Analyser",
    "ContextEngine",
    "ContextOverride",
    "ContextResult",
]

DEFAULT_CONTEXT_MAP: Mapping[str, str] = {
    "service_overload": "resource_pressure",
    "memory_leak": "resource_pressure",
    "anomaly_detected": "anomaly_signal",
    "timeout": "latency_issue",
    "auth_failure": "security_signal",
    "recovery_needed": "self_healing",
    "degraded_service": "service_degradation",
}

# pressure weights, summed in this order (float addition is not associative)
W_SEVERITY, W_CPU, W_MEMORY, W_ERRORS, W_LATENCY = 0.35, 0.20, 0.20, 0.15, 0.10
LATENCY_SCALE_MS = 5000.0
RISK_THRESHOLDS = ((0.85, "critical"), (0.60, "high"), (0.35, "medium"))
STABILITY_THRESHOLDS = ((0.85, "critical"), (0.65, "low"), (0.40, "degraded"))


class ContextResult(msgspec.Struct, frozen=True, kw_only=True):
    """An event's context label and how much pressure it shows."""

    context: str
    risk: str
    stability: str
    pressure: float
    tags: tuple[str, ...] = ()


class ContextOverride(msgspec.Struct, frozen=True, kw_only=True):
    """What a context analyser says an event means: its context, and optionally its risk.

    `risk` (low, medium, high, critical) replaces the one the pressure gives; `tags`
    are added to the event's own.
    """

    context: str
    risk: str | None = None
    tags: tuple[str, ...] = ()


Analyser = Callable[[Event], "ContextOverride | None"]
"""A context analyser: a pure, deterministic function of the event; None passes it on."""


class ContextEngine:
    """Classify events: a pure function of the event and the context map."""

    __slots__ = ("_analysers", "_map")

    def __init__(
        self,
        context_map: Mapping[str, str] | None = None,
        analysers: Sequence[tuple[str, Analyser]] = (),
    ) -> None:
        merged = dict(DEFAULT_CONTEXT_MAP)
        merged.update(context_map or {})
        self._map = merged
        self._analysers = tuple(analysers)
        """Plugins' analysers, asked in order before the built-in map."""

    def __repr__(self) -> str:
        return f"ContextEngine(contexts={len(self._map)})"

    @property
    def context_map(self) -> dict[str, str]:
        """The event type -> context label map in force (defaults plus custom)."""
        return dict(self._map)

    def analyze(self, event: Event | Mapping[str, Any]) -> ContextResult:
        """Return the context, risk, stability, pressure and tags of one event (validated first)."""
        return self.classify(parse_event(event))

    def classify(self, ev: Event) -> ContextResult:
        """Return the context of an event already validated (the pipeline's path: no re-parse).

        Each plugin analyser is asked in turn; the first valid answer wins. An analyser
        that raises or answers anything but a well-formed ContextOverride is passed
        over, the same way every time, so replay passes it over too; the built-in map
        (event type to context, risk from the pressure) answers last.
        """
        pressure = pressure_of(ev)
        tags = tags_of(ev)
        said = None
        for _, analyse in self._analysers:
            said = _ask(analyse, ev)
            if said is not None:
                break
        if said is None:
            said = self.builtin(ev)  # the first analyser of all: it always answers
        extra = tuple(t for t in said.tags if t not in tags) if said.tags else ()
        return ContextResult(
            context=said.context,
            risk=said.risk or risk_of(pressure),
            stability=stability_of(pressure),
            pressure=round(pressure, 4),
            tags=tags + extra if extra else tags,
        )

    def builtin(self, ev: Event) -> ContextOverride:
        """The built-in analyser: the event type's context from the map (risk from pressure)."""
        context = self._map.get(ev.type)
        return ContextOverride(context=f"unknown_{ev.type}" if context is None else context)


_copy_out = msgspec.msgpack.Encoder().encode
_copy_in = msgspec.msgpack.Decoder(Event).decode


def _ask(analyse: Analyser, ev: Event) -> ContextOverride | None:
    """An analyser's answer if it is well formed; None if it passes, raises or says nonsense.

    It is handed a copy of the event of its own: one that changes what it is given (its
    attributes are a dict) changes neither the event journaled and handed to handlers,
    nor what the next analyser sees.
    """
    try:
        said = analyse(_copy_in(_copy_out(ev)))
    except Exception:  # a broken plugin never stops a decision: the next analyser answers
        return None
    if not isinstance(said, ContextOverride):
        return None
    if not _label(said.context):
        return None
    if said.risk is not None and said.risk not in RISK_LEVELS:
        return None
    if not isinstance(said.tags, tuple) or not all(_label(t) for t in said.tags):
        return None
    return said


def _label(text: object) -> bool:
    """Whether an analyser's context or tag can be journaled and shown: 1 to 64 printable
    characters (a NUL, a line break or a lone surrogate is not printable)."""
    return isinstance(text, str) and 0 < len(text) <= 64 and text.isprintable()


def pressure_of(ev: Event) -> float:
    """Weigh the event's signals into one number in [0, 1]."""
    total = W_SEVERITY * ev.severity
    total += W_CPU * (ev.cpu / 100.0)
    total += W_MEMORY * (ev.memory / 100.0)
    total += W_ERRORS * ev.error_rate
    total += W_LATENCY * min(ev.latency_ms / LATENCY_SCALE_MS, 1.0)
    return min(total, 1.0)


def risk_of(pressure: float) -> str:
    """Classify on the pressure rounded to two places (0.349 counts as medium).

    `round(pressure, 2) >= threshold` is computed as `pressure >= least`, where `least`
    is the least float that rounds to the threshold or above (_RISK_BOUNDS): rounding is
    monotonic, so the two agree on every float, and a compare costs a fraction of the
    correctly rounded `round`.
    """
    for least, label in _RISK_BOUNDS:
        if pressure >= least:
            return label
    return "low"


def _least_rounding_to(threshold: float, places: int) -> float:
    """The least float x with round(x, places) >= threshold (a positive threshold).

    A bisection over the floats between threshold - 10**-places (which rounds below it)
    and the threshold itself: positive floats are ordered like their bit patterns.
    """

    def bits(x: float) -> int:
        return int(struct.unpack("<q", struct.pack("<d", x))[0])

    def value(b: int) -> float:
        return float(struct.unpack("<d", struct.pack("<q", b))[0])

    below, at = bits(threshold - 10.0**-places), bits(threshold)
    assert round(value(below), places) < threshold <= round(value(at), places)
    while at - below > 1:
        middle = (below + at) // 2
        if round(value(middle), places) >= threshold:
            at = middle
        else:
            below = middle
    return value(at)


_RISK_BOUNDS = tuple((_least_rounding_to(t, 2), label) for t, label in RISK_THRESHOLDS)


def stability_of(pressure: float) -> str:
    """Classify how stable the system looks under this pressure."""
    for threshold, label in STABILITY_THRESHOLDS:
        if pressure >= threshold:
            return label
    return "stable"


def tags_of(ev: Event) -> tuple[str, ...]:
    """Name the signals that stand out, in a fixed order."""
    tags: list[str] = []
    for name, percent in (("cpu", ev.cpu), ("memory", ev.memory)):
        if percent >= 90:
            tags.append(f"{name}_critical")
        elif percent >= 75:
            tags.append(f"{name}_high")
    if ev.error_rate >= 0.5:
        tags.append("error_spike")
    if ev.latency_ms >= 2000:
        tags.append("latency_high")
    if ev.severity >= 0.8:
        tags.append("severe")
    return tuple(tags)
