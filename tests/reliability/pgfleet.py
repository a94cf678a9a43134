"""A host process for the PostgreSQL fleet tests: it serves agents of a shared journal.

    python pgfleet.py URL ACKS AGENTS SEED

It sends events to agents picked at random from AGENTS (comma-separated) through one
Host. An event whose process() returned is acknowledged: a JSON line goes to ACKS with
its id, agent, seq, and this host's owner name and claim epoch. Events for agents
another host owns raise AgentOwnedElsewhere and are not acknowledged; nor is one whose
append failed for any other typed reason (its type is written, as an "error" line).
restart_service runs a handler that takes a little while, so that kills land while
actions are in flight. SIGTERM stops the host cleanly (its claims released).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys

from adaptive_runtime import ActionCall, Host, RetryPolicy
from adaptive_runtime.errors import AdaptiveRuntimeError, AgentOwnedElsewhere


async def main(url: str, acks_path: str, agents: list[str], seed: int) -> None:
    rng = random.Random(seed)
    host = Host(url, durability="full", checkpoint_every=25)

    @host.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    async def restart(call: ActionCall) -> None:
        await asyncio.sleep(0.05)

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    with open(acks_path, "a", encoding="utf-8") as acks:
        async with host:
            journal = host.journal
            owner = getattr(journal, "owner", "?")
            acks.write(json.dumps({"owner": owner, "pid": os.getpid()}) + "\n")
            acks.flush()
            n = 0
            while not stopping.is_set():
                n += 1
                agent = rng.choice(agents)
                event_id = f"{owner}/{n}"
                event = {
                    "type": "service_overload",
                    "severity": round(rng.uniform(0.6, 0.95), 3),
                    "cpu": 95,
                    "memory": 80,
                    "id": event_id,
                }
                claims = getattr(journal, "claims", dict)
                before = claims().get(agent)
                try:
                    d = await host.agent(agent).process(event)
                except AgentOwnedElsewhere:
                    await asyncio.sleep(0.002)
                    continue
                except AdaptiveRuntimeError as exc:
                    acks.write(json.dumps({"error": type(exc).__name__, "id": event_id}) + "\n")
                    acks.flush()
                    await asyncio.sleep(0.05)
                    continue
                # the claim the commit was made under: read after the call (it may have been
                # taken by it), else before it, if the claim was lost in between (a SIGSTOP
                # that lands after the commit, and a resume after the lease)
                epoch = claims().get(agent)
                epoch = before if epoch is None else epoch
                line = {"id": event_id, "agent": agent, "seq": d.seq, "owner": owner}
                acks.write(json.dumps({**line, "epoch": epoch}) + "\n")
                acks.flush()
            await host.wait_for_actions()


if __name__ == "__main__":
    url, acks, names, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    asyncio.run(main(url, acks, names.split(","), seed))
