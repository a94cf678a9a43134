"""Which live host serves each agent of a SQLite journal: a lock on one byte per agent.

A host that claims an agent takes a write lock on one byte of one of the files in the
folder `<journal>.agents/` (the file and the byte chosen by a hash of the agent's name;
the files stay empty). The locks are Linux's open file description locks
(F_OFD_SETLK): held by the host's open file, refused to any other (another process, or
another journal object in the same one), and let go of by the kernel when the host's
process ends, however it ends, kill -9 included. So a host can tell at once whether
another live host serves an agent, with no lease to wait out, and a paused process
(SIGSTOP) keeps its agents: on one machine a process that holds its lock can still write.

The kernel checks a new lock against every lock on the same file, so the locks are
spread over SHARDS files: a claim took 36 us with 4,000 locks on one file, against 3 us
with 250. The files are never removed: a host that opened a file of the same name
after the removal would lock another file, and two hosts could serve one agent.

Where the platform has no such locks (Windows, macOS), every claim succeeds and hosts
can't keep each other out; the README says to run one host per agent there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["SHARDS", "AgentLocks"]

SHARDS = 64
"""Files the locks are spread over (each opened when its first agent is claimed)."""

_held_here: dict[tuple[str, str], int] = {}
"""(lock folder, agent) -> id of the AgentLocks in this process holding it: so a claim
refused by a lock this very process holds can say so (the kernel names no holder)."""
_held_here_lock = threading.Lock()

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_FLOCK = struct.Struct("hhqqi4x")
"""struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (and padding)."""


def _place_of(agent: str) -> tuple[int, int]:
    """The file (0..SHARDS-1) and byte that stand for an agent: from its 64-bit hash, the
    byte from 62 bits (an offset fits in 63), the file from what is left over."""
    digest = hashlib.blake2b(agent.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    return number % SHARDS, number >> 2


class AgentLocks:
    """This host's locks on the agents it serves, in `<journal>.agents/`."""

    def __init__(self, journal_path: str) -> None:
        self.path = journal_path + ".agents"
        self._fds: dict[int, int] = {}
        self._warned = False
        self._held: set[str] = set()
        """The agents this object holds the locks of."""

    def take(self, agent: str) -> bool:
        """Lock the agent's byte for this host; False if another live host holds it."""
        if _OFD_SETLK is None:
            return True
        shard, byte = _place_of(agent)
        try:
            fd = self._file(shard)
        except OSError as exc:  # a folder this process may not write: serve, and say so once
            if not self._warned:
                self._warned = True
                logging.getLogger("adaptive_runtime.journal").warning(
                    "can't make %s (%s): this host can't keep other hosts from serving its"
                    " agents; run one host per agent",
                    self.path,
                    exc.strerror or exc,
                )
            return True
        try:
            fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0))
        except BlockingIOError:
            return False
        except PermissionError:  # EACCES: some systems answer so for a lock held elsewhere
            return False
        with _held_here_lock:
            _held_here[(self.path, agent)] = id(self)
        self._held.add(agent)
        return True

    def held_in_this_process(self, agent: str) -> bool:
        """Whether another AgentLocks of this process, on the same folder, holds the agent."""
        with _held_here_lock:
            holder = _held_here.get((self.path, agent))
        return holder is not None and holder != id(self)

    def give_up(self, agent: str) -> None:
        """Unlock the agent's byte (another host may take it now)."""
        if _OFD_SETLK is None:
            return
        shard, byte = _place_of(agent)
        fd = self._fds.get(shard)
        if fd is not None:
            fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, byte, 1, 0))
            self._forget([agent])

    def close(self) -> None:
        """Let go of every lock this host holds."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
        self._forget(list(self._held))

    def leave_to_parent(self) -> None:
        """In a process forked from the one that took these locks: close this copy of the
        files without unlocking them, so that the locks stay the parent's (an open file
        description's lock goes only with its last descriptor) and go when it ends."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
        self._held.clear()
        with _held_here_lock:
            _held_here.clear()  # the parent's: this process holds none of them

    def _forget(self, agents: list[str]) -> None:
        with _held_here_lock:
            for agent in agents:
                key = (self.path, agent)
                if _held_here.get(key) == id(self):
                    del _held_here[key]
        self._held.difference_update(agents)

    def _file(self, shard: int) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self.path, f"{shard:02x}"), os.O_RDWR | os.O_CREAT, 0o600)
            self._fds[shard] = fd
        return fd
