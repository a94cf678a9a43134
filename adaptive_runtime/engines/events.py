"""Turn a caller's dict into a validated, bounded Event, or say exactly what is wrong."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .._checks import MAX_EVENT_BYTES, check_stored_name, check_text
from ..errors import EventTooLargeError, InvalidEventError
from ..records import Event

__all__ = [
    "AGENT_FIELD",
    "LIMITS",
    "MAX_EVENT_BYTES",
    "REDACTED",
    "TARGET_FIELDS",
    "approval_key",
    "check_values",
    "dead_letter_key",
    "event_list",
    "fingerprint_of",
    "outcome_id",
    "outcome_key",
    "parse_event",
    "repeats",
    "severity",
    "target_of",
]

# field -> (maximum; larger values are clamped to it). Negative values are refused.
LIMITS: dict[str, float] = {
    "severity": 1.0,
    "cpu": 100.0,
    "memory": 100.0,
    "error_rate": 1.0,
    "latency_ms": 3_600_000.0,
}
MAX_TYPE_LENGTH = 64
MAX_ID_LENGTH = 128
MAX_KEY_LENGTH = 64
MAX_STRING_LENGTH = 4096
MAX_ATTRIBUTES = 64
MAX_DEPTH = 4
MAX_ITEMS = 256
REDACTED = "[redacted]"
MAX_INT = 2**53  # beyond this an int no longer survives a float round trip
RESERVED = frozenset({"type", "id", "extra", *LIMITS})
AGENT_FIELD = "agent_id"
"""The event field that names the agent an event is for: `Host.process` routes by it."""
TARGET_FIELDS = ("target", "instance", "service")
"""The event attributes that name what an action acts on, first found wins (silences and
cooldowns key on the agent and this)."""
"""Names an Event's attributes may not use: they are its fields (or reserved)."""


