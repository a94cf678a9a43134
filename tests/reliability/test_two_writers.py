"""Several processes running hosts on one SQLite file: each agent served by one at a time.

Processes serving different agents share the file; processes for one agent take turns
(a second is refused with AgentOwnedElsewhere while the first runs), and one that dies
with kill -9 hands its agent over at once, its unfinished action resumed once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import rebuild, verify_replay

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from adaptive_runtime import Runtime
    from adaptive_runtime.errors import AgentOwnedElsewhere
    path, agent, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
    async def main():
        async with Runtime(agent_id=agent, path=path, durability="normal") as runtime:
            for i in range(n):
                d = await runtime.process({"type": KINDS[i % 5], "severity": (i % 10) / 10, "cpu": i % 100, "id": f"{name}-{i}"})
                if i % 7 == 0:
                    await runtime.record_outcome(d, success=i % 2 == 0)
            await asyncio.sleep(0.3)  # still serving it when the others start: they meet
    refused = 0
    while True:  # one process at a time serves an agent: wait for the one serving it
        try:
            asyncio.run(main())
            break
        except AgentOwnedElsewhere:
            refused += 1
            time.sleep(0.02)
    print(refused)
    """
)


def _run_writers(path: Path, agents: list[str], burners: int) -> list[int]:
    """Run one writer process per entry of `agents`, all at once; return each one's refusals."""
    burning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(burners)]
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), agent, f"w{k}", "60"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k, agent in enumerate(agents)
        ]
        refusals = []
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert 0 == proc.returncode, err
            refusals.append(int(out))
        return refusals
    finally:
        for burner in burning:
            burner.kill()
            burner.wait()


@pytest.mark.parametrize(("writers", "burners"), [(2, 0), (4, 0), (2, 1)])
def test_processes_serving_their_own_agents_share_one_file(
    tmp_path: Path, writers: int, burners: int
) -> None:
    """Every event is journaled once, each stream is gapless, and replay re-makes every
    decision: the writers append to one file at once, each to its own agent's stream."""
    path = tmp_path / "shared.db"
    SqliteJournal(path).close()
    agents = [f"agent-{k}" for k in range(writers)]
    assert [0] * writers == _run_writers(path, agents, burners)
    journal = SqliteJournal(path)
    try:
        assert journal.verify().ok
        for agent in agents:
            entries = list(journal.read(agent))
            assert list(range(1, len(entries) + 1)) == [e.stream_seq for e in entries]
            assert 60 == sum(1 for e in entries if e.kind == "EventReceived")
            assert 60 == rebuild(journal, agent).state.events
        assert verify_replay(journal).ok
    finally:
        journal.close()


def test_processes_for_one_agent_take_turns(tmp_path: Path) -> None:
    """Three processes for one agent: while one serves it the others are refused, so they
    serve it one after another, and every event of each is journaled once, in a gapless
    stream that replays."""
    path = tmp_path / "shared.db"
    SqliteJournal(path).close()
    refusals = _run_writers(path, ["shared"] * 3, burners=0)
    journal = SqliteJournal(path)
    try:
        assert journal.verify().ok
        entries = list(journal.read("shared"))
        assert list(range(1, len(entries) + 1)) == [e.stream_seq for e in entries]
        assert 180 == sum(1 for e in entries if e.kind == "EventReceived")
        assert verify_replay(journal).ok
    finally:
        journal.close()
    assert sum(refusals) > 0  # they met: a test of turns, not of a sequence


HOLDER = textwrap.dedent(
    """
    import asyncio, json, sys
    from adaptive_runtime import Runtime
    path, log, name = sys.argv[1], sys.argv[2], sys.argv[3]
    def note(**what):
        with open(log, "a") as f:
            f.write(json.dumps({"by": name, **what}) + "\\n")
    async def main():
        runtime = Runtime(agent_id="agent", path=path, durability="full")
        @runtime.action("restart_service")
        async def restart(call):
            note(ran=call.decision.seq)
            if name == "first":
                await asyncio.sleep(3600)  # killed with -9 in here
        try:
            await runtime.start()
        except Exception as exc:
            note(refused=type(exc).__name__)
            return
        note(started=True)
        if name == "first":
            await runtime.process({"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88})
            await asyncio.sleep(3600)
        await runtime.wait_for_actions()
        await runtime.stop()
    asyncio.run(main())
    """
)


def _notes(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_second_process_is_refused_then_takes_over_from_one_killed_with_9(
    tmp_path: Path,
) -> None:
    """While the first process runs an action, a second for the same agent is refused (it
    used to resume the action the first was still running); once the first is killed with
    -9, the next one serves the agent at once and resumes the action, once."""
    path, log = tmp_path / "j.db", tmp_path / "notes.jsonl"

    def start(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), str(log), name],
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start("first")
    try:
        deadline = time.monotonic() + 60
        while not any("ran" in n for n in _notes(log)):
            assert time.monotonic() < deadline, first.stderr
            assert first.poll() is None
            time.sleep(0.02)
        second = start("second")
        _, err = second.communicate(timeout=60)
        assert 0 == second.returncode, err
        assert {"by": "second", "refused": "AgentOwnedElsewhere"} in _notes(log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    third = start("third")
    _, err = third.communicate(timeout=60)
    assert 0 == third.returncode, err
    ran = [(n["by"], n["ran"]) for n in _notes(log) if "ran" in n]
    assert [("first", 2), ("third", 2)] == ran
