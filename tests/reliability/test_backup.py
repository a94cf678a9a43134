"""Backing up a journal that is being written: `export` while a writer process appends.

Each export is the journal as it began, a prefix of the journal as it goes on: it imports
with its chain verified,
its head is the journal's own entry at that seq, and replay re-makes its decisions. The
writer is then killed with -9, mid-append, and the journal still verifies.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cli_support import cli

from adaptive_runtime.journal import Head, SqliteJournal

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from adaptive_runtime import Runtime
    KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
    async def main():
        async with Runtime(agent_id="live", path=sys.argv[1], durability="full") as runtime:
            i = 0
            while True:  # until killed
                d = await runtime.process({"type": KINDS[i % 5], "severity": (i % 10) / 10})
                if i % 7 == 0:
                    await runtime.record_outcome(d, success=i % 2 == 0)
                i += 1
                if i == 300:
                    print("writing", flush=True)
    asyncio.run(main())
    """
)


def test_exports_of_a_journal_being_written_are_verified_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert "writing" == writer.stdout.readline().strip()
        heads: list[Head] = []
        for k in range(3):
            out = tmp_path / f"backup-{k}.jsonl"
            exported = cli("export", "--db", str(path), "--out", str(out))
            assert 0 == exported.returncode, exported.stderr
            imported = cli("import", str(out), "--db", str(tmp_path / f"restored-{k}.db"))
            assert 0 == imported.returncode, imported.stderr
            assert "chain verified" in imported.stdout
            heads.append(Head.parse(imported.stdout.rsplit("Head: ", 1)[1].strip()))
        assert writer.poll() is None  # every export was taken while it wrote
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert [h.seq for h in heads] == sorted(h.seq for h in heads)
    replayed = cli("replay", "--verify", "--db", str(tmp_path / "restored-0.db"))
    assert 0 == replayed.returncode, replayed.stdout + replayed.stderr
    journal = SqliteJournal(path, create=False)
    try:
        report = journal.verify()
        assert report.ok, report.problem
        assert heads[-1].seq < report.head.seq  # it went on writing after the last export
        for head in heads:  # each backup is the journal up to its head, digest for digest
            entry = next(iter(journal.read(after=head.seq - 1)))
            assert (head.seq, head.digest) == (entry.seq, entry.digest)
    finally:
        journal.close()
