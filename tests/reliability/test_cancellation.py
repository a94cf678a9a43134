"""Callers cancelled at random points: every action journaled as scheduled runs, once.

Eight producers send events to four agents through one Host, each call (process() or
process_many()) cancelled after a random number of loop turns four times in ten: a
timeout around it, a client gone. Whatever a cancelled call had queued commits all the
same; the action it scheduled must start as if the call had waited. The code before
this suite left about a third of them open at durability full (109 of 354 for one seed),
to be resumed only by the next start.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from adaptive_runtime import ActionCall, FleetPolicy, Host, ManualClock
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
AGENTS = 4


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fleet", [False, True])
@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_randomly_cancelled_callers_leave_no_scheduled_action_unrun(
    tmp_path: Path, durability: str, fleet: bool, seed: int
) -> None:
    rnd = random.Random(seed)
    path = tmp_path / "j.db"
    ran: list[str] = []
    host = Host(
        path,
        clock=ManualClock(),
        durability=durability,  # type: ignore[arg-type]
        fleet=FleetPolicy(max_in_flight=3) if fleet else None,
    )

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        for _ in range(rnd.randint(0, 3)):
            await asyncio.sleep(0)
        ran.append(call.key)

    cancelled = 0
    async with host:

        async def produce() -> None:
            nonlocal cancelled
            for _ in range(40):
                event = {
                    **OVERLOAD,
                    "agent_id": f"agent-{rnd.randint(0, AGENTS - 1)}",
                    "instance": f"node-{rnd.randint(0, 2)}",
                }
                many = rnd.random() < 0.3
                call = asyncio.ensure_future(
                    host.process_many([event, event]) if many else host.process(event)
                )
                for _ in range(rnd.randint(0, 4)):
                    await asyncio.sleep(0)
                if rnd.random() < 0.4:
                    call.cancel()
                try:
                    await call
                except asyncio.CancelledError:
                    cancelled += 1

        await asyncio.gather(*(produce() for _ in range(8)))
        for k in range(AGENTS):  # answered after every earlier commit of its agent
            await host.agent(f"agent-{k}").process({"type": "timeout", "severity": 0.1})
        await host.wait_for_actions()
        left_open = {k: host.agent(f"agent-{k}").state.open_actions for k in range(AGENTS)}
    assert cancelled > 0
    assert all(not actions for actions in left_open.values()), left_open
    journal = SqliteJournal(path, create=False)
    try:
        scheduled = sum(1 for _ in journal.read(kind="ActionScheduled"))
        succeeded = sum(1 for _ in journal.read(kind="ActionSucceeded"))
        assert scheduled == succeeded == len(ran) == len(set(ran))
        assert journal.verify().ok
        assert verify_replay(journal).ok
    finally:
        journal.close()
