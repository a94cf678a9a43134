"""Memory figures, measured in fresh processes: idle RSS, and RSS while events stream through."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_PROBE = textwrap.dedent(
    """
    import sys
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    bare = rss_mb()
    import asyncio, json
    from adaptive_runtime import Runtime
    async def main(path, n):
        samples = []
        async with Runtime(agent_id="mem", path=path, durability="normal", checkpoint_every=1000) as runtime:
            idle = rss_mb()
            kinds = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]
            step = max(1, n // 20)
            for i in range(n):
                await runtime.process({"type": kinds[i % 5], "severity": (i % 100) / 100, "cpu": i % 101})
                if i % step == 0:
                    samples.append([i, round(rss_mb(), 1)])
            samples.append([n, round(rss_mb(), 1)])
        print(json.dumps({"bare_mb": round(bare, 1), "idle_mb": round(idle, 1), "samples": samples}))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def measure(events: int) -> dict[str, object]:
    """Run `events` events through a fresh runtime in a subprocess and sample its RSS."""
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(Path(folder) / "mem.db"), str(events)],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, object] = json.loads(out.stdout)
    samples = result["samples"]
    assert isinstance(samples, list)
    # growth after warm-up: from the sample at 25% of the run to the end
    warm = samples[len(samples) // 4][1]
    result["growth_after_warmup_mb"] = round(samples[-1][1] - warm, 1)
    result["events"] = events
    return result


_FLEET_PROBE = textwrap.dedent(
    """
    import sys, threading
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    import asyncio, json
    from adaptive_runtime import Host
    async def main(path, agents):
        async with Host(path, durability="normal", max_loaded_agents=agents) as host:
            await host.agent("warm-up").process({"type": "timeout", "severity": 0.4})
            before, threads_few = rss_mb(), threading.active_count()
            for k in range(agents):
                await host.agent(f"agent-{k}").process({"type": "timeout", "severity": 0.4})
            after, threads_many = rss_mb(), threading.active_count()
        print(json.dumps({"agents": agents, "kb_per_agent": round((after - before) * 1024 / agents, 1),
                          "threads_1": threads_few, "threads_n": threads_many}))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def measure_fleet(agents: int) -> dict[str, object]:
    """Load `agents` agents (one event each) into one host; RSS per agent and thread counts."""
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(
            [sys.executable, "-c", _FLEET_PROBE, str(Path(folder) / "fleet.db"), str(agents)],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, object] = json.loads(out.stdout)
    return result
