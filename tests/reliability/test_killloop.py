"""The kill -9 loop, short enough for every CI run (the full 300-kill run is in RELIABILITY.md)."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from killloop import run


def test_kill_loop_loses_nothing_acknowledged(tmp_path: Path, rng: random.Random) -> None:
    """Killed at named crash points and from outside, nothing acknowledged is lost, ever:
    outcomes included, each found under its id, those sent again after a kill too."""
    runs = int(os.environ.get("ADAPTIVE_RUNTIME_KILL_RUNS", "30"))
    figures = run(runs, rng.randrange(2**32), tmp_path)
    assert figures["acknowledged"] > 0, figures
    assert figures["outcomes_acknowledged"] > 0, figures
    assert (
        figures["lost"],
        figures["gaps"],
        figures["chain_broken"],
        figures["state_mismatch"],
        figures["replay_mismatches"],
    ) == (0, 0, 0, 0, 0), f"{figures} (seed in rng: {rng!r})"
