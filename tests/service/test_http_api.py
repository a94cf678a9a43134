"""The HTTP API, in process: every route, its errors, auth, idempotency, paging and the feed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from http_support import APPROVER, READ, READER, WRITE, WRITER, client
from journal_support import FaultyJournal

from adaptive_runtime import FleetPolicy, Host, ManualClock, RetryPolicy, Verification
from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import ApprovalPolicy
from adaptive_runtime.service.app import scrub

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9
WRITES = [
    "/v1/events",
    "/v1/outcomes",
    "/v1/receivers/alertmanager",
    "/v1/receivers/cloudevents",
    "/v1/silences",
]
"""The routes that take what a write token sends."""


def host_at(path: Path, **kwargs: Any) -> tuple[Host, ManualClock]:
    clock = ManualClock(start_ns=START_NS)
    return Host(path, durability="normal", clock=clock, **kwargs), clock


def head(path: Path) -> int:
    journal = SqliteJournal(path, create=False)
    try:
        return journal.head().seq
    finally:
        journal.close()


def sse(text: str) -> list[tuple[int, str, str]]:
    """(id, event, data) of each message of an event stream."""
    out = []
    for block in text.split("\r\n\r\n" if "\r\n" in text else "\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "id" in fields:
            out.append((int(fields["id"]), fields["event"], fields["data"]))
    return out


async def test_an_event_is_decided_journaled_and_returned_with_its_agent(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        r = await c.post("/v1/events", json={**OVERLOAD, "agent_id": "web-1"}, headers=WRITE)
        assert 200 == r.status_code
        body = r.json()
        assert ("restart_service", "web-1", 2, 1) == (
            body["action"],
            body["agent"],
            body["seq"],
            body["event_seq"],
        )
        assert "high_resource_pressure" == body["reason"]
    assert 2 == head(tmp_path / "j.db")


async def test_a_retry_with_the_same_id_returns_the_recorded_decision(tmp_path: Path) -> None:
    """The same id and body: the same decision, nothing appended. Another body: 409."""
    host, clock = host_at(tmp_path / "j.db")
    async with client(host) as c:
        first = await c.post("/v1/events", json={**OVERLOAD, "id": "evt-1"}, headers=WRITE)
        clock.advance(5)
        again = await c.post("/v1/events", json={**OVERLOAD, "id": "evt-1"}, headers=WRITE)
        assert first.json() == again.json()
        other = await c.post(
            "/v1/events", json={**OVERLOAD, "id": "evt-1", "severity": 0.1}, headers=WRITE
        )
        assert 409 == other.status_code
        assert "application/problem+json" == other.headers["content-type"]
        problem = other.json()
        assert ("event id reused with another body", 409, "/v1/events") == (
            problem["title"],
            problem["status"],
            problem["instance"],
        )
        assert "evt-1" in problem["detail"]
    assert 2 == head(tmp_path / "j.db")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"severity": 0.5}, "type"),
        ({"type": "x", "cpu": -1}, "cpu"),
        ({"type": "x", "severity": "high"}, "severity"),
        ({"type": "x", "agent_id": 7}, "agent_id"),
        ({"type": "x", "agent_id": ""}, "agent_id"),
        ({"type": "x", "agent_id": "~host"}, "agent_id"),
    ],
)
async def test_an_invalid_event_is_422_naming_the_field_and_journals_nothing(
    tmp_path: Path, event: dict[str, Any], field: str
) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        r = await c.post("/v1/events", json=event, headers=WRITE)
        assert 422 == r.status_code, r.text
        assert field == r.json()["field"]
        assert "invalid event" == r.json()["title"]
    assert 0 == head(tmp_path / "j.db")


async def test_a_batch_answers_each_event_in_order(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        batch = [
            {**OVERLOAD, "agent_id": "a"},
            {"severity": 0.4},
            {"type": "timeout", "latency_ms": 4200, "agent_id": "b"},
        ]
        r = await c.post("/v1/events", json=batch, headers=WRITE)
        assert 200 == r.status_code
        first, bad, third = r.json()
        assert ("a", "restart_service") == (
            first["decision"]["agent"],
            first["decision"]["action"],
        )
        assert (422, "type") == (bad["problem"]["status"], bad["problem"]["field"])
        assert "b" == third["decision"]["agent"]
        too_many = await c.post("/v1/events", json=[{"type": "x"}] * 1001, headers=WRITE)
        assert (422, "body") == (too_many.status_code, too_many.json()["field"])
    assert 4 == head(tmp_path / "j.db")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token-this-server-knows"}, 401),
        ({"Authorization": f"Basic {WRITER}"}, 401),
        (READ, 403),
    ],
    ids=["no-token", "wrong-token", "not-bearer", "read-token"],
)
@pytest.mark.parametrize("route", WRITES)
async def test_writes_without_a_write_token_are_refused_and_journal_nothing(
    tmp_path: Path, headers: dict[str, str], status: int, route: str
) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        r = await c.post(route, json=OVERLOAD, headers=headers)
        assert status == r.status_code
        assert "application/problem+json" == r.headers["content-type"]
        assert WRITER not in r.text
        assert "not-a-token" not in r.text
        if status == 401:
            assert "Bearer" == r.headers["www-authenticate"]
    assert 0 == head(tmp_path / "j.db")


@pytest.mark.parametrize(
    "route",
    [
        "/v1/decisions",
        "/v1/decisions/2",
        "/v1/agents",
        "/v1/agents/default/state",
        "/v1/agents/state?agent=default",
        "/v1/incidents",
        "/v1/stats",
        "/v1/stream?follow=false",
        "/metrics",
    ],
)
async def test_reads_need_a_token_and_a_read_token_is_enough(tmp_path: Path, route: str) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json=OVERLOAD, headers=WRITE)
        assert 401 == (await c.get(route)).status_code
        assert 200 == (await c.get(route, headers=READ)).status_code


async def test_insecure_no_auth_opens_every_route(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host, insecure_no_auth=True) as c:
        assert 200 == (await c.post("/v1/events", json=OVERLOAD)).status_code
        assert 200 == (await c.get("/v1/decisions")).status_code


async def test_decisions_page_by_cursor_with_no_gap_or_overlap(tmp_path: Path) -> None:
    host, clock = host_at(tmp_path / "j.db")
    async with client(host) as c:
        for i in range(7):
            event = {"type": "timeout", "latency_ms": 100 * (i + 1), "agent_id": f"a{i % 2}"}
            await c.post("/v1/events", json=event, headers=WRITE)
            clock.advance(1)
        seen: list[int] = []
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 3} | ({"before": cursor} if cursor else {})
            page = (await c.get("/v1/decisions", params=params, headers=READ)).json()
            seen += [item["seq"] for item in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert [14, 12, 10, 8, 6, 4, 2] == seen
        # a full page that holds the last decisions says so: it gave a `next` that led to an
        # empty page, where the docs promise null on the last one
        pages = [(await c.get("/v1/decisions", params={"limit": n}, headers=READ)).json()
                 for n in (7, 6)]  # fmt: skip
        assert [(7, None), (6, 4)] == [(len(p["items"]), p["next"]) for p in pages]
        only_a1 = (await c.get("/v1/decisions", params={"agent": "a1"}, headers=READ)).json()
        assert [12, 8, 4] == [i["seq"] for i in only_a1["items"]]
        assert {"a1"} == {i["agent"] for i in only_a1["items"]}
        since = (await c.get("/v1/decisions", params={"since": "1764000005"}, headers=READ)).json()
        assert [14, 12] == [i["seq"] for i in since["items"]]
        bad = await c.get("/v1/decisions", params={"since": "yesterday-ish"}, headers=READ)
        assert 400 == bad.status_code
        assert "ISO 8601" in bad.json()["detail"]
        # an age counts back from the host's clock (it counted from the machine's): seven
        # events a second apart, the clock now a second past the last
        recent = (await c.get("/v1/decisions", params={"since": "3s"}, headers=READ)).json()
        assert [14, 12, 10] == [i["seq"] for i in recent["items"]]
        # an empty value is read, not dropped: a bound of "" is refused, a type of "" is one
        empty = await c.get("/v1/decisions", params={"since": ""}, headers=READ)
        assert (400, True) == (empty.status_code, "can't read ''" in empty.json()["detail"])
        assert "since" == empty.json()["field"]  # named, as the framework's own 400s name it
        none = await c.get("/v1/decisions", params={"type": ""}, headers=READ)
        assert (200, []) == (none.status_code, none.json()["items"])
        # since after until (ages count back: 1s is after 3s) answered an empty page, as if
        # nothing had been decided then; history refuses the span
        crossed = await c.get("/v1/decisions", params={"since": "1s", "until": "3s"}, headers=READ)
        assert (400, "since") == (crossed.status_code, crossed.json()["field"])
        assert (
            "since 1s is after until 3s: no decision can fall between them"
            in (crossed.json()["detail"])
        )


async def test_a_request_that_fails_validation_says_what_to_fix(tmp_path: Path) -> None:
    """A 400 from the framework's validation names the part at fault and what was wrong
    with it (it said only "Validation failed"), and journals nothing."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        batch = await c.post("/v1/events", json=[OVERLOAD, 3], headers=WRITE)
        nothing = await c.post("/v1/events", headers=WRITE)
        limit = await c.get("/v1/decisions", params={"limit": "many"}, headers=READ)
        extra = await c.post(
            "/v1/outcomes", json={"seq": 1, "success": True, "by": "x"}, headers=WRITE
        )
    assert [400, 400, 400, 400] == [r.status_code for r in (batch, nothing, limit, extra)]
    assert ("body", "the body: Expected `object`, got `int`") == (
        batch.json()["field"],
        batch.json()["detail"].partition(": ")[2],
    )
    assert nothing.json()["detail"].endswith("no JSON body")
    assert "limit" == limit.json()["field"]
    assert "query parameter 'limit': Expected `int`" in limit.json()["detail"]
    assert "unknown field `by`" in extra.json()["detail"]
    assert 0 == head(tmp_path / "j.db")


