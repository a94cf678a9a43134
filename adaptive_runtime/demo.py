"""The main job: the original README's monitoring scenario, journaled (a SQLite file by default)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from ._text import format_ts, shown
from .errors import ConfigurationError, JournalError
from .journal.open import describe, is_memory, open_journal
from .observability.logs import ROOT, enable_console_logging
from .runtime import Runtime

__all__ = ["SCENARIO", "run_demo"]

SCENARIO: list[dict[str, Any]] = [
    {"type": "service_overload", "severity": 0.91, "cpu": 96, "memory": 92},
    {"type": "anomaly_detected", "severity": 0.74, "error_rate": 0.6},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "recovery_needed", "severity": 0.30},
]


async def run_demo(
    path: Path | str,
    *,
    agent: str = "prod-monitor",
    out: TextIO = sys.stdout,
    log: TextIO | None = None,
    show_logs: bool = True,
    history: int = 10,
    plugins: list[str] | None = None,
) -> int:
    """Process the scenario on the journal at `path` (a file, or a journal URL such as
    postgresql://...), then print what the journal remembers.

    The results go to `out`; the engines' log lines (if shown) to `log`, stderr by default.
    """
    _refuse_others(path, agent)
    level = ROOT.level
    handler = enable_console_logging(logging.INFO, log or sys.stderr) if show_logs else None
    try:
        if isinstance(path, Path):
            runtime = Runtime(agent_id=agent, path=path, checkpoint_every=5, plugins=plugins)
            where = str(path.resolve())
        else:
            runtime = Runtime(agent_id=agent, journal=path, checkpoint_every=5, plugins=plugins)
            where = describe(path)

        @runtime.bus.subscribe("anomaly_detected")
        async def on_anomaly(event: dict[str, Any]) -> None:
            print(f"  ⚠ Anomaly handler fired — severity={event['severity']}", file=out)

        await runtime.start()
        remembered = runtime.state.events
        rebuilt = runtime.snapshot_summary()
        print(f"Journal: {where}", file=out)
        print(f"Remembered from earlier runs: {remembered} events\n", file=out)
        for event in SCENARIO:
            result = await runtime.process(event)
            print(
                f"  [{result.priority.upper()}] {event['type']:25s} → {result.action}  conf={result.confidence:.3f}",
                file=out,
            )
        items = await runtime.event_history(limit=history)
        await runtime.stop()
    finally:
        if handler is not None:
            ROOT.removeHandler(handler)
            ROOT.setLevel(level)
    print(
        f"\nLast {len(items)} of {remembered + len(SCENARIO)} events in the journal (newest first):",
        file=out,
    )
    for item in items:
        print(
            f"  seq {item['seq']:>5}  {format_ts(item['ts_ns'])}  {item['type']:20s} {item['action']:24s} [{item['priority']}] conf={item['confidence']:.3f}",
            file=out,
        )
    if remembered:
        print(f"\n{_how_remembered(remembered, rebuilt)}", file=out)
    elif is_memory(path):
        print("\nThe journal was in memory: these events are gone with this run.", file=out)
    else:
        print("\nRun the demo again: the journal remembers these events across runs.", file=out)
    return 0


def _refuse_others(path: Path | str, agent: str) -> None:
    """Refuse a journal of other agents that the demo never wrote to: its events would stay
    in their audit trail for good (a journal is append-only). A journal holding the demo's
    agent is one it wrote before (beside, say, the README's event posted to `serve`)."""
    if is_memory(path):
        return
    try:
        journal = open_journal(path, create=False)
    except JournalError:  # none there yet (or not one at all: the runtime will say so)
        return
    try:
        streams = journal.streams()
    finally:
        journal.close()
    others = [s for s in streams if s != agent and not s.startswith("~")]
    if others and agent not in streams:
        # as every message shows a journaled name: a line break or an escape can't get out
        named = ", ".join(shown(s) for s in others[:5]) + (", ..." if len(others) > 5 else "")
        msg = (
            f"{describe(path)} holds other agents ({named}) and no earlier run of the demo;"
            " the demo writes its scenario only into a new journal or one it wrote before:"
            " give another --db"
        )
        raise ConfigurationError(msg)


def _how_remembered(events: int, rebuilt: dict[str, Any]) -> str:
    """Say truly how start() got the earlier runs' state back."""
    replayed = rebuilt["replayed"]
    entries = "entry" if replayed == 1 else "entries"
    if rebuilt["snapshot_seq"] is None:
        how = f"by replaying all {replayed} journal {entries}"
    elif replayed:
        how = (
            f"from the snapshot at seq {rebuilt['snapshot_seq']} plus {replayed} {entries} after it"
        )
    else:
        how = f"from the snapshot at seq {rebuilt['snapshot_seq']}, with nothing after it to replay"
    if events == 1:
        return f"The 1 event from an earlier run was restored on start, {how}."
    return f"The {events} events from earlier runs were restored on start, {how}."
