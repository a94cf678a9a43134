"""A bounded load from a second process (bench/http_load.py), checked against /metrics.

The figures themselves are the benchmark's (README, "The HTTP service"); this test only
checks that the load completes and that what the server reports is what was sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "http_load.py"


def test_a_bounded_load_is_all_answered_and_metrics_match_what_was_sent() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--count", "300", "--concurrency", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(out.stdout)
    assert {"200": 300} == results["hello"]["statuses"]
    for durability in ("full", "normal"):
        run = results[durability]
        assert {"200": 300} == run["statuses"], durability
        assert {"events": 300.0, "decisions": 300.0, "process_count": 300.0} == run["metrics"]
        assert 0 == results[f"{durability}_exit"]
        assert run["p50_ms"] <= run["p99_ms"]
