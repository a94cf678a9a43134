"""How much slower the same Python runs right after an fsync than in a loop without one.

At durability full every commit waits for an fsync, and the thread that waits sleeps.
This times one piece of the runtime's per-event Python (validate an event, then decide
about it) in three loops of its own, each `--events` times:

- alone, one call after another;
- after a busy wait as long as a typical fsync here (the core stays busy, nothing syncs);
- after writing 200 bytes to a file and fdatasync'ing it (what a commit at full does).

The difference between the first and the last is what a commit at full costs the
Python around it, beyond the fsync itself. `python bench/after_fsync.py`; each loop runs
twice, in the order above and then again, and prints µs per call.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import event

from adaptive_runtime.engines.events import parse_event
from adaptive_runtime.engines.learning import Outcomes
from adaptive_runtime.engines.pipeline import Policy, decide

BUSY_S = 250e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400)
    events = parser.parse_args().events
    policy, outcomes = Policy(), Outcomes()

    def work(i: int) -> None:
        decide(policy, outcomes, parse_event(event(i)), i)

    with tempfile.TemporaryDirectory() as folder:
        fd = os.open(os.path.join(folder, "synced"), os.O_RDWR | os.O_CREAT)
        try:

            def nothing(i: int) -> None:
                return None

            def busy(i: int) -> None:
                began = time.perf_counter()
                while time.perf_counter() - began < BUSY_S:
                    pass

            def synced(i: int) -> None:
                os.pwrite(fd, b"x" * 200, i * 200)
                os.fdatasync(fd)

            loops: list[tuple[str, Callable[[int], None]]] = [
                ("alone", nothing),
                (f"after a {BUSY_S * 1e6:.0f} us busy wait", busy),
                ("after an fdatasync", synced),
            ]
            for label, before in loops * 2:
                total = 0
                for i in range(events):
                    before(i)
                    began = time.perf_counter_ns()
                    work(i)
                    total += time.perf_counter_ns() - began
                print(f"{label:28s} validate + decide: {total / events / 1000:6.2f} us a call")
        finally:
            os.close(fd)


if __name__ == "__main__":
    main()
