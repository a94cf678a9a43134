"""Fleet-level safety: correlated failures open an incident, and a budget bounds the blast radius."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from cli_support import cli as run_cli
from fleet_support import fleet_of_two_hosts
from journal_support import (
    FaultyJournal,
    answered_in_commit_order,
    assert_replays,
    queued_behind,
)

from adaptive_runtime import ConfigurationError, Host, ManualClock
from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.replay import what_if
from adaptive_runtime.records import FleetIncident, FleetPolicy, decode_record

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


def one_disruptive_action(tmp_path: Path) -> Host:
    """A host committing through the journal's thread, on a manual clock, whose fleet allows
    one disruptive action in ten minutes."""
    policy = FleetPolicy(budget=1, budget_window=600.0)
    return Host(tmp_path / "j.db", durability="full", fleet=policy, clock=ManualClock())


QUIET = [
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "anomaly_detected", "severity": 0.3},
]
POLICY = FleetPolicy(correlate_agents=5, correlate_window=60.0, budget=3, budget_window=60.0)


def cli(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"PYTHONHASHSEED": seed})


async def run_fleet(path: Path) -> list[object]:
    """200 agents with interleaved quiet events (too sparse to correlate), then a burst of 20."""
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    async with Host(path, durability="normal", clock=clock, fleet=POLICY) as host:
        for i in range(400):
            await host.process({**QUIET[i % 3], "agent_id": f"svc-{i % 200:03d}"})
            clock.advance(20)  # each context recurs once a minute: never 5 agents in a window
        clock.advance(120)  # the budget window is empty again
        burst = [host.process({**OVERLOAD, "agent_id": f"svc-{k:03d}"}) for k in range(0, 200, 10)]
        return list(await asyncio.gather(*burst))


async def test_a_correlated_burst_opens_one_incident_and_trips_the_budget(tmp_path: Path) -> None:
    """Of 20 restarts decided in one minute, 3 go ahead; 17 are degraded; one incident opens."""
    path = tmp_path / "fleet.db"
    decisions = await run_fleet(path)
    actions = [d.action for d in decisions]  # type: ignore[attr-defined]
    assert ["restart_service"] * 3 + ["throttle_requests"] * 17 == actions
    degraded = decisions[3]
    assert "restart_service" == degraded.degraded_from  # type: ignore[attr-defined]
    assert (
        "fleet budget spent: 3 of 3 disruptive actions in the last 60s" == degraded.fleet  # type: ignore[attr-defined]
    )
    assert POLICY.digest == degraded.fleet_policy  # type: ignore[attr-defined]
    journal = SqliteJournal(path, create=False)
    try:
        incidents = [decode_record(e.body) for e in journal.read() if e.kind == "FleetIncident"]
        assert 1 == len(incidents)
        incident = incidents[0]
        assert isinstance(incident, FleetIncident)
        assert ("resource_pressure", 5) == (incident.context, len(incident.agents))
        assert ["svc-000", "svc-010", "svc-020", "svc-030", "svc-040"] == list(incident.agents)
        assert verify_replay(journal).ok
        # what-if: a budget of 10 would have let 7 more restarts through
        looser = FleetPolicy(correlate_agents=5, budget=10)
        changed = what_if(journal, None, fleet=looser)
        assert 7 == sum(1 for r in changed if r.now.action == "restart_service")
    finally:
        journal.close()
    explained = cli("explain", str(degraded.seq), "--db", str(path))  # type: ignore[attr-defined]
    assert "  Fleet      degraded from restart_service: fleet budget spent" in explained.stdout
    tripped = decisions[4]
    opened = cli("explain", str(tripped.seq), "--db", str(path))  # type: ignore[attr-defined]
    assert (
        "  Incident   opened by this decision: 5 agents decided resource_pressure" in opened.stdout
    )


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_fleet_shaped_decisions_replay_byte_for_byte_under_any_hash_seed(
    tmp_path: Path, seed: str
) -> None:
    """replay --verify re-makes every decision, the degraded ones included, under two hash seeds."""
    path = tmp_path / "fleet.db"
    asyncio.run(run_fleet(path))
    out = cli("replay", "--verify", "--db", str(path), seed=seed)
    assert 0 == out.returncode, out.stdout + out.stderr
    assert "OK: 420 decisions re-decided" in out.stdout


async def test_the_fleet_policy_is_journaled_and_kept_across_restarts(tmp_path: Path) -> None:
    """A restart without fleet= keeps the journaled policy; a new one is journaled once."""
    path = tmp_path / "fleet.db"
    clock = ManualClock()
    async with Host(path, durability="normal", clock=clock, fleet=POLICY) as host:
        await host.process({**OVERLOAD, "agent_id": "a"})
    async with Host(path, durability="normal", clock=clock) as host:
        assert host.fleet is not None
        assert POLICY == host.fleet.policy
        for k in range(4):
            await host.process({**OVERLOAD, "agent_id": f"b{k}"})
        assert host.fleet.incidents  # five agents: the journaled policy still correlates
    async with Host(path, durability="normal", clock=clock, fleet=POLICY) as host:
        pass
    journal = SqliteJournal(path, create=False)
    try:
        assert 1 == sum(1 for e in journal.read() if e.kind == "FleetPolicySet")
        assert verify_replay(journal).ok
    finally:
        journal.close()
    agents = json.loads(cli("agents", "--db", str(path), "--json").stdout)
    assert "~host" not in [a["agent"] for a in agents]


def test_fleet_policy_knobs_are_checked() -> None:
    """Bad thresholds, windows and budgets are ConfigurationErrors."""
    for bad in (
        {"correlate_agents": -1},
        {"correlate_window": 0},
        {"budget": -2},
        {"budget_window": 10**9},
    ):
        with pytest.raises(ConfigurationError):
            FleetPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'~' are the journal's own"):
        Host("memory:").agent("~host")


@pytest.mark.parametrize("outcome_between", [False, True])
@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_decision_committed_with_its_answer_lost_still_counts(
    tmp_path: Path, durability: str, outcome_between: bool
) -> None:
    """A commit whose answer was lost (the caller got an error) is in the journal, so the
    fleet counts it: the next disruptive action is over the budget, as replay says; also
    when another commit (an outcome) was answered in between."""
    policy = FleetPolicy(budget=1, budget_window=600.0)
    async with Host(
        tmp_path / "j.db",
        durability=durability,
        fleet=policy,
        clock=ManualClock(),  # type: ignore[arg-type]
    ) as host:
        journal = FaultyJournal.installed_in(host)
        earlier = await host.process({"type": "timeout", "agent_id": "c"})
        journal.armed = ("after", "a")
        with pytest.raises(JournalUnavailableError):
            await host.process({**OVERLOAD, "agent_id": "a"})
        if outcome_between:  # a commit answered while the fleet is in doubt, deciding nothing
            await host.agent("c").record_outcome(earlier, success=True)
        after = await host.process({**OVERLOAD, "agent_id": "b"})
        assert "restart_service" == after.degraded_from
        assert after.fleet is not None
        assert "budget spent: 1 of 1" in after.fleet
        assert verify_replay(host.journal).ok


async def test_a_commit_answered_before_a_lost_ones_error_is_heard_does_not_hide_it(
    tmp_path: Path,
) -> None:
    """Through the journal's thread: a's restart commits with its answer lost, and c's new
    rules, queued behind it, commit next and are answered before a's caller has heard the
    error. The fleet's committed state must not move past a's entries on that answer: b's
    restart is over the spent budget, as replay says."""
    async with one_disruptive_action(tmp_path) as host:
        journal = FaultyJournal.installed_in(host)
        await host.agent("c").load()
        journal.armed = ("after", "a")
        release = journal.hold_next()
        failing = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "a"}))
        quiet = [
            {"context": None, "risk": "low", "min_conf": 0.0, "action": "log_only", "reason": "q"}
        ]
        [rules] = await queued_behind(host, journal, release, host.agent("c").set_rules(quiet))
        release.set()
        answered_in_commit_order(host)  # c's answer comes before a has heard its error
        with pytest.raises(JournalUnavailableError):
            await failing
        await rules
        after = await host.process({**OVERLOAD, "agent_id": "b"})
        assert "restart_service" == after.degraded_from
        assert verify_replay(host.journal).ok


async def test_a_batch_queued_behind_a_failed_one_is_not_gated_by_it(tmp_path: Path) -> None:
    """Through the journal's thread: b's batch, queued while a's commit was on its way,
    was gated by a view that counted a's restart. a's commit then fails, so b's batch is
    refused unwritten and decided again from what was journaled: its restart is within
    the budget, as replay says."""
    async with one_disruptive_action(tmp_path) as host:
        journal = FaultyJournal.installed_in(host)
        await host.agent("b").load()
        journal.armed = ("before", "a")
        release = journal.hold_next()
        failing = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "a"}))
        [queued] = await queued_behind(
            host, journal, release, host.process({**OVERLOAD, "agent_id": "b"})
        )
        release.set()
        with pytest.raises(JournalUnavailableError):
            await failing
        decided = await queued
        assert "restart_service" == decided.action
        assert decided.fleet is None
        assert verify_replay(host.journal).ok


async def test_a_batch_after_a_refused_one_in_a_shared_commit_is_decided_again(
    tmp_path: Path,
) -> None:
    """Through the journal's thread, a's and b's batches share a commit, b's gated by a
    view that counted a's restart. Another writer moves a's stream, so a's batch is
    refused; b's is refused with it, and both are decided again: one restart within the
    budget, the other held back, as replay says."""
    async with one_disruptive_action(tmp_path) as host:
        journal = FaultyJournal.installed_in(host)
        for agent in ("a", "b"):
            await host.agent(agent).load()
        release = journal.hold_next()
        first = asyncio.ensure_future(host.process({"type": "timeout", "agent_id": "c"}))
        calls = await queued_behind(
            host,
            journal,
            release,
            host.process({**OVERLOAD, "agent_id": "a"}),
            host.process({**OVERLOAD, "agent_id": "b"}),
        )
        journal.armed = ("intrude", "a")  # taken by the next commit: a's and b's
        release.set()
        await first
        decided = await asyncio.gather(*calls)
        assert 1 == journal.intrusions
        assert ["restart_service"] == [d.action for d in decided if d.fleet is None]
        assert verify_replay(host.journal).ok


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_batch_decided_again_is_not_held_back_by_its_own_first_try(
    tmp_path: Path, durability: str
) -> None:
    """In one process_many, an event id reused refuses that batch, so the agent's later
    batch is decided again after catching up; the fleet view must not hold its first try
    (a cooldown used to hold the action back against itself), and replay agrees."""
    policy = FleetPolicy(cooldown=60.0)
    low = {"type": "service_overload", "severity": 0.1, "cpu": 10, "memory": 20}
    anomaly = {"type": "anomaly_detected", "severity": 0.82, "cpu": 94, "memory": 88}
    async with Host(
        tmp_path / "j.db",
        durability=durability,  # type: ignore[arg-type]
        fleet=policy,
        clock=ManualClock(),
    ) as host:
        results = await host.process_many(
            [
                {**low, "agent_id": "b", "id": "e3"},
                {**low, "agent_id": "a", "id": "e3"},  # refused: b has e3
                {**anomaly, "agent_id": "a"},
            ]
        )
        assert ["Decision", "DuplicateEventError", "Decision"] == [
            type(r).__name__ for r in results
        ]
        again = results[2]
        assert "rollback_deployment" == again.action  # type: ignore[union-attr]
        assert again.fleet is None  # type: ignore[union-attr]
        assert verify_replay(host.journal).ok


async def test_a_batch_decided_again_is_not_gated_by_a_decision_queued_after_it(
    tmp_path: Path,
) -> None:
    """Another writer moved a's stream, so a's restart is decided again. Under a fleet
    policy that happens on the loop, in queue order: b's restart, decided once a's call
    has started again, is gated by a view that holds a's and not the other way round.
    (Decided under the journal's write lock instead, a's batch was built on the journal's
    thread from a view the loop had meanwhile given b's decision, though b's batch was
    journaled after a's: replay disagreed.)"""
    from adaptive_runtime.records import StatePatched, to_pending

    async with one_disruptive_action(tmp_path) as host:
        journal = FaultyJournal.installed_in(host)
        for agent in ("a", "b"):
            await host.agent(agent).load()
        journal.inner.append([to_pending("a", StatePatched(values={"other": 1}), 1)])
        release = journal.hold_caught_up()  # in case it is decided again under the lock
        first = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "a"}))
        try:
            while not (first.done() or journal.holding_caught_up.is_set()):
                await asyncio.to_thread(journal.holding_caught_up.wait, 0.005)
            second = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "b"}))
            for _ in range(50):  # b decides and queues its batch, if it can
                await asyncio.sleep(0)
        finally:
            release.set()
        decided = [await first, await second]
        assert ["restart_service"] == [d.action for d in decided if d.fleet is None]
        assert verify_replay(host.journal).ok


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_two_hosts_on_one_journal_share_one_fleet_budget(
    tmp_path: Path, durability: str
) -> None:
    """Each host counted only its own agents' decisions: two hosts took 10 restarts under
    a budget of 5, and `replay --verify`, which folds the fleet in the journal's order,
    called decisions of theirs mismatches. A gated batch now carries the seq its
    fleet view was caught up to, and the journal refuses it if another writer journaled
    a fleet entry since: its host catches up and decides it again."""
    path = tmp_path / "fleet.db"
    actions = await fleet_of_two_hosts(str(path), durability)
    assert 5 == actions.count("restart_service")
    assert_replays(path)


async def test_a_host_whose_fleet_policy_another_host_replaced_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hosts of one journal share the fleet policy journaled last: a host started with a
    budget of one, beside a later one with a budget of ten, gates by ten from then on
    (as replay does), and warns once, naming both policies."""
    path = tmp_path / "two.db"
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    tight, loose = FleetPolicy(budget=1), FleetPolicy(budget=10)
    async with Host(path, durability="normal", clock=clock, fleet=tight) as a:
        first = await a.process({**OVERLOAD, "agent_id": "a1"})
        async with Host(path, durability="normal", clock=clock, fleet=loose) as b:
            await b.process({**OVERLOAD, "agent_id": "b1"})
            caplog.clear()
            later = [await a.process({**OVERLOAD, "agent_id": f"a{i}"}) for i in (2, 3)]
    assert ["restart_service"] * 3 == [first.action, *(d.action for d in later)]
    told = [r.getMessage() for r in caplog.records if "replaces this host's" in r.getMessage()]
    assert [
        f"another host journaled fleet policy {loose.digest}, which replaces this host's"
        f" {tight.digest} for every host of the journal from now on (the last one journaled"
        " is in force); give every host the same policy"
    ] == told
    journal = SqliteJournal(path, create=False)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()
