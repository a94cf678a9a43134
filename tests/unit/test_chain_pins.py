"""Pins for the hash chain: the digest's inputs, batch checks, replays and conflicts, and
verify's whole report for every kind of damage (see RELIABILITY.md, "Mutation testing")."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from adaptive_runtime.errors import DuplicateEventError, InvalidEventError, StreamConflictError
from adaptive_runtime.journal import (
    GENESIS_DIGEST,
    Head,
    MemoryJournal,
    Pending,
    VerifyReport,
    _chain,
)
from adaptive_runtime.records import Entry
from adaptive_runtime.testing.journal_contract import pending


def p(stream: str = "s", kind: str = "K", body: bytes = b"b", **kwargs: object) -> Pending:
    """The contract kit's pending entry, on stream "s" with body b"b" unless told."""
    return pending(stream, kind, body, **kwargs)  # type: ignore[arg-type]


def test_the_digest_hashes_every_field_with_the_previous_digest() -> None:
    fields = (GENESIS_DIGEST, 1, "s", 1, "K", 5, "e", b"b", 1)
    expected = hashlib.blake2b(msgspec.msgpack.encode(fields), digest_size=32).digest()
    assert expected == _chain.digest_of(*fields)
    assert 32 == len(expected)
    assert bytes(32) == GENESIS_DIGEST


def test_link_numbers_and_chains_a_batch() -> None:
    first, second = _chain.link([p(body=b"1"), p(body=b"2")], Head(0, GENESIS_DIGEST), 0)
    assert (1, 1, 1, 2, 2, 1) == (
        first.seq,
        first.stream_seq,
        first.batch,
        second.seq,
        second.stream_seq,
        second.batch,
    )
    assert first.digest == _chain.digest_of(GENESIS_DIGEST, 1, "s", 1, "K", 1, None, b"1", 1)
    assert second.digest == _chain.digest_of(first.digest, 2, "s", 2, "K", 1, None, b"2", 1)
    [third] = _chain.link([p()], Head(2, second.digest), 7)
    assert (3, 8, 3) == (third.seq, third.stream_seq, third.batch)


