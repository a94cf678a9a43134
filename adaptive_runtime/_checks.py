"""Bounds on what users send, and the checks on text that the engines and the journal both make."""

from __future__ import annotations

from .errors import ConfigurationError, InvalidEventError

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_LABEL_LENGTH",
    "check_stored_name",
    "check_text",
    "storable",
]

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


def check_stored_name(field: str, value: str, limit: int) -> None:
    """check_text, and no NUL character: for a name the journal keeps in a column of its
    own (an agent's stream, a record's kind, an event or outcome id, a host's name).

    PostgreSQL's text cannot hold a NUL, so such a name would be taken on SQLite and
    refused by the server on PostgreSQL (and a SQLite journal holding it could not be
    imported there): it is refused on both, before anything is journaled.
    """
    check_text(field, value, limit)
    if "\x00" in value:
        msg = f"{field!r} holds a NUL character (\\x00): no journal takes one (PostgreSQL can't store it)"
        raise InvalidEventError(msg, field=field)


def check_functions(**given: object) -> None:
    """Each of these settings is a function, or None: a value of another kind failed only
    when it was first called (after the retries of a call it was meant to handle)."""
    for what, function in given.items():
        if function is not None and not callable(function):
            raise ConfigurationError(f"{what} must be a function, not {type(function).__name__}")


def storable(*names: str | None) -> bool:
    """Whether a journal could hold every one of these names (None is no name).

    A read by a name no journal can hold (a NUL in it, or a lone surrogate, as a command
    line argument in another encoding gives) finds nothing: on every backend alike, not an
    encoding error from the driver on one and a server error on the other.
    """
    for name in names:
        if name is None:
            continue
        if "\x00" in name:
            return False
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True
