"""The fleet gate under operators' controls at random, checked by replay.

Two walks: one host, and two hosts on one file, each serving three agents and answering
its own agents' approvals, so that each gates by what the other journals.

A seeded walk drives one Host under a fleet policy (a budget, maybe a cooldown, a floor,
`max_in_flight`, deduplication, all drawn from the seed) and an approval policy, through
process() calls at once and process_many() batches for six agents, while operators set
silences (some `fire_after`), answer approval requests (yes or no), handlers hold some
restarts until released, and the clock moves. What each decision counted in the fleet's
action windows, and what a skip or a denial took out again, is journaled only through
its effects; replay re-decides every event from the journal alone and must get the
same bytes. Each seed runs in a fraction of a second, on an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from journal_support import assert_replays
from postgres_support import fresh_url

from adaptive_runtime import FleetPolicy, Host, ManualClock
from adaptive_runtime.errors import AdaptiveRuntimeError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.records import ApprovalPolicy, SilenceMatcher
from adaptive_runtime.runtime.actions import ActionCall

EVENTS = [
    {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88},
    {"type": "service_overload", "severity": 0.95, "cpu": 99, "memory": 97},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "anomaly_detected", "severity": 0.3},
]


async def silence_one(host: Host, rnd: random.Random, *, fire_after: bool) -> None:
    """Silence one of the six agents for 5 to 60 s of the host's clock."""
    await host.controls.add_silence(
        SilenceMatcher(agent=f"svc-{rnd.randrange(6)}"),
        ends_ns=host.clock.now_ns() + rnd.randrange(5, 60) * 10**9,
        comment="maintenance",
        by="ops",
        fire_after=fire_after,
    )


async def answer_one(host: Host, rnd: random.Random) -> None:
    """Answer one pending approval request, yes or no."""
    asked = rnd.choice(sorted(host.controls.pending.values(), key=lambda p: p.decision_seq))
    # answered or timed out meanwhile: the journal keeps the first answer
    with contextlib.suppress(AdaptiveRuntimeError):
        await host.controls.answer(asked.decision_seq, approve=rnd.random() < 0.5, by="ops")


async def walk(path: Path, seed: int) -> dict[str, int]:
    """Run one seeded walk; return how many entries of each kind it journaled."""
    rnd = random.Random(seed)
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    gated = ("scale_up_immediate", "restart_service")[: rnd.choice([1, 2])]
    host = Host(
        path,
        durability="normal",
        clock=clock,
        fleet=FleetPolicy(
            budget=rnd.choice([2, 4, 8]),
            cooldown=rnd.choice([None, 30.0, 120.0]),
            max_share=rnd.choice([None, 0.5]),
            max_in_flight=rnd.choice([None, 1, 2]),
            dedup_window=rnd.choice([None, 50.0]),
        ),
        approvals=ApprovalPolicy(actions=gated, timeout_s=60.0),
    )
    release = asyncio.Event()

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        if rnd.random() < 0.5:
            await release.wait()  # in flight until released: max_in_flight skips others

    @host.action("scale_up_immediate")
    async def scale(call: ActionCall) -> None:
        pass

    def events(step: int) -> list[dict[str, object]]:
        return [
            {
                **rnd.choice(EVENTS),
                "agent_id": f"svc-{rnd.randrange(6)}",
                "instance": f"n{rnd.randrange(2)}",
                "n": step * 100 + k,
            }
            for k in range(rnd.randrange(1, 6))
        ]

    async with host:
        for step in range(40):
            roll = rnd.random()
            if roll < 0.1:
                await silence_one(host, rnd, fire_after=rnd.random() < 0.5)
            elif roll < 0.2 and host.controls.pending:
                await answer_one(host, rnd)
            elif roll < 0.5:
                await host.process_many(events(step))
            else:
                await asyncio.gather(*(host.process(e) for e in events(step)))
            if rnd.random() < 0.3:
                release.set()
                await asyncio.sleep(0)
                release.clear()
            clock.advance(rnd.randrange(1, 20))
            await host.controls.refresh()
        release.set()
        await host.wait_for_actions()
    assert_replays(path)
    journal = SqliteJournal(path, create=False)
    try:
        kinds: dict[str, int] = {}
        for entry in journal.read():
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        return kinds
    finally:
        journal.close()


@pytest.mark.parametrize("seeds", [range(0, 20), range(20, 40)], ids=["0-19", "20-39"])
def test_fleet_windows_under_random_controls_replay_byte_for_byte(
    tmp_path: Path, seeds: range
) -> None:
    seen: dict[str, int] = {}
    for seed in seeds:
        for kind, count in asyncio.run(walk(tmp_path / f"{seed}.db", seed)).items():
            seen[kind] = seen.get(kind, 0) + count
    # the walks reached what the windows take out again: skips, denials, fire_after
    for kind in ("ActionSkipped", "ApprovalDecided", "SilenceSet", "ActionAwaitingApproval"):
        assert seen.get(kind, 0) > 0, (kind, seen)


async def walk_two_hosts(path: Path | str, seed: int) -> None:
    """Two hosts on one file share the fleet's windows; each host's skips and denials
    take actions out of the other's count too, as replay does."""
    rnd = random.Random(seed)
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    fleet = FleetPolicy(
        budget=rnd.choice([2, 4]),
        cooldown=rnd.choice([None, 60.0]),
        max_share=rnd.choice([None, 0.5]),
    )
    approvals = ApprovalPolicy(actions=("restart_service",), timeout_s=60.0)
    hosts = [
        Host(path, durability="normal", clock=clock, fleet=fleet, approvals=approvals)
        for _ in range(2)
    ]
    # the second host acts on its decisions itself half the time: no handler, so its
    # batches plan no action and only the fleet entries refuse one decided from a stale view
    for host in hosts[: rnd.choice([1, 2])]:

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            pass

    async with hosts[0], hosts[1]:
        for step in range(40):
            mine = rnd.randrange(2)
            host = hosts[mine]
            roll = rnd.random()
            if roll < 0.1:
                await silence_one(host, rnd, fire_after=rnd.random() < 0.5)
            elif roll < 0.3 and host.controls.pending:
                await answer_one(host, rnd)
            else:
                batch = [
                    {
                        **rnd.choice(EVENTS[:3]),
                        "agent_id": f"svc-{mine * 3 + rnd.randrange(3)}",
                        "instance": f"n{rnd.randrange(2)}",
                        "n": step * 100 + k,
                    }
                    for k in range(rnd.randrange(1, 4))
                ]
                await asyncio.gather(*(host.process(e) for e in batch))
            clock.advance(rnd.randrange(1, 20))
            for each in hosts:
                await each.controls.refresh()
        for each in hosts:
            await each.wait_for_actions()
    assert_replays(path)


def test_two_hosts_gating_by_each_others_controls_replay_byte_for_byte(tmp_path: Path) -> None:
    for seed in range(60):
        asyncio.run(walk_two_hosts(tmp_path / f"{seed}.db", seed))


def test_two_hosts_on_postgresql_gating_by_each_others_controls_replay() -> None:
    """The same walk on one PostgreSQL database (a schema each), whose appends check the
    fleet entries other hosts journaled in the append's own transaction."""
    for seed in range(20):
        asyncio.run(walk_two_hosts(f"{fresh_url('walk')}&lease=30", seed))
