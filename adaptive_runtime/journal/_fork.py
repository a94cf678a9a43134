"""A journal opened before a fork() stays the parent's: the child gets a clear error.

SQLite and libpq both forbid using a connection in a process forked after it was
opened. A child that did so with a SqliteJournal hung for ever on its first append
whenever another thread of the parent was inside a write at the fork (the connection's
lock came over held, by a thread the child does not have); a PostgreSQL connection
would share its socket with the parent's. After a fork, each journal this process had
open is, in the child, left to its parent: its connections are kept, neither used nor
closed (closing would end the parent's PostgreSQL sessions, and could undo a SQLite
write of the parent's in the memory the two share), and every use raises
JournalClosedError saying what to do instead. The parent goes on as before.

SQLite keeps each file's lock state per process, and a fork copies it: in a child
forked while the parent was writing, even a new connection to that file finds the
parent's write lock held, and waits out its busy timeout. So a child that needs a SQLite
journal the parent had open is started with the 'spawn' or 'forkserver' method, a fresh
interpreter; on PostgreSQL it opens the journal again.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["forked_error", "track"]


class _Forkable(Protocol):
    def _leave_to_parent(self, parent: int) -> list[object]:
        """In the child: drop this journal's connections and return them, to be kept."""


_open: weakref.WeakSet[_Forkable] = weakref.WeakSet()
_left_behind: list[object] = []
"""(In a child.) What the journals left to the parent held: kept, so as not to close it."""


def track(journal: _Forkable) -> None:
    """Have `journal` left to its parent in any child this process forks from now on."""
    _open.add(journal)


def forked_error(where: str, parent: int, advice: str) -> str:
    """The message of a journal used in a child forked after it was opened."""
    return (
        f"the journal {where} was opened in process {parent}, and this process is a fork"
        f" of it: a connection can't cross a fork. {advice}"
    )


def _after_fork_in_child() -> None:
    parent = os.getppid()
    for journal in list(_open):
        _left_behind.extend(journal._leave_to_parent(parent))
    _open.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
