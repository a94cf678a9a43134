"""max_in_flight: at most n actions running per target; one decided past it is skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adaptive_runtime import ConfigurationError, FleetPolicy, Host, ManualClock
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import ActionSkipped, read_as
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9


async def test_64_producers_for_one_target_run_at_most_two_actions(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    policy = FleetPolicy(max_in_flight=2)
    release = asyncio.Event()
    running: list[int] = []
    peak = 0

    async with Host(
        path, durability="normal", clock=ManualClock(start_ns=START_NS), fleet=policy
    ) as host:

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            nonlocal peak
            running.append(call.decision.seq)
            peak = max(peak, len(running))
            await release.wait()
            running.remove(call.decision.seq)

        same = [
            host.process({**OVERLOAD, "agent_id": "web", "instance": "node-1", "n": i})
            for i in range(64)
        ]
        decided = await asyncio.gather(*same)
        other = await host.process({**OVERLOAD, "agent_id": "web", "instance": "node-2"})
        while len(running) < 3:
            await asyncio.sleep(0)
        release.set()
        await host.wait_for_actions()
        release.clear()
        after = await host.process({**OVERLOAD, "agent_id": "web", "instance": "node-1"})
        while not running:
            await asyncio.sleep(0)
        release.set()
        await host.wait_for_actions()
    assert {"restart_service"} == {d.action for d in [*decided, other, after]}
    assert 3 == peak  # two for node-1, one for node-2
    journal = SqliteJournal(path, create=False)
    try:
        skipped = [read_as(e, ActionSkipped) for e in journal.read(kind="ActionSkipped")]
        scheduled = sum(1 for _ in journal.read(kind="ActionScheduled"))
        assert 62 == len(skipped)
        assert 4 == scheduled  # 2 for node-1, 1 for node-2, 1 after they finished
        assert {"2 actions in flight for web/node-1; max_in_flight is 2"} == {
            s.reason for s in skipped
        }
        assert verify_replay(journal).ok
    finally:
        journal.close()


def test_a_bad_cap_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        FleetPolicy(max_in_flight=0)


async def test_actions_owed_from_before_wait_for_a_place_and_run_once_each(
    tmp_path: Path,
) -> None:
    """Approved requests started at once, past the cap (three restarts of one node with
    max_in_flight=1): only a new decision was held to it, and a gated decision is asked
    for before the cap is looked at. An action owed from before (approved, retried,
    resumed) now waits for a place; one waiting when the host stops stays owed, and the
    next host runs it, still one at a time."""
    from adaptive_runtime.records import ApprovalPolicy

    path = tmp_path / "owed.db"
    clock = ManualClock(start_ns=START_NS)
    gate = ApprovalPolicy(actions=("restart_service",), timeout_s=3600.0)
    release = asyncio.Event()
    running: list[int] = []
    ran: list[int] = []
    peak = 0

    def host_for(path: Path) -> Host:
        host = Host(
            path,
            durability="normal",
            clock=clock,
            fleet=FleetPolicy(max_in_flight=1),
            approvals=gate,
        )

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            nonlocal peak
            running.append(call.decision.seq)
            peak = max(peak, len(running))
            try:
                await release.wait()
            finally:
                running.remove(call.decision.seq)
            ran.append(call.decision.seq)

        return host

    first = host_for(path)
    await first.start()
    try:
        node = {**OVERLOAD, "agent_id": "web", "instance": "node-1"}
        decided = [await first.process({**node, "n": i}) for i in range(3)]
        for d in decided:
            await first.controls.answer(d.seq, approve=True, by="ops")
        while not running:
            await asyncio.sleep(0)
        for _ in range(50):
            await asyncio.sleep(0)
        assert 1 == peak
        assert 3 == first.actions.running("web")  # one running, two waiting for its place
    finally:
        await first.stop(actions="interrupt")
    assert [] == ran

    release.set()
    second = host_for(path)
    async with second:
        await second.agent("web").load()
        await second.wait_for_actions()
    assert 1 == peak
    assert sorted(d.seq for d in decided) == sorted(ran)
    journal = SqliteJournal(path, create=False)
    try:
        assert 3 == sum(1 for _ in journal.read(kind="ActionSucceeded"))
        assert verify_replay(journal).ok
    finally:
        journal.close()
