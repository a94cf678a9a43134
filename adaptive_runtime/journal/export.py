"""Move a journal in and out as JSON lines, chain included."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from ..errors import AdaptiveRuntimeError, InvalidImportError, JournalError
from ..records import Entry, Pending, named, read_record
from . import _chain
from .base import Head, Journal

__all__ = ["export_lines", "import_lines"]

Check = Callable[[str, bytes], object]
"""Checks one entry's kind and body; raises an AdaptiveRuntimeError saying what is wrong."""


def export_lines(
    journal: Journal, stream: str | None = None, *, upto: int | None = None
) -> Iterator[str]:
    """Yield one JSON object per entry, oldest first, up to the seq `upto` (by default
    the head as the export began): a journal being written is exported as it was then,
    a prefix of its chain.

    Each line carries the entry's fields, its `digest` in hex, its raw `body` in base64
    (what the chain covers), and `record`, the body decoded for people and tools (null
    for a body this version can't read: the export still carries it, byte for byte).
    """
    last = journal.head().seq if upto is None else upto
    for entry in journal.read(stream):
        if entry.seq > last:
            break
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
            "record": _readable(entry),
        }
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def _readable(entry: Entry) -> dict[str, Any] | None:
    """An entry's record as an object with named fields (its stored form is a compact
    array); None for a body this version can't read."""
    try:
        record = read_record(entry)
    except (AdaptiveRuntimeError, RecursionError):
        return None
    return {"type": type(record).__name__, **named(record)}


class _Line(msgspec.Struct, frozen=True):
    """An entry read from a line of an export, with what the line says about it."""

    pending: Pending
    seq: int
    stream_seq: int
    batch: int
    digest: str
    record: object
    """The readable copy of the body as the line gives it (_ABSENT: the line has none)."""
    number: int


_ABSENT = object()


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
    digests come out the same. The first bad line (unreadable, refused by `check`, where
    the chain breaks, or whose seqs or readable `record` don't match the entry its body
    makes) stops the import with InvalidImportError naming its line.

    Batches are appended in groups of about GROUP_ENTRIES entries, one transaction each,
    so a journal an import failed in holds part of it: import into a new one and throw
    it away on an error, as the command line does (a scratch file, or a scratch schema
    on PostgreSQL).
    """
    if journal.head().seq:
        raise JournalError("import needs an empty journal; this one already holds entries")
    count = 0
    batch: list[_Line] = []
    group = _Group(journal)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _parse(number, line)
        if check is not None:
            try:
                check(item.pending.kind, item.pending.body)
            except AdaptiveRuntimeError as exc:
                msg = f"line {number} holds an entry this journal may not hold: {exc}"
                raise InvalidImportError(msg, line=number) from None
        if batch and item.batch != batch[0].batch:
            count += group.add(batch)
            batch = []
        batch.append(item)
        if progress is not None and number % 100_000 == 0:
            progress(number)
    if batch:
        count += group.add(batch)
    return count + group.flush()


def _json_kind(value: object) -> str:
    """What JSON calls a value json.loads gave: `an array`, `a string`..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


def _parse(number: int, line: str) -> _Line:
    try:
        data = json.loads(line, parse_constant=_not_a_number, parse_float=_finite)
        if not isinstance(data, dict):
            raise TypeError(f"it is {_json_kind(data)}, where export writes an object")
        pending = Pending(
            stream=data["stream"],
            kind=data["kind"],
            ts_ns=data["ts_ns"],
            body=base64.b64decode(data["body"], validate=True),
            event_id=data["event_id"],
        )
        seq, stream_seq, batch = data["seq"], data["stream_seq"], data["batch"]
        if not all(type(n) is int for n in (seq, stream_seq, batch)):
            raise TypeError("seq, stream_seq and batch must be integers")
        digest = data["digest"]
        if type(digest) is not str:
            raise TypeError("digest must be a hex string")
        record = data.get("record", _ABSENT)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            why = "nested too deeply"
        elif isinstance(exc, KeyError):
            why = f"it has no {exc.args[0]!r} field"
        else:
            why = str(exc)
        msg = f"line {number} is not an exported journal entry ({why})"
        raise InvalidImportError(msg, line=number) from None
    return _Line(pending, seq, stream_seq, batch, digest, record, number)


def _not_a_number(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number, and no journaled value is one")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is past the largest float, and no journaled value is")
    return value


GROUP_ENTRIES = 4096
"""About how many entries an import appends in one transaction (whole batches each)."""


