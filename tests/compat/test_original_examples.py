"""The original project's example scripts run against this package with only their imports changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "original_examples"

# Their back-off and "outage" waits use asyncio.sleep: made instant, so the test never sleeps.
RUNNER = """
import asyncio, runpy, sys
real_sleep = asyncio.sleep
async def instant(delay, result=None):
    return await real_sleep(0, result)
asyncio.sleep = instant
runpy.run_path(sys.argv[1], run_name="__main__")
"""

# What each script must print: the custom rules it assigns through `runtime._decision`
# take effect (log_telemetry and the like are not default actions), and the internals
# it reads (`_state.current`, `_recovery.retry`) answer as the original's did.
EXPECTED = {
    "agent_demo.py": ["→ restart_service  [high]  conf=0.783", "=== Metrics Summary ==="],
    "monitoring_demo.py": ["[8] "],
    "automation_demo.py": ["Retry result: Success on attempt #3"],
    "power_grid_demo.py": [
        "sensor_offline         → isolate_segment",
        "    last_action : trigger_backup_grid",
        "    last_risk   : high",
    ],
    "trading_bot_demo.py": ["price_update           → log_telemetry"],
    "healthcare_monitoring_demo.py": ["heart_rate_normal          → log_telemetry"],
    "manufacturing_demo.py": ["temperature_normal       → log_telemetry"],
    "smart_city_demo.py": ["traffic_normal             → log_telemetry"],
}


def test_every_original_example_is_here() -> None:
    """The eight example scripts of the original repository are all covered."""
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_original_example_runs(name: str, tmp_path: Path) -> None:
    """The script exits 0 with no traceback and prints what shows its calls took effect."""
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # scripts with persist=True write adaptive_runtime.db here
    )
    assert 0 == out.returncode, out.stderr
    assert "Traceback" not in out.stderr
    for expected in EXPECTED[name]:
        assert expected in out.stdout, (name, expected)
