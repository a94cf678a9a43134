"""schemathesis against a real server's /openapi.json: every route, generated requests.

No 5xx, every status documented, every body of the documented type and schema; and the
journal verifies afterwards (its chain, and every decision re-decided byte for byte).
Hypothesis runs derandomized with a bounded number of examples, so the run is repeatable.
The live stream is fuzzed with `follow=false`: a following stream never ends by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from http_support import WRITE, ServerProcess
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections.replay import verify_replay

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    db = tmp / "fuzz.db"
    srv = ServerProcess(db, tmp)
    try:
        srv.wait_ready()
        yield srv, db
    finally:
        if srv.proc.poll() is None:
            srv.kill()


@pytest.fixture(scope="module")
def api_schema(running: tuple[ServerProcess, Path]) -> Any:
    srv, _ = running
    return schemathesis.openapi.from_url(srv.url + "/openapi.json")


OPERATIONS = [
    ("POST", "/v1/events"),
    ("POST", "/v1/outcomes"),
    ("POST", "/v1/receivers/alertmanager"),
    ("POST", "/v1/receivers/cloudevents"),
    ("GET", "/v1/decisions"),
    ("GET", "/v1/decisions/{seq}"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/silences"),
    ("POST", "/v1/silences"),
    ("POST", "/v1/silences/{silence_id}/end"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/{seq}"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/{seq}/retry"),
    ("POST", "/v1/dead-letters/{seq}/dismiss"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{agent_id}/state"),
    ("GET", "/v1/agents/state"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/stream"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("HEAD", "/healthz"),
    ("HEAD", "/readyz"),
    ("GET", "/metrics"),
]


def test_the_fuzzed_operations_are_every_operation(api_schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) == found


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_route_answers_within_its_schema(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        if case.path == "/v1/stream":
            case.query = {**(case.query or {}), "follow": "false"}
        case.call_and_validate(headers=WRITE, checks=CHECKS)

    fuzz()


def test_the_journal_verifies_after_the_fuzzing(running: tuple[ServerProcess, Path]) -> None:
    srv, db = running
    assert 0 == srv.terminate()
    journal = SqliteJournal(db, create=False)
    try:
        # some generated events were decided: the document describes an event well
        # enough for that. How many varies with what ran before in the process, even
        # derandomized: 4 entries after the simulator's tests, 30 alone, on one machine.
        assert journal.head().seq >= 2, "every generated event was refused"
        assert journal.verify().ok
        assert verify_replay(journal).ok
    finally:
        journal.close()