async def test_an_agent_or_a_priority_no_decision_can_have_is_refused_not_shown_empty(
    tmp_path: Path,
) -> None:
    """`?agent=` naming an agent with no entries (a typo) and `?priority=urgent` answered an
    empty page or zero counts, as if nothing had been decided; the CLI refuses both."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "a"}, headers=WRITE)
        answers = {
            (path, agent): await c.get(path, params={"agent": agent}, headers=READ)
            for path in ("/v1/decisions", "/v1/stats")
            for agent in ("a", "b", "~host")
        }
        urgent = await c.get("/v1/decisions", params={"priority": "urgent"}, headers=READ)
        high = await c.get("/v1/decisions", params={"priority": "high"}, headers=READ)
    for path in ("/v1/decisions", "/v1/stats"):
        assert 200 == answers[path, "a"].status_code
        for agent in ("b", "~host"):
            assert (404, f"agent {agent!r} has no entries; GET /v1/agents lists the agents") == (
                answers[path, agent].status_code,
                answers[path, agent].json()["detail"],
            )
    assert 1 == answers["/v1/stats", "a"].json()["decisions"]
    assert (400, "priority") == (urgent.status_code, urgent.json()["field"])
    assert ["high"] == [d["decision"]["priority"] for d in high.json()["items"]]


async def test_a_query_parameter_the_route_does_not_read_or_one_given_twice_is_a_400(
    tmp_path: Path,
) -> None:
    """A misspelt filter was dropped: `?agnet=b` listed every agent's decisions, as if
    filtered. Now it is a 400 that names the parameter and the ones the route reads."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "a"}, headers=WRITE)
        misspelt = await c.get("/v1/decisions", params={"agnet": "b"}, headers=READ)
        spelt = await c.get("/v1/decisions", params={"agent": "a", "type": "x"}, headers=READ)
        none_read = await c.get("/v1/approvals", params={"all": "1"}, headers=READ)
        aliased = await c.get("/v1/decisions", params={"event_type": "x"}, headers=READ)
        unauthenticated = await c.get("/v1/decisions", params={"agnet": "b"})
        posted = await c.post("/v1/events", params={"dry": "1"}, json=OVERLOAD, headers=WRITE)
        health = await c.get("/healthz", params={"probe": "1"})
        # of a value given twice, the last alone was kept: agent=b, as if a or b
        twice = await c.get("/v1/decisions", params=[("agent", "a"), ("agent", "b")], headers=READ)
        decided = (await c.get("/v1/decisions", headers=READ)).json()["items"]
    assert (400, "agnet") == (misspelt.status_code, misspelt.json()["field"])
    assert misspelt.json()["detail"].endswith(
        "query parameter 'agnet': this route has no such parameter; it reads agent, type,"
        " action, priority, since, until, limit, before"
    )
    assert (200, []) == (spelt.status_code, spelt.json()["items"])
    assert (400, True) == (
        none_read.status_code,
        none_read.json()["detail"].endswith("it reads no query parameters"),
    )
    # the route reads `type`: its Python name is not a parameter a request can send
    assert (400, "event_type") == (aliased.status_code, aliased.json()["field"])
    assert 401 == unauthenticated.status_code  # who may ask comes before what was asked
    assert (400, "dry") == (posted.status_code, posted.json()["field"])
    assert 200 == health.status_code  # probes outside the API are not held to it
    assert (400, "agent") == (twice.status_code, twice.json()["field"])
    assert twice.json()["detail"].endswith(
        "query parameter 'agent': given 2 times; it takes one value"
    )
    assert ["a"] == [d["agent"] for d in decided]  # the refused POST journaled nothing


async def test_explain_and_outcomes(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        seq = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()["seq"]
        recorded = await c.post("/v1/outcomes", json={"seq": seq, "success": True}, headers=WRITE)
        assert (
            201,
            {"decision_seq": seq, "agent": "default", "success": True, "recorded": True},
        ) == (recorded.status_code, recorded.json())
        ex = (await c.get(f"/v1/decisions/{seq}", headers=READ)).json()
        assert "restart_service" == ex["item"]["decision"]["action"]
        assert [True] == [o["success"] for o in ex["outcomes"]]
        assert any(r["matched"] for r in ex["rules_tried"])
        missing = await c.get("/v1/decisions/99", headers=READ)
        assert (404, "not found") == (missing.status_code, missing.json()["title"])
        unknown = await c.post("/v1/outcomes", json={"seq": 99, "success": True}, headers=WRITE)
        assert 404 == unknown.status_code
        for past in (2**63, 2**64):  # no journal stores such a seq: not found, as any other
            beyond = await c.post(
                "/v1/outcomes", json={"seq": past, "success": True}, headers=WRITE
            )
            assert (404, f"no decision is journaled at seq {past}") == (
                beyond.status_code,
                beyond.json()["detail"],
            )
        extra = await c.post(
            "/v1/outcomes", json={"seq": seq, "success": True, "by": "x"}, headers=WRITE
        )
        assert 400 == extra.status_code
    assert 3 == head(tmp_path / "j.db")


async def test_an_outcome_sent_again_with_its_id_is_recorded_once(tmp_path: Path) -> None:
    """A client that retries POST /v1/outcomes (its first answer lost) must not count the
    outcome twice: with an id, the retry journals nothing and says so; the id reused for
    another result is a 409. Before ids, each retry was one more outcome learned from."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        seq = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()["seq"]
        body = {"seq": seq, "success": False, "id": "ticket-7/outcome"}
        first = await c.post("/v1/outcomes", json=body, headers=WRITE)
        again = await c.post("/v1/outcomes", json=body, headers=WRITE)
        other = await c.post("/v1/outcomes", json={**body, "success": True}, headers=WRITE)
        empty = await c.post("/v1/outcomes", json={**body, "id": ""}, headers=WRITE)
        ex = (await c.get(f"/v1/decisions/{seq}", headers=READ)).json()
    assert [201, 201, 409, 422] == [r.status_code for r in (first, again, other, empty)]
    assert [True, False] == [first.json()["recorded"], again.json()["recorded"]]
    assert "outcome id 'ticket-7/outcome' was already journaled at seq 3" in other.json()["detail"]
    assert "id" == empty.json()["field"]
    assert [(False, "ticket-7/outcome")] == [(o["success"], o["id"]) for o in ex["outcomes"]]
    assert 3 == head(tmp_path / "j.db")


async def test_agents_and_their_state_now_and_at_a_seq(tmp_path: Path) -> None:
    host, clock = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "web"}, headers=WRITE)
        clock.advance(60)
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "web"}, headers=WRITE)
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "db"}, headers=WRITE)
        agents = (await c.get("/v1/agents", headers=READ)).json()
        assert [("db", 1), ("web", 2)] == [(a["agent"], a["decisions"]) for a in agents]
        now = (await c.get("/v1/agents/web/state", headers=READ)).json()
        assert (2, "web") == (now["decisions"], now["agent"])
        then = (await c.get("/v1/agents/web/state", params={"at": "2"}, headers=READ)).json()
        assert 1 == then["decisions"]
        by_time = await c.get("/v1/agents/web/state", params={"at": "1764000030.0"}, headers=READ)
        assert 1 == by_time.json()["decisions"]
        unread = await c.get("/v1/agents/web/state", params={"at": "yesterday"}, headers=READ)
        assert (400, "at") == (unread.status_code, unread.json()["field"])
        assert "query parameter 'at': can't read 'yesterday'" in unread.json()["detail"]
        missing = await c.get("/v1/agents/nobody/state", headers=READ)
        assert 404 == missing.status_code


async def test_an_agent_whose_id_holds_a_slash_has_its_state_by_query(tmp_path: Path) -> None:
    """An Alertmanager label such as payments/api names an agent that no path can hold:
    /v1/agents/state?agent= reads it, as the path form reads any other."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "payments/api"}, headers=WRITE)
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "web"}, headers=WRITE)
        slashed = await c.get("/v1/agents/state", params={"agent": "payments/api"}, headers=READ)
        assert (200, "payments/api", 1) == (
            slashed.status_code,
            slashed.json()["agent"],
            slashed.json()["decisions"],
        )
        by_query = await c.get("/v1/agents/state", params={"agent": "web", "at": "2"}, headers=READ)
        by_path = await c.get("/v1/agents/web/state", params={"at": "2"}, headers=READ)
        assert by_path.json() == by_query.json()
        missing = await c.get("/v1/agents/state", params={"agent": "nobody"}, headers=READ)
        assert 404 == missing.status_code


