"""Following a journal through an outage: the pauses between tries, and what is said."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal import MemoryJournal, Pending
from adaptive_runtime.journal import follow as follow_module
from adaptive_runtime.journal.follow import MAX_RETRY_WAIT, Retrying


def test_retrying_doubles_its_pause_up_to_the_cap_and_starts_over_once_answered() -> None:
    retrying = Retrying(0.5)
    assert not retrying.answered()  # no outage to end
    tries = [retrying.failed() for _ in range(5)]
    assert [(True, 0.5), (False, 1.0), (False, 2.0), (False, 2.0), (False, 2.0)] == tries
    assert 2.0 == MAX_RETRY_WAIT
    assert retrying.answered()
    assert not retrying.answered()
    assert (True, 0.5) == retrying.failed()  # a new outage, from the first pause again


class _Outage:
    """A journal whose reads fail `failures` times after the first, then work again."""

    def __init__(self, inner: MemoryJournal, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.reads = 0

    def read(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.reads += 1
        if 1 < self.reads <= 1 + self.failures:
            raise JournalUnavailableError("injected: the server is restarting")
        return self.inner.read(*args, **kwargs)


def test_follow_waits_out_an_outage_and_carries_on_after_the_last_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(follow_module, "time", SimpleNamespace(sleep=slept.append))
    inner = MemoryJournal()
    inner.append([Pending(stream="a", kind="K", ts_ns=1, body=b"1")])
    journal = _Outage(inner, failures=4)
    said: list[str | None] = []

    def on_unavailable(error: JournalUnavailableError | None) -> None:
        said.append(None if error is None else str(error))
        if error is None:  # back: what was appended meanwhile comes next
            inner.append([Pending(stream="a", kind="K", ts_ns=2, body=b"2")])

    seen = []
    for entry in follow_module.follow(
        journal,  # type: ignore[arg-type]
        poll=0.25,
        on_unavailable=on_unavailable,
    ):
        seen.append(entry.seq)
        if len(seen) == 2:
            break
    assert [1, 2] == seen
    assert ["injected: the server is restarting", None] == said  # once each way
    # a poll after the first read, then the outage's growing pauses, then polls again
    assert [0.25, 0.25, 0.5, 1.0, 2.0, 0.25] == slept[:6]
