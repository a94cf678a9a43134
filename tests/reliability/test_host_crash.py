"""kill -9 of a Host serving 50 agents with actions in flight: nothing acknowledged is lost,
and every unfinished action resumes exactly once more."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from adaptive_runtime import ActionCall, Host
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay

AGENTS = 50

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from adaptive_runtime import Host
    path, started_log = sys.argv[1], sys.argv[2]
    OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
    async def main():
        host = Host(path, durability="full", max_loaded_agents=20)
        started = []
        all_started = asyncio.Event()
        @host.action("restart_service")
        async def restart(call):
            with open(started_log, "a") as log:  # the handler ran: then it hangs, in flight
                log.write(f"{call.key} {call.attempt}\\n")
                log.flush()
                os.fsync(log.fileno())
            started.append(call.key)
            if len(started) == AGENTS:
                all_started.set()
            await asyncio.Event().wait()
        async with host:
            async def one(k):
                d = await host.process({**OVERLOAD, "agent_id": f"agent-{k:02d}", "id": f"evt-{k}"})
                print(f"ack evt-{k} {d.seq}", flush=True)
            await asyncio.gather(*(one(k) for k in range(AGENTS)))
            print("all acked", flush=True)
            try:  # a bound for a failing run only: it ends as soon as the last one starts
                await asyncio.wait_for(all_started.wait(), 120)
                print("all started", flush=True)
            except asyncio.TimeoutError:
                print(f"only {len(started)} started", flush=True)
            await asyncio.Event().wait()
    asyncio.run(main())
    """
).replace("AGENTS", str(AGENTS))


def test_kill_9_with_actions_in_flight_resumes_each_exactly_once_more(tmp_path: Path) -> None:
    """Every acknowledged event survives; each hung action runs attempt 2, once, after restart."""
    path = tmp_path / "fleet.db"
    started_log = tmp_path / "started.log"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(started_log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, int] = {}
    assert child.stdout is not None
    said = ""
    for line in child.stdout:  # until every handler is in flight: the child says when
        if line.startswith("ack "):
            _, event_id, seq = line.split()
            acked[event_id] = int(seq)
        elif line.startswith(("all started", "only ")):
            said = line.strip()
            break
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=60)
    assert AGENTS == len(acked), err
    assert "all started" == said, err
    first_run = sorted(started_log.read_text().splitlines())
    assert AGENTS == len(first_run)
    assert all(line.endswith(" 1") for line in first_run)

    resumed: list[tuple[str, int]] = []

    async def restart() -> Host:
        host = Host(path, durability="full", max_loaded_agents=20)

        @host.action("restart_service")
        async def finish(call: ActionCall) -> None:
            resumed.append((call.key, call.attempt))

        async with host:
            await host.wait_for_actions()
        return host

    asyncio.run(restart())
    assert sorted((key.split()[0], 2) for key in first_run) == sorted(resumed)
    journal = SqliteJournal(path, create=False)
    try:
        for event_id, seq in acked.items():
            entry = journal.by_event_id(event_id)
            assert entry is not None
            assert seq == entry.seq + 1
        assert journal.verify().ok
        assert verify_replay(journal).ok
        kinds = [e.kind for e in journal.read()]
        assert AGENTS == kinds.count("ActionSucceeded")
        assert AGENTS == kinds.count("ActionFailed")  # each interrupted attempt, journaled as such
    finally:
        journal.close()
