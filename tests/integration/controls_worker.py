"""Every operator control active at once, on an injected clock: prints the journal's head.

    python controls_worker.py DB

Run under two PYTHONHASHSEEDs, the heads must match (tests/integration/test_controls_determinism.py).
"""

from __future__ import annotations

import asyncio
import sys

from adaptive_runtime import FleetPolicy, Host, ManualClock
from adaptive_runtime.engines.backoff import RetryPolicy
from adaptive_runtime.records import ApprovalPolicy, SilenceMatcher
from adaptive_runtime.runtime.actions import ActionCall

EVENTS = [
    {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88},
    {"type": "service_overload", "severity": 0.95, "cpu": 99, "memory": 97},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "anomaly_detected", "severity": 0.3},
]


async def main(db: str) -> None:
    clock = ManualClock(start_ns=1_764_000_000 * 10**9)
    host = Host(
        db,
        durability="normal",
        clock=clock,
        fleet=FleetPolicy(
            correlate_agents=3,
            budget=6,
            cooldown=120.0,
            max_share=0.6,
            min_untouched=2,
            dedup_window=100.0,
            max_in_flight=3,
        ),
        approvals=ApprovalPolicy(actions=("scale_up_immediate",), timeout_s=300.0),
    )

    @host.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=1.0))
    async def restart(call: ActionCall) -> None:
        if call.decision.seq % 2 == 0:  # deterministic: the seqs are
            raise ConnectionError("no answer")

    @host.action("scale_up_immediate")
    async def scale(call: ActionCall) -> None:
        pass

    async with host:
        await host.controls.add_silence(
            SilenceMatcher(agent="svc-5"),
            ends_ns=clock.now_ns() + 900 * 10**9,
            comment="maintenance",
            by="ops",
            fire_after=True,
        )
        await host.controls.add_silence(
            SilenceMatcher(agent="svc-0"),
            starts_ns=clock.now_ns() + 130 * 10**9,
            ends_ns=clock.now_ns() + 150 * 10**9,
            comment="deploy",
            by="ops",
        )
        for step in range(60):
            agent = f"svc-{step % 10}"
            event = {**EVENTS[step % 5], "agent_id": agent, "instance": f"node-{step % 2}"}
            if step < 30:  # the first rounds repeat each agent's fingerprint 70 s apart
                event["fingerprint"] = f"fp-{step % 10}"
            await host.process(event)
            await host.wait_for_actions()
            clock.advance(7)
            if step % 13 == 12:
                for pending in list(host.controls.pending.values())[:1]:
                    await host.controls.answer(pending.decision_seq, approve=True, by="ops")
                await host.wait_for_actions()
            await host.controls.refresh()  # approvals past their timeout are denied
        for letter in (await host.controls.dead_letters())[:1]:
            await host.controls.dismiss(letter.decision_seq, by="ops")
        head = host.journal.head()
    print(head.seq, head.digest.hex())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
