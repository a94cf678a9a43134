"""Plain-text helpers for the command line: tables, times, durations, and output that a
terminal shows rather than acts on."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

__all__ = ["TerminalSafe", "format_ts", "is_age", "parse_time", "seq_or_time", "shown", "table"]

MAX_TS_NS = 2**63 - 1
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def format_ts(ts_ns: int) -> str:
    """Show a journal time in local time, to the second it falls in (never the next one)."""
    return datetime.fromtimestamp(ts_ns // 10**9).strftime("%Y-%m-%d %H:%M:%S")


def is_age(text: str) -> bool:
    """Whether parse_time reads this text as an age (30m, 18h, 2d): a time that long ago."""
    return _AGO.match(text.strip()) is not None


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """Read a time as nanoseconds: ISO 8601 (local if no zone), Unix seconds, or an age like 18h.

    A time is read exactly, to its last digit (1764126000.123456789 is ...123456789 ns):
    through a float it would be off by up to a few hundred nanoseconds, enough to leave
    out, or take in, an entry journaled at the very time given.
    """
    value = text.strip()
    msg = f"can't read {text!r} as a time: use ISO 8601 (2026-11-26T08:00), Unix seconds, or an age (30m, 18h, 2d)"
    ago = _AGO.match(value)
    try:
        if ago:
            now = time.time_ns() if now_ns is None else now_ns
            ns = now - int(float(ago.group(1)) * _UNITS[ago.group(2)] * 1e9)
        else:
            try:
                seconds = Decimal(value)
            except InvalidOperation:
                ns = _iso_ns(datetime.fromisoformat(value))
            else:
                if not seconds.is_finite():
                    raise ValueError(msg)
                # in range before int(): 1e999999999 would be an integer of a billion digits
                in_range = seconds.copy_abs() <= _MAX_SECONDS
                ns = int(seconds * 10**9) if in_range else MAX_TS_NS + 1
    except (ValueError, OverflowError):
        raise ValueError(msg) from None
    if not -MAX_TS_NS <= ns <= MAX_TS_NS:
        msg = f"{text!r} is out of range: a time must fall between the years 1677 and 2262"
        raise ValueError(msg)
    return ns


_MAX_SECONDS = Decimal(MAX_TS_NS).scaleb(-9)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, in whole microseconds (a datetime's precision)."""
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as datetime.timestamp() takes it
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


SEQ_BELOW = 10**12
"""An integer `--at` below this is a seq; from it on, Unix seconds (2001-09-09 and after)."""


def seq_or_time(text: str, *, now_ns: int | None = None) -> dict[str, int]:
    """Read `state --at` (and the HTTP API's `at`): a seq, or a time as parse_time reads it.

    As keyword arguments for state_at: {"seq": n} or {"ts_ns": n}. Only ASCII digits make
    a seq: str.isdigit() also takes '²', which int() refuses.
    """
    value = text.strip()
    if value.isascii() and value.isdigit() and int(value) < SEQ_BELOW:
        return {"seq": int(value)}
    return {"ts_ns": parse_time(value, now_ns=now_ns)}


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Lay rows out in columns under their headers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else shown(str(value))


def shown(text: str) -> str:
    """A journaled string as one line of text: each character that is not printable (a line
    break, a tab, the ESC of an escape sequence, a zero-width or bidi control) as its
    Python escape, so that an event's text can neither add lines nor drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


_ACTED_ON = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What a terminal acts on rather than shows: C0 controls but the line break and the tab,
DEL, C1 controls, and the bidi controls that reorder a line."""


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TerminalSafe:
    """A text stream that writes what a terminal would act on as `\\uXXXX` escapes.

    The command line writes through it, so that no journaled string (an event's field,
    an agent id) reaches the terminal as a control sequence, from any of its print calls. The escapes are JSON's own, so JSON output means the same.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        safe = _ACTED_ON.sub(_escaped, text)
        try:
            self.stream.write(safe)
        except UnicodeEncodeError:
            # a stream that can't hold a character (PYTHONIOENCODING=ascii): written as its
            # escape, not the command failed part way through its output
            encoding = getattr(self.stream, "encoding", None) or "ascii"
            self.stream.write("".join(_encodable(c, encoding) for c in safe))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding...
        return getattr(self.stream, name)


def _encodable(char: str, encoding: str) -> str:
    """`char`, or its JSON escape where `encoding` can't hold it (a surrogate pair past
    U+FFFF), so that JSON output still means the same."""
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        code = ord(char)
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return char