class _Budget:
    """What is left of an event's size bound; every key and value spends from it."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, size: int, field: str) -> None:
        self.left -= size
        if self.left < 0:
            msg = (
                f"the event is larger than {self.limit:,} bytes once encoded (the bound was "
                f"passed at {field!r}); send less, or raise max_event_bytes"
            )
            raise EventTooLargeError(msg, field=field)


def event_list(events: object) -> Sequence[Any]:
    """The events of a batch, as given: a list (any sequence) of events. A bare string, a
    single event or None is refused whole, for a string was taken letter by letter."""
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Sequence):
        msg = f"a batch is a list of events, not {type(events).__name__}"
        raise InvalidEventError(msg, field="events")
    return events


def parse_event(
    raw: object, *, redact: frozenset[str] = frozenset(), max_bytes: int = MAX_EVENT_BYTES
) -> Event:
    """Validate an event dict and return it as an Event.

    `type` is required. The numeric fields must be finite and not negative; values
    above LIMITS are clamped to it (cpu=400 counts as 100). Any other key is kept as
    an attribute: strings, numbers, booleans, None, and lists or dicts of them up to
    MAX_DEPTH deep. The value of any attribute whose name (at any depth, in lower
    case) is in `redact` becomes "[redacted]" before it is looked at, so it never
    reaches the journal, a log line or an error message.

    The whole event is bounded too: its encoded size may not pass `max_bytes`, counted
    as it is read, so an oversized event is refused before anything large is built.
    An Event built by hand is checked exactly like a dict.
    """
    if isinstance(raw, Event):
        raw = _fields_of(raw)
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the ABC check costs more
        msg = f"an event must be a dict, not {type(raw).__name__}"
        raise InvalidEventError(msg)
    event_type = _event_type(raw.get("type"))
    budget = _Budget(max_bytes)
    numbers: dict[str, float] = {}
    event_id: str | None = None
    attrs: dict[str, Any] = {}
    for key, value in raw.items():  # one pass: this runs for every event
        if type(key) is not str and not isinstance(key, str):
            msg = f"event keys must be strings; found the key {_describe(key)}"
            raise InvalidEventError(msg, field=repr(key))
        if key in LIMITS:
            numbers[key] = _number(key, value)
            continue
        if key == "type":
            continue
        if key == "id":
            event_id = _event_id(value)
            continue
        if key == "extra":
            msg = "the field name 'extra' is reserved; rename it (for example to 'details')"
            raise InvalidEventError(msg, field="extra")
        if len(attrs) >= MAX_ATTRIBUTES:
            msg = f"an event may carry at most {MAX_ATTRIBUTES} extra attributes"
            raise InvalidEventError(msg, field=key)
        check_text(key, key, MAX_KEY_LENGTH)
        budget.spend(len(key) + 2, key)
        attrs[key] = (
            REDACTED
            if redact and key.lower() in redact
            else _attribute(key, value, 1, redact, budget)
        )
    return Event(type=event_type, id=event_id, attrs=attrs, **numbers)


def repeats(sent: Event, journaled: Event) -> bool:
    """Whether an event sent again under its id repeats the one journaled under it: equal,
    but for values either side holds redacted. A host of other `sensitive_fields` (another
    server of the journal, or this one restarted with a new list) journaled it, or reads
    it now; a retry is the same event either way."""
    if sent == journaled:
        return True
    if msgspec.structs.replace(sent, attrs={}) != msgspec.structs.replace(journaled, attrs={}):
        return False
    return _alike(sent.attrs, journaled.attrs)


def _alike(a: Any, b: Any) -> bool:
    if a == REDACTED or b == REDACTED:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_alike(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_alike(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _fields_of(event: Event) -> dict[str, Any]:
    """An Event built by hand, as the dict a caller would send, for the same checks."""
    attrs: object = event.attrs
    if not isinstance(attrs, Mapping):
        msg = f"an Event's attrs must be a dict, not {_describe(attrs)}"
        raise InvalidEventError(msg, field="attrs")
    clash = sorted(str(key) for key in attrs if key in RESERVED)
    if clash:
        msg = f"an Event's attrs may not use the names of its fields: {', '.join(clash)}"
        raise InvalidEventError(msg, field=clash[0])
    return event.as_dict()


def severity(value: object) -> float:
    """Validate one severity, as parse_event does for the field."""
    return _number("severity", value)


def check_values(
    values: object, *, what: str = "state", max_bytes: int = MAX_EVENT_BYTES
) -> dict[str, Any]:
    """Validate a dict of values with the bounds that event attributes have."""
    if not isinstance(values, Mapping):
        msg = f"{what} must be a dict, not {type(values).__name__}"
        raise InvalidEventError(msg)
    if len(values) > MAX_ITEMS:
        msg = f"{what} holds {len(values)} keys; at most {MAX_ITEMS} are allowed"
        raise InvalidEventError(msg)
    budget = _Budget(max_bytes)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            msg = f"{what} keys must be strings; found the key {_describe(key)}"
            raise InvalidEventError(msg, field=repr(key))
        check_text(key, key, MAX_KEY_LENGTH)
        budget.spend(len(key) + 2, key)
        out[key] = _attribute(key, value, 1, frozenset(), budget)
    return out


def _event_type(value: object) -> str:
    if value is None:
        raise InvalidEventError("an event needs a 'type', e.g. 'service_overload'", field="type")
    if type(value) is str:
        return _text_type(value)  # cached: a handful of types make up nearly every event
    if not isinstance(value, str):
        msg = f"'type' must be a non-empty string, not {_describe(value)}"
        raise InvalidEventError(msg, field="type")
    return _text_type(str(value))


@functools.lru_cache(maxsize=512)
def _text_type(value: str) -> str:
    if not value.strip():
        msg = f"'type' must be a non-empty string, not {_describe(value)}"
        raise InvalidEventError(msg, field="type")
    check_text("type", value, MAX_TYPE_LENGTH)
    # isprintable() is False for every whitespace character except the ASCII space
    if not value.isprintable() or " " in value:
        msg = f"'type' must be printable with no spaces (use '_'), got {value!r}"
        raise InvalidEventError(msg, field="type")
    return value


def _event_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        msg = f"'id' must be a non-empty string, not {_describe(value)}"
        raise InvalidEventError(msg, field="id")
    check_stored_name("id", value, MAX_ID_LENGTH)
    if value.startswith(RESERVED_ID_PREFIXES):
        prefix = next(p for p in RESERVED_ID_PREFIXES if value.startswith(p))
        msg = (
            f"event ids starting with {prefix!r} are the journal's own (it keys outcomes and"
            f" operators' answers so); got {value!r}: give the event another id"
        )
        raise InvalidEventError(msg, field="id")
    return value


OUTCOME_KEY_PREFIX = "outcome:"
"""Where an outcome's id goes in the journal's event-id column, apart from events' ids."""

APPROVAL_KEY_PREFIX = "approval:"
"""Where the answer to an approval request goes in the event-id column (see approval_key)."""

DEAD_LETTER_KEY_PREFIX = "dead-letter:"
"""Where a retry or a dismissal of a dead letter goes in it (see dead_letter_key)."""

RESERVED_ID_PREFIXES = (OUTCOME_KEY_PREFIX, APPROVAL_KEY_PREFIX, DEAD_LETTER_KEY_PREFIX)
"""Prefixes an event's own id may not take: an event with the id `outcome:x` would make
the outcome with id `x` a duplicate of it."""


