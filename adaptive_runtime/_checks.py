"""Checks on user-supplied text that the engines and the journal both make."""

from __future__ import annotations

from .errors import InvalidEventError

__all__ = ["check_text"]


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