class _Group:
    """Batches checked and linked, waiting to be appended together in one transaction.

    Each batch is linked onto the one before it here, and every line checked against its
    entry, before anything is appended: nothing past a break is ever written. One commit
    per batch made a restore of a million entries spend most of its time committing.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._head = journal.head()
        self._streams: dict[str, int] = {}
        self._batches: list[tuple[list[Pending], list[Entry], int]] = []
        self._entries = 0

    def add(self, batch: list[_Line]) -> int:
        """Check and link one batch; append the group once it is large enough (the count)."""
        pendings = [item.pending for item in batch]
        first_line = batch[0].number
        try:
            stream = _chain.check_batch(pendings)
        except AdaptiveRuntimeError as exc:
            msg = f"line {first_line} starts a batch this journal may not hold: {exc}"
            raise InvalidImportError(msg, line=first_line) from None
        stream_seq = self._streams.get(stream)
        if stream_seq is None:
            stream_seq = self._journal.stream_head(stream)
        linked = _chain.link(pendings, self._head, stream_seq)
        for entry, item in zip(linked, batch, strict=True):
            _check_line(entry, item)
        self._head = Head(linked[-1].seq, linked[-1].digest)
        self._streams[stream] = linked[-1].stream_seq
        self._batches.append((pendings, linked, first_line))
        self._entries += len(linked)
        return self.flush() if self._entries >= GROUP_ENTRIES else 0

    def flush(self) -> int:
        """Append the batches waiting, in one transaction; return how many entries."""
        if not self._batches:
            return 0
        batches, self._batches, count, self._entries = self._batches, [], self._entries, 0
        results = self._journal.append_many([pendings for pendings, _, _ in batches])
        for result, (_, linked, first_line) in zip(results, batches, strict=True):
            if isinstance(result, Exception) or [e.digest for e in result] != [
                e.digest for e in linked
            ]:
                why = result if isinstance(result, Exception) else "it was not appended as linked"
                msg = f"line {first_line}: an imported batch was refused ({why})"
                raise InvalidImportError(msg, line=first_line, seq=linked[0].seq)
        return count


def _check_line(entry: Entry, item: _Line) -> None:
    """Check what a line says against the entry its body and place make, chain first.

    The digest covers the body and the entry's place; the seqs and the readable record
    beside them are copies a reader of the file may trust, so an edited copy is refused
    too: an import that verifies says the whole file is what was exported.
    """
    number = item.number
    if entry.batch != item.batch or entry.digest.hex() != item.digest:
        if item.seq > entry.seq:  # the line's own seq says what is wrong, if it is right
            msg = (
                f"line {number} is the entry at seq {item.seq}, but it comes where seq "
                f"{entry.seq} belongs: the lines before it are missing (cut out, or left out "
                "by `export --agent`, whose file holds one agent's entries and can't be "
                "imported, since the chain spans every agent: export the whole journal)"
            )
        else:
            msg = (
                f"line {number}: the chain breaks at seq {entry.seq}; the export was edited, "
                "reordered or cut there"
            )
        raise InvalidImportError(msg, line=number, seq=entry.seq)
    if (item.seq, item.stream_seq) != (entry.seq, entry.stream_seq):
        msg = (
            f"line {number} says seq {item.seq} (stream_seq {item.stream_seq}) but holds the "
            f"entry at seq {entry.seq} (stream_seq {entry.stream_seq}); the export was edited"
            " there"
        )
        raise InvalidImportError(msg, line=number, seq=entry.seq)
    if item.record is _ABSENT:
        return
    readable = _readable(entry)
    if readable is None and item.record is not None:
        msg = (
            f"line {number} holds a {entry.kind} this version can't read (its record says"
            " what a version that can read it made of it); import it with a version as new"
            " as the one that exported it"
        )
        raise InvalidImportError(msg, line=number, seq=entry.seq)
    if not _same_record(item.record, readable):
        msg = (
            f"line {number}: its record does not match its body at seq {entry.seq} (the body is"
            " what the chain covers, and the record is its readable copy); the export was"
            " edited there"
        )
        raise InvalidImportError(msg, line=number, seq=entry.seq)


_canonical = msgspec.json.Encoder(order="sorted").encode


def _same_record(given: object, made: dict[str, Any] | None) -> bool:
    """Whether a line's record is the one its body makes: the same JSON text as the export
    wrote (keys in any order), else the same JSON values."""
    try:
        if _canonical(given) == _canonical(made):
            return True
    except (TypeError, ValueError, RecursionError):
        return False
    return _same(given, msgspec.json.decode(msgspec.json.encode(made)))


def _empty(value: object) -> bool:
    """null, false, [] or {}: what a field added with a default reads as (0 is not one)."""
    return value is None or value is False or (type(value) in (list, dict) and not value)


def _same(given: object, made: object) -> bool:
    """Whether two JSON values are equal as JSON means it: numbers by value (96 is 96.0,
    as a tool that rewrote the file may print it), true and false never numbers, objects
    whatever the order of their keys.

    A key the given object lacks is a field added since the export was written, if this
    version reads it as empty (null, false, [] or {}, a new field's default): an
    export's copy shows the fields its version had."""
    if isinstance(made, dict):
        return (
            isinstance(given, dict)
            and given.keys() <= made.keys()
            and all(
                _same(given[key], value) if key in given else _empty(value)
                for key, value in made.items()
            )
        )
    if isinstance(made, list):
        return (
            isinstance(given, list)
            and len(given) == len(made)
            and all(_same(g, m) for g, m in zip(given, made, strict=True))
        )
    if isinstance(made, bool) or isinstance(given, bool):
        return given is made
    if isinstance(made, int | float) and isinstance(given, int | float):
        return given == made
    return type(given) is type(made) and given == made
