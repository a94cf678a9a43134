"""Power loss and I/O faults, injected through an apsw VFS under a real runtime."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import apsw
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from faultvfs import FaultVFS
from powercut import event, run_until_power_cut

from adaptive_runtime import JournalError, ManualClock, Runtime
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay

_names = itertools.count()


@pytest.mark.parametrize("round_", range(6))
async def test_power_loss_at_full_durability_keeps_every_acknowledged_commit(
    tmp_path: Path, rng: random.Random, round_: int
) -> None:
    """Unsynced writes are dropped (and one torn); every acknowledged event survives, and the file verifies."""
    path = tmp_path / "power.db"
    all_acked: dict[str, int] = {}
    for cut in range(3):
        acked, _ = await run_until_power_cut(path, "full", rng, start=(round_ * 3 + cut) * 100_000)
        all_acked.update(acked)
        journal = SqliteJournal(path)
        assert journal.verify().ok
        for event_id, seq in all_acked.items():
            entry = journal.by_event_id(event_id)
            assert entry is not None, f"acknowledged {event_id} lost ({rng!r})"
            assert seq == entry.seq + 1
        assert verify_replay(journal).ok
        journal.close()


async def test_power_loss_at_normal_durability_never_corrupts(
    tmp_path: Path, rng: random.Random
) -> None:
    """At normal, the last commits may be lost, but the journal opens, verifies and replays."""
    path = tmp_path / "normal.db"
    for cut in range(3):
        await run_until_power_cut(path, "normal", rng, start=cut * 100_000)
        journal = SqliteJournal(path)
        assert journal.verify().ok
        assert verify_replay(journal).ok
        journal.close()


@pytest.mark.parametrize("fault", [apsw.FullError, apsw.IOError], ids=["disk-full", "io-error"])
async def test_write_faults_give_typed_errors_and_heal(
    tmp_path: Path, fault: type[Exception]
) -> None:
    """A full disk or an I/O error is a JournalError; acknowledged data stays; it works once the fault clears."""
    vfs = FaultVFS(f"faulty{next(_names)}")
    journal = SqliteJournal(tmp_path / "fault.db", durability="full", vfs=vfs.name)  # type: ignore[arg-type]
    runtime = Runtime(agent_id="a", journal=journal, clock=ManualClock())
    await runtime.start()
    before = [await runtime.process(event(i)) for i in range(5)]
    vfs.fail_writes = fault
    for i in range(5, 8):
        with pytest.raises(JournalError):
            await runtime.process(event(i))
    vfs.fail_writes = None
    after = [await runtime.process(event(i)) for i in range(8, 12)]
    await runtime.stop()
    assert journal.verify().ok
    for d in before + after:
        assert d.seq == journal.by_event_id(str(d.event_id)).seq + 1  # type: ignore[union-attr]
    assert 9 * 2 == journal.head().seq
    journal.close()
    vfs.unregister()
