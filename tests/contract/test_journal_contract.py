"""Every backend in this repository runs the Journal contract shipped in adaptive_runtime.testing."""

from __future__ import annotations

from pathlib import Path

from adaptive_runtime.journal import Journal, MemoryJournal, SqliteJournal
from adaptive_runtime.testing import JournalContract


class TestMemoryJournal(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return MemoryJournal()


class TestSqliteJournal(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return SqliteJournal(tmp_path / "journal.db", durability="normal")

    def another_writer(self, journal: Journal) -> Journal:
        assert isinstance(journal, SqliteJournal)
        return SqliteJournal(journal.path, durability="normal")


class TestPostgresJournal(JournalContract):
    """The contract against a real PostgreSQL server, each test in a schema of its own."""

    def make_journal(self, tmp_path: Path) -> Journal:
        from postgres_support import fresh_journal

        return fresh_journal(tmp_path)

    def another_writer(self, journal: Journal) -> Journal:
        from adaptive_runtime.journal.postgres import PostgresJournal

        assert isinstance(journal, PostgresJournal)
        return PostgresJournal(journal.conninfo, schema=journal.schema, durability="normal")
