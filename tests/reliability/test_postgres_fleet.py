"""Many hosts on one PostgreSQL journal, under kill -9, SIGSTOP and a server restart.

Real processes (tests/reliability/pgfleet.py), a real server; leases of one second so
that takeovers happen within the test. Skipped without a test server (see
tests/postgres_support.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_support import fresh_url

from adaptive_runtime import ActionCall, Host, RetryPolicy
from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal.postgres import PostgresJournal, parse_url
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import (
    ActionAbandoned,
    ActionScheduled,
    ActionSucceeded,
    EventReceived,
    read_record,
)

WORKER = Path(__file__).with_name("pgfleet.py")
AGENTS = [f"agent-{i:02d}" for i in range(30)]


def start(url: str, acks: Path, agents: list[str], seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(acks), ",".join(agents), str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def owner_of(acks: Path) -> str | None:
    """The owner name a worker wrote first (None until it has started)."""
    if not acks.exists():
        return None
    for line in acks.read_text().splitlines():
        data = json.loads(line)
        if "owner" in data and "id" not in data:
            return str(data["owner"])
    return None


def wait_for_owner(acks: Path, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        owner = owner_of(acks)
        if owner is not None:
            return owner
        time.sleep(0.05)
    raise AssertionError(f"the worker writing {acks} did not start")


def owners(url: str) -> dict[str, tuple[str, int]]:
    conninfo, options = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(f"SELECT agent, host, epoch FROM {options['schema']}.owners").fetchall()
    return {agent: (host, int(epoch)) for agent, host, epoch in rows}


def acknowledged(files: list[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            data = json.loads(line)
            if "seq" in data:
                out.append(data)
    return out


def check_journal(url: str, acks: list[dict[str, Any]]) -> None:
    """Every acknowledged event once; epochs only rise along each agent's stream; replay,
    the chain and the actions all hold."""
    journal = PostgresJournal(url)
    try:
        event_ids = Counter(
            e.event_id for e in journal.read(kind="EventReceived") if e.event_id is not None
        )
        missing = [a["id"] for a in acks if event_ids[a["id"]] != 1]
        assert not missing, f"{len(missing)} acknowledged events missing or doubled: {missing[:5]}"
        for entry in journal.read(kind="EventReceived"):
            assert isinstance(read_record(entry), EventReceived)
        by_agent: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for a in acks:
            by_agent[a["agent"]].append((a["seq"], a["epoch"], a["owner"]))
        for agent, rows in by_agent.items():
            rows.sort()
            epochs = [epoch for _, epoch, _ in rows]
            assert epochs == sorted(epochs), f"{agent}: epochs interleave along its stream"
            holders: dict[int, set[str]] = defaultdict(set)
            for _, epoch, owner in rows:
                holders[epoch].add(owner)
            assert all(len(h) == 1 for h in holders.values()), f"{agent}: two owners, one epoch"
        assert journal.verify().ok
        report = verify_replay(journal)
        assert report.ok, report.mismatches[:2]
        succeeded: Counter[int] = Counter()
        scheduled, ended = set(), set()
        for entry in journal.read():
            record = read_record(entry)
            if isinstance(record, ActionScheduled):
                scheduled.add(entry.seq - 1)  # the decision is the entry before it
            elif isinstance(record, ActionSucceeded):
                succeeded[record.decision_seq] += 1
                ended.add(record.decision_seq)
            elif isinstance(record, ActionAbandoned):
                ended.add(record.decision_seq)
        assert max(succeeded.values(), default=1) == 1, "an action succeeded twice"
        assert scheduled <= ended, f"actions left open: {sorted(scheduled - ended)[:5]}"
    finally:
        journal.close()


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_three_hosts_under_a_kill_loop_lose_nothing_acknowledged(
    tmp_path: Path, rng: random.Random
) -> None:
    """3 hosts share 30 agents; a random host is killed with -9 and restarted, 20 times.
    Every acknowledged event is journaled once, no epoch interleaves, replay and verify
    hold, no action succeeds twice or stays open, and every takeover is under 10 s."""
    url = fresh_url("fleet") + "&lease=1"
    PostgresJournal(url).close()
    files: list[Path] = []
    slots: list[tuple[subprocess.Popen[bytes], Path]] = []
    for _ in range(3):
        files.append(tmp_path / f"acks-{len(files)}.jsonl")
        slots.append((start(url, files[-1], AGENTS, rng.randrange(10**6)), files[-1]))
        wait_for_owner(files[-1])
    takeovers: list[float] = []
    try:
        for _ in range(20):
            time.sleep(rng.uniform(0.4, 1.2))
            victim = rng.randrange(3)
            process, acks = slots[victim]
            dead_owner = wait_for_owner(acks)
            held = [a for a, (host, _) in owners(url).items() if host == dead_owner]
            killed_at = time.monotonic()
            process.send_signal(signal.SIGKILL)
            process.wait()
            files.append(tmp_path / f"acks-{len(files)}.jsonl")
            slots[victim] = (start(url, files[-1], AGENTS, rng.randrange(10**6)), files[-1])
            while held and time.monotonic() - killed_at < 30:
                now = owners(url)
                if all(now[a][0] != dead_owner for a in held):
                    break
                time.sleep(0.05)
            if held:
                takeovers.append(time.monotonic() - killed_at)
            wait_for_owner(files[-1])
    finally:
        stop_all([p for p, _ in slots])
    acks = acknowledged(files)
    assert len(acks) > 200, "the hosts acknowledged too little to test anything"
    assert takeovers, "no kill hit a host that held agents"
    worst = max(takeovers)
    print(f"\nworst takeover {worst:.2f}s over {len(takeovers)} kills; {len(acks)} acknowledged")
    assert worst < 10.0
    check_journal(url, acks)


class PausedHost:
    """Two hosts of agent "only" (leases of 1 s): the first owns it, then is paused with
    SIGSTOP until the second has taken it over (within 10 s, or the test fails)."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.first_acks, self.second_acks = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
        self.started: list[subprocess.Popen[bytes]] = []
        try:
            self.first = start(url, self.first_acks, ["only"], 1)
            self.started.append(self.first)
            self.first_owner = wait_for_owner(self.first_acks)
            deadline = time.monotonic() + 30
            while owners(url).get("only", ("", 0))[0] != self.first_owner:
                assert time.monotonic() < deadline, "the first host did not claim the agent"
                time.sleep(0.05)
            self.second = start(url, self.second_acks, ["only"], 2)
            self.started.append(self.second)
            second_owner = wait_for_owner(self.second_acks)
            self.first.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            while owners(url)["only"][0] != second_owner:
                assert time.monotonic() - stopped_at < 10, "no takeover within 10 s"
                time.sleep(0.05)
            self.taken_epoch = owners(url)["only"][1]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for p in self.started:
            p.send_signal(signal.SIGCONT)
        stop_all(self.started)

    def acks(self) -> list[dict[str, Any]]:
        return acknowledged([self.first_acks, self.second_acks])


