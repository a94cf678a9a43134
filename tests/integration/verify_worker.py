"""A host whose restart is verified, in a process of its own.

python verify_worker.py DB act-then-die   # the restart runs; killed while its check waits
python verify_worker.py DB resume         # a restart: the check owed is made, once
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from adaptive_runtime import Host, ManualClock, Verification
from adaptive_runtime.records import OutcomeRecorded, read_as
from adaptive_runtime.runtime.actions import ActionCall


class DyingClock(ManualClock):
    """The check's wait is where the process dies."""

    async def sleep(self, seconds: float) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


async def main(db: str, mode: str) -> None:
    start = 1_764_000_000 * 10**9
    clock = (
        DyingClock(start_ns=start)
        if mode == "act-then-die"
        else ManualClock(start_ns=start + 10**12)
    )
    host = Host(db, durability="full", clock=clock)
    ran: list[str] = []

    @host.action("restart_service", verify=Verification(within=120.0))
    async def restart(call: ActionCall) -> None:
        ran.append("restart_service")

    async with host:
        if mode == "act-then-die":
            await host.process(
                {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
            )
            await host.wait_for_actions()
            return
        await host.wait_for_actions()
        found = [read_as(e, OutcomeRecorded) for e in host.journal.read(kind="OutcomeRecorded")]
    print(json.dumps({"ran": ran, "outcomes": [[o.action, o.success] for o in found]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
