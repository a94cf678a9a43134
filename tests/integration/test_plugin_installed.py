"""The example plugin as a user installs it: with pip, into the environment that runs it.

`.ci/run` makes a fresh venv, installs the package and examples/trading-plugin into it
with pip, and runs this file there. Elsewhere (the plugin not installed here) it skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from adaptive_runtime import Host, ManualClock

try:
    metadata.distribution("adaptive-runtime-trading")
except metadata.PackageNotFoundError:
    pytest.skip(
        "the example plugin is not installed in this environment; .ci/run installs it in a "
        "venv of its own and runs this file there",
        allow_module_level=True,
    )

EVENTS = [
    {"type": "vps_disconnect", "severity": 0.3, "cpu": 10},
    {"type": "stop_loss_hit", "severity": 0.5, "symbol": "EURUSD"},
    {"type": "price_update", "severity": 0.1},
]


async def test_the_installed_pack_fires_its_rules_at_the_risk_it_intends() -> None:
    async with Host("memory:", clock=ManualClock(), plugins=["trading"]) as host:
        decided = [await host.agent("bot").process(e) for e in EVENTS]
        await host.wait_for_actions()
        succeeded = host.agent("bot").state.actions_succeeded
    assert [
        ("trading_infrastructure", "critical", "emergency_save_state", "trading[0]"),
        ("trading_position", "high", "close_position", "trading[2]"),
        ("trading_market_data", "low", "log_telemetry", "trading[4]"),
    ] == [(d.context, d.risk, d.action, d.rule) for d in decided]
    assert all(d.plugins == ("trading==0.1.0",) for d in decided)
    assert 1 == succeeded  # emergency_save_state, the pack's own handler


def test_the_plugins_command_lists_it_as_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", "plugins", "--db", "memory:", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = json.loads(out.stdout)["installed"]
    assert ["trading"] == [p["name"] for p in installed]
