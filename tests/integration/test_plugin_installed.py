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


def test_the_server_decides_with_the_plugins_it_is_given(tmp_path: object) -> None:
    """`serve --plugins trading`: an event posted over HTTP is decided by the pack's rules,
    and the server's actions include the pack's own handler."""
    import os
    import signal
    import socket
    import time
    import urllib.request
    from pathlib import Path

    folder = Path(str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "plugin-test-0123456789abcdef"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_runtime",
            "serve",
            "--db",
            str(folder / "trading.db"),
            "--bind",
            f"127.0.0.1:{port}",
            "--plugins",
            "trading",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "ADAPTIVE_RUNTIME_TOKENS": f"read,write {token}"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # a real process: poll until it answers
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        request = urllib.request.Request(
            url + "/v1/events",
            data=json.dumps({**EVENTS[0], "agent_id": "bot"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            decision = json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert ("trading_infrastructure", "critical", "emergency_save_state", "trading[0]") == (
        decision["context"],
        decision["risk"],
        decision["action"],
        decision["rule"],
    )
    assert ["trading==0.1.0"] == decision["plugins"]
    assert 0 == code


async def test_a_rule_for_a_context_only_a_plugin_gives_draws_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A custom rule for a context no event is given never matches, and start warns of
    it; a context an enabled plugin's analyser gives is not such a one. The pack's own
    handler (for an action its rules decide) draws no warning either."""
    rules = [{"context": "trading_infrastructure", "action": "page_trader", "reason": "vps"}]
    caplog.set_level("WARNING", logger="adaptive_runtime")
    async with Host("memory:", clock=ManualClock(), plugins=["trading"], rules=rules) as host:
        decided = await host.agent("bot").process(EVENTS[0])
    assert ("page_trader", "custom[0]") == (decided.action, decided.rule)
    assert [] == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    async with Host("memory:", clock=ManualClock(), rules=rules):
        pass
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("custom[0] is a rule for the context 'trading_infrastructure'")