async def test_fleet_incidents_are_listed_and_open(tmp_path: Path) -> None:
    policy = FleetPolicy(correlate_agents=3, correlate_window=60.0)
    host, _ = host_at(tmp_path / "j.db", fleet=policy)
    async with client(host) as c:
        batch = [{**OVERLOAD, "agent_id": f"svc-{i}"} for i in range(3)]
        for event in batch:
            await c.post("/v1/events", json=event, headers=WRITE)
        [incident] = (await c.get("/v1/incidents", headers=READ)).json()
        assert ("resource_pressure", ["svc-0", "svc-1", "svc-2"], True) == (
            incident["context"],
            incident["agents"],
            incident["open"],
        )


async def test_the_stream_resumes_after_last_event_id_missing_nothing(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        for i in range(4):
            await c.post("/v1/events", json={**OVERLOAD, "agent_id": f"a{i}"}, headers=WRITE)
        everything = sse((await c.get("/v1/stream?after=0&follow=false", headers=READ)).text)
        assert [2, 4, 6, 8] == [seq for seq, _, _ in everything]
        assert {"decision"} == {name for _, name, _ in everything}
        resumed = await c.get("/v1/stream?follow=false", headers=READ | {"Last-Event-ID": "4"})
        assert [6, 8] == [seq for seq, _, _ in sse(resumed.text)]
        # an EventSource made with ?after=2 reconnects to that URL, with the id of the last
        # message it got: ?after= won, and it got 4 and 6 again
        for query, last, want in (("2", "6", [8]), ("6", "2", [8]), ("0", "0", [2, 4, 6, 8])):
            both = await c.get(
                f"/v1/stream?after={query}&follow=false", headers=READ | {"Last-Event-ID": last}
            )
            assert want == [seq for seq, _, _ in sse(both.text)]
        outcome = await c.post("/v1/outcomes", json={"seq": 8, "success": False}, headers=WRITE)
        assert 201 == outcome.status_code
        tail = sse((await c.get("/v1/stream?after=8&follow=false", headers=READ)).text)
        assert [(9, "outcome")] == [(seq, name) for seq, name, _ in tail]
        bad = await c.get("/v1/stream", headers=READ | {"Last-Event-ID": "x1"})
        assert 422 == bad.status_code
        # past 2**63 - 1 (the stream failed once its headers were sent), and a digit that
        # int() refuses (a 400 quoting int()'s own message)
        for last in (b"99999999999999999999999", b"\xb2"):  # b"\xb2" is '\u00b2' in latin-1
            past = await c.get("/v1/stream", headers=READ | {"Last-Event-ID": last})
            assert (422, "Last-Event-ID") == (past.status_code, past.json()["field"])
        # past the head (an id kept from before a restore): refused, not followed in silence
        for query, headers in (
            ("?after=50", READ),
            ("", READ | {"Last-Event-ID": "50"}),
            ("?after=50", READ | {"Last-Event-ID": "3"}),
            ("?after=3", READ | {"Last-Event-ID": "50"}),
        ):
            ahead = await c.get(f"/v1/stream{query}", headers=headers)
            field = "after" if query == "?after=50" else "Last-Event-ID"
            assert (422, field) == (ahead.status_code, ahead.json()["field"])
            assert f"{field} 50 is past the journal's head (seq 9)" in ahead.json()["detail"]


async def test_the_stream_carries_each_step_where_an_action_waits(tmp_path: Path) -> None:
    """An approval request and its answer, the check of an action's effect and the
    escalation it led to were left out of the stream's action messages: a page following
    it could not tell that an action waited for a person."""
    host, _ = host_at(tmp_path / "j.db", approvals=ApprovalPolicy(actions=("restart_service",)))
    check = Verification(within=60.0, probe=lambda call: False)  # the symptom stays

    @host.action("restart_service", verify=check, escalate=["page_human"])
    async def restart(call: Any) -> None:
        pass

    @host.action("page_human")
    async def page(call: Any) -> None:
        pass

    approver = {"Authorization": f"Bearer {APPROVER}"}
    async with client(host) as c:
        seq = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()["seq"]
        waiting = sse((await c.get(f"/v1/stream?after={seq}&follow=false", headers=READ)).text)
        [(_, name, data)] = waiting
        asked = json.loads(data)
        assert ("action", "awaiting_approval", "restart_service", seq) == (
            name,
            asked["status"],
            asked["action"],
            asked["decision_seq"],
        )
        assert "restart_service needs approval" == asked["detail"]
        answer = {"approve": True, "by": "alice", "comment": "ok"}
        assert (
            200 == (await c.post(f"/v1/approvals/{seq}", json=answer, headers=approver)).status_code
        )
        await host.wait_for_actions()
        text = (await c.get(f"/v1/stream?after={seq}&follow=false", headers=READ)).text
    steps = [json.loads(data) for _, name, data in sse(text) if name == "action"]
    assert {seq} == {m["decision_seq"] for m in steps if "decision_seq" in m}
    said = [(m["status"], m["action"]) for m in steps]
    approved = said.index(("approved", "restart_service"))
    assert "alice" == steps[approved]["by"]
    ran = said.index(("succeeded", "restart_service"))
    checked = said.index(("verifying", "restart_service"))
    failed = said.index(("verification_failed", "restart_service"))
    escalated = said.index(("escalated", "page_human"))
    assert approved < ran < checked < failed < escalated < said.index(("succeeded", "page_human"))
    assert 1 == steps[escalated]["step"]


async def test_the_stream_carries_the_operators_requests(tmp_path: Path) -> None:
    """A silence set or ended, an approval's answer and a dead letter's retry or dismissal
    (the `~host` stream's records) were left out of the stream: a page following it could
    not tell that a maintenance window began."""
    host, _ = host_at(tmp_path / "j.db", approvals=ApprovalPolicy(actions=("restart_service",)))

    @host.action("restart_service")
    async def restart(call: Any) -> None:
        pass

    @host.action("flag_for_review", retry=RetryPolicy(max_attempts=1))
    async def review(call: Any) -> None:
        raise RuntimeError("the review queue is down")

    approver = {"Authorization": f"Bearer {APPROVER}"}
    anomaly = {"type": "anomaly_detected", "severity": 0.6}
    async with client(host) as c:
        letters = [
            (await c.post("/v1/events", json=anomaly | {"agent_id": a}, headers=WRITE)).json()
            for a in ("billing", "ledger")
        ]
        await host.wait_for_actions()
        dismissed, retried = (letter["seq"] for letter in letters)
        await c.post(f"/v1/dead-letters/{dismissed}/dismiss", json={"by": "bob"}, headers=WRITE)
        await c.post(f"/v1/dead-letters/{retried}/retry", json={"by": "bob"}, headers=WRITE)
        await host.wait_for_actions()
        seq = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()["seq"]
        body = {"agent": "checkout", "ends": "1764003600", "comment": "deploy", "by": "ops"}
        silence = (await c.post("/v1/silences", json=body, headers=WRITE)).json()
        await c.post(f"/v1/silences/{silence['id']}/end", json={"by": "ops"}, headers=WRITE)
        answer = {"approve": True, "by": "alice", "comment": "ok"}
        await c.post(f"/v1/approvals/{seq}", json=answer, headers=approver)
        await host.wait_for_actions()
        text = (await c.get("/v1/stream?after=0&follow=false", headers=READ)).text
    controls = [json.loads(data) for _, name, data in sse(text) if name == "control"]
    assert [
        ("dead_letter_dismissed", "billing", "bob"),
        ("dead_letter_retry", "ledger", "bob"),
        ("silence_set", "checkout", "ops"),
        ("silence_ended", None, "ops"),
        ("approval_answered", "default", "alice"),
    ] == [(m["control"], m["agent"], m["by"]) for m in controls]
    assert [dismissed, retried] == [m["decision_seq"] for m in controls[:2]]
    assert (silence["id"], "deploy", 1764003600 * 10**9) == (
        controls[2]["id"],
        controls[2]["comment"],
        controls[2]["ends_ns"],
    )
    assert silence["id"] == controls[3]["id"]
    assert (seq, True) == (controls[4]["decision_seq"], controls[4]["approve"])


async def test_metrics_count_what_was_journaled(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        for _ in range(3):
            await c.post("/v1/events", json=OVERLOAD, headers=WRITE)
        await c.post("/v1/events", json={"type": "timeout", "latency_ms": 100}, headers=WRITE)
        text = (await c.get("/metrics", headers=READ)).text
    lines = set(text.splitlines())
    assert 'adaptive_runtime_decisions_total{action="restart_service",priority="high"} 3.0' in lines
    assert "adaptive_runtime_events_total 4.0" in lines
    assert 'adaptive_runtime_process_seconds_count{route="events"} 4.0' in lines
    assert "adaptive_runtime_journal_entries 8.0" in lines
    assert any(line.startswith("adaptive_runtime_journal_wal_bytes ") for line in lines)
    assert any(line.startswith("adaptive_runtime_journal_commit_seconds_bucket{") for line in lines)


async def test_an_unknown_route_or_method_says_which_routes_and_methods_there_are(
    tmp_path: Path,
) -> None:
    """A mistyped path answered "Not Found" and a wrong method "Method Not Allowed": the
    title's words again, with nothing to go on."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        missing = await c.get("/v1/decision", headers=READ)
        wrong = await c.delete("/v1/events", headers=WRITE)
    assert (404, "no route GET /v1/decision; GET /openapi.json lists the routes") == (
        missing.status_code,
        missing.json()["detail"],
    )
    assert (405, "/v1/events takes POST, OPTIONS, not DELETE") == (
        wrong.status_code,
        wrong.json()["detail"],
    )
    assert 0 == head(tmp_path / "j.db")


async def test_a_body_past_the_limit_is_413_and_journals_nothing(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host, max_body_bytes=4096) as c:
        big = {"type": "x", "note": "n" * 5000}
        r = await c.post("/v1/events", json=big, headers=WRITE)
        assert 413 == r.status_code
        assert "application/problem+json" == r.headers["content-type"]
        # it said "Request Entity Too Large": no limit, nor what to do
        assert (
            "the request body is past this server's limit of 4,096 bytes (serve --max-body):"
            " send a smaller event, or a batch in parts"
        ) == r.json()["detail"]
    assert 0 == head(tmp_path / "j.db")


@pytest.mark.parametrize(
    "route",
    [
        *WRITES,
        "/v1/silences/s-1/end",
        "/v1/approvals/2",
        "/v1/dead-letters/2/retry",
        "/v1/dead-letters/2/dismiss",
    ],
)
async def test_a_body_nested_too_deeply_to_read_is_400_and_journals_nothing(
    tmp_path: Path, route: str
) -> None:
    host, _ = host_at(tmp_path / "j.db")
    deep = '{"type": "timeout", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    async with client(host) as c:
        token = {"Authorization": f"Bearer {APPROVER}"} if "approvals" in route else WRITE
        r = await c.post(route, content=deep, headers=token | {"content-type": "application/json"})
        assert (400, "bad request") == (r.status_code, r.json()["title"]), r.text
        assert "nested too deeply" in r.json()["detail"]
    assert 0 == head(tmp_path / "j.db")


@pytest.mark.parametrize(
    "body",
    ['{"type": "timeout"', '{"type": "timeout", "id": "x\\ud800"}'],
    ids=["cut-short", "unpaired-surrogate"],
)
@pytest.mark.parametrize("route", ["/v1/events", "/v1/outcomes"])
async def test_a_body_cut_short_or_with_an_unpaired_surrogate_is_400_saying_so(
    tmp_path: Path, route: str, body: str
) -> None:
    """msgspec says "Input data was truncated" of both, which sent a client with an
    unpaired surrogate looking for a proxy that cut its body: the 400 names both causes."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        r = await c.post(route, content=body, headers=WRITE | {"content-type": "application/json"})
        assert (400, "bad request") == (r.status_code, r.json()["title"]), r.text
        detail = r.json()["detail"]
        assert "ends before its last value does" in detail
        assert "without its pair" in detail
    assert 0 == head(tmp_path / "j.db")


@pytest.mark.parametrize("route", ["/v1/events", "/v1/outcomes"])
async def test_a_body_that_is_not_utf8_is_400_in_the_service_s_words(
    tmp_path: Path, route: str
) -> None:
    """It was told in Python's: "'utf-8' codec can't decode byte 0xff in position 0:
    invalid start byte", a position within the string, not the body."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        body = b'{"type": "\xfftimeout"}'
        r = await c.post(route, content=body, headers=WRITE | {"content-type": "application/json"})
        assert (400, "bad request") == (r.status_code, r.json()["title"]), r.text
        assert (
            "the JSON body is not UTF-8 text: it holds the byte(s) ff (hex), which UTF-8 does"
            " not allow there; send JSON encoded as UTF-8"
        ) == r.json()["detail"]
    assert 0 == head(tmp_path / "j.db")


async def test_health_readiness_and_the_openapi_document(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        assert {"status": "ok"} == (await c.get("/healthz")).json()
        assert {"status": "ready", "seq": 0} == (await c.get("/readyz")).json()
        for probe in ("/healthz", "/readyz"):  # a HEAD probe was 405
            head_only = await c.head(probe)
            assert (200, b"") == (head_only.status_code, head_only.content)
        doc = (await c.get("/openapi.json")).json()
        assert "3.1.0" == doc["openapi"]
        assert {
            "/v1/events",
            "/v1/decisions",
            "/v1/decisions/{seq}",
            "/v1/outcomes",
            "/v1/agents",
            "/v1/agents/{agent_id}/state",
            "/v1/agents/state",
            "/v1/incidents",
            "/v1/stream",
            "/v1/stats",
            "/v1/silences",
            "/v1/silences/{silence_id}/end",
            "/v1/approvals",
            "/v1/approvals/{seq}",
            "/v1/dead-letters",
            "/v1/dead-letters/{seq}/retry",
            "/v1/dead-letters/{seq}/dismiss",
            "/v1/receivers/alertmanager",
            "/v1/receivers/cloudevents",
            "/healthz",
            "/readyz",
            "/metrics",
        } == set(doc["paths"])
        page = await c.get("/")
        assert "text/html" in page.headers["content-type"]
        assert "Live decisions" in page.text


async def test_every_response_forbids_sniffing_and_the_page_allows_only_its_own_code(
    tmp_path: Path,
) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        responses = {
            "page": await c.get("/"),
            "json": await c.get("/v1/stats", headers=READ),
            "problem": await c.get("/v1/stats"),
            "stream": await c.get("/v1/stream?follow=false", headers=READ),
        }
        page = responses["page"]
    for name, r in responses.items():
        assert ("nosniff", "no-referrer") == (
            r.headers.get("x-content-type-options"),
            r.headers.get("referrer-policy"),
        ), name
    policy = dict(
        part.split(" ", 1) for part in page.headers["content-security-policy"].split("; ")
    )
    # the page's one script and one style, by their hashes, and nothing else
    script = page.text.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" == policy["script-src"]
    assert policy["style-src"].startswith("'sha256-")
    assert ("'none'", "'none'", "'self'") == (
        policy["default-src"],
        policy["frame-ancestors"],
        policy["connect-src"],
    )
    assert "DENY" == page.headers["x-frame-options"]


def test_scrub_takes_out_url_passwords_and_tokens() -> None:
    text = f"can't reach postgresql://adaptive:s3cret@db:5432/x with {READER}"
    assert "can't reach postgresql://adaptive:***@db:5432/x with ***" == scrub(text, (READER,))
    # libpq takes the password as a parameter too (and a client key's as sslpassword)
    text = "postgresql:///x?user=a&password=s3cret&sslpassword=k3y&host=/run"
    assert "postgresql:///x?user=a&password=***&sslpassword=***&host=/run" == scrub(text)


async def test_a_journal_that_cant_be_used_is_503(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await host.stop()
        r = await c.post("/v1/events", json=OVERLOAD, headers=WRITE)
        assert (503, "not started") == (r.status_code, r.json()["title"])
        assert 503 == (await c.get("/readyz")).status_code
        assert 200 == (await c.get("/healthz")).status_code


async def test_a_journal_file_deleted_under_the_server_is_not_ready(tmp_path: Path) -> None:
    """With the journal file deleted (`rm j.db*`), events were acknowledged into the
    unlinked file and /readyz said ready. Now each event is refused (503, journal unusable,
    saying what happened) and /readyz is 503, so a load balancer stops sending."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        assert 200 == (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).status_code
        for name in tmp_path.iterdir():
            if name.is_file():
                name.unlink()
        refused = await c.post("/v1/events", json=OVERLOAD, headers=WRITE)
        assert (503, "journal unusable") == (refused.status_code, refused.json()["title"])
        assert "was deleted" in refused.json()["detail"]
        ready = await c.get("/readyz")
        assert 503 == ready.status_code
        assert "was deleted" in ready.json()["detail"]


async def test_the_read_routes_answer_while_a_commit_holds_the_journals_thread(
    tmp_path: Path,
) -> None:
    """A read route never queues behind the commits: they run on a reader of their own."""
    host = Host(tmp_path / "j.db", durability="full", clock=ManualClock(start_ns=START_NS))
    async with client(host) as c:
        first = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()
        faulty = FaultyJournal.installed_in(host)
        release = faulty.hold_next()
        held = asyncio.ensure_future(c.post("/v1/events", json=OVERLOAD, headers=WRITE))
        try:
            await asyncio.to_thread(faulty.holding.wait)
            reads = [
                "/v1/decisions",
                f"/v1/decisions/{first['seq']}",
                "/v1/stats",
                "/v1/agents",
                "/v1/agents/default/state",
                "/v1/incidents",
                "/v1/stream?after=0&follow=false",
                "/metrics",
                "/v1/dead-letters",
            ]
            answers = [await asyncio.wait_for(c.get(route, headers=READ), 10.0) for route in reads]
            assert not held.done()
        finally:
            release.set()
        assert 200 == (await held).status_code
    assert [200] * len(reads) == [r.status_code for r in answers]
    assert [first["seq"]] == [d["seq"] for d in answers[0].json()["items"]]
    assert [first["seq"]] == [seq for seq, _, _ in sse(answers[6].text)]


async def test_a_stream_that_cant_go_on_ends_with_a_problem_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its status line is sent, so the stream ends with a `problem` event saying why,
    after the messages it could send, instead of a broken transfer."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        await c.post("/v1/events", json=OVERLOAD, headers=WRITE)
        read = host.read
        calls = 0

        async def failing_after_one(fn: Any, *args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise JournalUnavailableError("injected: the server may be down or restarting")
            return await read(fn, *args)

        monkeypatch.setattr(host, "read", failing_after_one)
        monkeypatch.setattr("adaptive_runtime.service.feed.PAGE", 2)  # a full page: one more read
        r = await c.get("/v1/stream?after=0&follow=false", headers=READ)
    assert 200 == r.status_code
    messages = sse(r.text)
    assert [(2, "decision")] == [(seq, name) for seq, name, _ in messages]
    problem = next(
        json.loads(line[len("data: ") :])
        for block in r.text.split("\r\n\r\n")
        if "event: problem" in block
        for line in block.splitlines()
        if line.startswith("data: ")
    )
    assert (503, "journal server unreachable") == (problem["status"], problem["title"])
    assert "restarting" in problem["detail"]


async def test_cloudevents_become_events_with_source_and_id(tmp_path: Path) -> None:
    host, _ = host_at(tmp_path / "j.db")
    ce = {
        "specversion": "1.0",
        "id": "42",
        "source": "/monitoring/prod",
        "type": "com.example.ops.service_overload",
        "subject": "checkout",
        "data": {"severity": 0.82, "cpu": 94, "memory": 88},
    }
    async with client(host) as c:
        r = await c.post("/v1/receivers/cloudevents", json=ce, headers=WRITE)
        assert 200 == r.status_code
        d = r.json()
        assert ("checkout", "restart_service", "ce:/monitoring/prod:42") == (
            d["agent"],
            d["action"],
            d["event_id"],
        )
        again = await c.post("/v1/receivers/cloudevents", json=ce, headers=WRITE)
        assert d == again.json()
        bad = await c.post(
            "/v1/receivers/cloudevents", json={**ce, "specversion": "0.3"}, headers=WRITE
        )
        assert (422, "specversion") == (bad.status_code, bad.json()["field"])
    assert 2 == head(tmp_path / "j.db")


async def test_a_binary_mode_cloudevent_is_the_same_event(tmp_path: Path) -> None:
    """Binary mode (HTTP binding 1.0, 3.1), what Knative and Eventarc send by default: the
    attributes in percent-encoded `ce-*` headers, the event's fields as the JSON body. The
    same CloudEvent sent structured after it is the same event, decided once."""
    host, _ = host_at(tmp_path / "j.db")
    fields = {"severity": 0.82, "cpu": 94, "memory": 88}
    binary = {
        "ce-specversion": "1.0",
        "ce-id": "42",
        "ce-source": "%2Fmonitoring%2Fprod",  # percent-encoded, as the binding has senders do
        "ce-type": "com.example.ops.service_overload",
        "ce-subject": '"checkout"',  # a quoted-string, which receivers must still read
        "ce-time": "2026-11-27T01:00:00Z",
    }
    structured = {
        "specversion": "1.0",
        "id": "42",
        "source": "/monitoring/prod",
        "type": "com.example.ops.service_overload",
        "subject": "checkout",
        "time": "2026-11-27T01:00:00Z",
        "data": fields,
    }
    async with client(host) as c:
        r = await c.post("/v1/receivers/cloudevents", json=fields, headers=WRITE | binary)
        assert 200 == r.status_code, r.text
        d = r.json()
        assert ("checkout", "restart_service", "ce:/monitoring/prod:42") == (
            d["agent"],
            d["action"],
            d["event_id"],
        )
        same = await c.post(
            "/v1/receivers/cloudevents",
            content=json.dumps(structured),
            headers=WRITE | {"content-type": "application/cloudevents+json; charset=utf-8"},
        )
        assert d == same.json()
        text = await c.post(
            "/v1/receivers/cloudevents",
            content=json.dumps(fields),
            headers=WRITE | binary | {"content-type": "text/plain"},
        )
        assert (422, "datacontenttype") == (text.status_code, text.json()["field"])
        overlong = binary | {"ce-id": "%C0%A0"}  # the binding's own example of bad UTF-8
        bad = await c.post("/v1/receivers/cloudevents", json=fields, headers=WRITE | overlong)
        assert (422, "id") == (bad.status_code, bad.json()["field"])
    assert 2 == head(tmp_path / "j.db")


async def test_a_batch_of_cloudevents_is_decided_one_result_each(tmp_path: Path) -> None:
    """Batched mode (HTTP binding 1.0, 3.3): a list of structured CloudEvents as
    application/cloudevents-batch+json. It was a 400 "Expected `object`, got `array`"."""
    host, _ = host_at(tmp_path / "j.db")

    def ce(i: str, **more: Any) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": i,
            "source": "/monitoring/prod",
            "type": "com.example.ops.service_overload",
            "subject": "checkout",
            "data": {"severity": 0.82, "cpu": 94, "memory": 88},
        } | more

    batch = [ce("1"), ce("2", specversion="0.3"), ce("3", subject="payments"), ce("1")]
    kind = {"content-type": "application/cloudevents-batch+json"}
    async with client(host) as c:
        r = await c.post(
            "/v1/receivers/cloudevents", content=json.dumps(batch), headers=WRITE | kind
        )
        assert 200 == r.status_code, r.text
        first, refused, other, repeat = r.json()
        assert ("checkout", "ce:/monitoring/prod:1") == (
            first["decision"]["agent"],
            first["decision"]["event_id"],
        )
        assert (422, "specversion") == (refused["problem"]["status"], refused["problem"]["field"])
        assert "payments" == other["decision"]["agent"]
        assert first == repeat  # the same CloudEvent twice: decided once
        one = await c.post("/v1/receivers/cloudevents", json=ce("1"), headers=WRITE)
        assert first["decision"] == one.json()
        unmarked = await c.post("/v1/receivers/cloudevents", json=[ce("4")], headers=WRITE)
        assert (422, "body") == (unmarked.status_code, unmarked.json()["field"])
        assert "application/cloudevents-batch+json" in unmarked.json()["detail"]
        lone = await c.post(
            "/v1/receivers/cloudevents", content=json.dumps(ce("5")), headers=WRITE | kind
        )
        assert (422, "body") == (lone.status_code, lone.json()["field"])
    assert 4 == head(tmp_path / "j.db")


def alert(
    status: str,
    *,
    fingerprint: str = "f00d",
    starts_at: str = "2026-11-27T01:00:00.000Z",
    **labels: str,
) -> dict[str, Any]:
    """An Alertmanager alert about service api; another `starts_at` is another firing."""
    return {
        "status": status,
        "labels": {"alertname": "ServiceOverload", "severity": "critical", "service": "api"}
        | labels,
        "annotations": {"cpu": "94", "memory": "88", "summary": "api is overloaded"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


async def deploy_window(host: Host) -> None:
    """A `--fire-after` silence over agent api for the test's first ten minutes."""
    from adaptive_runtime.records import SilenceMatcher

    await host.controls.add_silence(
        SilenceMatcher(agent="api"),
        ends_ns=START_NS + 600 * 10**9,
        comment="deploy",
        by="ops",
        fire_after=True,
    )


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "status": alerts[0]["status"],
        "receiver": "adaptive-runtime",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.mark.parametrize("held", ["dry run", "silence", "approval"])
async def test_a_resolution_credits_no_action_that_never_ran(tmp_path: Path, held: str) -> None:
    """A resolved alert recorded a success for the decision's action even when the
    journal said it never ran (skipped by a dry run or a silence, or waiting for an
    approval): the alert cleared on its own, and the learner was taught that the
    action worked. It now records no outcome for such a decision, and says so."""
    from adaptive_runtime.records import ApprovalPolicy, SilenceMatcher
    from adaptive_runtime.runtime.actions import ActionCall

    kwargs: dict[str, Any] = {}
    if held == "dry run":
        kwargs["dry_run"] = True
    if held == "approval":
        kwargs["approvals"] = ApprovalPolicy(risks=("critical", "high", "medium", "low"))
    host, _ = host_at(tmp_path / "j.db", **kwargs)
    ran: list[int] = []

    @host.action("restart_service")
    @host.action("scale_up_immediate")
    async def act(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    async with client(host) as c:
        if held == "silence":
            await host.controls.add_silence(
                SilenceMatcher(agent="api"), ends_ns=START_NS + 3600 * 10**9, comment="x", by="ops"
            )
        hook = "/v1/receivers/alertmanager"
        fired = (await c.post(hook, json=webhook(alert("firing")), headers=WRITE)).json()
        await host.wait_for_actions()
        resolved = (await c.post(hook, json=webhook(alert("resolved")), headers=WRITE)).json()
        [result] = resolved["results"]
        assert ("not_acted", fired["results"][0]["seq"]) == (result["status"], result["seq"])
        ex = (await c.get(f"/v1/decisions/{result['seq']}", headers=READ)).json()
        assert [] == ex["outcomes"]
        assert [] == ran
        if held == "approval":  # a yes now would act on trouble that is over: denied
            assert (
                "denied by alertmanager: its alert resolved before anyone answered"
                == (ex["attempts"][-1]["detail"])
            )
            late = await c.post(
                f"/v1/approvals/{result['seq']}",
                json={"approve": True, "by": "alice"},
                headers={"Authorization": f"Bearer {APPROVER}"},
            )
            assert 409 == late.status_code
            assert "denied by alertmanager" in late.json()["detail"]
        # its next firing is a new episode, decided afresh, and the same holds for it
        refired = alert("firing", starts_at="2026-11-27T02:00:00.000Z")
        again = (await c.post(hook, json=webhook(refired), headers=WRITE)).json()
        assert "decided" == again["results"][0]["status"]


async def test_alerts_for_an_agent_another_host_owns_are_sent_again_not_lost(
    tmp_path: Path,
) -> None:
    """An alert for an agent another host owns (several servers behind one address) was
    answered `refused` inside a 200: Alertmanager does not send a 2xx again, so the
    firing was never decided, nor its resolution recorded, anywhere. The payload is now
    a 503 naming the owner, so Alertmanager sends it again; the payload's other alerts
    are taken at once, and what is journaled already is answered from the journal by
    any host, so a payload spanning two owners' agents is answered 200 by each."""
    from adaptive_runtime.projections.audit import decision_for_event

    owner, clock = host_at(tmp_path / "j.db")
    other = Host(tmp_path / "j.db", durability="normal", clock=clock)
    hook = "/v1/receivers/alertmanager"
    api, web = alert("firing"), alert("firing", fingerprint="beef", service="web")
    async with client(owner) as at_owner, client(other) as elsewhere:
        earlier = alert("firing", fingerprint="cafe")  # api's host is the first to take it
        assert 200 == (await at_owner.post(hook, json=webhook(earlier), headers=WRITE)).status_code
        sent = await elsewhere.post(hook, json=webhook(api, web), headers=WRITE)
        assert (503, "5") == (sent.status_code, sent.headers["retry-after"])
        assert "agent 'api'" in sent.json()["detail"]
        assert None is await other.read(decision_for_event, "am:f00d:2026-11-27T01:00:00.000Z")
        decided = await other.read(decision_for_event, "am:beef:2026-11-27T01:00:00.000Z")
        assert decided is not None
        assert "web" == decided.stream  # taken where it came
        answers = []
        for at in (at_owner, elsewhere):  # sent again: to the owner, then anywhere
            again = await at.post(hook, json=webhook(api, web), headers=WRITE)
            assert 200 == again.status_code
            answers.append([(r["status"], r["seq"]) for r in again.json()["results"]])
        first = again.json()["results"][0]
        assert [
            [("decided", first["seq"]), ("already_decided", decided.seq)],
            [("already_decided", first["seq"]), ("decided", decided.seq)],
        ] == answers  # each owner's re-send answered with its recorded decision
        resolved = alert("resolved")
        assert (
            503 == (await elsewhere.post(hook, json=webhook(resolved), headers=WRITE)).status_code
        )
        for at, status in ((at_owner, "resolved"), (elsewhere, "already_resolved")):
            answer = await at.post(hook, json=webhook(resolved), headers=WRITE)
            assert (200, status, first["seq"]) == (
                answer.status_code,
                answer.json()["results"][0]["status"],
                answer.json()["results"][0]["seq"],
            )
    journal = SqliteJournal(tmp_path / "j.db", create=False)
    try:
        kinds = [e.kind for e in journal.read()]
        assert (3, 1) == (kinds.count("DecisionMade"), kinds.count("OutcomeRecorded"))
        assert verify_replay(journal).ok
    finally:
        journal.close()


@pytest.mark.parametrize("left", ["fire_after", "episode"])
async def test_a_resolution_sent_to_a_host_that_does_not_own_the_agent_waits_for_the_owner(
    tmp_path: Path, left: str
) -> None:
    """What a resolution asks of the owner that a non-owner journaled nothing for: to drop
    an action a `--fire-after` silence still owes (the silence's end ran the restart all
    the same), or to close the alert's episode (its next firing was taken for a repeat).
    Such a payload is a 503 until the owner has done it; then any host answers it."""
    from adaptive_runtime.runtime.actions import ActionCall

    policy = FleetPolicy(dedup_window=600) if left == "episode" else None
    owner, clock = host_at(tmp_path / "j.db", fleet=policy)
    other = Host(tmp_path / "j.db", durability="normal", clock=clock, fleet=policy)
    ran: list[int] = []

    @owner.action("scale_up_immediate")
    async def act(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    hook = "/v1/receivers/alertmanager"
    async with client(owner) as at_owner, client(other) as elsewhere:
        if left == "fire_after":
            await deploy_window(owner)
        fired = (await at_owner.post(hook, json=webhook(alert("firing")), headers=WRITE)).json()
        await owner.wait_for_actions()
        resolved = webhook(alert("resolved"))
        assert 503 == (await elsewhere.post(hook, json=resolved, headers=WRITE)).status_code
        first = await at_owner.post(hook, json=resolved, headers=WRITE)
        again = await elsewhere.post(hook, json=resolved, headers=WRITE)
        # (the restart's own success recorded the outcome: only the episode was left)
        want = "not_acted" if left == "fire_after" else "already_resolved"
        assert (want, fired["results"][0]["seq"]) == (
            first.json()["results"][0]["status"],
            first.json()["results"][0]["seq"],
        )
        assert (200, want) == (again.status_code, again.json()["results"][0]["status"])
        if left == "fire_after":
            clock.advance(601)
            await owner.controls.refresh()
            await owner.wait_for_actions()
            assert [] == ran  # the action the silence skipped is not run after it
        else:  # the next firing, inside the window, is decided afresh, not as a repeat
            refired = alert("firing", starts_at="2026-11-27T01:05:00.000Z")
            answer = (await at_owner.post(hook, json=webhook(refired), headers=WRITE)).json()
            assert "scale_up_immediate" == answer["results"][0]["action"]


async def test_an_alert_resolved_inside_a_fire_after_silence_is_not_acted_on_after_it(
    tmp_path: Path,
) -> None:
    """The silence's end used to run what it skipped for an alert that had resolved
    meanwhile: a restart of a service that was healthy again."""
    from adaptive_runtime.projections.controls import dead_letters
    from adaptive_runtime.runtime.actions import ActionCall

    host, clock = host_at(tmp_path / "j.db")
    ran: list[str] = []

    @host.action("restart_service")
    @host.action("scale_up_immediate")
    async def act(call: ActionCall) -> None:
        ran.append(call.event["fingerprint"])

    async with client(host) as c:
        await deploy_window(host)
        hook = "/v1/receivers/alertmanager"
        other = alert("firing", fingerprint="beef", instance="node-2")
        fired = await c.post(hook, json=webhook(alert("firing"), other), headers=WRITE)
        first, second = fired.json()["results"]
        resolved = (await c.post(hook, json=webhook(alert("resolved")), headers=WRITE)).json()
        assert ("not_acted", first["seq"]) == (
            resolved["results"][0]["status"],
            resolved["results"][0]["seq"],
        )
        clock.advance(601)
        await host.controls.refresh()
        await host.wait_for_actions()
        assert ["beef"] == ran  # the alert still firing is acted on; the resolved one not
        ex = (await c.get(f"/v1/decisions/{first['seq']}", headers=READ)).json()
        assert ex["attempts"][-1]["detail"].endswith(
            "not run: its alert resolved while a silence held it"
        )
        assert [] == await host.read(dead_letters)  # nothing is left for a person
    assert second["status"] == "decided"


async def test_alertmanager_firing_resends_and_resolved(tmp_path: Path) -> None:
    """A firing alert is decided once however often it is re-sent; its resolution is one
    successful outcome of that decision, and triggers nothing."""
    host, _ = host_at(tmp_path / "j.db")
    async with client(host) as c:
        hook = "/v1/receivers/alertmanager"
        first = (await c.post(hook, json=webhook(alert("firing")), headers=WRITE)).json()
        [result] = first["results"]
        assert ("decided", "am:f00d:2026-11-27T01:00:00.000Z") == (result["status"], result["id"])
        again = (await c.post(hook, json=webhook(alert("firing")), headers=WRITE)).json()
        assert result == again["results"][0]
        moved = alert("firing")
        moved["annotations"]["cpu"] = "99"  # a re-send whose templated annotation changed
        third = (await c.post(hook, json=webhook(moved), headers=WRITE)).json()
        assert ("already_decided", result["seq"]) == (
            third["results"][0]["status"],
            third["results"][0]["seq"],
        )
        resolved = (await c.post(hook, json=webhook(alert("resolved")), headers=WRITE)).json()
        assert ("resolved", result["seq"]) == (
            resolved["results"][0]["status"],
            resolved["results"][0]["seq"],
        )
        twice = (await c.post(hook, json=webhook(alert("resolved")), headers=WRITE)).json()
        assert "already_resolved" == twice["results"][0]["status"]
        stray = webhook(alert("resolved", fingerprint="beef"))
        assert (
            "unknown_alert"
            == (await c.post(hook, json=stray, headers=WRITE)).json()["results"][0]["status"]
        )
        ex = (await c.get(f"/v1/decisions/{result['seq']}", headers=READ)).json()
        assert ("api", "service_overload") == (ex["item"]["stream"], ex["item"]["event"]["type"])
        assert [True] == [o["success"] for o in ex["outcomes"]]
        broken = webhook(alert("firing"))
        del broken["alerts"][0]["fingerprint"]
        bad = await c.post(hook, json=broken, headers=WRITE)
        assert 422 == bad.status_code
        assert "fingerprint" in bad.json()["detail"]
        metrics = (await c.get("/metrics", headers=READ)).text
        assert 'adaptive_runtime_receiver_deliveries_total{receiver="alertmanager"} 7.0' in metrics
    assert 3 == head(tmp_path / "j.db")  # one event, one decision, one outcome


async def test_an_alert_that_cant_be_decided_is_refused_alone(tmp_path: Path) -> None:
    """Alertmanager does not re-send a payload answered with a 4xx: an alert whose event
    is bad (an agent label with a line break, a cpu that is no number) is `refused` with
    its problem, and the alerts around it are decided (the payload was a 422, and the
    alerts after the bad one were never decided)."""
    host, _ = host_at(tmp_path / "j.db")
    bad_cpu = alert("firing", fingerprint="c0de", service="db")
    bad_cpu["annotations"]["cpu"] = "lots"
    payload = webhook(
        alert("firing", fingerprint="a1", service="api"),
        alert("firing", fingerprint="b2", service="web\nFAKE"),
        bad_cpu,
        alert("firing", fingerprint="d4", service="cache"),
    )
    async with client(host) as c:
        answer = await c.post("/v1/receivers/alertmanager", json=payload, headers=WRITE)
        assert 200 == answer.status_code
        results = answer.json()["results"]
        assert ["decided", "refused", "refused", "decided"] == [r["status"] for r in results]
        assert "am:b2:2026-11-27T01:00:00.000Z" == results[1]["id"]
        assert (422, "agent_id") == (
            results[1]["problem"]["status"],
            results[1]["problem"]["field"],
        )
        assert "printable" in results[1]["problem"]["detail"]
        assert (422, "cpu") == (results[2]["problem"]["status"], results[2]["problem"]["field"])
        again = await c.post("/v1/receivers/alertmanager", json=payload, headers=WRITE)
        assert ["decided", "refused", "refused", "decided"] == [
            r["status"] for r in again.json()["results"]
        ]
        assert [r.get("seq") for r in results] == [r.get("seq") for r in again.json()["results"]]
    assert 4 == head(tmp_path / "j.db")  # two events, two decisions


async def test_a_payload_the_journal_failed_is_a_503_and_its_resend_decides_each_alert_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's own trouble fails the whole payload with a 503, which Alertmanager
    re-sends; the alert decided before the failure is answered again, not decided twice."""
    host, _ = host_at(tmp_path / "j.db")
    payload = webhook(
        alert("firing", fingerprint="a1", service="api"),
        alert("firing", fingerprint="b2", service="web"),
    )
    real = host.process
    calls = 0

    async def second_one_fails(event: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise JournalUnavailableError("the server went away (injected)")
        return await real(event)

    monkeypatch.setattr(host, "process", second_one_fails)
    async with client(host) as c:
        failed = await c.post("/v1/receivers/alertmanager", json=payload, headers=WRITE)
        assert 503 == failed.status_code
        resent = await c.post("/v1/receivers/alertmanager", json=payload, headers=WRITE)
        assert 200 == resent.status_code
        results = resent.json()["results"]
    assert ["decided", "decided"] == [r["status"] for r in results]
    assert 4 == head(tmp_path / "j.db")  # two events, two decisions: none twice


async def test_no_secret_reaches_a_problem_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sensitive field is redacted before any message; tokens never appear."""
    host = Host(tmp_path / "j.db", durability="normal", sensitive_fields=["password"])
    async with client(host) as c:
        r = await c.post(
            "/v1/events",
            json={"type": "x", "password": "hunter2-hunter2", "cpu": "lots"},
            headers=WRITE,
        )
        assert 422 == r.status_code
        assert "hunter2" not in r.text
        wrong = await c.post(
            "/v1/events", json=OVERLOAD, headers={"Authorization": "Bearer " + "z" * 24}
        )
        assert "z" * 24 not in wrong.text
    assert "hunter2" not in caplog.text
    assert WRITER not in caplog.text
    assert "z" * 24 not in caplog.text


async def test_silences_through_the_api(tmp_path: Path) -> None:
    host, clock = host_at(tmp_path / "j.db")
    ran: list[str] = []

    @host.action("restart_service")
    async def restart(call: Any) -> None:
        ran.append(call.event["agent_id"])

    async with client(host) as c:
        body = {"agent": "checkout", "ends": "1764003600", "comment": "deploy", "by": "ops"}
        refused = await c.post("/v1/silences", json=body, headers=READ)
        assert 403 == refused.status_code
        made = await c.post("/v1/silences", json=body, headers=WRITE)
        assert 201 == made.status_code
        silence = made.json()
        assert ("checkout", "in_force", "ops") == (
            silence["agent"],
            silence["state"],
            silence["by"],
        )
        # set before checkout first decides: taken, with a note that it holds nothing yet
        assert (
            f"silence {silence['id']} is set, but agent 'checkout' has no entries in this"
            " journal (the journal holds no agent), so it holds nothing yet; it holds once"
            " 'checkout' decides. If you meant another, end it"
            f" (POST /v1/silences/{silence['id']}/end) and set it again"
        ) == silence["note"]
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "checkout"}, headers=WRITE)
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "search"}, headers=WRITE)
        await host.wait_for_actions()
        assert ["search"] == ran
        listed = (await c.get("/v1/silences", headers=READ)).json()
        assert [silence["id"]] == [s["id"] for s in listed]
        assert [None] == [s["note"] for s in listed]
        # a mistyped agent: the note names the journal's agents
        typo = await c.post("/v1/silences", json=body | {"agent": "checkuot"}, headers=WRITE)
        assert "(its agents are: checkout, search)" in typo.json()["note"]
        await c.post(f"/v1/silences/{typo.json()['id']}/end", json={"by": "ops"}, headers=WRITE)
        # a mistyped context: no event is given it, with no plugin to give it
        bad = body | {"agent": "search", "context": "resource_presure"}
        typo = await c.post("/v1/silences", json=bad, headers=WRITE)
        assert (
            f"silence {typo.json()['id']} is set, but it is for the context"
            " 'resource_presure', which no event is given (the contexts are anomaly_signal,"
            " latency_issue, resource_pressure, security_signal, self_healing,"
            " service_degradation, and unknown_<type> for any other event type): it holds"
            " nothing (did you mean 'resource_pressure'?). If you meant another, end it"
            f" (POST /v1/silences/{typo.json()['id']}/end) and set it again"
        ) == typo.json()["note"]
        await c.post(f"/v1/silences/{typo.json()['id']}/end", json={"by": "ops"}, headers=WRITE)
        meant = await c.post(
            "/v1/silences", json=bad | {"context": "resource_pressure"}, headers=WRITE
        )
        assert (201, None) == (meant.status_code, meant.json()["note"])
        await c.post(f"/v1/silences/{meant.json()['id']}/end", json={"by": "ops"}, headers=WRITE)
        ended = await c.post(f"/v1/silences/{silence['id']}/end", json={"by": "ops"}, headers=WRITE)
        assert 200 == ended.status_code
        assert [] == (await c.get("/v1/silences", headers=READ)).json()
        # ended again, as by a client retrying after a lost reply: it was a 404
        again = await c.post(f"/v1/silences/{silence['id']}/end", json={"by": "bob"}, headers=WRITE)
        assert (200, {"id": silence["id"], "ended_by": "ops"}) == (again.status_code, again.json())
        none = await c.post("/v1/silences/sil-0/end", json={"by": "ops"}, headers=WRITE)
        assert 404 == none.status_code
        over = await c.post("/v1/silences", json=body | {"ends": "1000"}, headers=WRITE)
        assert (422, "ends") == (over.status_code, over.json()["field"])
        # "2h" for a silence of two hours: an age, two hours ago, and the answer says so
        aged = await c.post("/v1/silences", json=body | {"ends": "2h"}, headers=WRITE)
        assert (422, True) == (aged.status_code, "reads as an age" in aged.json()["detail"])
        # "30m" meant as "in half an hour" is an age too: it started half an hour ago
        begun = await c.post(
            "/v1/silences", json=body | {"starts": "30m", "ends": "2h"}, headers=WRITE
        )
        assert (422, "starts") == (begun.status_code, begun.json()["field"])
        assert begun.json()["detail"].startswith("starts '30m' reads as an age")
        # a time that can't be read is that field's 422, as every other bad value is (it
        # was a 400 naming no field)
        for name in ("ends", "starts"):
            unread = await c.post("/v1/silences", json=body | {name: "2026-13-01"}, headers=WRITE)
            assert (422, name) == (unread.status_code, unread.json()["field"])
            assert unread.json()["detail"].startswith(f"{name}: can't read '2026-13-01' as a time")
        clock.advance(1)
        await c.post("/v1/events", json={**OVERLOAD, "agent_id": "checkout"}, headers=WRITE)
        await host.wait_for_actions()
        assert ["search", "checkout"] == ran


async def test_approvals_through_the_api_need_the_approve_scope(tmp_path: Path) -> None:
    policy = ApprovalPolicy(actions=("restart_service",))
    host, _ = host_at(tmp_path / "j.db", approvals=policy)
    ran: list[int] = []

    @host.action("restart_service")
    async def restart(call: Any) -> None:
        ran.append(call.decision.seq)

    approver = {"Authorization": f"Bearer {APPROVER}"}
    async with client(host) as c:
        seq = (await c.post("/v1/events", json=OVERLOAD, headers=WRITE)).json()["seq"]
        [pending] = (await c.get("/v1/approvals", headers=READ)).json()
        assert (seq, "restart_service needs approval") == (
            pending["decision_seq"],
            pending["reason"],
        )
        answer = {"approve": True, "by": "alice", "comment": "ok"}
        refused = await c.post(f"/v1/approvals/{seq}", json=answer, headers=WRITE)
        assert 403 == refused.status_code  # write is not approve
        done = await c.post(f"/v1/approvals/{seq}", json=answer, headers=approver)
        assert (200, {"decision_seq": seq, "approved": True, "by": "alice"}) == (
            done.status_code,
            done.json(),
        )
        await host.wait_for_actions()
        assert [seq] == ran
        assert [] == (await c.get("/v1/approvals", headers=READ)).json()
        twice = await c.post(f"/v1/approvals/{seq}", json=answer, headers=approver)
        assert 200 == twice.status_code  # the same answer again (a retry): taken already
        other = {**answer, "approve": False, "by": "bob"}
        refused = await c.post(f"/v1/approvals/{seq}", json=other, headers=approver)
        assert (409, "already answered") == (refused.status_code, refused.json()["title"])
        assert "already answered: approved by alice" in refused.json()["detail"]
        assert [seq] == ran  # run once
        ex = (await c.get(f"/v1/decisions/{seq}", headers=READ)).json()
        assert "approved by alice: ok" in [a["detail"] for a in ex["attempts"]]
        assert [] == (await c.get("/v1/dead-letters", headers=READ)).json()
        none = await c.post("/v1/dead-letters/99/retry", json={"by": "x"}, headers=WRITE)
        assert 404 == none.status_code


async def test_robusta_345_a_resolved_alert_never_restarts_the_healthy_replacement(
    tmp_path: Path,
) -> None:
    """Robusta #345: an action fired on a RESOLVED alert and deleted the healthy replacement
    pod. Here: the alert fires, the restart runs once; Alertmanager re-sends the firing and
    then sends it resolved; the new pod reports healthy. One disruptive action, no second."""
    host, clock = host_at(tmp_path / "j.db", fleet=FleetPolicy(cooldown=600.0))
    ran: list[str] = []

    @host.action("restart_service")
    async def restart(call: Any) -> None:
        ran.append(call.event["alertname"])

    pod = {"alertname": "ServiceOverload", "severity_score": "0.82", "service": "checkout"}
    firing = webhook(alert("firing", **pod))
    async with client(host) as c:
        hook = "/v1/receivers/alertmanager"
        first = (await c.post(hook, json=firing, headers=WRITE)).json()["results"][0]
        assert "decided" == first["status"]
        await host.wait_for_actions()
        clock.advance(30)
        assert (
            "decided"
            == (await c.post(hook, json=firing, headers=WRITE)).json()["results"][0]["status"]
        )  # the re-send: the recorded decision, nothing new
        resolved = (
            await c.post(hook, json=webhook(alert("resolved", **pod)), headers=WRITE)
        ).json()
        # the restart's own success was its outcome; the resolution adds no second one
        assert "already_resolved" == resolved["results"][0]["status"]
        for _ in range(3):  # the replacement pod is healthy
            clock.advance(10)
            healthy = {"type": "health_check", "severity": 0.05, "agent_id": "checkout"}
            d = (await c.post("/v1/events", json=healthy, headers=WRITE)).json()
            assert d["action"] not in (
                "restart_service",
                "rollback_deployment",
                "isolate_component",
            )
        # the same alert firing again a minute later (a new startsAt): the cooldown holds it
        clock.advance(20)
        again = alert("firing", fingerprint="f00d", starts_at="2026-11-27T01:01:30.000Z", **pod)
        refire = (await c.post(hook, json=webhook(again), headers=WRITE)).json()["results"][0]
        assert "decided" == refire["status"]
        assert "restart_service" != refire["action"]
        await host.wait_for_actions()
    assert ["ServiceOverload"] == ran


async def test_a_new_firing_of_one_fingerprint_in_the_window_is_a_repeat(tmp_path: Path) -> None:
    host, clock = host_at(tmp_path / "j.db", fleet=FleetPolicy(dedup_window=600.0))
    pod = {"alertname": "ServiceOverload", "severity_score": "0.82", "service": "checkout"}
    async with client(host) as c:
        hook = "/v1/receivers/alertmanager"
        first = (await c.post(hook, json=webhook(alert("firing", **pod)), headers=WRITE)).json()
        clock.advance(120)
        again = alert("firing", starts_at="2026-11-27T01:02:00.000Z", **pod)  # a new event id
        second = (await c.post(hook, json=webhook(again), headers=WRITE)).json()
        [one], [two] = first["results"], second["results"]
        assert ("decided", "restart_service") == (one["status"], one["action"])
        assert ("decided", "monitor_and_wait") == (two["status"], two["action"])
        ex = (await c.get(f"/v1/decisions/{two['seq']}", headers=READ)).json()
        assert ex["item"]["decision"]["fleet"].startswith("repeat of fingerprint f00d")


async def test_a_resolution_closes_the_episode_so_the_next_firing_is_decided_afresh(
    tmp_path: Path,
) -> None:
    host, clock = host_at(tmp_path / "j.db", fleet=FleetPolicy(dedup_window=600.0))
    pod = {"alertname": "ServiceOverload", "severity_score": "0.82", "service": "checkout"}
    async with client(host) as c:
        hook = "/v1/receivers/alertmanager"
        await c.post(hook, json=webhook(alert("firing", **pod)), headers=WRITE)
        clock.advance(60)
        resolved = (
            await c.post(hook, json=webhook(alert("resolved", **pod)), headers=WRITE)
        ).json()
        assert "resolved" == resolved["results"][0]["status"]
        clock.advance(60)
        again = alert("firing", starts_at="2026-11-27T01:02:00.000Z", **pod)
        [fresh] = (await c.post(hook, json=webhook(again), headers=WRITE)).json()["results"]
        assert "restart_service" == fresh["action"]  # a new episode, not a repeat
    journal = SqliteJournal(tmp_path / "j.db", create=False)
    try:
        assert 1 == sum(1 for _ in journal.read(kind="EpisodeClosed"))
        assert verify_replay(journal).ok
    finally:
        journal.close()