def approval_key(decision_seq: int) -> str:
    """The journal's event id for the answer to the approval request of the decision at
    `decision_seq`: one answer per request, however many people send one at once."""
    return f"{APPROVAL_KEY_PREFIX}{decision_seq}"


def dead_letter_key(abandoned_seq: int) -> str:
    """The journal's event id for the retry or dismissal of the dead letter its
    abandonment at `abandoned_seq` made: one of them per abandonment (an action
    abandoned again after a retry is a new dead letter, with a key of its own)."""
    return f"{DEAD_LETTER_KEY_PREFIX}{abandoned_seq}"


def outcome_key(outcome_id: object) -> str:
    """The journal's event id for an outcome recorded under `outcome_id` (checked as an
    event's id is), so that the outcome is journaled once, however often it is sent."""
    if not isinstance(outcome_id, str) or not outcome_id:
        msg = f"an outcome's id must be a non-empty string, not {_describe(outcome_id)}"
        raise InvalidEventError(msg, field="id")
    check_stored_name("id", outcome_id, MAX_ID_LENGTH)
    return OUTCOME_KEY_PREFIX + outcome_id


def outcome_id(key: str | None) -> str | None:
    """The id an outcome was recorded under, from its entry's event id (None: no id)."""
    if key is None or not key.startswith(OUTCOME_KEY_PREFIX):
        return None
    return key[len(OUTCOME_KEY_PREFIX) :]


def _number(name: str, value: object) -> float:
    if type(value) is float and 0.0 <= value <= LIMITS[name]:
        return value  # the common case: a plain float already in range (NaN fails the test)
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{name!r} must be a number, not {_describe(value)}"
        raise InvalidEventError(msg, field=name)
    if isinstance(value, int) and abs(value) > MAX_INT:
        msg = f"{name!r} is far out of range (an integer of {value.bit_length()} bits)"
        raise InvalidEventError(msg, field=name)
    number = float(value)
    if not math.isfinite(number):
        msg = f"{name!r} must be finite, not {number}"
        raise InvalidEventError(msg, field=name)
    if number < 0:
        msg = f"{name!r} must not be negative, got {number}"
        raise InvalidEventError(msg, field=name)
    return min(number, LIMITS[name])


def _attribute(
    path: str, value: object, depth: int, redact: frozenset[str], budget: _Budget
) -> Any:
    if value is None or isinstance(value, bool):
        budget.spend(1, path)
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            msg = f"attribute {path!r} is an integer of {value.bit_length()} bits; send it as a string"
            raise InvalidEventError(msg, field=path)
        budget.spend(9, path)
        return int(value)  # an int subclass (an IntEnum...) is stored as the plain int
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"attribute {path!r} must be finite, not {value}"
            raise InvalidEventError(msg, field=path)
        budget.spend(9, path)
        return float(value)
    if isinstance(value, str):
        check_text(path, value, MAX_STRING_LENGTH)
        budget.spend((len(value) if value.isascii() else len(value.encode())) + 5, path)
        return str(value)
    if isinstance(value, list | tuple | Mapping):
        if depth >= MAX_DEPTH:
            msg = f"attribute {path!r} is nested more than {MAX_DEPTH} levels deep"
            raise InvalidEventError(msg, field=path)
        if len(value) > MAX_ITEMS:
            msg = f"attribute {path!r} holds {len(value)} items; at most {MAX_ITEMS} are allowed"
            raise InvalidEventError(msg, field=path)
        budget.spend(5, path)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    msg = f"attribute {path!r} has a non-string key {_describe(key)}"
                    raise InvalidEventError(msg, field=path)
                check_text(f"{path}.{key}", key, MAX_KEY_LENGTH)
                budget.spend(len(key) + 2, f"{path}.{key}")
                if redact and key.lower() in redact:
                    out[key] = REDACTED
                else:
                    out[key] = _attribute(f"{path}.{key}", item, depth + 1, redact, budget)
            return out
        return [
            _attribute(f"{path}[{i}]", item, depth + 1, redact, budget)
            for i, item in enumerate(value)
        ]
    msg = f"attribute {path!r} has unsupported type {type(value).__name__}"
    raise InvalidEventError(msg, field=path)


def _describe(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"int of {value.bit_length()} bits"
    text = repr(value[:40] if isinstance(value, str | bytes) else value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def target_of(attrs: Mapping[str, Any]) -> str | None:
    """An event's target: its `target` attribute, else `instance`, else `service` (strings)."""
    for name in TARGET_FIELDS:
        value = attrs.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def fingerprint_of(attrs: Mapping[str, Any]) -> str | None:
    """An event's fingerprint: its `fingerprint` attribute, if a non-empty string (repeats of
    one within the fleet policy's dedup_window are decided once)."""
    value = attrs.get("fingerprint")
    return value if isinstance(value, str) and value else None
