"""The snapshot key: a secret kept outside the journal file, so a snapshot can't be forged in it.

A snapshot is a cache of the fold up to a seq. The runtime starts from it without
replaying what it covers, so whoever can write the journal file could otherwise make
start() decide from state the chain never held. Each snapshot therefore carries a MAC
(keyed BLAKE2b) over its stream, seq, covered digest, version and state, with a key
that lives beside the journal in `<journal>.key` (mode 0600), or that the caller gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import msgspec

from ..errors import ConfigurationError

__all__ = ["KEY_BYTES", "key_path", "load_or_create_key", "snapshot_mac"]

KEY_BYTES = 32
_encode = msgspec.msgpack.Encoder().encode


def key_path(journal_path: str) -> str:
    """Where the key of a journal file lives."""
    return journal_path + ".key"


def load_or_create_key(journal_path: str, *, create: bool) -> bytes | None:
    """Read the journal's key; make one (atomically, 0600) if there is none and `create`.

    Returns None when there is no key and none may be made, or it can't be read: then no
    snapshot is trusted, and the state is rebuilt by replaying the journal.
    """
    path = key_path(journal_path)
    key = _read(path)
    if key is not None or not create:
        return key
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temp, path)
    finally:
        os.unlink(temp)
    return _read(path)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            key = file.read(KEY_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    if len(key) != KEY_BYTES:
        msg = f"the snapshot key {path} is damaged ({len(key)} bytes, not {KEY_BYTES}); delete it"
        raise ConfigurationError(msg)
    return key


def snapshot_mac(
    key: bytes | None, stream: str, seq: int, digest: bytes, version: str, state: bytes
) -> bytes:
    """The MAC a snapshot carries; with no key, an unkeyed hash that no snapshot is trusted by."""
    fields = _encode((stream, seq, digest, version, state))
    if key is None:
        return hashlib.blake2b(fields, digest_size=32, person=b"unkeyed").digest()
    return hashlib.blake2b(fields, digest_size=32, key=key).digest()
