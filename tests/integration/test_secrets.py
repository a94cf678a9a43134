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


async def test_a_retry_is_the_same_event_whichever_fields_a_host_redacts(tmp_path: Path) -> None:
    """An event journaled by a host that redacts `token` is sent again, under its id, to a
    host that redacts nothing (another server of the journal, or this one restarted with
    another list), and the other way round: each retry is answered with the journaled
    decision, as on the first host, instead of a DuplicateEventError about "a different
    body". A retry that differs anywhere else is still refused."""
    from adaptive_runtime import DuplicateEventError, Host

    path = tmp_path / "j.db"
    sent = {"id": "e-1", "type": "auth_failure", "severity": 0.5, "agent_id": "api"}
    nested = {**sent, "id": "e-2", "request": {"token": "s3cret", "path": "/login"}}
    async with Host(path, durability="normal", sensitive_fields=["token"]) as redacting:
        first = await redacting.process({**sent, "token": "s3cret"})
        second = await redacting.process(nested)
    async with Host(path, durability="normal") as plain:
        again = await plain.process({**sent, "token": "s3cret"})
        nested_again = await plain.process(nested)
        clear = await plain.process({**sent, "id": "e-3", "token": "in clear"})
        with pytest.raises(DuplicateEventError, match="with a different body"):
            await plain.process({**sent, "token": "s3cret", "severity": 0.9})
    async with Host(path, durability="normal", sensitive_fields=["token"]) as redacting:
        clear_again = await redacting.process({**sent, "id": "e-3", "token": "in clear"})
        head = redacting.journal.head().seq
    assert (first.seq, second.seq, clear.seq) == (again.seq, nested_again.seq, clear_again.seq)
    assert 6 == head  # three events, each journaled once, beside its decision
