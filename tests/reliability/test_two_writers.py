"""Several processes running a Runtime for the same agent on one file: conflicts resolve, nothing diverges."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import rebuild, verify_replay

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from adaptive_runtime import Runtime
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
    async def main():
        async with Runtime(agent_id="shared", path=path, durability="normal") as runtime:
            for i in range(n):
                d = await runtime.process({"type": KINDS[i % 5], "severity": (i % 10) / 10, "cpu": i % 100, "id": f"{name}-{i}"})
                if i % 7 == 0:
                    await runtime.record_outcome(d, success=i % 2 == 0)
    asyncio.run(main())
    """
)


@pytest.mark.parametrize(("writers", "burners"), [(2, 0), (4, 0), (2, 1)])
def test_processes_sharing_one_agent(tmp_path: Path, writers: int, burners: int) -> None:
    """Every event is journaled once, stream seqs are gapless, and replay re-makes every decision.

    With a third process burning CPU, a writer used to lose 8 conflicts in a row and fail
    with StreamConflictError; after a conflict it now decides under the write lock.
    """
    path = tmp_path / "shared.db"
    SqliteJournal(path).close()
    burning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(burners)]
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), f"w{k}", "60"],
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(writers)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert 0 == proc.returncode, err
    finally:
        for burner in burning:
            burner.kill()
            burner.wait()
    journal = SqliteJournal(path)
    assert journal.verify().ok
    entries = list(journal.read("shared"))
    assert list(range(1, len(entries) + 1)) == [e.stream_seq for e in entries]
    assert writers * 60 == sum(1 for e in entries if e.kind == "EventReceived")
    assert verify_replay(journal).ok
    assert writers * 60 == rebuild(journal, "shared").state.events
