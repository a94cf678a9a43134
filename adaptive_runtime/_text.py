"""Plain-text helpers for the command line: tables, times, durations."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime

__all__ = ["format_ts", "parse_time", "table"]

MAX_TS_NS = 2**63 - 1
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def format_ts(ts_ns: int) -> str:
    """Show a journal time in local time, to the second."""
    return datetime.fromtimestamp(ts_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """Read a time as nanoseconds: ISO 8601 (local if no zone), Unix seconds, or an age like 18h."""
    value = text.strip()
    msg = f"can't read {text!r} as a time: use ISO 8601 (2026-11-26T08:00), Unix seconds, or an age (30m, 18h, 2d)"
    ago = _AGO.match(value)
    try:
        if ago:
            now = time.time_ns() if now_ns is None else now_ns
            ns = now - int(float(ago.group(1)) * _UNITS[ago.group(2)] * 1e9)
        else:
            try:
                ns = int(float(value) * 1e9)
            except ValueError:
                ns = int(datetime.fromisoformat(value).timestamp() * 1e9)
    except (ValueError, OverflowError):
        raise ValueError(msg) from None
    if not -MAX_TS_NS <= ns <= MAX_TS_NS:
        msg = f"{text!r} is out of range: a time must fall between the years 1677 and 2262"
        raise ValueError(msg)
    return ns


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
    return "-" if value is None else str(value)
