"""A cold `import adaptive_runtime`, beside a bare interpreter starting."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

# As an installed package runs: with its bytecode cached (pip compiles it at install).
# Where PYTHONDONTWRITEBYTECODE is set, every run would compile the package's source anew.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time_python(benchmark: Any, code: str, **info: object) -> None:
    """Time `python -c code`, a fresh process each round."""
    benchmark.group = "import"
    benchmark.extra_info.update(events=1, **info)
    benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", code], check=True, env=ENV),
        rounds=15,
        warmup_rounds=1,
    )


def test_bare_interpreter(benchmark: Any) -> None:
    """Baseline: `python -c pass`."""
    _time_python(benchmark, "pass", role="baseline")


def test_package_import(benchmark: Any) -> None:
    """Ours: `python -c 'import adaptive_runtime'`, the import the 60 ms target is for.

    The top level loads lazily: this is the errors and the names, not the event loop.
    """
    _time_python(benchmark, "import adaptive_runtime", role="ours", target_ms=60)


def test_cold_import(benchmark: Any) -> None:
    """Ours: `python -c 'from adaptive_runtime import Runtime'`; the report subtracts the baseline.

    What a program that decides pays: the Runtime, with the event loop and the engines.
    """
    _time_python(benchmark, "from adaptive_runtime import Runtime", role="ours", target_ms=60)


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
