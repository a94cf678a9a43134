"""Sensitive event fields never reach the journal, the logs, the bus or an error message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adaptive_runtime import InvalidEventError, ManualClock, Runtime
from adaptive_runtime.engines import parse_event

SECRET = "hunter2-s3cr3t"


async def test_sensitive_fields_are_redacted_everywhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A password at the top level or nested is stored, logged and published as [redacted]."""
    seen: list[dict[str, object]] = []
    runtime = Runtime(
        agent_id="a",
        path=tmp_path / "j.db",
        clock=ManualClock(),
        durability="normal",
        sensitive_fields=["Password", "token"],
    )
    runtime.bus.subscribe_all(seen.append)
    with caplog.at_level(logging.DEBUG, logger="adaptive_runtime"):
        async with runtime:
            await runtime.process(
                {
                    "type": "auth_failure",
                    "severity": 0.5,
                    "password": SECRET,
                    "ctx": {"TOKEN": SECRET, "user": "bob"},
                }
            )
            history = await runtime.event_history(limit=1)
            await runtime.bus.drain()
    beside = [p for p in tmp_path.glob("j.db*") if p.is_file()]  # the -wal, the key...
    beside += list(tmp_path.glob("j.db.agents/*"))  # and the claims' lock files
    raw = b"".join(path.read_bytes() for path in beside)
    assert SECRET.encode() not in raw
    assert SECRET not in caplog.text
    assert {k: history[0]["event"][k] for k in ("password", "ctx")} == {
        "password": "[redacted]",
        "ctx": {"TOKEN": "[redacted]", "user": "bob"},
    }
    assert "[redacted]" == seen[0]["password"]


def test_redacted_values_never_appear_in_errors() -> None:
    """A sensitive value that would be invalid is redacted before validation, so no error quotes it."""
    event = parse_event(
        {"type": "x", "token": float("nan"), "api": {"token": SECRET * 1000}},
        redact=frozenset({"token"}),
    )
    assert "[redacted]" == event.attrs["token"] == event.attrs["api"]["token"]
    with pytest.raises(InvalidEventError) as caught:
        parse_event({"type": 5, "token": SECRET}, redact=frozenset({"token"}))
    assert SECRET not in str(caught.value)


def test_an_event_struct_is_redacted_too() -> None:
    """An Event passed in directly gets the same redaction as a dict."""
    from adaptive_runtime import Event

    event = parse_event(Event(type="x", attrs={"token": SECRET}), redact=frozenset({"token"}))
    assert "[redacted]" == event.attrs["token"]
