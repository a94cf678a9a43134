"""An apsw VFS that loses power on command, or fails writes the way a full or broken disk does.

Power loss: every write since a file's last sync is undone, newest first, and the
last one may be torn (its first half stays). From then on the machine is off:
writes, syncs, truncations and deletions do nothing, so the connections left open
can be closed without touching the files again.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import apsw

_lock = threading.RLock()


class _Undo:
    __slots__ = ("new", "offset", "old", "old_size")

    def __init__(self, offset: int, new: bytes, old: bytes, old_size: int) -> None:
        self.offset, self.new, self.old, self.old_size = offset, new, old, old_size


class FaultFile(apsw.VFSFile):  # type: ignore[misc]
    def __init__(self, vfs: FaultVFS, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)
        self.vfs = vfs
        self.undo: list[_Undo] = []
        vfs.files.append(self)

    def xWrite(self, data: bytes, offset: int) -> None:
        with _lock:
            if self.vfs.dead:
                return
            self.vfs.writes += 1
            if self.vfs.writes == self.vfs.cut_at_write:
                self.vfs.cut_power()  # the power goes during this write: it never lands
                return
            if self.vfs.fail_writes is not None:
                raise self.vfs.fail_writes("injected write fault")
            size = super().xFileSize()
            have = max(0, min(len(data), size - offset))
            old = bytes(super().xRead(have, offset)) if have else b""
            self.undo.append(_Undo(offset, bytes(data), old, size))
            super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        with _lock:
            if self.vfs.dead:
                return
            if self.vfs.fail_writes is not None:
                raise self.vfs.fail_writes("injected sync fault")
            super().xSync(flags)
            self.undo.clear()

    def xTruncate(self, newsize: int) -> None:
        with _lock:
            if self.vfs.dead:
                return
            size = super().xFileSize()
            if newsize < size:
                self.undo.append(
                    _Undo(newsize, b"", bytes(super().xRead(size - newsize, newsize)), size)
                )
            super().xTruncate(newsize)

    def lose_unsynced(self, tear: bool) -> int:
        """Undo the writes since the last sync, newest first; with `tear`, half of the newest stays."""
        steps, self.undo = self.undo, []
        for step in reversed(steps):
            if step.old:
                super().xWrite(step.old, step.offset)
            if super().xFileSize() > step.old_size:
                super().xTruncate(step.old_size)
        if tear and steps and len(steps[-1].new) > 1:
            last = steps[-1]
            super().xWrite(last.new[: len(last.new) // 2], last.offset)
        return len(steps)


class FaultVFS(apsw.VFS):  # type: ignore[misc]
    """Register with a name; open journals with SqliteJournal(path, vfs=name)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "")
        self.name = name
        self.files: list[FaultFile] = []
        self.dead = False
        self.fail_writes: type[Exception] | None = None
        self.writes = 0
        self.cut_at_write: int | None = None
        """Cut the power at this write (counted over every file), wherever it falls."""
        self.tear = random.Random(0)
        """Decides, at each cut, whether the newest unsynced write is torn."""
        self.dropped = 0

    def xOpen(self, name: Any, flags: list[int]) -> FaultFile:
        return FaultFile(self, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        with _lock:
            if self.dead:
                return
            super().xDelete(filename, syncdir)

    def cut_power(self) -> int:
        """Lose every unsynced write (tearing one, half the time); return how many were lost."""
        with _lock:
            if self.dead:
                return 0
            self.dead = True
            self.dropped = sum(f.lose_unsynced(tear=self.tear.random() < 0.5) for f in self.files)
            return self.dropped
