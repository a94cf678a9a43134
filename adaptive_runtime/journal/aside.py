"""A new SQLite journal file built aside, then put in place whole, over nothing.

`adaptive-runtime import` builds its journal at `<path>.partial` and puts it at `<path>`
only once it is complete and verified. Two things can go wrong around that, and both
are ruled out here:

- Two builds for one path at once (two imports started together) would share the
  partial file and delete it under each other. The partial file is locked (`flock`)
  while a build runs, so a second build is refused; a partial left by a build that was
  killed holds no lock, and the next build takes it over and starts it afresh.
- A file made at `<path>` while the build ran (a runtime started on it) would be
  replaced by the build, and what it journaled lost. The build is put in place with a
  hard link, which fails if the name is taken, instead of a rename, which replaces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import JournalError
from .sqlite import discard

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: builds for one path are not kept apart
    fcntl = None  # type: ignore[assignment]

__all__ = ["built_aside"]


@contextlib.contextmanager
def built_aside(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield the path to build a new journal at; put it at `path` if the block succeeds.

    On an error in the block, the partial file is deleted and the error goes on. If
    `path` exists when the block ends, nothing is put there: JournalError, and the
    partial file is deleted.
    """
    target = os.fspath(path)
    partial = f"{target}.partial"
    fd = _locked(target, partial)
    try:
        # ours now: a killed build's leftovers are emptied in place (the file stays the
        # one locked), and its -wal and -shm go
        os.ftruncate(fd, 0)
        for leftover in (f"{partial}-wal", f"{partial}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        try:
            yield partial
            _put_in_place(partial, target)
        finally:
            discard(partial)  # after a link, only the partial name goes
    finally:
        os.close(fd)


def _locked(target: str, partial: str) -> int:
    """Open the partial file and lock it; the lock is on the file the name still names
    (a build that ended just now may have deleted the one opened: then open again)."""
    while True:
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = (
                f"another import into {target} is running (it holds {partial}); wait for it"
                " to end, or import into another file"
            )
            raise JournalError(msg) from None
        except OSError:  # a file system that takes no such lock: builds are not kept apart
            return fd
        try:
            named = os.stat(partial)
        except FileNotFoundError:
            named = None
        held = os.fstat(fd)
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


def _put_in_place(partial: str, target: str) -> None:
    try:
        os.link(partial, target)
    except FileExistsError:
        msg = (
            f"{target} was made while the import ran (by another process); it is left as it"
            " is and the import is not put in its place: import into another file"
        )
        raise JournalError(msg) from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise JournalError(
                f"{target} was made while the import ran; it is left as it is"
            ) from None
        os.rename(partial, target)
