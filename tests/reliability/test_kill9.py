"""Kill -9 a process mid-stream, many times: nothing acknowledged is ever lost."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import AgentState, encode_state, evolve, rebuild, verify_replay
from adaptive_runtime.records import DecisionMade, decode_record

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from adaptive_runtime import Runtime

    KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]

    async def main(path, run, concurrency):
        async with Runtime(agent_id="crashy", path=path, checkpoint_every=3) as runtime:
            i = 0
            while True:
                batch = []
                for _ in range(concurrency):
                    i += 1
                    event = {"type": KINDS[i % 5], "severity": (i * 31 % 100) / 100,
                             "cpu": i * 17 % 101, "id": f"run{run}-{i}"}
                    batch.append(runtime.process(event))
                for d in await asyncio.gather(*batch):
                    if d.seq % 5 == 0:
                        await runtime.record_outcome(d, success=d.seq % 3 == 0)
                    print(json.dumps([d.event_id, d.event_seq, d.seq, d.action, d.confidence]), flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


def test_kill9_loses_no_acknowledged_event(tmp_path: Path, rng: random.Random) -> None:
    """Over many SIGKILLs at random points, every acknowledged decision survives and replays."""
    path = tmp_path / "crash.db"
    acked: dict[str, tuple[int, int, str, float]] = {}
    for run in range(12):
        stop_after = rng.randint(1, 60)
        concurrency = rng.choice([1, 4, 16])
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(run), str(concurrency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for _ in range(stop_after):
            line = proc.stdout.readline()
            if not line:
                break
            event_id, event_seq, seq, action, confidence = json.loads(line)
            acked[event_id] = (event_seq, seq, action, confidence)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err

        journal = SqliteJournal(path)
        report = journal.verify()
        assert report.ok, report
        for event_id, (event_seq, seq, action, confidence) in acked.items():
            entry = journal.by_event_id(event_id)
            assert entry is not None, f"acknowledged {event_id} lost (seed {rng!r})"
            assert event_seq == entry.seq
            decision = decode_record(journal.get(seq).body)  # type: ignore[union-attr]
            assert isinstance(decision, DecisionMade)
            assert (action, confidence) == (decision.decision.action, decision.decision.confidence)
        scratch = AgentState(stream="crashy")
        for entry in journal.read("crashy"):
            evolve(scratch, entry)
        assert encode_state(scratch) == encode_state(rebuild(journal, "crashy").state)
        assert [e.stream_seq for e in journal.read("crashy")] == list(range(1, report.entries + 1))
        assert verify_replay(journal).ok
        journal.close()
    assert len(acked) > 12
