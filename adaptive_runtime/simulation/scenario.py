"""A simulated fleet, as a scenario file describes it: faults, their events, and what works.

A scenario is TOML. Each `[[fault]]` has a share of the episodes (`weight`), how many
events an episode lasts (`duration`), how its events look (`[fault.event]`: a type, or
`types` with weights, and ranges for severity and the signals) and the true chance
that each action fixes it (`[fault.success]`, with `"*"` for every other action).
`[fault.severity_effect]` makes an action's chance move with the event's severity:
p + effect x (severity - 0.5). Each `[[shift]]` changes a fault's success table from
event `at` on. Names a user can give are checked, and a wrong one is named.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ..engines.decision import DEFAULT_RULES, FALLBACK
from ..engines.events import parse_event
from ..engines.reachable import UNKNOWN_PREFIX, decided_by, meant_event_type, nearest
from ..errors import ConfigurationError, InvalidEventError
from ..records import Rule

__all__ = [
    "BUILTIN",
    "Fault",
    "Scenario",
    "ScenarioError",
    "Shift",
    "load_scenario",
    "unheeded_names",
]

BUILTIN = ("stationary", "shift", "severity-informative", "severity-misleading")
"""The scenario families shipped with the package, by name."""

SIGNALS = ("severity", "cpu", "memory", "error_rate", "latency_ms")


class ScenarioError(ConfigurationError):
    """A scenario file is missing, malformed, or names something that does not exist."""


class EventShape(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one fault's events look: their types and the range of each signal."""

    type: str | None = None
    types: dict[str, float] = {}
    severity: tuple[float, float] = (0.5, 0.5)
    cpu: tuple[float, float] = (0.0, 0.0)
    memory: tuple[float, float] = (0.0, 0.0)
    error_rate: tuple[float, float] = (0.0, 0.0)
    latency_ms: tuple[float, float] = (0.0, 0.0)


