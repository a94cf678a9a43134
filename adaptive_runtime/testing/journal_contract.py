"""The Journal contract, shipped as a test kit: every backend must pass every test here.

A backend, in this repository or outside it, subclasses `JournalContract` in a test
module and says how to make a fresh journal; pytest then runs every contract test on it:

    from adaptive_runtime.testing import JournalContract

    class TestMyJournal(JournalContract):
        def make_journal(self, tmp_path):
            return MyJournal(tmp_path / "journal")

A backend whose storage a second journal object can write too (as another process
would) also defines `another_writer(journal)`, for the test of fleet batches.

Importing this module needs pytest; `import adaptive_runtime` never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptive_runtime.errors import (
    DuplicateEventError,
    InvalidEventError,
    JournalClosedError,
    StreamConflictError,
)
from adaptive_runtime.journal import GENESIS_DIGEST, Head, Journal, Pending
from adaptive_runtime.records import HOST_STREAM, FleetBatch, RuntimeBatch

__all__ = ["JournalContract", "pending"]


def pending(
    stream: str = "agent",
    kind: str = "K",
    body: bytes = b"x",
    event_id: str | None = None,
    ts_ns: int = 1,
) -> Pending:
    """An entry to append, with defaults for what a test does not care about."""
    return Pending(stream=stream, kind=kind, ts_ns=ts_ns, body=body, event_id=event_id)


class JournalContract:
    """Every test a Journal backend must pass; subclass it and define `make_journal`."""

    def make_journal(self, tmp_path: Path) -> Journal:
        """Return a new, empty journal of the backend under test."""
        raise NotImplementedError("a JournalContract subclass must define make_journal")

    def another_writer(self, journal: Journal) -> Journal | None:
        """Return a second journal object on the same storage as `journal` (another
        process's, say), or None if the backend has no such thing (the fleet test skips)."""
        return None

    @pytest.fixture
    def journal(self, tmp_path: Path) -> Iterator[Journal]:
        backend = self.make_journal(tmp_path)
        yield backend
        backend.close()

    def test_empty_journal_has_genesis_head(self, journal: Journal) -> None:
        """A new journal is empty and its head is seq 0 with the genesis digest."""
        assert Head(0, GENESIS_DIGEST) == journal.head()
        assert [] == list(journal.read())
        assert [] == journal.streams()
        assert journal.verify().ok

    def test_append_assigns_gapless_seqs_across_streams(self, journal: Journal) -> None:
        """Seqs are global and gapless; stream_seqs count per stream."""
        journal.append([pending("a"), pending("a")])
        journal.append([pending("b")])
        journal.append([pending("a")])
        entries = list(journal.read())
        assert [1, 2, 3, 4] == [e.seq for e in entries]
        assert [("a", 1), ("a", 2), ("b", 1), ("a", 3)] == [
            (e.stream, e.stream_seq) for e in entries
        ]
        assert ["a", "b"] == journal.streams()
        assert 3 == journal.stream_head("a")
        assert 0 == journal.stream_head("nobody")

    def test_entries_read_back_exactly_as_appended(self, journal: Journal) -> None:
        """Every field of an appended entry reads back unchanged."""
        [written] = journal.append(
            [pending(kind="EventReceived", body=b"\x00\xff", event_id="e-1", ts_ns=42)]
        )
        assert written == journal.get(1)
        assert written == journal.by_event_id("e-1")
        assert (
            written.seq,
            written.stream,
            written.stream_seq,
            written.kind,
            written.ts_ns,
            written.event_id,
            written.body,
            written.batch,
        ) == (1, "agent", 1, "EventReceived", 42, "e-1", b"\x00\xff", 1)
        assert None is journal.get(2)
        assert None is journal.by_event_id("e-2")

    def test_batch_is_one_transaction_with_one_batch_marker(self, journal: Journal) -> None:
        """All entries of a batch carry the seq of its first entry as their batch."""
        journal.append([pending()])
        entries = journal.append([pending(), pending(), pending()])
        assert [2, 2, 2] == [e.batch for e in entries]

    def test_expected_stream_seq_mismatch_raises_conflict(self, journal: Journal) -> None:
        """Optimistic concurrency: a stale expected stream_seq raises and appends nothing."""
        journal.append([pending("a")], expected=0)
        with pytest.raises(StreamConflictError) as caught:
            journal.append([pending("a")], expected=0)
        assert (0, 1) == (caught.value.expected, caught.value.actual)
        assert 1 == journal.head().seq
        journal.append([pending("a")], expected=1)
        assert 2 == journal.stream_head("a")

    def test_same_event_id_and_body_returns_original_batch(self, journal: Journal) -> None:
        """Re-appending a journaled batch returns the original entries and appends nothing."""
        first = journal.append([pending(event_id="e1", body=b"ev"), pending(kind="D", body=b"dec")])
        again = journal.append(
            [pending(event_id="e1", body=b"ev"), pending(kind="D", body=b"other")]
        )
        assert first == again
        assert 2 == journal.head().seq

    def test_same_event_id_with_other_body_raises_duplicate(self, journal: Journal) -> None:
        """Reusing an event id for a different body is refused with the original's seq."""
        journal.append([pending(event_id="e1", body=b"one")])
        with pytest.raises(DuplicateEventError) as caught:
            journal.append([pending(event_id="e1", body=b"two")])
        assert ("e1", 1) == (caught.value.event_id, caught.value.seq)
        assert 1 == journal.head().seq

    def test_partly_replayed_batch_raises_duplicate(self, journal: Journal) -> None:
        """A batch mixing a journaled id with a new one is refused, not half-appended."""
        journal.append([pending(event_id="e1")])
        with pytest.raises(DuplicateEventError):
            journal.append([pending(event_id="e1"), pending(event_id="e2")])
        assert None is journal.by_event_id("e2")

    @pytest.mark.parametrize(
        ("batch", "field"),
        [
            ([], None),
            ([Pending(stream="", kind="K", ts_ns=1, body=b"")], "stream"),
            ([Pending(stream="a", kind="", ts_ns=1, body=b"")], "kind"),
            ([Pending(stream="a", kind="K", ts_ns=-1, body=b"")], "ts_ns"),
            ([Pending(stream="a" * 300, kind="K", ts_ns=1, body=b"")], "stream"),
            ([Pending(stream="\ud800", kind="K", ts_ns=1, body=b"")], "stream"),
            ([Pending(stream="a\x00b", kind="K", ts_ns=1, body=b"")], "stream"),
            ([Pending(stream="a", kind="K\x00", ts_ns=1, body=b"")], "kind"),
            ([Pending(stream="a", kind="K", ts_ns=1, body=b"", event_id="\x00")], "event_id"),
            (
                [
                    Pending(stream="a", kind="K", ts_ns=1, body=b""),
                    Pending(stream="b", kind="K", ts_ns=1, body=b""),
                ],
                "stream",
            ),
            (
                [
                    Pending(stream="a", kind="K", ts_ns=1, body=b"", event_id="x"),
                    Pending(stream="a", kind="K", ts_ns=1, body=b"", event_id="x"),
                ],
                "event_id",
            ),
        ],
    )
    def test_bad_batch_raises_invalid_and_leaves_journal_unchanged(
        self, journal: Journal, batch: list[Pending], field: str | None
    ) -> None:
        """A malformed batch gets InvalidEventError naming the field; nothing is appended."""
        journal.append([pending()])
        before = journal.head()
        with pytest.raises(InvalidEventError) as caught:
            journal.append(batch)
        assert field == caught.value.field
        assert before == journal.head()

    def test_hostile_names_are_stored_as_data(self, journal: Journal) -> None:
        """Stream names, kinds and ids that look like SQL are only ever data."""
        nasty = "x'); DROP TABLE entries; --"
        journal.append([pending(stream=nasty, kind=nasty, event_id=nasty)])
        assert nasty == journal.by_event_id(nasty).stream  # type: ignore[union-attr]
        assert [nasty] == journal.streams()
        assert journal.verify().ok

    @pytest.mark.parametrize("name", ["a\x00", "\x00", "\ud800", "a\udcff"])
    def test_a_name_no_journal_can_hold_finds_nothing(self, journal: Journal, name: str) -> None:
        """A read by a name with a NUL or a lone surrogate (which no append takes) finds
        nothing, as any unknown name does: no driver's encoding error, no server's error."""
        journal.append([pending("a", event_id="a")])
        assert [] == list(journal.read(name))
        assert [] == list(journal.read(kind=name))
        assert [] == list(journal.read("a", kind=name))
        assert [] == list(journal.latest(5, name))
        assert [] == list(journal.latest(5, kind=name))
        assert None is journal.by_event_id(name)
        assert 0 == journal.stream_head(name)
        assert [] == list(journal.snapshots(name))
        assert 1 == journal.head().seq

    def test_read_filters_by_stream_kind_and_position(self, journal: Journal) -> None:
        """Forward reads filter by stream, by kind and by a starting seq."""
        for i in range(10):
            journal.append([pending("a" if i % 2 else "b", kind="E" if i % 3 else "D")])
        assert [2, 4, 6, 8, 10] == [e.seq for e in journal.read("a")]
        assert [6, 8, 10] == [e.seq for e in journal.read("a", after=4)]
        assert [1, 4, 7, 10] == [e.seq for e in journal.read(kind="D")]
        assert [4, 10] == [e.seq for e in journal.read("a", kind="D")]
        assert [8, 9, 10] == [e.seq for e in journal.read(after=7)]

    def test_latest_reads_backwards(self, journal: Journal) -> None:
        """`latest(n)` yields the newest entries first, filtered like `read`."""
        for i in range(10):
            journal.append([pending("a" if i % 2 else "b")])
        assert [10, 9, 8] == [e.seq for e in journal.latest(3)]
        assert [10, 8] == [e.seq for e in journal.latest(2, "a")]
        assert 10 == len(list(journal.latest(100)))
        assert [] == list(journal.latest(0))

    def test_latest_pages_by_a_cursor(self, journal: Journal) -> None:
        """`latest(n, before=seq)` continues below a seq: pages meet with no gap or overlap."""
        for i in range(10):
            journal.append([pending("a" if i % 2 else "b")])
        assert [7, 6, 5] == [e.seq for e in journal.latest(3, before=8)]
        assert [6, 4, 2] == [e.seq for e in journal.latest(5, "a", before=8)]
        assert [] == list(journal.latest(3, before=1))
        assert [10, 9] == [e.seq for e in journal.latest(2, before=2**63)]
        pages, cursor = [], None
        while page := [e.seq for e in journal.latest(4, before=cursor)]:
            pages.append(page)
            cursor = page[-1]
        assert [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]] == pages

    def test_a_seq_past_any_journal_reads_as_absent(self, journal: Journal) -> None:
        """A seq past the largest a journal stores (2**63 - 1) is absent, not an error:
        a caller with a seq from outside (an HTTP body) gets "none", as for any other."""
        for i in range(3):
            journal.append([pending("a" if i % 2 else "b")])
        for seq in (2**63, 2**64, 10**30):
            assert None is journal.get(seq)
            assert [] == list(journal.read(after=seq))
            assert [] == list(journal.read("a", after=seq))
            assert [3, 2] == [e.seq for e in journal.latest(2, before=seq)]
        assert [1, 2, 3] == [e.seq for e in journal.read(after=-(2**64))]
        assert None is journal.get(-(2**64))

    def test_reads_stream_past_one_page(self, journal: Journal) -> None:
        """Reads keep going past the backend's page size."""
        journal.append([pending() for _ in range(1200)])
        assert list(range(1, 1201)) == [e.seq for e in journal.read()]
        assert list(range(1200, 0, -1)) == [e.seq for e in journal.latest(5000)]

    def test_append_many_isolates_failing_batches(self, journal: Journal) -> None:
        """Group commit: batches share one commit, yet a bad one fails alone."""
        journal.append([pending(event_id="taken", body=b"1")])
        results = journal.append_many(
            [
                [pending(event_id="n1")],
                [pending(event_id="taken", body=b"2")],
                [pending(event_id="n2")],
            ]
        )
        assert isinstance(results[1], DuplicateEventError)
        ok = [r for r in results if isinstance(r, list)]
        assert [[2], [3]] == [[e.seq for e in r] for r in ok]
        assert journal.verify().ok

    def test_snapshots_newest_first_and_pruned(self, journal: Journal) -> None:
        """Snapshots are per stream, newest first, and only the newest few are kept."""
        journal.append([pending("a") for _ in range(5)])
        for seq in range(1, 6):
            journal.put_snapshot("a", seq, f"s{seq}".encode(), version="v1", ts_ns=seq)
        kept = list(journal.snapshots("a"))
        assert [5, 4, 3] == [s.seq for s in kept]
        assert b"s5" == kept[0].state
        assert journal.get(5).digest == kept[0].digest  # type: ignore[union-attr]
        assert [] == list(journal.snapshots("b"))

    def test_snapshot_at_seq_zero_covers_nothing(self, journal: Journal) -> None:
        """A snapshot of the empty state is valid and chains to the genesis digest."""
        journal.put_snapshot("a", 0, b"empty", version="v1", ts_ns=0)
        assert [0] == [s.seq for s in journal.snapshots("a")]

    def test_verify_reports_head_and_detects_truncation(self, journal: Journal) -> None:
        """verify() returns the head; given a later expected head, it reports truncation."""
        journal.append([pending() for _ in range(3)])
        report = journal.verify()
        assert (True, 3) == (report.ok, report.entries)
        assert journal.head() == report.head
        assert journal.verify(expected_head=report.head).ok
        longer = Head(5, b"\x01" * 32)
        truncated = journal.verify(expected_head=longer)
        assert (False, 4) == (truncated.ok, truncated.first_bad_seq)
        rewritten = journal.verify(expected_head=Head(2, b"\x01" * 32))
        assert (False, 2) == (rewritten.ok, rewritten.first_bad_seq)

    def test_head_text_round_trips(self) -> None:
        """A head printed as SEQ:HEX parses back to itself; garbage is refused."""
        head = Head(7, bytes(range(32)))
        assert head == Head.parse(str(head))
        assert head == Head.parse(f" {head}\n")  # pasted with its line's end
        digest = bytes(range(32)).hex()
        # a head cut short, or out of range, is no head (it was taken, and every journal
        # then failed verify as "tampered" against it)
        for text in (
            "seven",
            "7:",
            "7:00",
            f"7:{digest[:-1]}",
            f"7:{digest}00",
            f"7:{digest[:-2]} 1",
            f":{digest}",
            f"-7:{digest}",
            f"1_0:{digest}",
            f"{2**63}:{digest}",
            f"7:{digest[:-2]}zz",
        ):
            with pytest.raises(ValueError, match="SEQ:HEXDIGEST"):
                Head.parse(text)

    def test_closed_journal_refuses_use(self, journal: Journal) -> None:
        """After close(), every call raises JournalClosedError."""
        journal.close()
        with pytest.raises(JournalClosedError):
            journal.append([pending()])
        with pytest.raises(JournalClosedError):
            journal.head()

    def test_append_many_checks_expected_stream_seq_per_batch(self, journal: Journal) -> None:
        """Each batch in a shared commit has its own optimistic-concurrency check."""
        results = journal.append_many([[pending("a")], [pending("a")], [pending("b")]], [0, 0, 0])
        assert isinstance(results[1], StreamConflictError)
        assert [1, 2] == [e.seq for r in results if isinstance(r, list) for e in r]

    def test_append_many_refuses_what_was_built_on_a_refused_batch(self, journal: Journal) -> None:
        """A later batch of a stream whose earlier batch in the same commit was refused is
        refused too, even when the head it expects is, by coincidence, the actual one: it
        was written to follow the refused batch, not the entries another writer added."""
        journal.append([pending("a"), pending("a")])  # another writer: a is at stream_seq 2
        results = journal.append_many(
            [[pending("a"), pending("a")], [pending("a")], [pending("b")], [pending("a")]],
            [0, 2, 0, None],
        )
        assert isinstance(results[0], StreamConflictError)
        assert isinstance(results[1], StreamConflictError)  # expected 2, and a is at 2
        assert "a batch before this one in the same append was refused" in str(results[1])
        assert [[3], [4]] == [[e.seq for e in r] for r in results[2:] if isinstance(r, list)]
        assert 2 + 1 == journal.stream_head("a")  # the one with no expectation went in
        assert journal.verify().ok

    def test_append_many_refuses_a_fleet_batch_after_a_refused_one(self, journal: Journal) -> None:
        """A FleetBatch behind a refused FleetBatch in the same commit is refused, whatever
        its stream (its fleet gate counted the refused one); the FleetBatch before it and a
        plain batch after it go in."""
        journal.append([pending("a")])  # another writer: a is at stream_seq 1
        results = journal.append_many(
            [
                FleetBatch([pending("c")]),
                FleetBatch([pending("a")]),
                FleetBatch([pending("b")]),
                [pending("b")],
            ],
            [0, 0, 0, None],
        )
        assert isinstance(results[1], StreamConflictError)
        assert isinstance(results[2], StreamConflictError)
        assert "this one's fleet gate counted it" in str(results[2])
        assert [[2], [3]] == [[e.seq for e in r] for r in results if isinstance(r, list)]
        assert ["c", "b"] == [r[0].stream for r in results if isinstance(r, list)]
        assert journal.verify().ok

    def test_a_batch_planned_from_controls_that_moved_on_is_refused(self, journal: Journal) -> None:
        """A batch whose action was planned from the operator controls as of `~host`
        stream_seq N (`controls_seen`) is refused once `~host` holds more (a silence set
        by another writer since), alone, by another writer or in the same append; a
        batch planned from the head goes in, and one that planned nothing is not asked."""
        journal.append([pending(HOST_STREAM, kind="SilenceSet")])  # ~host at stream_seq 1
        stale, plain, fleet, current = journal.append_many(
            [
                RuntimeBatch([pending("a")], controls_seen=0),
                RuntimeBatch([pending("b")]),
                FleetBatch([pending("c")], controls_seen=0),
                RuntimeBatch([pending("d")], controls_seen=1),
            ]
        )
        assert isinstance(stale, StreamConflictError)
        assert "controls" in str(stale)
        assert isinstance(fleet, StreamConflictError)
        assert ["b", "d"] == [r[0].stream for r in (plain, current) if isinstance(r, list)]
        moved, after = journal.append_many(
            [[pending(HOST_STREAM, kind="SilenceEnded")], RuntimeBatch([pending("a")], 1)]
        )
        assert isinstance(moved, list)
        assert isinstance(after, StreamConflictError)  # ~host moved in the same append
        assert 4 == journal.head().seq
        other = self.another_writer(journal)
        if other is not None:  # what a journal knows of ~host's head is checked, not trusted
            try:
                [known] = journal.append_many([RuntimeBatch([pending("e")], controls_seen=2)])
                assert isinstance(known, list)
                other.append([pending(HOST_STREAM, kind="SilenceSet")])
                [behind] = journal.append_many([RuntimeBatch([pending("e")], controls_seen=2)])
                assert isinstance(behind, StreamConflictError)
            finally:
                other.close()
        assert journal.verify().ok

    def test_a_fleet_batch_is_refused_after_another_writer_s_fleet_entry(
        self, journal: Journal
    ) -> None:
        """A FleetBatch was decided from the fleet as of its `view_seq` plus its own
        writer's entries: entries this journal object appended since (once it has
        appended a FleetBatch: a journal that never does keeps no count) do not refuse
        it; a decision (any fleet kind) that another writer appended since does, alone."""
        other = self.another_writer(journal)
        if other is None:
            pytest.skip("this backend has no second writer on the same storage")
        try:
            [first] = journal.append_many([FleetBatch([pending("a", kind="DecisionMade")], 0)])
            assert isinstance(first, list)
            view = journal.head().seq
            journal.append([pending("a", kind="DecisionMade")])  # its own, after the view
            [mine] = journal.append_many([FleetBatch([pending("a", kind="DecisionMade")], view)])
            assert isinstance(mine, list)
            other.append([pending("c", kind="OutcomeRecorded")])  # another's, no fleet kind
            [still] = journal.append_many([FleetBatch([pending("a")], view)])
            assert isinstance(still, list)
            other.append([pending("b", kind="DecisionMade")])
            refused, plain, later = journal.append_many(
                [FleetBatch([pending("a")], view), [pending("c")], FleetBatch([pending("d")], view)]
            )
            assert isinstance(refused, StreamConflictError)
            assert "another writer journaled a fleet entry" in str(refused)
            assert isinstance(plain, list)  # not gated: not refused
            assert isinstance(later, StreamConflictError)
            caught_up = journal.head().seq
            [taken] = journal.append_many([FleetBatch([pending("a")], caught_up)])
            assert isinstance(taken, list)
        finally:
            other.close()

    def test_append_many_sees_ids_staged_in_the_same_commit(self, journal: Journal) -> None:
        """An id appended earlier in the same shared commit counts as journaled."""
        results = journal.append_many(
            [
                [pending(event_id="x", body=b"1")],
                [pending(event_id="x", body=b"1")],
                [pending(event_id="x", body=b"2")],
            ]
        )
        first, again, clash = results
        assert isinstance(first, list)
        assert first == again
        assert isinstance(clash, DuplicateEventError)
        assert 1 == journal.head().seq

    def test_verify_reports_progress(
        self, journal: Journal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Long verifies call back with the count checked so far (every PROGRESS_EVERY entries)."""
        from adaptive_runtime.journal import _chain

        monkeypatch.setattr(_chain, "PROGRESS_EVERY", 10)
        journal.append([pending() for _ in range(35)])
        seen: list[int] = []
        assert journal.verify(progress=seen.append).ok
        assert [10, 20, 30] == seen

    def test_a_reader_reads_what_is_committed_and_closes_alone(self, journal: Journal) -> None:
        """A backend with `reader()` (Readers) gives a journal that sees every commit made
        before each read, from another thread, and whose close leaves this one open."""
        import threading

        from adaptive_runtime.journal import has_readers

        source: object = journal
        if not has_readers(source):
            pytest.skip("this backend gives no reader: its reads run where it writes")
        reader = source.reader()
        assert reader is not journal
        try:
            journal.append([pending("a", event_id="x"), pending("a")])
            seen: list[object] = []
            thread = threading.Thread(
                target=lambda: seen.extend(
                    [reader.head(), [e.seq for e in reader.read("a")], reader.by_event_id("x")]
                )
            )
            thread.start()
            thread.join()
            head, seqs, by_id = seen
            assert journal.head() == head
            assert [1, 2] == seqs
            assert by_id == journal.get(1)
        finally:
            reader.close()
        journal.append([pending("b")])
        assert 3 == journal.head().seq
