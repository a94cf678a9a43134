"""Named crash points for the reliability tests: SIGKILL this process at an exact step.

Set ADAPTIVE_RUNTIME_CRASH_AT to `name` (the first time that point is reached) or
`name:N` (the N-th time). Unset, which is always the case outside the reliability
suite, a crash point costs one comparison. The points:

- process.decided       the decision is made, nothing is journaled yet
- journal.insert        rows are inserted, the transaction is not committed
- journal.committed     the commit is done, the caller has not been answered
- process.committed     process() has its entries, the caller has not been answered
- outcome.committed     record_outcome() has journaled the outcome, the caller has not
                        been answered
- snapshot.before       a snapshot is about to be written
- snapshot.written      a snapshot is written
- action.started        ActionStarted is journaled, the handler has not run
- action.ran            the handler returned, its success is not journaled
- action.failed         ActionFailed is journaled, the back-off has not begun
- checkpoint.wal        a WAL checkpoint is about to run
"""

from __future__ import annotations

import os
import signal

__all__ = ["crash_point"]

_SPEC = os.environ.get("ADAPTIVE_RUNTIME_CRASH_AT")
_NAME, _, _COUNT = (_SPEC or "").partition(":")
_hits = 0


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if the environment names this point (test-only)."""
    if _SPEC is None or name != _NAME:
        return
    global _hits
    _hits += 1
    if _hits >= int(_COUNT or 1):
        os.kill(os.getpid(), signal.SIGKILL)
