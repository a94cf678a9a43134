"""A silence as the runtime journals it: checked, and named by a hash of what it is."""

from __future__ import annotations

import hashlib

import msgspec

from .._checks import check_text
from ..errors import InvalidEventError
from ..records import SilenceMatcher, SilenceSet

__all__ = ["MAX_COMMENT", "MAX_NAME", "check_text_field", "new_silence"]

MAX_COMMENT = 1000
MAX_NAME = 256


def new_silence(
    matcher: SilenceMatcher,
    *,
    starts_ns: int,
    ends_ns: int,
    comment: str,
    by: str,
    fire_after: bool = False,
) -> SilenceSet:
    """A checked silence, its id a hash of what it is (the same silence set twice is one)."""
    if not isinstance(matcher, SilenceMatcher):
        raise InvalidEventError("matcher must be a SilenceMatcher", field="matcher")
    for name in ("agent", "target", "event_type", "context"):
        value = getattr(matcher, name)
        if value is not None:
            check_text_field(name, value, MAX_NAME)
    check_text_field("comment", comment, MAX_COMMENT)
    check_text_field("by", by, MAX_NAME)
    for name, value in (("starts", starts_ns), ("ends", ends_ns)):
        if type(value) is not int or not 0 <= value < 2**63:
            raise InvalidEventError(f"{name} must be a time in ns since the epoch", field=name)
    if ends_ns <= starts_ns:
        raise InvalidEventError("a silence must end after it starts", field="ends")
    if not isinstance(fire_after, bool):
        raise InvalidEventError("fire_after must be true or false", field="fire_after")
    named = (matcher, starts_ns, ends_ns, comment, by) + ((True,) if fire_after else ())
    silence_id = "sil-" + hashlib.blake2b(msgspec.msgpack.encode(named), digest_size=5).hexdigest()
    return SilenceSet(
        id=silence_id,
        matcher=matcher,
        starts_ns=starts_ns,
        ends_ns=ends_ns,
        comment=comment,
        by=by,
        fire_after=fire_after,
    )


def check_text_field(field: str, value: object, limit: int = MAX_NAME) -> str:
    """A non-empty, printable string of at most `limit` characters, or InvalidEventError."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"{field} must be a non-empty string", field=field)
    check_text(field, value, limit)
    if not value.isprintable():
        raise InvalidEventError(f"{field} must be printable text", field=field)
    return value
