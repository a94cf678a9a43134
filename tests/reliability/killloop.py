"""The kill -9 loop: run a runtime in a child process, kill it at a random point, check, repeat.

Kill points are either a named crash point inside the library (see
adaptive_runtime/_crashpoints.py), reached a random number of times, or a SIGKILL
from outside after a random number of acknowledged events. After every kill the
journal is checked: every acknowledged event and decision is there, and every
acknowledged outcome under its id, seqs are gapless, the chain verifies, the rebuilt
state equals a full replay, and replay re-makes every decision byte for byte. Outcomes
are sent with ids; one sent before a kill and not answered is sent again by the next
child, as a client retries (the journal answers a repeat with the first entry).

    python tests/reliability/killloop.py --runs 300 --seed 7   # prints the figures
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

CRASH_POINTS = [
    "process.decided",
    "journal.insert",
    "journal.committed",
    "process.committed",
    "outcome.committed",
    "snapshot.before",
    "snapshot.written",
    "action.started",
    "action.ran",
    "action.failed",
    "checkpoint.wal",
]

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from adaptive_runtime import RetryPolicy, Runtime
    from adaptive_runtime.journal import SqliteJournal
    from adaptive_runtime.projections.audit import decision_at

    path, run, durability = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    unanswered = json.loads(sys.argv[4])  # outcomes sent before a kill, their answer lost

    async def outcome(runtime, decision, success, oid):
        print(json.dumps(["sending", oid, decision.seq, success]), flush=True)
        new = await runtime.record_outcome(decision, success=success, id=oid)
        print(json.dumps(["outcome", oid, decision.seq, success, new]), flush=True)
    KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]

    async def main():
        journal = None
        if durability == "full":  # a small WAL threshold, so checkpoints happen within a run
            journal = SqliteJournal(path, durability="full", checkpoint="background", checkpoint_pages=8)
        runtime = Runtime(agent_id="crashy", durability=durability, journal=journal or path, checkpoint_every=7)
        calls = 0

        async def flaky(call):
            nonlocal calls
            calls += 1
            if calls % 2:
                raise ConnectionError("flaky")

        for action in ("restart_service", "scale_up_immediate", "throttle_requests", "optimize_resources",
                       "flag_for_review", "cache_warmup", "trigger_security_audit", "run_recovery"):
            runtime.action(action, retry=RetryPolicy(max_attempts=3, base_delay=0.001, jitter=0.0))(flaky)

        async with runtime:
            for oid, seq, success in unanswered:  # sent again, as a client retries
                await outcome(runtime, decision_at(runtime.journal, seq).decision, success, oid)
            i = 0
            while True:
                batch = []
                for _ in range(4):
                    i += 1
                    event = {"type": KINDS[i % 5], "severity": (i * 31 % 100) / 100, "cpu": i * 17 % 101,
                             "memory": i * 7 % 101, "id": f"run{run}-{i}"}
                    batch.append(runtime.process(event))
                for d in await asyncio.gather(*batch):
                    print(json.dumps(["decision", d.event_id, d.event_seq, d.seq, d.action, d.confidence]), flush=True)
                    if d.seq % 6 == 0:
                        await outcome(runtime, d, d.seq % 4 == 0, f"o-{d.event_id}")
                await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def check(
    path: Path, acked: dict[str, list[Any]], outcomes: dict[str, list[Any]]
) -> dict[str, int]:
    """Count what a restart finds: lost acknowledgements (decisions, and outcomes under
    their ids), gaps, state and replay mismatches."""
    from adaptive_runtime.journal import SqliteJournal
    from adaptive_runtime.projections import (
        AgentState,
        encode_state,
        evolve,
        rebuild,
        verify_replay,
    )
    from adaptive_runtime.records import DecisionMade, OutcomeRecorded, decode_record

    journal = SqliteJournal(path)
    try:
        report = journal.verify()
        lost = 0
        for event_id, (event_seq, seq, action, confidence) in acked.items():
            entry = journal.by_event_id(event_id)
            decision = journal.get(seq)
            record = None if decision is None else decode_record(decision.body)
            if (
                entry is None
                or entry.seq != event_seq
                or not isinstance(record, DecisionMade)
                or (record.decision.action, record.decision.confidence) != (action, confidence)
            ):
                lost += 1
        for oid, (seq, success) in outcomes.items():
            entry = journal.by_event_id(f"outcome:{oid}")
            record = None if entry is None else decode_record(entry.body)
            if not isinstance(record, OutcomeRecorded) or (record.decision_seq, record.success) != (
                seq,
                success,
            ):
                lost += 1
        stream_seqs = [e.stream_seq for e in journal.read("crashy")]
        gaps = sum(1 for i, s in enumerate(stream_seqs, start=1) if s != i)
        scratch = AgentState(stream="crashy")
        for entry in journal.read("crashy"):
            evolve(scratch, entry)
        state_mismatch = int(
            encode_state(scratch) != encode_state(rebuild(journal, "crashy").state)
        )
        replay = verify_replay(journal)
        return {
            "lost": lost,
            "gaps": gaps,
            "chain_broken": int(not report.ok),
            "state_mismatch": state_mismatch,
            "replay_mismatches": len(replay.mismatches),
            "entries": report.entries,
        }
    finally:
        journal.close()


def run(runs: int, seed: int, folder: Path) -> dict[str, Any]:
    """Kill a child `runs` times; return the totals and how the kills were spread."""
    rng = random.Random(seed)
    path = folder / "killloop.db"
    acked: dict[str, list[Any]] = {}
    outcomes: dict[str, list[Any]] = {}  # acknowledged: id -> [decision seq, success]
    unanswered: dict[str, list[Any]] = {}  # sent, no answer yet: sent again by the next child
    retried = {"journaled before": 0, "journaled now": 0}
    totals = {
        "lost": 0,
        "gaps": 0,
        "chain_broken": 0,
        "state_mismatch": 0,
        "replay_mismatches": 0,
    }
    spread: dict[str, int] = {}
    for number in range(runs):
        durability = rng.choice(["normal", "full"])
        env = dict(os.environ)
        if rng.random() < 0.7:
            point = rng.choice(CRASH_POINTS)
            env["ADAPTIVE_RUNTIME_CRASH_AT"] = f"{point}:{rng.randint(1, 12)}"
            stop_after = 10_000
        else:
            point = "external SIGKILL"
            env.pop("ADAPTIVE_RUNTIME_CRASH_AT", None)
            stop_after = rng.randint(1, 40)
        sent_again = set(unanswered)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(path),
                str(number),
                durability,
                json.dumps([[oid, *sent] for oid, sent in unanswered.items()]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        read = 0
        while read < stop_after:
            line = proc.stdout.readline()
            if not line:
                break  # the child killed itself at its crash point
            what, *said = json.loads(line)
            if what == "sending":
                oid, seq, success = said
                unanswered[oid] = [seq, success]
                continue
            if what == "outcome":
                oid, seq, success, new = said
                unanswered.pop(oid, None)
                if oid in sent_again:
                    retried["journaled now" if new else "journaled before"] += 1
                outcomes[oid] = [seq, success]
                continue
            event_id, event_seq, seq, action, confidence = said
            acked[event_id] = [event_seq, seq, action, confidence]
            read += 1
            if read >= 200:  # a crash point not reached in time: kill from outside instead
                point += " (not reached)"
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            raise RuntimeError(
                f"run {number}: child ended with {proc.returncode}, not SIGKILL:\n{err}"
            )
        spread[point] = spread.get(point, 0) + 1
        found = check(path, acked, outcomes)
        for key in totals:
            totals[key] += found[key]
    final = check(path, acked, outcomes)
    return {
        "runs": runs,
        "seed": seed,
        "acknowledged": len(acked),
        "outcomes_acknowledged": len(outcomes),
        "outcomes_sent_again": retried,
        "entries": final["entries"],
        **totals,
        "kills_by_point": dict(sorted(spread.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(run(args.runs, args.seed, Path(folder)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
