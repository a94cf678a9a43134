"""A host in a process of its own, at the time given: one event for one agent.

    python silence_worker.py DB START_SECONDS AGENT

Prints {"ran": [agents whose restart ran], "skipped": [reasons journaled]} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from adaptive_runtime import Host, ManualClock
from adaptive_runtime.records import ActionSkipped, read_record
from adaptive_runtime.runtime.actions import ActionCall


async def main(db: str, start_s: int, agent: str) -> None:
    ran: list[str] = []
    host = Host(db, durability="normal", clock=ManualClock(start_ns=start_s * 10**9))

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(str(call.event.get("agent_id")))

    async with host:
        decision = await host.process(
            {
                "type": "service_overload",
                "severity": 0.82,
                "cpu": 94,
                "memory": 88,
                "agent_id": agent,
            }
        )
        await host.wait_for_actions()
        after = decision.seq
        reasons = [
            record.reason
            for entry in host.journal.read(agent, after=after)
            if isinstance(record := read_record(entry), ActionSkipped)
        ]
    print(json.dumps({"ran": ran, "skipped": reasons}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
