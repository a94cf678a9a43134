"""Verification of an action's effect, and the escalation ladder when it did not work."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import cli
from journal_support import assert_replays, silence_set_elsewhere

from adaptive_runtime import (
    ApprovalPolicy,
    BreakerPolicy,
    ConfigurationError,
    Host,
    ManualClock,
    RetryPolicy,
    SilenceMatcher,
    Verification,
)
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections.audit import explain
from adaptive_runtime.projections.controls import dead_letters
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9
WORKER = Path(__file__).with_name("verify_worker.py")


def laddered(
    path: Path, clock: ManualClock, probe: object = None, approvals: ApprovalPolicy | None = None
) -> tuple[Host, list[str]]:
    host = Host(path, durability="normal", clock=clock, approvals=approvals)
    ran: list[str] = []
    check = Verification(within=120.0, probe=probe)  # type: ignore[arg-type]

    @host.action("restart_service", verify=check, escalate=["rollback_deployment", "page_human"])
    async def restart(call: ActionCall) -> None:
        ran.append(f"restart_service {call.decision.seq}")

    @host.action("rollback_deployment", verify=check)
    async def rollback(call: ActionCall) -> None:
        ran.append(f"rollback_deployment {call.decision.seq}")

    @host.action("page_human")
    async def page(call: ActionCall) -> None:
        ran.append(f"page_human {call.decision.seq}")

    return host, ran


def details(path: Path, seq: int) -> list[str]:
    journal = SqliteJournal(path, create=False)
    try:
        return [a.detail for a in explain(journal, seq).attempts]
    finally:
        journal.close()


def outcomes(path: Path) -> list[tuple[str, bool]]:
    from adaptive_runtime.records import OutcomeRecorded, read_as

    journal = SqliteJournal(path, create=False)
    try:
        return [
            (o.action, o.success)
            for o in (read_as(e, OutcomeRecorded) for e in journal.read(kind="OutcomeRecorded"))
        ]
    finally:
        journal.close()


async def test_no_repeat_of_the_symptom_verifies_the_action(tmp_path: Path) -> None:
    path = tmp_path / "ok.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = laddered(path, clock)
    async with host:
        await host.process({**OVERLOAD, "instance": "node-1"})
        await host.wait_for_actions()  # the check waits 120 s on the host's clock
    assert ["restart_service 2"] == ran
    assert [("restart_service", True)] == outcomes(path)


async def test_a_repeat_walks_the_ladder_each_step_journaled(tmp_path: Path) -> None:
    path = tmp_path / "ladder.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = laddered(path, clock)
    async with host:
        first = await host.process({**OVERLOAD, "instance": "node-1"})
        # the symptom keeps coming back, for the same target, while each step is checked
        for step in range(2):  # each repeat lands inside the window of the step before it
            while sum(d.startswith("verifying") for d in details(path, first.seq)) <= step:
                await asyncio.sleep(0)
            await host.process({**OVERLOAD, "instance": "node-1", "again": True})
            await asyncio.sleep(0)
        await host.wait_for_actions()
    seq = first.seq
    assert [f"restart_service {seq}", f"rollback_deployment {seq}", f"page_human {seq}"] == [
        r for r in ran if r.endswith(f" {seq}")
    ]
    steps = details(path, first.seq)
    assert any(d.startswith("escalated to rollback_deployment (step 1)") for d in steps)
    assert any(d.startswith("escalated to page_human (step 2)") for d in steps)
    assert ("restart_service", False) in outcomes(path)
    assert_replays(path)


async def test_a_probe_decides_and_an_exhausted_ladder_is_a_dead_letter(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)
    probed: list[int] = []

    def still_broken(call: ActionCall) -> bool:
        probed.append(call.decision.seq)
        return False

    @host.action("restart_service", verify=Verification(within=60.0, probe=still_broken))
    async def restart(call: ActionCall) -> None:
        pass

    async with host:
        d = await host.process(OVERLOAD)
        await host.wait_for_actions()
    assert [d.seq] == probed
    assert [("restart_service", False)] == outcomes(path)
    journal = SqliteJournal(path, create=False)
    try:
        [letter] = dead_letters(journal)
        assert ("restart_service", "verification_failed") == (letter.action, letter.reason)
    finally:
        journal.close()
    assert "restart_service did not work: the probe found the symptom still there" in details(
        path, d.seq
    )


def letters(path: Path) -> list[tuple[str, str]]:
    journal = SqliteJournal(path, create=False)
    try:
        return [(letter.action, letter.reason) for letter in dead_letters(journal)]
    finally:
        journal.close()


async def test_an_escalation_step_that_needs_approval_waits_for_a_person(tmp_path: Path) -> None:
    """The ladder used to run a step the approval policy names with no one asked."""
    path = tmp_path / "gated.db"
    clock = ManualClock(start_ns=START_NS)
    gate = ApprovalPolicy(actions=("rollback_deployment",))
    host, ran = laddered(path, clock, probe=lambda call: False, approvals=gate)
    async with host:
        d = await host.process({**OVERLOAD, "instance": "node-1"})
        await host.wait_for_actions()
        assert [f"restart_service {d.seq}"] == ran  # the rollback is not run by itself
        assert [("rollback_deployment", "needs_approval")] == letters(path)
        assert (
            "rollback_deployment not run: the approval policy wants a person's yes; a dead"
            " letter (retry runs it, dismiss drops it)"
        ) in details(path, d.seq)
        hint = (
            f"its rollback_deployment waits as a dead letter (needs_approval): `retry {d.seq}`"
            f" runs it, `dismiss {d.seq}` drops it"
        )
        with pytest.raises(LookupError) as refused:  # approve is not how: the refusal says so
            await host.controls.answer(d.seq, approve=True, by="alice")
        assert hint in str(refused.value)
        by_cli = cli("approve", str(d.seq), "--db", str(path))
        assert (2, hint) == (by_cli.returncode, by_cli.stderr.strip().split("; ", 1)[1])
        listed = cli("approvals", "--db", str(path)).stdout  # where a person looks first
        assert (
            f"seq {d.seq}: rollback_deployment for default waits as a dead letter"
            f" (needs_approval); `retry {d.seq}` runs it, `dismiss {d.seq}` drops it."
        ) in listed.splitlines()
        await host.controls.retry(d.seq, by="alice")  # the person's yes
        await host.wait_for_actions()
    # the approved step ran, and the ladder went on from it to a step no policy names
    assert [f"restart_service {d.seq}", f"rollback_deployment {d.seq}", f"page_human {d.seq}"] == (
        ran
    )
    assert [] == letters(path)
    assert_replays(path)


async def test_an_escalation_step_inside_a_silence_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "silenced.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = laddered(path, clock, probe=lambda call: False)
    async with host:
        # a maintenance window that begins while the restart's effect is being checked
        await host.controls.add_silence(
            SilenceMatcher(agent="default"),
            starts_ns=START_NS + 60 * 10**9,
            ends_ns=START_NS + 3600 * 10**9,
            comment="deploy window",
            by="alice",
        )
        d = await host.process({**OVERLOAD, "instance": "node-1"})
        await host.wait_for_actions()
    assert [f"restart_service {d.seq}"] == ran
    assert [("rollback_deployment", "silenced")] == letters(path)
    assert_replays(path)


async def test_an_escalation_step_is_held_by_a_silence_another_process_just_set(
    tmp_path: Path,
) -> None:
    """The step was gated by the controls as the host last read them, once a second: a
    silence journaled by another process (the command line) a moment before the check
    did not hold it. Its batch is now journaled against the controls it was gated by,
    refused once they move on, and gated again after the host reads them."""
    path = tmp_path / "just.db"
    clock = ManualClock(start_ns=START_NS)

    def probe(call: ActionCall) -> bool:
        silence_set_elsewhere(path, SilenceMatcher(agent="default"), clock.now_ns(), hours=1)
        return False  # the restart did not work: the ladder's next step is up

    host, ran = laddered(path, clock, probe=probe)
    async with host:
        d = await host.process({**OVERLOAD, "instance": "node-1"})
        await host.wait_for_actions()
    assert [f"restart_service {d.seq}"] == ran
    assert [("rollback_deployment", "silenced")] == letters(path)
    assert_replays(path)


async def test_a_retried_dead_letter_of_a_ladder_step_runs_that_step(tmp_path: Path) -> None:
    """A retry used to run the decision's own action again, not the step that failed."""
    path = tmp_path / "step.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)
    ran: list[str] = []

    @host.action(
        "restart_service",
        verify=Verification(within=60.0, probe=lambda call: False),
        escalate=["rollback_deployment"],
    )
    async def restart(call: ActionCall) -> None:
        ran.append("restart_service")

    @host.action("rollback_deployment", retry=RetryPolicy(max_attempts=1))
    async def rollback(call: ActionCall) -> None:
        ran.append("rollback_deployment")
        if len(ran) == 2:
            raise RuntimeError("the deploy tool timed out")

    async with host:
        d = await host.process(OVERLOAD)
        await host.wait_for_actions()
        assert [("rollback_deployment", "attempts_exhausted")] == letters(path)
        await host.controls.retry(d.seq, by="alice")
        await host.wait_for_actions()
    assert ["restart_service", "rollback_deployment", "rollback_deployment"] == ran
    assert [] == letters(path)
    assert_replays(path)


