"""Move a journal in and out as JSON lines, chain included."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from ..errors import JournalCorruptError, JournalError
from ..records import Entry, Pending, decode_record
from . import _chain
from .base import Journal

__all__ = ["export_lines", "import_lines"]


def export_lines(journal: Journal, stream: str | None = None) -> Iterator[str]:
    """Yield one JSON object per entry, oldest first.

    Each line carries the entry's fields, its `digest` in hex, its raw `body` in base64
    (what the chain covers), and `record`, the body decoded for people and tools.
    """
    for entry in journal.read(stream):
        try:
            record: Any = _readable(decode_record(entry.body))
        except msgspec.DecodeError:
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
    fields = {name: msgspec.to_builtins(getattr(record, name)) for name in record.__struct_fields__}
    return {"type": type(record).__name__, **fields}


def import_lines(
    journal: Journal, lines: Iterable[str], *, progress: Callable[[int], None] | None = None
) -> int:
    """Append exported entries to an empty journal, checking every digest; return the count.

    Batches are appended as they were, so seqs and digests come out the same; the first
    entry whose digest differs stops the import with JournalCorruptError naming its seq.
    """
    if journal.head().seq:
        raise JournalError("import needs an empty journal; this one already holds entries")
    count = 0
    batch: list[tuple[Pending, int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _parse(number, line)
        if batch and item[1] != _first_batch(batch):
            count += _append(journal, batch)
            batch = []
        batch.append((item[0], item[1], item[2]))
        if progress is not None and number % 100_000 == 0:
            progress(number)
    if batch:
        count += _append(journal, batch)
    return count


def _first_batch(batch: list[tuple[Pending, int, str]]) -> int:
    return batch[0][1]


def _parse(number: int, line: str) -> tuple[Pending, int, str]:
    try:
        data = json.loads(line)
        pending = Pending(
            stream=data["stream"],
            kind=data["kind"],
            ts_ns=data["ts_ns"],
            body=base64.b64decode(data["body"], validate=True),
            event_id=data["event_id"],
        )
        return pending, int(data["batch"]), str(data["digest"])
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"line {number} is not an exported journal entry ({exc})"
        raise JournalCorruptError(msg) from None


def _append(journal: Journal, batch: list[tuple[Pending, int, str]]) -> int:
    pendings = [p for p, _, _ in batch]
    stream = _chain.check_batch(pendings)
    # link first and compare, so that nothing past a break is ever appended
    linked = _chain.link(pendings, journal.head(), journal.stream_head(stream))
    for entry, (_, batch_seq, digest) in zip(linked, batch, strict=True):
        if entry.batch != batch_seq or entry.digest.hex() != digest:
            msg = f"the chain breaks at seq {entry.seq}: the export was edited, reordered or cut there"
            raise JournalCorruptError(msg, seq=entry.seq)
    entries: list[Entry] = journal.append(pendings)
    if [e.digest for e in entries] != [e.digest for e in linked]:
        raise JournalCorruptError(
            "an imported batch was not appended as linked", seq=entries[0].seq
        )
    return len(entries)
