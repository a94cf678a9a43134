"""Follow a journal: every entry as it commits, once each, in seq order, with no gap.

PostgreSQL announces each commit (LISTEN/NOTIFY) and the follower wakes on it; SQLite
and memory journals are polled by seq (a SQLite journal's wait_for_commit waits a poll,
and raises once its file was deleted or replaced). Either way the follower reads
`seq > last seen`, and since seqs are gapless and in commit order on every backend, it
can neither skip an entry that commits late nor see one twice. For the same reason it
can wait out a server that is down or restarting and carry on from where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from ..errors import JournalUnavailableError
from .base import Entry, Journal

__all__ = ["MAX_RETRY_WAIT", "Retrying", "follow"]

MAX_RETRY_WAIT = 2.0
"""The longest wait, in seconds, between two tries to reach a server that is down."""


class Retrying:
    """How a follower waits out a journal it can't reach: it tries again after `poll`
    seconds, then each time twice as late, up to MAX_RETRY_WAIT, and back to `poll`
    once the journal answers."""

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self.pause = poll
        self.down = False

    def failed(self) -> tuple[bool, float]:
        """A try failed: whether an outage began with it, and how long to wait now."""
        began, self.down = not self.down, True
        pause, self.pause = self.pause, min(self.pause * 2, MAX_RETRY_WAIT)
        return began, pause

    def answered(self) -> bool:
        """A try worked: whether an outage ended with it."""
        ended, self.down, self.pause = self.down, False, self.poll
        return ended


def follow(
    journal: Journal,
    *,
    after: int = 0,
    stream: str | None = None,
    poll: float = 0.2,
    stop: Callable[[], bool] | None = None,
    on_unavailable: Callable[[JournalUnavailableError | None], None] | None = None,
) -> Iterator[Entry]:
    """Yield entries with seq > `after` (of one stream, if given) as they commit.

    Runs until `stop()` returns true (checked between waits) or the caller stops
    iterating. `poll` is how long one wait lasts: the polling interval where the
    journal can't announce commits, and the longest `stop` goes unchecked.

    Without `on_unavailable`, a server that can't be reached raises
    JournalUnavailableError. With it, the follower waits the outage out, trying again
    every `poll` seconds and then less often (up to MAX_RETRY_WAIT), and carries on
    after the last entry it yielded: `on_unavailable(error)` is called as each outage
    begins, and `on_unavailable(None)` once the journal answers again.
    """
    wait = getattr(journal, "wait_for_commit", None)
    position = after
    retrying = Retrying(poll)
    while stop is None or not stop():
        try:
            for entry in journal.read(after=position):
                position = entry.seq
                if stream is None or entry.stream == stream:
                    yield entry
            if retrying.answered():
                assert on_unavailable is not None
                on_unavailable(None)
            if wait is not None:
                wait(position, poll)
            else:
                time.sleep(poll)
        except JournalUnavailableError as exc:
            if on_unavailable is None:
                raise
            began, pause = retrying.failed()
            if began:
                on_unavailable(exc)
            time.sleep(pause)