async def test_an_escalation_step_whose_breaker_is_open_is_not_run(tmp_path: Path) -> None:
    """A ladder ran its step through an open breaker, which holds every decision's run."""
    path = tmp_path / "breaker.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)
    ran: list[str] = []

    for first in ("restart_service", "flag_for_review"):
        host.action(
            first,
            verify=Verification(within=60.0, probe=lambda call: False),
            escalate=["rollback_deployment"],
        )(lambda call: ran.append(call.decision.action))

    @host.action(
        "rollback_deployment",
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=1, reset_after=3600.0),
    )
    async def rollback(call: ActionCall) -> None:
        ran.append("rollback_deployment")
        raise RuntimeError("the deploy tool is down")

    async with host:
        await host.process({**OVERLOAD, "instance": "node-1"})
        await host.wait_for_actions()  # the rollback fails once: its breaker opens
        second = await host.process({"type": "anomaly_detected", "severity": 0.6})
        await host.wait_for_actions()
    assert ["restart_service", "rollback_deployment", "flag_for_review"] == ran
    assert [
        ("rollback_deployment", "attempts_exhausted"),
        ("rollback_deployment", "breaker_open"),
    ] == letters(path)
    assert (
        "rollback_deployment not run: its circuit breaker is open; a dead letter (retry runs"
        " it, dismiss drops it)"
    ) in details(path, second.seq)
    assert_replays(path)


