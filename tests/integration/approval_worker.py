"""A host in a process of its own, for the approval and dead-letter tests.

python approval_worker.py DB decide-then-die   # a gated decision, then kill -9 itself
python approval_worker.py DB decide-long-ago    # the same, on a clock a year behind
python approval_worker.py DB serve             # start (carrying out what is owed), stop
python approval_worker.py DB fail              # a restart that fails until abandoned
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from adaptive_runtime import Host, ManualClock
from adaptive_runtime.engines.backoff import RetryPolicy
from adaptive_runtime.records import ApprovalPolicy
from adaptive_runtime.runtime.actions import ActionCall

EVENT = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


async def main(db: str, mode: str) -> None:
    ran: list[int] = []
    # from now: a person (the command line, on the wall clock) answers within the timeout
    now = time.time_ns() - (365 * 86_400 * 10**9 if mode == "decide-long-ago" else 0)
    host = Host(
        db,
        durability="full",
        clock=ManualClock(start_ns=now),
        approvals=ApprovalPolicy(actions=("restart_service",), timeout_s=86_400.0)
        if mode != "fail"
        else None,
    )

    @host.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=0.5))
    async def restart(call: ActionCall) -> None:
        if mode == "fail":
            raise ConnectionError("the node does not answer")
        ran.append(call.decision.seq)

    async with host:
        if mode in ("decide-then-die", "decide-long-ago", "fail"):
            decision = await host.process(EVENT)
            await host.wait_for_actions()
            print(decision.seq, flush=True)
            if mode != "fail":
                os.kill(os.getpid(), signal.SIGKILL)
            return
        await host.wait_for_actions()
        pending = sorted(p.decision_seq for p in host.controls.pending.values())
    print(json.dumps({"ran": ran, "pending": pending}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
