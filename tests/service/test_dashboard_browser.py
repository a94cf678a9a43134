"""The dashboard in headless Chromium (Debian's), driven by Playwright, against a real server.

Events posted through the API appear on the page from the stream; a click shows the
decision's explanation; an outcome fills the calibration chart and the actions table;
a fleet incident is listed open; an approval request and a dead letter are listed as
they come, and a request leaves the list once answered; a silence is listed once set. The screenshot is kept as a test artifact
(`ADAPTIVE_RUNTIME_ARTIFACTS`, default `build/artifacts`).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_support import APPROVER, READER, WRITE, require_binary, server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ADAPTIVE_RUNTIME_ARTIFACTS", "build/artifacts"))
OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
GUARD_MS = 20_000
"""How long a wait for the page may last before the test fails: a guard against a page
that never shows what it should, not a measure of speed (a loaded CI machine is slow)."""
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    binary = require_binary(CHROMIUM)
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield page
        finally:
            browser.close()


def test_the_dashboard_shows_decisions_live_and_explains_one(
    browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    refused: list[str] = []  # what the page's content security policy blocked, if anything
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    policy = tmp_path / "policy.toml"
    policy.write_text("rules = []\n\n[fleet]\ncorrelate_agents = 3\ncorrelate_window = 60.0\n")
    with server(tmp_path / "dash.db", tmp_path, "--rules", str(policy)) as srv:
        page.goto(srv.url + "/")
        page.fill("#token", READER)
        page.press("#token", "Enter")  # as the Use button does (Enter did nothing before)
        page.wait_for_selector("#status.live", timeout=GUARD_MS)

        seqs = []
        for i in range(3):
            event = {**OVERLOAD, "agent_id": f"checkout-{i}"}
            r = httpx.post(srv.url + "/v1/events", json=event, headers=WRITE, timeout=10)
            seqs.append(r.json()["seq"])
            # each decision comes onto the page from the stream
            page.wait_for_selector(f'#decisions tr[data-seq="{seqs[-1]}"]', timeout=GUARD_MS)
        row = page.locator(f'#decisions tr[data-seq="{seqs[0]}"]')
        cells = row.locator("td").all_inner_texts()
        assert ["checkout-0", "service_overload", "restart_service"] == cells[2:5]

        row.click()
        page.wait_for_selector(f'#explanation pre[data-seq="{seqs[0]}"]', timeout=GUARD_MS)
        explanation = page.inner_text("#explanation pre")
        assert f"Decision at seq {seqs[0]} (agent checkout-0" in explanation
        assert "MATCHED" in explanation
        assert "Action     restart_service [high]" in explanation

        outcome = {"seq": seqs[1], "success": True, "id": "pager-ack-1"}
        assert 201 == httpx.post(srv.url + "/v1/outcomes", json=outcome, headers=WRITE).status_code
        page.locator(f'#decisions tr[data-seq="{seqs[1]}"]').click()
        page.wait_for_selector(f'#explanation pre[data-seq="{seqs[1]}"]', timeout=GUARD_MS)
        assert ": success (id pager-ack-1)" in page.inner_text("#explanation pre")
        page.wait_for_selector("#calibration rect[data-band]", timeout=GUARD_MS)
        page.wait_for_selector("#actions tbody tr", timeout=GUARD_MS)
        assert ["checkout-1", "restart_service", "1", "0"] == page.locator(
            "#actions tbody tr"
        ).first.locator("td").all_inner_texts()[:4]
        page.wait_for_selector("#incidents .pill.open", timeout=GUARD_MS)
        assert "checkout-0, checkout-1, checkout-2" in page.inner_text("#incidents")
        points = page.locator("#confidence circle").count()
        assert 3 == points

        more = [
            {"type": "timeout", "severity": 0.45, "latency_ms": 4200, "agent_id": "search"},
            {"type": "auth_failure", "severity": 0.7, "agent_id": "login"},
            {"type": "anomaly_detected", "severity": 0.3, "agent_id": "billing"},
            {"type": "memory_leak", "severity": 0.6, "memory": 91, "agent_id": "search"},
        ]
        answers = httpx.post(srv.url + "/v1/events", json=more, headers=WRITE, timeout=10).json()
        for answer, success in zip(answers, [True, False, True, True], strict=True):
            outcome = {"seq": answer["decision"]["seq"], "success": success}
            httpx.post(srv.url + "/v1/outcomes", json=outcome, headers=WRITE, timeout=10)
        last = answers[-1]["decision"]["seq"]
        page.wait_for_selector(f'#decisions tr[data-seq="{last}"]', timeout=GUARD_MS)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert 0 == srv.terminate()
    assert [] == refused


def test_the_dashboard_lists_what_waits_for_a_person(browser_page: Any, tmp_path: Path) -> None:
    """An approval request and a dead letter are listed as they come, and a request leaves
    the list once answered: the page showed neither, so a gated action waited unseen. A
    silence is shown ending, and one to come coming into force, at its time by the page's
    clock (nothing is journaled then; the page showed it up to 30 s late), and a page
    whose clock is behind the server's keeps the server's word until then."""
    page = browser_page
    # the page's clock runs an hour behind the real one (and the server's) until moved on
    page.clock.install(time=time.time() - 3600)
    program = (sys.executable, str(Path(__file__).with_name("served_with_handlers.py")))
    with server(tmp_path / "wait.db", tmp_path, program=program) as srv:
        page.goto(srv.url + "/")
        page.fill("#token", READER)
        page.press("#token", "Enter")
        page.wait_for_selector("#status.live", timeout=GUARD_MS)
        assert page.is_visible("#nothing-waits")
        said = "No action waits for approval, and no dead letter is left."
        assert said == page.inner_text("#nothing-waits")
        seq = httpx.post(srv.url + "/v1/events", json=OVERLOAD, headers=WRITE).json()["seq"]
        page.wait_for_selector(f'#approvals tr[data-seq="{seq}"]', timeout=GUARD_MS)
        cells = page.locator(f'#approvals tr[data-seq="{seq}"] td').all_inner_texts()
        assert [str(seq), "default", "restart_service", "restart_service needs approval"] == cells[
            :4
        ]
        assert not page.is_visible("#nothing-waits")
        anomaly = {"type": "anomaly_detected", "severity": 0.6, "agent_id": "billing"}
        other = httpx.post(srv.url + "/v1/events", json=anomaly, headers=WRITE).json()["seq"]
        page.wait_for_selector(f'#dead-letters tr[data-seq="{other}"]', timeout=GUARD_MS)
        cells = page.locator(f'#dead-letters tr[data-seq="{other}"] td').all_inner_texts()
        assert [str(other), "billing", "flag_for_review", "1"] == cells[:4]
        assert page.is_visible("#no-silence")
        ends = str(int(time.time()) + 3600)
        silence = {"agent": "billing", "ends": ends, "comment": "deploy window", "by": "ops"}
        made = httpx.post(srv.url + "/v1/silences", json=silence, headers=WRITE)
        assert 201 == made.status_code
        listed = page.locator("#silence-list tr", has_text="deploy window")
        listed.wait_for(timeout=GUARD_MS)  # from the stream's control message, not the 30 s read
        # in force, as the server says, though it starts an hour after the page's clock
        assert ["in force", "agent=billing"] == listed.locator("td").all_inner_texts()[:2]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-waiting.png"), full_page=True)
        page.locator(f'#approvals tr[data-seq="{seq}"]').click()  # shows its decision
        page.wait_for_selector(f'#explanation pre[data-seq="{seq}"]', timeout=GUARD_MS)
        answer = {"approve": False, "by": "alice", "comment": "not now"}
        approver = {"Authorization": f"Bearer {APPROVER}"}
        denied = httpx.post(f"{srv.url}/v1/approvals/{seq}", json=answer, headers=approver)
        assert 200 == denied.status_code
        page.wait_for_selector("#approvals-part", state="hidden", timeout=GUARD_MS)
        assert page.is_visible(f'#dead-letters tr[data-seq="{other}"]')
        later = {**silence, "starts": str(int(ends) + 3600), "ends": str(int(ends) + 7200)}
        later["comment"] = "migration"
        assert 201 == httpx.post(srv.url + "/v1/silences", json=later, headers=WRITE).status_code
        coming = page.locator("#silence-list tr", has_text="migration")
        coming.wait_for(timeout=GUARD_MS)
        assert "to come" == coming.locator("td").first.inner_text()
        page.clock.fast_forward(2 * 3_600_000 + 5_000)  # past the first one's end
        listed.wait_for(state="detached", timeout=GUARD_MS)
        assert "to come" == coming.locator("td").first.inner_text()
        page.clock.fast_forward(3_600_000)  # past the second one's start
        coming.locator("td", has_text="in force").wait_for(timeout=GUARD_MS)
        assert 0 == srv.terminate()


def test_the_dashboard_reads_again_a_journal_replaced_behind_its_server(
    browser_page: Any, tmp_path: Path
) -> None:
    """A server restarted on a shorter journal (restored from a backup, or another) refuses
    the page's last seq as a stream position; the page reads the journal again from its
    head, where it used to follow from a seq the new journal had not reached."""
    page = browser_page
    with server(tmp_path / "before.db", tmp_path) as first:
        page.goto(first.url + "/")
        page.fill("#token", READER)
        page.press("#token", "Enter")
        page.wait_for_selector("#status.live", timeout=GUARD_MS)
        for i in range(3):
            event = {**OVERLOAD, "agent_id": f"old-{i}"}
            seq = httpx.post(first.url + "/v1/events", json=event, headers=WRITE).json()["seq"]
            page.wait_for_selector(f'#decisions tr[data-seq="{seq}"]', timeout=GUARD_MS)
        port = first.port
        assert 0 == first.terminate()
    with server(tmp_path / "after.db", tmp_path, port=port) as second:
        event = {**OVERLOAD, "agent_id": "restored"}
        seq = httpx.post(second.url + "/v1/events", json=event, headers=WRITE).json()["seq"]
        assert 2 == seq  # below the page's last seq, 6
        page.locator("#decisions tr", has_text="restored").wait_for(timeout=GUARD_MS)
        page.wait_for_selector("#status.live", timeout=GUARD_MS)
        assert 0 == page.locator("#decisions tr", has_text="old-").count()
        assert 0 == second.terminate()


def test_the_dashboard_says_when_its_token_is_refused(browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    with server(tmp_path / "dash.db", tmp_path) as srv:
        page.goto(srv.url + "/")
        page.wait_for_selector("#status.down", timeout=GUARD_MS)
        assert "set a read token" in page.inner_text("#status")
        # it said "No action waits for approval" and "every decision's action runs", unread
        for part in ("#nothing-waits", "#no-silence"):
            assert page.inner_text(part).startswith("Not read: "), page.inner_text(part)
        page.fill("#token", "x" * 24)
        with page.expect_navigation():  # the page reloads to read with the token
            page.click("#save-token")
        # a locator, not a JavaScript predicate: the page's policy forbids evaluating strings
        said = re.compile("unknown|token this server knows")
        page.locator("#status").filter(has_text=said).wait_for(timeout=GUARD_MS)
        assert 0 == srv.terminate()
