"""Helpers the journal's tests share."""

from __future__ import annotations

from pathlib import Path

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay


def assert_replays(path: Path) -> None:
    """Replaying the SQLite journal at `path` from empty re-makes every decision to the byte."""
    journal = SqliteJournal(path, create=False)
    try:
        report = verify_replay(journal)
        assert report.ok, report.mismatches[:2]
    finally:
        journal.close()
