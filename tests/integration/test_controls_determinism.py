"""With every control active, the journal is the same under two hash seeds, and replays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from adaptive_runtime.engines.entries import check_entry
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay

WORKER = Path(__file__).with_name("controls_worker.py")


def run(db: Path, seed: str) -> str:
    out = subprocess.run(
        [sys.executable, str(WORKER), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
    )
    return out.stdout.strip()


def test_every_control_replays_byte_for_byte_under_two_hash_seeds(tmp_path: Path) -> None:
    heads = [run(tmp_path / f"seed{seed}.db", seed) for seed in ("0", "1")]
    assert heads[0] == heads[1]
    journal = SqliteJournal(tmp_path / "seed0.db", create=False)
    try:
        report = verify_replay(journal)
        assert report.ok, report.mismatches[:2]
        kinds = {e.kind for e in journal.read()}
        # each control left its mark
        for entry in journal.read():  # what the runtime journals, an import takes
            check_entry(entry.kind, entry.body)
        for kind in (
            "SilenceSet",
            "ApprovalPolicySet",
            "ActionAwaitingApproval",
            "ApprovalDecided",
            "ActionAbandoned",
            "DeadLetterDismissed",
            "FleetIncident",
            "ActionSkipped",
        ):
            assert kind in kinds, kind
        reasons = {d.fleet.split(":")[0].split(",")[0] for d in _decisions(journal) if d.fleet}
        assert {"cooldown", "fleet floor"} <= reasons, reasons
        assert any(r.startswith("repeat of fingerprint") for r in reasons), reasons
        # a restart the deploy window skipped left the cooldown: svc-0's next, 70 s on,
        # restarts; the maintenance window's skips are owed (fire_after), so they count
        after = _after_skips(journal)
        [deployed] = after["deploy"]
        assert ("restart_service", None) == (deployed.action, deployed.degraded_from)
        assert any(str(d.fleet).startswith("cooldown") for d in after["maintenance"])
    finally:
        journal.close()


def _after_skips(journal: SqliteJournal) -> dict:  # type: ignore[type-arg]
    """Per silence comment: each decision of an agent right after one the silence skipped."""
    from adaptive_runtime.records import ActionSkipped, DecisionMade, read_as

    found: dict = {}  # type: ignore[type-arg]
    waiting: dict[str, str] = {}
    for entry in journal.read():
        if entry.kind == "ActionSkipped":
            waiting[entry.stream] = read_as(entry, ActionSkipped).reason.split("(")[-1][:-1]
        elif entry.kind == "DecisionMade" and entry.stream in waiting:
            decision = read_as(entry, DecisionMade).decision
            found.setdefault(waiting.pop(entry.stream), []).append(decision)
    return found


def _decisions(journal: SqliteJournal) -> list:  # type: ignore[type-arg]
    from adaptive_runtime.records import DecisionMade, read_as

    return [read_as(e, DecisionMade).decision for e in journal.read(kind="DecisionMade")]
