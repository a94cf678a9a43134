"""Fixtures shared by every suite."""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adaptive_runtime.journal import Journal, MemoryJournal, SqliteJournal


class SeededRandom(random.Random):
    """A random.Random whose repr shows its seed, so a failing test can be re-run."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"SeededRandom(seed={self.seed_value})"


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> SeededRandom:
    """A seeded RNG: ADAPTIVE_RUNTIME_SEED pins it, else it derives from the test id."""
    # crc32, not hash(): str hashes change with PYTHONHASHSEED, and the seed must not
    seed = int(
        os.environ.get("ADAPTIVE_RUNTIME_SEED", zlib.crc32(request.node.nodeid.encode()) & 0xFFFF)
    )
    return SeededRandom(seed)


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """Each backend in turn: the contract suite runs against all of them."""
    backend: Journal
    if request.param == "memory":
        backend = MemoryJournal()
    else:
        backend = SqliteJournal(tmp_path / "journal.db", durability="normal")
    yield backend
    backend.close()


@pytest.fixture
def read_only_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make everything under tmp_path read-only to this process as os.access reports it,
    as on read-only storage (the tests may run as root, whom file modes don't stop);
    SQLite itself opens the file read-only, so nothing can be written for real."""
    real = os.access
    root = tmp_path.resolve()

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path).resolve().is_relative_to(root):
            return False
        return real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
