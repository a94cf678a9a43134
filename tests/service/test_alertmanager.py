"""The real Alertmanager (Debian's prometheus-alertmanager) sending to a real server.

Alertmanager runs with the README's configuration, with only the server's address, the
token file's path and the timings changed (10s and 1m become 1s, and so does 4h where a
test counts on re-sends of what was delivered), so that a re-send comes within seconds. An alert posted through Alertmanager's own API is decided
once however often Alertmanager re-sends it; its resolution is one outcome.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_support import READ, WRITE, WRITER, free_port, require_binary, server

README = Path(__file__).resolve().parents[2] / "README.md"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def readme_config() -> str:
    """The Alertmanager configuration the README prints."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(# alertmanager\.yml\n.*?)```", text, re.S)
    assert found, "the README's alertmanager.yml block is missing"
    return found.group(1)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 45.0) -> Any:
    """Poll a real process until `check()` is truthy (Alertmanager sends when it sends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running_alertmanager(tmp_path: Path, server_url: str, repeat: str = "1s") -> Iterator[str]:
    """Alertmanager with the README's configuration, sending to `server_url`; its URL."""
    binary = require_binary(ALERTMANAGER)
    token = tmp_path / "adaptive-runtime.token"
    token.write_text(WRITER + "\n")  # as `echo "$TOKEN" > file` writes it
    config = readme_config()
    for old, new in (
        ("http://127.0.0.1:8080", server_url),
        ("/etc/alertmanager/adaptive-runtime.token", str(token)),
        ("group_wait: 10s", "group_wait: 1s"),
        ("group_interval: 1m", "group_interval: 1s"),
        ("repeat_interval: 4h", f"repeat_interval: {repeat}"),
    ):
        assert old in config
        config = config.replace(old, new)
    (tmp_path / "alertmanager.yml").write_text(config)
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Alertmanager to start", lambda: _ready(url))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Alertmanager's URL, our server's URL), both running."""
    require_binary(ALERTMANAGER)
    with server(tmp_path / "am.db", tmp_path) as srv:
        with running_alertmanager(tmp_path, srv.url) as url:
            yield url, srv.url
        assert 0 == srv.terminate()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def deliveries(server_url: str) -> float:
    text = httpx.get(server_url + "/metrics", headers=READ, timeout=5).text
    found = re.search(
        r'adaptive_runtime_receiver_deliveries_total\{receiver="alertmanager"\} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_an_alert_is_decided_once_through_resends_and_resolved_once(
    alertmanager: tuple[str, str],
) -> None:
    am, srv = alertmanager
    alert = {
        "labels": {"alertname": "ServiceOverload", "severity": "critical", "service": "checkout"},
        "annotations": {"cpu": "94", "memory": "88", "summary": "checkout is overloaded"},
    }
    posted = httpx.post(am + "/api/v2/alerts", json=[alert], timeout=5)
    assert 200 == posted.status_code
    wait_for("Alertmanager to send the alert and re-send it", lambda: deliveries(srv) >= 3)

    page = httpx.get(srv + "/v1/decisions", headers=READ, timeout=5).json()
    [item] = page["items"]
    assert ("checkout", "service_overload", "scale_up_immediate") == (
        item["agent"],
        item["event"]["type"],
        item["decision"]["action"],
    )
    assert item["event"]["id"].startswith("am:")
    assert "ServiceOverload" == item["event"]["alertname"]
    explained = httpx.get(f"{srv}/v1/decisions/{item['seq']}", headers=READ, timeout=5).json()
    assert any(rule["matched"] for rule in explained["rules_tried"])
    assert [] == explained["outcomes"]

    # resolve it: Alertmanager sends the same alert as resolved
    starts = _alert_starts_at(am)
    now = datetime.now(UTC).isoformat()  # Alertmanager resolves an alert whose end has passed
    ended = {**alert, "startsAt": starts, "endsAt": now}
    assert 200 == httpx.post(am + "/api/v2/alerts", json=[ended], timeout=5).status_code

    def outcomes() -> list[Any]:
        ex = httpx.get(f"{srv}/v1/decisions/{item['seq']}", headers=READ, timeout=5).json()
        return list(ex["outcomes"])

    [outcome] = wait_for("the resolution to arrive", outcomes)
    assert outcome["success"] is True
    again = httpx.get(srv + "/v1/decisions", headers=READ, timeout=5).json()
    assert [item["seq"]] == [i["seq"] for i in again["items"]]


def test_an_alert_for_an_agent_another_server_owns_is_sent_again_until_one_takes_it(
    tmp_path: Path,
) -> None:
    """Two servers on one journal, Alertmanager sending to the one that does not own the
    alert's agent: it was answered `refused` inside a 200, which Alertmanager takes as
    delivered (with a repeat_interval of 4h, as the README's, nothing came again), and
    the alert was never decided. Now it is a 503, Alertmanager sends it again, and once
    the owner stops, the server it sends to takes the agent and decides the alert, once."""
    require_binary(ALERTMANAGER)
    db = tmp_path / "am.db"
    with server(db, tmp_path) as owner, server(db, tmp_path) as other:
        taken = httpx.post(
            owner.url + "/v1/events",
            json={"type": "timeout", "severity": 0.4, "agent_id": "checkout"},
            headers=WRITE,
            timeout=5,
        )
        assert 200 == taken.status_code  # the owner claims the agent with its first event
        alert = {
            "labels": {
                "alertname": "ServiceOverload",
                "severity": "critical",
                "service": "checkout",
            },
            "annotations": {"cpu": "94", "memory": "88"},
        }
        with running_alertmanager(tmp_path, other.url, repeat="4h") as am:
            assert 200 == httpx.post(am + "/api/v2/alerts", json=[alert], timeout=5).status_code
            wait_for(
                "the server that does not own the agent to answer 503, twice",
                lambda: other.output().count("alertmanager payload answered 503") >= 2,
            )
            assert 0 == owner.terminate()

            def decided() -> list[Any]:
                page = httpx.get(other.url + "/v1/decisions", headers=READ, timeout=5).json()
                return [i for i in page["items"] if str(i["event"].get("id")).startswith("am:")]

            [item] = wait_for("the alert to be decided once its agent is free", decided)
            assert ("checkout", "scale_up_immediate") == (
                item["agent"],
                item["decision"]["action"],
            )
        assert 0 == other.terminate()


def _alert_starts_at(am: str) -> str:
    [current] = httpx.get(am + "/api/v2/alerts", timeout=5).json()
    return str(current["startsAt"])