def test_a_host_paused_past_its_lease_cannot_write(tmp_path: Path) -> None:
    """SIGSTOP one host past its lease: the other takes its agent over; resumed, the paused
    host's appends are refused and nothing it decided after losing the claim is journaled."""
    url = fresh_url("stale") + "&lease=1"
    PostgresJournal(url).close()
    paused = PausedHost(url, tmp_path)
    first, first_acks, first_owner = paused.first, paused.first_acks, paused.first_owner
    taken_epoch = paused.taken_epoch
    try:
        time.sleep(0.5)
        first.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # the resumed host tries, and is refused
    finally:
        paused.stop()
    first_after = [a for a in acknowledged([first_acks]) if a["epoch"] >= taken_epoch]
    assert not first_after, "the paused host acknowledged events after losing its claim"
    journal = PostgresJournal(url)
    try:
        late = [
            e.event_id
            for e in journal.read(kind="EventReceived")
            if e.event_id and e.event_id.startswith(first_owner)
        ]
        first_acked = {a["id"] for a in acknowledged([first_acks])}
        assert set(late) <= first_acked, "the paused host journaled events it never acknowledged"
    finally:
        journal.close()
    check_journal(url, paused.acks())


def test_a_host_that_lost_an_agent_takes_it_back_when_its_new_owner_dies(
    tmp_path: Path,
) -> None:
    """A host paused past its lease, resumed and refused, kept the agent loaded with its
    claim void: when the new owner was killed, no host took the agent over (the refused
    host's sweep skipped an agent it had loaded), and each of its calls said "this host
    has not claimed agent 'only'; claim it first", with no end. It now unloads an agent
    whose claim was voided, so it claims it again once the lease of the host that died
    runs out."""
    url = fresh_url("back") + "&lease=1"
    PostgresJournal(url).close()
    paused = PausedHost(url, tmp_path)
    try:
        paused.first.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # the resumed host is refused, and finds its claim void
        paused.second.kill()
        paused.second.wait()
        killed_at = time.monotonic()
        while not [a for a in acknowledged([paused.first_acks]) if a["epoch"] > paused.taken_epoch]:
            assert time.monotonic() - killed_at < 10, "the agent was not taken back within 10 s"
            time.sleep(0.05)
        assert paused.first_owner == owners(url)["only"][0]
    finally:
        paused.stop()
    check_journal(url, paused.acks())


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or os.geteuid() != 0,
    reason="restarting the server needs root and pg_ctlcluster (as .ci/run has them)",
)
def test_a_server_restart_mid_run_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Restart PostgreSQL under a running host: the errors meanwhile are typed, the host
    reconnects on its own, and every acknowledged event is there afterwards."""
    url = fresh_url("restart") + "&lease=5"
    PostgresJournal(url).close()
    acks = tmp_path / "acks.jsonl"
    host = start(url, acks, AGENTS[:5], 3)
    wait_for_owner(acks)
    try:
        time.sleep(1.0)
        before = len(acknowledged([acks]))
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=120)
        deadline = time.monotonic() + 60
        while len(acknowledged([acks])) <= before + 20:
            assert time.monotonic() < deadline, "the host did not carry on after the restart"
            assert host.poll() is None, "the host died"
            time.sleep(0.1)
    finally:
        stop_all([host])
    errors = [
        json.loads(line)["error"] for line in acks.read_text().splitlines() if '"error"' in line
    ]
    assert set(errors) <= {"JournalUnavailableError", "JournalBusyError"}, set(errors)
    # an action whose progress could not be journaled while the server was away stays
    # open, for the next host to resume: start one, and let it finish them
    asyncio.run(_finish_actions(url))
    check_journal(url, acknowledged([acks]))


async def _finish_actions(url: str) -> None:
    """A host that only takes the agents over and runs their unfinished actions."""
    host = Host(url)

    @host.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    async def restart(call: ActionCall) -> None:
        await asyncio.sleep(0.01)

    async with host:
        await host.wait_for_actions()


async def _decide(url: str, severities: list[float]) -> None:
    async with Host(url, durability="normal") as host:
        for severity in severities:
            await host.process({"type": "timeout", "severity": severity})


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or os.geteuid() != 0,
    reason="restarting the server needs root and pg_ctlcluster (as .ci/run has them)",
)
def test_tail_follow_waits_out_a_server_restart(tmp_path: Path) -> None:
    """`tail --follow` ended with the connection error when PostgreSQL restarted. It waits
    the restart out now, says so, and carries on after the last entry it printed: each
    seq once, in order."""
    url = fresh_url("follow")
    asyncio.run(_decide(url, [0.1]))
    out, err = tmp_path / "tail.out", tmp_path / "tail.err"
    command = [sys.executable, "-m", "adaptive_runtime", "tail", "--follow", "--json"]
    with out.open("w") as stdout, err.open("w") as stderr:
        follower = subprocess.Popen(
            [*command, "--after", "0", "--db", url], stdout=stdout, stderr=stderr
        )
    try:

        def printed() -> list[int]:
            return [json.loads(line)["seq"] for line in out.read_text().splitlines()]

        deadline = time.monotonic() + 60
        while len(printed()) < 2:
            assert time.monotonic() < deadline, err.read_text()
            assert follower.poll() is None, err.read_text()
            time.sleep(0.05)
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=120)
        while True:  # the first connections after a restart may still meet the old server
            try:
                asyncio.run(_decide(url, [0.2, 0.3]))
                break
            except JournalUnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        while len(printed()) < 6:
            assert time.monotonic() < deadline, (printed(), err.read_text())
            assert follower.poll() is None, err.read_text()
            time.sleep(0.05)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
    assert [1, 2, 3, 4, 5, 6] == printed()
    said = err.read_text()
    assert "tail waits for it, and carries on after the last entry shown" in said
    assert "the journal answers again; following on" in said


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or os.geteuid() != 0,
    reason="restarting the server needs root and pg_ctlcluster (as .ci/run has them)",
)
def test_a_live_stream_of_serve_waits_out_a_server_restart(tmp_path: Path) -> None:
    """Every open `GET /v1/stream` ended with a broken transfer (and a traceback in the
    server's log) when PostgreSQL restarted. It waits the restart out now and carries on:
    each seq once, in order, and the log says so in a line."""
    import httpx
    from http_support import READ, WRITE, server

    url = fresh_url("stream")
    with server(url, tmp_path) as srv:
        seen: list[int] = []
        done = threading.Event()

        def listen() -> None:
            with httpx.stream(
                "GET", srv.url + "/v1/stream?after=0", headers=READ, timeout=60
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        seen.append(int(line[4:]))
                    if len(seen) == 4:
                        break
            done.set()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        event = {"type": "timeout", "agent_id": "a"}
        assert 200 == httpx.post(srv.url + "/v1/events", json=event, headers=WRITE).status_code
        deadline = time.monotonic() + 60
        while len(seen) < 1:
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.05)
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=120)
        posted = 1
        while posted < 4:  # the first requests after a restart may meet the old server: 503
            assert time.monotonic() < deadline, srv.output()
            answer = httpx.post(srv.url + "/v1/events", json=event, headers=WRITE, timeout=30)
            assert answer.status_code in (200, 503), answer.text
            posted += answer.status_code == 200
        assert done.wait(60), (seen, srv.output())
        assert 0 == srv.terminate()
    assert [2, 4, 6, 8] == seen
    log = srv.output()
    assert "Traceback" not in log, log
    assert "Exception in ASGI" not in log, log
    assert "the live streams wait for the journal" in log
    assert "the journal answers again: the live streams carry on" in log


RESTARTED = """
import asyncio, sys
from adaptive_runtime import Runtime

async def main() -> None:
    async with Runtime("svc", journal=sys.argv[1]) as runtime:
        await runtime.process({"type": "timeout", "severity": 0.4, "id": "before-the-kill"})
        print("decided", flush=True)
        await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


def test_a_host_named_in_its_url_takes_its_agents_back_at_once_after_kill_9() -> None:
    """A process restarted after kill -9 (a supervisor's restart) waited out its dead
    self's lease before it could take its agents, its start refused with
    AgentOwnedElsewhere meanwhile: the owner name that says "the same host, restarted"
    could only be given to PostgresJournal in code, not in the URL that `serve`, the
    command line and `Runtime(journal=...)` take. `?owner=NAME` gives it."""
    base = fresh_url("owner") + "&lease=30"
    PostgresJournal(base).close()
    named = base + "&owner=svc-1"
    with subprocess.Popen(
        [sys.executable, "-c", RESTARTED, named], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert "decided" == proc.stdout.readline().strip()
        finally:
            proc.kill()  # kill -9: its claim stays in `owners`, its lease running 30 s
            proc.wait(10)
    from adaptive_runtime import Runtime
    from adaptive_runtime.errors import AgentOwnedElsewhere

    async def restart(url: str) -> int:
        async with Runtime("svc", journal=url) as runtime:
            again = await runtime.process({"type": "timeout", "severity": 0.4, "id": "after"})
            return again.seq

    with pytest.raises(AgentOwnedElsewhere, match="svc-1"):  # another name must wait
        asyncio.run(restart(base))
    assert 4 == asyncio.run(restart(named))  # the same name: taken back at once
    journal = PostgresJournal(named)
    try:
        assert "svc-1" == journal.owner
        assert verify_replay(journal).ok
    finally:
        journal.close()
