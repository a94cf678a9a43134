"""The PostgreSQL server the tests use: its URL from ADAPTIVE_RUNTIME_TEST_PG, or a skip.

`.ci/run` starts the machine's PostgreSQL, makes a role and a database, and exports the
URL. Elsewhere, with no URL, the PostgreSQL tests are skipped with a message saying how
to run them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

URL_ENV = "ADAPTIVE_RUNTIME_TEST_PG"
HOW = (
    f"no PostgreSQL for the tests: set {URL_ENV}=postgresql://USER:PASSWORD@HOST/DB "
    "(a database the user may create schemas in), or run .ci/run, which starts one"
)


def pg_url() -> str:
    url = os.environ.get(URL_ENV)
    if not url:
        pytest.skip(HOW)
    return url


def fresh_url(tag: str = "t") -> str:
    """The test server's URL with a new, empty schema of its own."""
    schema = f"{tag}_{uuid.uuid4().hex[:12]}"
    base = pg_url()
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def fresh_journal(tmp_path: Path, **kwargs: Any) -> Any:
    from adaptive_runtime.journal.postgres import PostgresJournal

    del tmp_path  # a schema, not a folder, keeps each test's journal apart
    return PostgresJournal(fresh_url(), durability="normal", **kwargs)
