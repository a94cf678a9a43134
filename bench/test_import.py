"""A cold `import adaptive_runtime`, beside a bare interpreter starting."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def test_bare_interpreter(benchmark: Any) -> None:
    """Baseline: `python -c pass`."""
    benchmark.group = "import"
    benchmark.extra_info.update(role="baseline", events=1)
    benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), rounds=15
    )


def test_cold_import(benchmark: Any) -> None:
    """Ours: `python -c 'import adaptive_runtime'`; the report subtracts the baseline."""
    benchmark.group = "import"
    benchmark.extra_info.update(role="ours", events=1, target_ms=60)
    benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", "import adaptive_runtime"], check=True),
        rounds=15,
    )