@pytest.mark.parametrize(
    ("batch", "message", "field"),
    [
        ([], "append needs at least one entry; got an empty batch", None),
        (
            [p(), p(stream="t")],
            "entry 1 is for stream 't' but the batch is for 's'; append one stream per batch",
            "stream",
        ),
        ([p(body="x")], "entry 0 has a body of type str; it must be bytes", "body"),  # type: ignore[arg-type]
        ([p(event_id="e"), p(event_id="e")], "event_id 'e' appears twice in one batch", "event_id"),
        ([p(ts_ns=-1)], "entry 0 has ts_ns -1; it must be an int from 0 to 2**63-1", "ts_ns"),
        (
            [p(ts_ns=2**63)],
            f"entry 0 has ts_ns {2**63}; it must be an int from 0 to 2**63-1",
            "ts_ns",
        ),
        ([p(stream="")], "stream must be a non-empty string of at most 256 characters", "stream"),
        ([p(kind=5)], "kind must be a non-empty string of at most 256 characters", "kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_batches_are_refused_naming_what_is_wrong(
    batch: list[Pending], message: str, field: str | None
) -> None:
    with pytest.raises(InvalidEventError) as refused:
        _chain.check_batch(batch)
    assert (message, field) == (str(refused.value), refused.value.field)


def test_names_at_their_limit() -> None:
    assert "s" * 256 == _chain.check_batch([p(stream="s" * 256)])
    with pytest.raises(InvalidEventError) as long_name:
        _chain.check_batch([p(stream="s" * 257)])
    assert "'stream' is 257 characters long; at most 256 are allowed" == str(long_name.value)
    assert "s" == _chain.check_batch([p(ts_ns=0), p(ts_ns=2**63 - 1)])


def test_replays_and_reuses_of_event_ids() -> None:
    journal = MemoryJournal()
    original = journal.append([p(event_id="a"), p(event_id="b", body=b"c")])
    assert original == journal.append([p(event_id="a"), p(event_id="b", body=b"c")])
    with pytest.raises(DuplicateEventError) as other_body:
        journal.append([p(event_id="a", body=b"other")])
    assert (
        "event_id 'a' was already journaled at seq 1 with a different body; use a new id for a new event",
        "a",
        1,
    ) == (str(other_body.value), other_body.value.event_id, other_body.value.seq)
    with pytest.raises(DuplicateEventError) as partial:
        journal.append([p(event_id="a"), p(event_id="new")])
    assert str(partial.value) == (
        "event_id 'a' was already journaled at seq 1 in another batch; a retried batch must "
        "repeat the original exactly"
    )
    journal.append([p(event_id="z")])
    with pytest.raises(DuplicateEventError, match="in another batch"):
        journal.append([p(event_id="a"), p(event_id="z")])  # two batches' ids together
    assert 3 == journal.head().seq


def test_a_stale_expected_head_is_a_conflict_naming_both() -> None:
    with pytest.raises(StreamConflictError) as conflict:
        _chain.check_expected("s", 2, 3)
    assert "stream 's' is at stream_seq 3, not 2; re-read and retry" == str(conflict.value)
    assert ("s", 2, 3) == (conflict.value.stream, conflict.value.expected, conflict.value.actual)
    _chain.check_expected("s", None, 3)
    _chain.check_expected("s", 3, 3)


def _entries() -> list[Entry]:
    journal = MemoryJournal()
    journal.append([p(body=b"1"), p(body=b"2")])
    journal.append([p(stream="t", body=b"3")])
    journal.append([p(body=b"4")])
    return list(journal.read())


def test_verify_reports_a_sound_chain_whole() -> None:
    entries = _entries()
    assert VerifyReport(ok=True, entries=4, head=Head(4, entries[-1].digest)) == _chain.walk(
        entries
    )
    at = Head(2, entries[1].digest)
    assert _chain.walk(entries, at).ok
    assert VerifyReport(ok=True, entries=0, head=Head(0, GENESIS_DIGEST)) == _chain.walk([])


def _bad(entries: list[Entry], at: int, seq: int, problem: str) -> VerifyReport:
    good = entries[at - 2] if at >= 2 else None
    return VerifyReport(
        ok=False,
        entries=at - 1,
        head=Head(at - 1, good.digest if good else GENESIS_DIGEST),
        first_bad_seq=seq,
        problem=problem,
    )


def test_verify_reports_each_kind_of_damage_whole() -> None:
    e = _entries()
    replace = msgspec.structs.replace
    missing = [e[0], e[2], e[3]]
    assert _bad(e, 2, 2, "expected seq 2 next, found 3 (rows missing or inserted)") == _chain.walk(
        missing
    )
    wrong_stream_seq = [e[0], e[1], replace(e[2], stream_seq=2), e[3]]
    assert _bad(e, 3, 3, "stream 't' expected stream_seq 1, found 2") == _chain.walk(
        wrong_stream_seq
    )
    wrong_batch = [e[0], replace(e[1], batch=7), e[2], e[3]]
    assert _bad(e, 2, 2, "batch marker 7 does not match its transaction") == _chain.walk(
        wrong_batch
    )
    own_seq = [e[0], replace(e[1], batch=2), e[2], e[3]]  # a batch of its own: the digest says
    assert _bad(
        e, 2, 2, "digest does not match the entry and its predecessor (edited or reordered)"
    ) == _chain.walk(own_seq)
    assert _chain.walk([e[0], replace(e[1], batch=1)]).ok  # a batch's second entry: its first's seq
    edited = [e[0], replace(e[1], body=b"X"), e[2], e[3]]
    assert _bad(
        e, 2, 2, "digest does not match the entry and its predecessor (edited or reordered)"
    ) == _chain.walk(edited)


def test_verify_against_a_kept_head() -> None:
    e = _entries()
    truncated = _chain.walk(e[:2], Head(4, e[3].digest))
    assert (
        VerifyReport(
            ok=False,
            entries=2,
            head=Head(2, e[1].digest),
            first_bad_seq=3,
            problem="journal ends at seq 2 but the expected head is at seq 4 (truncated)",
        )
        == truncated
    )
    rewritten = _chain.walk(e, Head(2, bytes(32)))
    assert (
        VerifyReport(
            ok=False,
            entries=4,
            head=Head(4, e[3].digest),
            first_bad_seq=2,
            problem="the digest at seq 2 differs from the expected head (history rewritten)",
        )
        == rewritten
    )
    assert _chain.walk(e, Head(0, GENESIS_DIGEST)).ok


def test_verify_reports_progress_every_hundred_thousand() -> None:
    assert 100_000 == _chain.PROGRESS_EVERY
    seen: list[int] = []
    fake = _entries()
    counted = list(_chain._reporting(iter(fake * 50_000), seen.append))
    assert 200_000 == len(counted)
    assert [100_000, 200_000] == seen


def test_event_ids_anywhere_in_a_batch_are_looked_up() -> None:
    journal = MemoryJournal()
    batch = [p(), p(event_id="a")]
    original = journal.append(batch)
    assert original == journal.append(batch)  # replayed, though its first entry has no id
    with pytest.raises(DuplicateEventError, match="in another batch"):
        journal.append([p(event_id="new"), p(event_id="a")])
    with pytest.raises(InvalidEventError) as bad_id:
        _chain.check_batch([p(event_id="")])
    assert ("event_id must be a non-empty string of at most 256 characters", "event_id") == (
        str(bad_id.value),
        bad_id.value.field,
    )


def test_expected_heads_at_their_edges() -> None:
    e = _entries()
    assert _chain.walk(e, Head(4, e[3].digest)).ok  # the very end
    assert _chain.walk(e, Head(0, b"x" * 32)).ok  # seq 0: nothing to compare
    wrong_first = _chain.walk(e, Head(1, bytes(32)))
    assert (False, 1) == (wrong_first.ok, wrong_first.first_bad_seq)


def test_progress_is_reported_while_walking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chain, "PROGRESS_EVERY", 1)
    seen: list[int] = []
    assert _chain.walk(_entries(), progress=seen.append).ok
    assert [1, 2, 3, 4] == seen  # counted from one, once per entry


def test_snapshots_are_trusted_only_with_their_key_and_the_chain_s_digest() -> None:
    from adaptive_runtime.journal import Snapshot
    from adaptive_runtime.journal._keys import snapshot_mac

    key = b"k" * 32
    e = _entries()
    snap = Snapshot(id=1, stream="s", seq=2, digest=e[1].digest, version="v", state=b"x", ts_ns=5)
    mac = snapshot_mac(key, "s", 2, e[1].digest, "v", b"x")
    assert _chain.trusted(snap, mac, key, e[1].digest)
    assert not _chain.trusted(snap, mac, None, e[1].digest)  # no key: nothing is trusted
    assert not _chain.trusted(snap, mac, key, e[0].digest)  # the chain moved on
    assert not _chain.trusted(snap, b"forged" * 6, key, e[1].digest)
    genesis = Snapshot(
        id=2, stream="s", seq=0, digest=GENESIS_DIGEST, version="v", state=b"", ts_ns=1
    )
    genesis_mac = snapshot_mac(key, "s", 0, GENESIS_DIGEST, "v", b"")
    rows = [
        (1, "s", 2, e[1].digest, "v", b"x", mac, 5, e[1].digest),
        (2, "s", 0, GENESIS_DIGEST, "v", b"", genesis_mac, 1, None),
        (3, "s", 2, e[1].digest, "v", b"forged", mac, 6, e[1].digest),
        (4, "s", 3, e[2].digest, "v", b"x", mac, 7, None),  # its entry is gone
    ]
    trusted = list(_chain.checked_snapshots(rows, key, untrusted=False))
    assert [snap, genesis] == trusted
    every = list(_chain.checked_snapshots(rows, key, untrusted=True))
    assert [True, True, False, False] == [s.trusted for s in every]
    assert [1, 2, 3, 4] == [s.id for s in every]
