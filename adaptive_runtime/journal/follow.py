"""Follow a journal: every entry as it commits, once each, in seq order, with no gap.

PostgreSQL announces each commit (LISTEN/NOTIFY) and the follower wakes on it; SQLite
and memory journals are polled by seq. Either way the follower reads `seq > last seen`,
and since seqs are gapless and in commit order on every backend, it can neither skip an
entry that commits late nor see one twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from .base import Entry, Journal

__all__ = ["follow"]


def follow(
    journal: Journal,
    *,
    after: int = 0,
    stream: str | None = None,
    poll: float = 0.2,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Entry]:
    """Yield entries with seq > `after` (of one stream, if given) as they commit.

    Runs until `stop()` returns true (checked between waits) or the caller stops
    iterating. `poll` is how long one wait lasts: the polling interval where the
    journal can't announce commits, and the longest `stop` goes unchecked.
    """
    wait = getattr(journal, "wait_for_commit", None)
    position = after
    while stop is None or not stop():
        for entry in journal.read(after=position):
            position = entry.seq
            if stream is None or entry.stream == stream:
                yield entry
        if wait is not None:
            wait(position, poll)
        else:
            time.sleep(poll)
