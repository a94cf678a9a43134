"""Move a journal in and out as JSON lines, chain included."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from ..errors import AdaptiveRuntimeError, InvalidImportError, JournalError
from ..records import Entry, Pending, named, read_record
from . import _chain
from .base import Journal

__all__ = ["export_lines", "import_lines"]

Check = Callable[[str, bytes], object]
"""Checks one entry's kind and body; raises an AdaptiveRuntimeError saying what is wrong."""


def export_lines(journal: Journal, stream: str | None = None) -> Iterator[str]:
    """Yield one JSON object per entry, oldest first, up to the head as the export began:
    a journal being written is exported as it was then, a prefix of its chain.

    Each line carries the entry's fields, its `digest` in hex, its raw `body` in base64
    (what the chain covers), and `record`, the body decoded for people and tools (null
    for a body this version can't read: the export still carries it, byte for byte).
    """
    last = journal.head().seq
    for entry in journal.read(stream):
        if entry.seq > last:
            break
        try:
            record: Any = _readable(read_record(entry))
        except (AdaptiveRuntimeError, RecursionError):
            record = None
        line = {
            "seq": entry.seq,
            "stream": entry.stream,
            "stream_seq": entry.stream_seq,
            "kind": entry.kind,
            "ts_ns": entry.ts_ns,
            "event_id": entry.event_id,
            "batch": entry.batch,
            "digest": entry.digest.hex(),
            "body": base64.b64encode(entry.body).decode("ascii"),
            "record": record,
        }
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def _readable(record: msgspec.Struct) -> dict[str, Any]:
    """Show a record as an object with named fields (its stored form is a compact array)."""
    return {"type": type(record).__name__, **named(record)}


_Item = tuple[Pending, int, str, int]
"""An entry read from a line: its pending form, batch, digest (hex) and line number."""


def import_lines(
    journal: Journal,
    lines: Iterable[str],
    *,
    check: Check | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append exported entries to an empty journal, checking every digest; return the count.

    `check(kind, body)` is run on every entry first (the command line checks each as the
    runtime would have journaled it). Batches are appended as they were, so seqs and
    digests come out the same. The first bad line (unreadable, refused by `check`, or
    where the chain breaks) stops the import with InvalidImportError naming its line.
    """
    if journal.head().seq:
        raise JournalError("import needs an empty journal; this one already holds entries")
    count = 0
    batch: list[_Item] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _parse(number, line)
        if check is not None:
            try:
                check(item[0].kind, item[0].body)
            except AdaptiveRuntimeError as exc:
                msg = f"line {number} holds an entry this journal may not hold: {exc}"
                raise InvalidImportError(msg, line=number) from None
        if batch and item[1] != batch[0][1]:
            count += _append(journal, batch)
            batch = []
        batch.append(item)
        if progress is not None and number % 100_000 == 0:
            progress(number)
    if batch:
        count += _append(journal, batch)
    return count


def _parse(number: int, line: str) -> _Item:
    try:
        data = json.loads(line)
        pending = Pending(
            stream=data["stream"],
            kind=data["kind"],
            ts_ns=data["ts_ns"],
            body=base64.b64decode(data["body"], validate=True),
            event_id=data["event_id"],
        )
        batch, digest = data["batch"], data["digest"]
        if type(batch) is not int or type(digest) is not str:
            raise TypeError("batch must be an int and digest a hex string")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        msg = f"line {number} is not an exported journal entry ({why})"
        raise InvalidImportError(msg, line=number) from None
    return pending, batch, digest, number


def _append(journal: Journal, batch: list[_Item]) -> int:
    pendings = [p for p, _, _, _ in batch]
    first_line = batch[0][3]
    try:
        stream = _chain.check_batch(pendings)
    except AdaptiveRuntimeError as exc:
        msg = f"line {first_line} starts a batch this journal may not hold: {exc}"
        raise InvalidImportError(msg, line=first_line) from None
    # link first and compare, so that nothing past a break is ever appended
    linked = _chain.link(pendings, journal.head(), journal.stream_head(stream))
    for entry, (_, batch_seq, digest, number) in zip(linked, batch, strict=True):
        if entry.batch != batch_seq or entry.digest.hex() != digest:
            msg = (
                f"line {number}: the chain breaks at seq {entry.seq}; the export was edited, "
                "reordered or cut there"
            )
            raise InvalidImportError(msg, line=number, seq=entry.seq)
    entries: list[Entry] = journal.append(pendings)
    if [e.digest for e in entries] != [e.digest for e in linked]:
        msg = f"line {first_line}: an imported batch was not appended as linked"
        raise InvalidImportError(msg, line=first_line, seq=entries[0].seq)
    return len(entries)
