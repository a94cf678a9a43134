"""Open any journal from one string: a path, `sqlite:///path`, `memory:`, or `postgresql://...`.

Every face (Runtime, Host, the command line) opens its journal here, so a journal is
named the same way everywhere. What durability means depends on the backend:

- SQLite: `full` syncs the WAL on every commit (survives power loss); `normal` syncs
  only at checkpoints (survives a crash of the process, not of the machine).
- memory: nothing survives the process; both levels mean the same.
- PostgreSQL: `full` returns once the server has flushed the commit; `normal` turns
  `synchronous_commit` off for the runtime's transactions (see journal.postgres).
"""

from __future__ import annotations

import os
import re
from typing import Literal

from ..errors import ConfigurationError, JournalError
from .base import Durability, Journal
from .memory import MemoryJournal

__all__ = ["describe", "hide_passwords", "is_memory", "open_journal", "sqlite_path"]

MEMORY = "memory:"
# SQLite's own name for a database in memory, which a SQLite user reaches for first:
# SQLite never opens a file by that name, so it means our memory journal here too.
_MEMORY_NAMES = (MEMORY, ":memory:")


def is_memory(url: str | os.PathLike[str]) -> bool:
    """Whether the URL names an in-memory journal: `memory:` (or SQLite's `:memory:`)."""
    return os.fspath(url) in _MEMORY_NAMES


def sqlite_path(url: str | os.PathLike[str]) -> str | None:
    """The file a SQLite URL or plain path names; None for any other kind of journal."""
    text = os.fspath(url)
    if text in _MEMORY_NAMES or text.startswith(("postgresql:", "postgres:")):
        return None
    if text.startswith(MEMORY):
        # `memory:name` made a file of that name, on disk, where a journal in memory was
        # meant (one with a name, as some databases have)
        msg = (
            f"{text!r} is not a journal URL: `memory:` takes nothing after it (a journal in"
            f" memory has no name); for a file of that name, write ./{text}"
        )
        raise ConfigurationError(msg)
    if text.startswith("file:"):
        # SQLite's URI filenames (file:name.db?mode=ro) are not read here: `file:x.db` made
        # a file named `file:x.db`, beside the x.db that was meant
        msg = (
            f"{text!r} is not a journal URL: SQLite's `file:` URIs are not read here; give"
            " the file's path, or sqlite:///path; for a file of that name, write"
            f" ./{text}"
        )
        raise ConfigurationError(msg)
    if text.startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if rest.startswith("///"):
            rest = rest[2:]  # sqlite:///abs/path -> /abs/path
        elif rest.startswith("//"):
            rest = rest[2:]  # sqlite://relative/path -> relative/path
        if not rest:
            raise ConfigurationError(f"{text!r} names no file; write sqlite:///path/to/file.db")
        return rest
    if "://" in text:
        scheme = text.split("://", 1)[0]
        msg = f"unknown journal URL scheme {scheme!r}: use a path, sqlite:///path, memory: or postgresql://"
        raise ConfigurationError(msg)
    if not text:
        raise ConfigurationError("the journal URL is empty; give a path, sqlite:///path or memory:")
    return text


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
"""A password in a URL's user part: `user:password@`."""
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#\s]*")
"""A password as a URL's query parameter, which libpq reads too: `?password=...` (and
`sslpassword`, the client key's)."""


def hide_passwords(text: str) -> str:
    """Text with every password in a URL in it replaced by `***`, in either place."""
    return _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text))


def describe(url: str | os.PathLike[str]) -> str:
    """Name a journal for messages and reprs, without any password in its URL."""
    text = os.fspath(url)
    if "@" in text and "://" in text:
        scheme, rest = text.split("://", 1)
        text = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return hide_passwords(text)


def open_journal(
    url: str | os.PathLike[str],
    *,
    durability: Durability = "full",
    create: bool = True,
    checkpoint: Literal["inline", "background"] = "inline",
    read_only_ok: bool = False,
) -> Journal:
    """Open the journal a URL names (creating a SQLite file unless `create=False`).

    `read_only_ok=True`: a SQLite file this process can't write is opened for reading
    only (see SqliteJournal), for commands that only read.
    """
    if durability not in ("full", "normal"):
        raise ConfigurationError(f"durability must be 'full' or 'normal', not {durability!r}")
    if is_memory(url):
        return MemoryJournal()
    path = sqlite_path(url)
    if path is None:
        from .postgres import PostgresJournal  # here: only PostgreSQL journals need psycopg

        return PostgresJournal(os.fspath(url), durability=durability, create=create)
    from .sqlite import SqliteJournal  # here: only SQLite journals need apsw loaded

    text = os.fspath(url)
    if (
        not create
        and text.startswith("sqlite:///")
        and not text.startswith("sqlite:////")
        and not os.path.lexists(path)
    ):
        # sqlite:///ops.db is ./ops.db to SQLAlchemy, and /ops.db here: say which was read
        here = path.lstrip("/")
        msg = (
            f"no journal at {path}: sqlite:///{here} names the absolute path {path}; for"
            f" {here} under the working folder, write sqlite://{here} or {here}"
        )
        raise JournalError(msg)
    return SqliteJournal(
        path,
        durability=durability,
        create=create,
        checkpoint=checkpoint,
        read_only_ok=read_only_ok,
    )
