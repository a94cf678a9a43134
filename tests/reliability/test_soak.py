"""Sustained load (slow, left out of the default run): throughput per window, RSS and WAL stay bounded.

    python -m pytest -m slow -s tests/reliability/test_soak.py       # 10 minutes
    ADAPTIVE_RUNTIME_SOAK_SECONDS=60 python -m pytest -m slow -s ...  # shorter

It reports; it asserts only what must hold however fast the machine is: RSS and the
WAL stop growing, and every decision replays.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from adaptive_runtime import Runtime
from adaptive_runtime.journal import SqliteJournal

KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
WINDOW_S = 10.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_sustained_load(tmp_path: Path) -> None:
    """Process events at full speed with concurrent readers; report each 10-second window."""
    seconds = float(os.environ.get("ADAPTIVE_RUNTIME_SOAK_SECONDS", "600"))
    path = tmp_path / "soak.db"
    windows: list[dict[str, float]] = []

    async def run() -> None:
        async with Runtime(
            agent_id="soak", path=path, durability="normal", checkpoint_every=500
        ) as runtime:
            reader = SqliteJournal(path, create=False)  # an auditor reading all along
            started = window_start = time.monotonic()
            count = i = 0
            while time.monotonic() - started < seconds:
                i += 1
                await runtime.process(
                    {"type": KINDS[i % 5], "severity": (i % 100) / 100, "cpu": i % 101}
                )
                count += 1
                if i % 500 == 0:
                    list(reader.latest(50, "soak"))
                now = time.monotonic()
                if now - window_start >= WINDOW_S:
                    wal = Path(f"{path}-wal")
                    windows.append(
                        {
                            "t": round(now - started),
                            "events_per_s": round(count / (now - window_start)),
                            "rss_mb": round(rss_mb(), 1),
                            "wal_mb": round(wal.stat().st_size / 2**20, 1) if wal.exists() else 0.0,
                        }
                    )
                    print(json.dumps(windows[-1]), flush=True)
                    window_start, count = now, 0
            reader.close()

    asyncio.run(run())
    assert len(windows) >= 3
    warm = windows[len(windows) // 4]
    assert windows[-1]["rss_mb"] - warm["rss_mb"] < 10, windows
    assert max(w["wal_mb"] for w in windows) < 256, windows
    journal = SqliteJournal(path, create=False)
    assert journal.verify().ok
    journal.close()