class Fault(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A hidden fault of a service: what its events look like and what fixes it."""

    name: str
    event: EventShape
    success: dict[str, float]
    weight: float = 1.0
    duration: tuple[int, int] = (1, 1)
    severity_effect: dict[str, float] = {}


class Shift(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """From event `at` on, these actions fix `fault` with these chances instead."""

    at: int
    fault: str
    success: dict[str, float]


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    fault: tuple[Fault, ...] = ()  # none is refused by _check, with the fix in its message
    description: str = ""
    events: int = 3000
    agents: int = 1
    shift: tuple[Shift, ...] = ()

    def fault_named(self, name: str) -> Fault:
        for fault in self.fault:
            if fault.name == name:
                return fault
        raise KeyError(name)


def load_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """Read a shipped scenario by name (see BUILTIN) or a scenario file by path."""
    text, where = _text_of(name_or_path)
    try:
        data: Any = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        why = "nested too deeply to read" if isinstance(exc, RecursionError) else exc
        raise ScenarioError(f"{where} is not valid TOML: {why}") from None
    try:
        scenario = msgspec.convert(data, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    _check(scenario, where)
    return scenario


def _text_of(name_or_path: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        file = resources.files(__package__) / "scenarios" / f"{name_or_path}.toml"
        return file.read_text(encoding="utf-8"), f"scenario {name_or_path!r}"
    path = Path(name_or_path)
    try:
        return path.read_text(encoding="utf-8-sig"), str(path)  # a BOM from an editor is not TOML
    except FileNotFoundError:
        msg = f"no scenario file {path}; give a path, or one of: {', '.join(BUILTIN)}"
        raise ScenarioError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"can't read {path}: {exc}") from None


def unheeded_names(scenario: Scenario, rules: Sequence[Rule] = ()) -> list[str]:
    """A note for each name in the scenario that is likely a typo, in the file's order.

    An action in a success, severity_effect or shift table that neither the built-in nor
    these custom rules decide is never chosen; in a success table its chance still counts
    in the "regret: any action" figure. An event type close to a built-in one
    is given the context unknown_<type>. Neither is refused: a scenario may well name an
    action only some other rules decide, or an event type of its own.
    """
    decided = decided_by((*DEFAULT_RULES, *rules, FALLBACK))
    out: list[str] = []

    def actions_in(table: dict[str, float], where: str, consequence: str) -> None:
        for action in table:
            if action != "*" and action not in decided:
                meant = nearest(action, decided)
                out.append(
                    f"{where} names {action!r}, which no rule decides: {consequence}"
                    + (f" (did you mean {meant!r}?)" if meant is not None else "")
                )

    counted = 'it is never chosen, yet its chance counts in "regret: any action"'

    for f in scenario.fault:
        for event_type in [f.event.type] if f.event.type is not None else list(f.event.types):
            meant = meant_event_type(event_type)
            if meant is not None:
                out.append(
                    f"fault {f.name!r}: the event type {event_type!r} is not one the built-in"
                    f" map knows, so its events get the context {UNKNOWN_PREFIX}{event_type}"
                    f" (did you mean {meant!r}?)"
                )
        actions_in(f.success, f"fault {f.name!r}: success", counted)
        where_effect = f"fault {f.name!r}: severity_effect"
        actions_in(
            f.severity_effect, where_effect, "it is never chosen, so the effect never applies"
        )
    for shift in scenario.shift:
        actions_in(shift.success, f"the shift at {shift.at}: success", counted)
    return out


def _check(s: Scenario, where: str) -> None:
    def bad(why: str) -> ScenarioError:
        return ScenarioError(f"{where}: {why}")

    if not s.fault:
        raise bad("a scenario needs at least one [[fault]]")
    if not 1 <= s.events <= 1_000_000:
        raise bad(f"events must be from 1 to 1000000, not {s.events}")
    if not 1 <= s.agents <= 1000:
        raise bad(f"agents must be from 1 to 1000, not {s.agents}")
    names = [f.name for f in s.fault]
    if not math.isfinite(sum(f.weight for f in s.fault if 0 < f.weight < math.inf)):
        raise bad("the faults' weights add up past what a float holds; use smaller ones")
    if len(set(names)) != len(names):
        raise bad(f"two faults share a name: {names}")
    for f in s.fault:
        where_f = f"fault {f.name!r}"
        if not 0 < f.weight < math.inf:
            raise bad(f"{where_f}: weight must be a finite number above 0, not {f.weight}")
        low, high = f.duration
        if not 1 <= low <= high:
            raise bad(f"{where_f}: duration must be [low, high] with 1 <= low <= high")
        if (f.event.type is None) == (not f.event.types):
            msg = "give the event's `type`, or `types` with weights, not both"
            if f.event.type is None:
                msg = "give the event's `type`, or `types` with at least one type and its weight"
            raise bad(f"{where_f}: {msg}")
        if not all(0 < w < math.inf for w in f.event.types.values()):
            raise bad(f"{where_f}: every weight in event.types must be a finite number above 0")
        if not math.isfinite(sum(f.event.types.values())):
            raise bad(f"{where_f}: the weights in event.types add up past what a float holds")
        for event_type in [f.event.type] if f.event.type is not None else list(f.event.types):
            try:  # checked here, as the runtime checks it, not at the first event of the run
                parse_event({"type": event_type})
            except InvalidEventError as exc:
                raise bad(f"{where_f}: {exc}") from None
        for signal in SIGNALS:
            lo, hi = getattr(f.event, signal)
            top = 1.0 if signal in ("severity", "error_rate") else 100.0
            top = 600_000.0 if signal == "latency_ms" else top
            if not 0.0 <= lo <= hi <= top:
                raise bad(f"{where_f}: event.{signal} must be [low, high] within 0..{top:g}")
        _check_chances(f.success, f"{where_f}: success", bad)
        if "*" not in f.success:
            raise bad(f'{where_f}: success needs "*", the chance of any action not named')
    for shift in s.shift:
        if shift.fault not in names:
            raise bad(f"a shift names fault {shift.fault!r}; the faults are {', '.join(names)}")
        if not 0 <= shift.at < s.events:
            raise bad(f"a shift's `at` must be an event index below {s.events}, not {shift.at}")
        _check_chances(shift.success, f"shift at {shift.at}: success", bad)


def _check_chances(table: dict[str, float], where: str, bad: Any) -> None:
    for action, p in table.items():
        if isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise bad(f"{where}.{action} must be a chance from 0 to 1, not {p!r}")
