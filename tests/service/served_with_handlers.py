"""A served host with action handlers, for the dashboard's browser test: `serve` runs none
without a plugin, so its decisions never wait for a person. Takes serve's --db, --tokens,
--bind and --log-level.

restart_service waits for approval; flag_for_review (an anomaly's action) fails at its
one attempt and is left a dead letter.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from adaptive_runtime import ApprovalPolicy, Host, RetryPolicy
from adaptive_runtime.runtime.actions import ActionCall
from adaptive_runtime.service.app import ServiceConfig
from adaptive_runtime.service.auth import Tokens
from adaptive_runtime.service.server import _serve, _Served, parse_bind


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--db", "--tokens", "--bind", "--log-level"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    host = Host(
        args.db, durability="normal", approvals=ApprovalPolicy(actions=("restart_service",))
    )

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        pass

    @host.action("flag_for_review", retry=RetryPolicy(max_attempts=1))
    async def review(call: ActionCall) -> None:
        raise RuntimeError("the review queue is down")

    address, port = parse_bind(args.bind)
    served = _Served(address, port, args.db, in_memory=False)
    config = ServiceConfig(tokens=Tokens.load(args.tokens))
    # as serve runs its host: the same start-up, signals and shutdown (the streams ended)
    sys.exit(asyncio.run(_serve(host, served, config, args.log_level)))


if __name__ == "__main__":
    main()
