"""Test kits a backend or an integration can run: import it from test code only (it needs pytest)."""

from __future__ import annotations

from .journal_contract import JournalContract

__all__ = ["JournalContract"]
