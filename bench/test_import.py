"""A cold `import adaptive_runtime`, beside a bare interpreter starting."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

# As an installed package runs: with its bytecode cached (pip compiles it at install).
# Where PYTHONDONTWRITEBYTECODE is set, every run would compile the package's source anew.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def test_bare_interpreter(benchmark: Any) -> None:
    """Baseline: `python -c pass`."""
    benchmark.group = "import"
    benchmark.extra_info.update(role="baseline", events=1)
    benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=True, env=ENV),
        rounds=15,
        warmup_rounds=1,
    )


def test_package_import(benchmark: Any) -> None:
    """Ours: `python -c 'import adaptive_runtime'`, what the issue's target names.

    The top level loads lazily: this is the errors and the names, not the event loop.
    """
    benchmark.group = "import"
    benchmark.extra_info.update(role="ours", events=1, target_ms=60)
    benchmark.pedantic(
        lambda: subprocess.run(
            [sys.executable, "-c", "import adaptive_runtime"], check=True, env=ENV
        ),
        rounds=15,
        warmup_rounds=1,
    )


def test_cold_import(benchmark: Any) -> None:
    """Ours: `python -c 'from adaptive_runtime import Runtime'`; the report subtracts the baseline.

    The package's top level loads lazily, so a bare `import adaptive_runtime` costs little;
    what a user pays is the Runtime, with the event loop and the engines it brings.
    """
    benchmark.group = "import"
    benchmark.extra_info.update(role="ours", events=1, target_ms=60)
    benchmark.pedantic(
        lambda: subprocess.run(
            [sys.executable, "-c", "from adaptive_runtime import Runtime"], check=True, env=ENV
        ),
        rounds=15,
        warmup_rounds=1,
    )


def test_cli_head_cold_start(benchmark: Any, tmp_path: Any) -> None:
    """Ours: `python -m adaptive_runtime head` on a small journal, a fresh process each time."""
    from adaptive_runtime.journal import Pending, SqliteJournal

    path = tmp_path / "small.db"
    journal = SqliteJournal(path, durability="normal")
    for i in range(20):
        journal.append([Pending(stream="a", kind="K", ts_ns=i, body=b"x")])
    journal.close()
    benchmark.group = "import"
    benchmark.extra_info.update(role="ours", events=1)
    benchmark.pedantic(
        lambda: subprocess.run(
            [sys.executable, "-m", "adaptive_runtime", "head", "--db", str(path)],
            check=True,
            capture_output=True,
            env=ENV,
        ),
        rounds=15,
        warmup_rounds=1,
    )
