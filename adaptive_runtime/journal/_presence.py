"""Which hosts of a SQLite journal are alive: a lock file each, held while the host runs.

Every host that claims an agent of a SQLite journal holds an exclusive `flock` on a file
of its own, `<journal>.hosts/<owner>`. The kernel drops the lock when the process ends,
however it ends (kill -9 included), so another process can tell a live owner from a dead
one at once, by trying to take the lock: no lease to wait out. A paused process (SIGSTOP)
keeps its lock, and so its agents: on one machine a process that holds its lock can
still write, so it must keep them.

Without `fcntl` (Windows) no other host can be seen alive, and hosts can't keep each other
out; the README says to run one host per agent there.
"""

from __future__ import annotations

import contextlib
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["Presence"]


class Presence:
    """This host's lock file beside a journal, and a look at the other hosts' ones."""

    def __init__(self, journal_path: str, owner: str) -> None:
        self._folder = journal_path + ".hosts"
        self._owner = owner
        self._fd: int | None = None

    def join(self) -> None:
        """Make this host's lock file and hold its lock (until `leave`); once is enough."""
        if self._fd is not None or fcntl is None:
            return
        for _ in range(5):  # a host leaving may remove the folder between the two steps
            os.makedirs(self._folder, mode=0o700, exist_ok=True)
            try:
                fd = os.open(self._path(self._owner), os.O_RDWR | os.O_CREAT, 0o600)
                break
            except FileNotFoundError:
                continue
        else:
            raise FileNotFoundError(f"can't make {self._path(self._owner)}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def alive(self, owner: str) -> bool:
        """Whether the host `owner` is running now (its lock is held); this host is."""
        if owner == self._owner:
            return True
        if fcntl is None:
            return False
        try:
            fd = os.open(self._path(owner), os.O_RDWR)
        except (FileNotFoundError, ValueError):
            return False  # it left, or never had a file here
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(OSError):
                os.unlink(self._path(owner))  # a dead host's file: nobody needs it
            return False
        finally:
            os.close(fd)

    def leave(self) -> None:
        """Let go of this host's lock and remove its file (and the folder, if it is the last)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self._path(self._owner))
        os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(self._folder)  # fails while another host's file is in it

    def _path(self, owner: str) -> str:
        if not owner or "/" in owner or owner in (".", ".."):
            raise ValueError(f"not a host's name: {owner!r}")
        return os.path.join(self._folder, owner)
