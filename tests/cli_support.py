"""The command line as a user runs it: `python -m adaptive_runtime ...`, a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def cli(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command; `env` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "adaptive_runtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        input=stdin,
    )
