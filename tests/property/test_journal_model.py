"""Random appends and reads against a plain-list model of the journal."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_runtime.errors import DuplicateEventError
from adaptive_runtime.journal import Journal, MemoryJournal, Pending, SqliteJournal

streams = st.sampled_from(["a", "b", "c"])
kinds = st.sampled_from(["E", "D", "O"])
event_ids = st.one_of(st.none(), st.sampled_from([f"id{i}" for i in range(8)]))
bodies = st.sampled_from([b"", b"x", b"y"])
batches = st.tuples(streams, st.lists(st.tuples(kinds, event_ids, bodies), min_size=1, max_size=3))
operations = st.lists(
    st.one_of(batches, st.tuples(st.just("read"), streams, st.integers(0, 20))), max_size=25
)

Model = list[tuple[str, str, str | None, bytes]]


def apply(journal: Journal, ops: list[tuple[object, ...]]) -> None:
    model: Model = []
    for op in ops:
        if op[0] == "read":
            _, stream, after = op
            want = [(i + 1, m) for i, m in enumerate(model) if m[0] == stream and i + 1 > after]  # type: ignore[operator]
            got = [
                (e.seq, (e.stream, e.kind, e.event_id, e.body))
                for e in journal.read(stream, after=after)
            ]  # type: ignore[arg-type]
            assert want == got
            newest = [i + 1 for i in range(len(model))][::-1][:3]
            assert newest == [e.seq for e in journal.latest(3)]
            continue
        stream, items = op
        ids = [eid for _, eid, _ in items if eid is not None]  # type: ignore[attr-defined]
        batch = [
            Pending(stream=stream, kind=k, ts_ns=0, body=b, event_id=eid) for k, eid, b in items
        ]  # type: ignore[arg-type, attr-defined]
        known = {m[2]: m for m in model if m[2] is not None}
        try:
            journal.append(batch)
        except Exception as exc:
            # the model refuses the same batches: repeated ids, or ids already used
            assert len(set(ids)) != len(ids) or any(i in known for i in ids), exc
            assert not isinstance(exc, DuplicateEventError) or any(i in known for i in ids)
            continue
        if ids and all(i in known for i in ids):
            continue  # an exact replay of an earlier batch appends nothing
        assert not any(i in known for i in ids)
        model.extend((stream, k, eid, b) for k, eid, b in items)  # type: ignore[misc, attr-defined]
        assert len(model) == journal.head().seq
    assert journal.verify().ok
    assert len(model) == journal.verify().entries


@settings(max_examples=60, deadline=None)
@given(operations)
def test_memory_journal_matches_model(ops: list[tuple[object, ...]]) -> None:
    """The in-memory journal behaves like a list with ids that can't be reused."""
    apply(MemoryJournal(), ops)


@settings(max_examples=30, deadline=None)
@given(operations)
def test_sqlite_journal_matches_model(ops: list[tuple[object, ...]]) -> None:
    """The SQLite journal behaves like a list with ids that can't be reused."""
    with tempfile.TemporaryDirectory() as folder:
        journal = SqliteJournal(Path(folder) / "j.db", durability="normal")
        try:
            apply(journal, ops)
        finally:
            journal.close()