class GatedClock(ManualClock):
    """A clock whose sleeps wait for the test's word (the check's window, held open)."""

    __slots__ = ("gate",)

    def __init__(self, start_ns: int) -> None:
        super().__init__(start_ns=start_ns)
        self.gate = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self.gate.wait()
        await super().sleep(seconds)


async def test_a_resolved_alert_in_the_window_is_the_evidence(tmp_path: Path) -> None:
    path = tmp_path / "resolved.db"
    clock = GatedClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)

    @host.action("restart_service", verify=Verification(within=300.0))
    async def restart(call: ActionCall) -> None:
        pass

    async with host:
        d = await host.process(OVERLOAD)
        while not any(x.startswith("verifying") for x in details(path, d.seq)):
            await asyncio.sleep(0)
        await host.agent("default").record_outcome(d, success=True)  # what a resolution does
        clock.gate.set()
        await host.wait_for_actions()
    assert [("restart_service", True)] == outcomes(path)  # one outcome, not two
    assert any(
        x.startswith("restart_service verified: an outcome (success) was recorded")
        for x in details(path, d.seq)
    )


def test_escalation_needs_verification() -> None:
    host = Host("memory:")
    with pytest.raises(ConfigurationError, match="escalate needs verify"):
        host.action("restart_service", escalate=["page_human"])
    with pytest.raises(ConfigurationError):
        Verification(within=0)


def test_a_check_pending_across_kill_9_is_made_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    died = subprocess.run(
        [sys.executable, str(WORKER), str(db), "act-then-die"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert -signal.SIGKILL == died.returncode, died.stderr
    resumed = subprocess.run(
        [sys.executable, str(WORKER), str(db), "resume"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {"ran": [], "outcomes": [["restart_service", True]]} == json.loads(resumed.stdout)
