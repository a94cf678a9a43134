"""Cut the power under a running runtime, through the fault-injecting VFS, and count what survives.

python tests/reliability/powercut.py --cuts 100 --seed 3   # prints the figures
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from faultvfs import FaultVFS

from adaptive_runtime import ManualClock, Runtime
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay

KINDS = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
_names = itertools.count()


def event(i: int) -> dict[str, object]:
    return {
        "type": KINDS[i % 5],
        "severity": (i * 31 % 100) / 100,
        "cpu": i * 17 % 101,
        "id": f"e{i}",
    }


async def run_until_power_cut(
    path: Path, durability: str, rng: random.Random, start: int
) -> tuple[dict[str, int], int]:
    """Process events from four producers until the power goes; return the acks and writes lost.

    Half the time the power goes right after a random acknowledgement; otherwise at a
    random write, wherever it falls: inside a transaction, between a commit and its
    sync, or during a checkpoint.
    """
    vfs = FaultVFS(f"powercut{next(_names)}")
    vfs.tear = random.Random(rng.random())
    journal = SqliteJournal(path, durability=durability, vfs=vfs.name, checkpoint_pages=64)  # type: ignore[arg-type]
    runtime = Runtime(agent_id="a", journal=journal, clock=ManualClock(), checkpoint_every=5)
    acked: dict[str, int] = {}
    cut_after = rng.randint(1, 60)
    if rng.random() < 0.5:
        vfs.cut_at_write = rng.randint(1, 150)
        cut_after = 10**9
    await runtime.start()

    async def produce(k: int) -> None:
        for i in range(start + k, start + 400, 4):
            d = await runtime.process(event(i))
            if vfs.dead:
                return  # answered after the power went: not counted as acknowledged
            acked[f"e{i}"] = d.seq
            if len(acked) >= cut_after:
                vfs.cut_power()
                return

    await asyncio.gather(*(produce(k) for k in range(4)))
    vfs.cut_power()  # if the run ended first, the power goes now
    await runtime.stop()
    journal.close()
    vfs.unregister()
    return acked, vfs.dropped


async def figures(cuts: int, seed: int, durability: str, folder: Path) -> dict[str, object]:
    """Cut the power `cuts` times in a row on one journal; count acknowledged events lost."""
    rng = random.Random(seed)
    path = folder / "power.db"
    acked: dict[str, int] = {}
    lost: set[str] = set()
    dropped = broken = mismatched = mid_write = 0
    for cut in range(cuts):
        found, unsynced = await run_until_power_cut(path, durability, rng, start=cut * 100_000)
        acked.update(found)
        dropped += unsynced
        mid_write += unsynced > 0
        journal = SqliteJournal(path)
        broken += not journal.verify().ok
        lost |= {event_id for event_id in acked if journal.by_event_id(event_id) is None}
        mismatched += len(verify_replay(journal).mismatches)
        journal.close()
    return {
        "durability": durability,
        "cuts": cuts,
        "seed": seed,
        "acknowledged": len(acked),
        "cuts_that_dropped_unsynced_writes": mid_write,
        "unsynced_writes_dropped": dropped,
        "acknowledged_lost": len(lost),
        "failed_verifies": broken,
        "replay_mismatches": mismatched,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cuts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(
            json.dumps(
                asyncio.run(figures(args.cuts, args.seed, args.durability, Path(folder))), indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
