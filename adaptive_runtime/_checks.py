"""Bounds on what users send, and the checks on text that the engines and the journal both make."""

from __future__ import annotations

from .errors import InvalidEventError

__all__ = ["MAX_EVENT_BYTES", "MAX_LABEL_LENGTH", "check_text"]

MAX_EVENT_BYTES = 1024 * 1024
"""A host's default bound on one event's encoded size (its `max_event_bytes`): counted
while the event is validated, before it is built."""

MAX_LABEL_LENGTH = 256
"""The longest label a record may carry: an action, a reason, a rule's context..."""


def check_text(field: str, value: str, limit: int) -> None:
    """Refuse text longer than `limit`, or that is not valid UTF-8 (a lone surrogate)."""
    if len(value) > limit:
        msg = f"{field!r} is {len(value)} characters long; at most {limit} are allowed"
        raise InvalidEventError(msg, field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{field!r} is not valid UTF-8 text (it holds a lone surrogate)"
        raise InvalidEventError(msg, field=field) from None
