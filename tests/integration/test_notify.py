"""Notifications through Apprise's JSON webhook URL to a local HTTP receiver."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adaptive_runtime import FleetPolicy, Host, ManualClock, SilenceMatcher, Verification
from adaptive_runtime.errors import ConfigurationError
from adaptive_runtime.notify import Notifier, NotifyPolicy
from adaptive_runtime.records import ApprovalPolicy
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
QUIET = {"type": "anomaly_detected", "severity": 0.3}
START_NS = 1_764_000_000 * 10**9


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP receiver: (its json:// URL, the bodies it got)."""
    got: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


async def test_notes_are_grouped_into_one_message(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    clock = ManualClock(start_ns=START_NS)
    host = Host(
        tmp_path / "n.db",
        durability="normal",
        clock=clock,
        fleet=FleetPolicy(correlate_agents=3),
        approvals=ApprovalPolicy(actions=("restart_service",)),
    )

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        pass

    async with host:
        notifier = Notifier(host, [url], NotifyPolicy(min_priority="high"))
        for i in range(3):
            await host.process({**OVERLOAD, "agent_id": f"svc-{i}", "password": "hunter2"})
        await host.process({**QUIET, "agent_id": "svc-9"})  # normal priority: not noted
        assert await notifier.flush()
        assert not await notifier.flush()  # nothing new
        await notifier.stop()
    [message] = got
    assert "Adaptive Runtime: 7 to look at" == message["title"]
    lines = message["message"].splitlines()
    assert 3 == sum(1 for line in lines if line.startswith("[high] svc-"))
    assert 3 == sum(1 for line in lines if line.startswith("[approval] svc-"))
    assert 1 == sum(1 for line in lines if line.startswith("[incident] svc-2"))
    assert "hunter2" not in message["message"]
    assert "adaptive-runtime approve 4" in message["message"]  # seqs 1-2: the policies


async def test_the_rate_limit_holds_messages_back_and_counts_them(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    clock = ManualClock(start_ns=START_NS)
    async with Host(tmp_path / "r.db", durability="normal", clock=clock) as host:
        notifier = Notifier(host, [url], NotifyPolicy(max_per_hour=2))
        for _ in range(3):
            await host.process(OVERLOAD)
            await notifier.flush()
            clock.advance(60)
        assert 2 == len(got)  # the third is held back
        assert 1 == notifier.held_back
        clock.advance(3600)
        await host.process(OVERLOAD)
        assert await notifier.flush()
        await notifier.stop()
    assert 3 == len(got)
    assert "... and 1 more (grouped, or held back by the rate limit)" in got[2]["message"]


@pytest.mark.parametrize("handler", [True, False], ids=["handler", "no-handler"])
async def test_a_decision_a_silence_covers_pages_no_one(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]], handler: bool
) -> None:
    """A maintenance window skipped the restarts, and every one of its decisions was still
    sent to the on-call at [high]. With no handler (serve without a plugin), nothing is
    skipped to tell it by, so the notifier asks the silences itself."""
    url, got = receiver
    clock = ManualClock(start_ns=START_NS)
    host = Host(tmp_path / f"s{handler}.db", durability="normal", clock=clock)
    if handler:

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            pass

    async with host:
        notifier = Notifier(host, [url])
        window = SilenceMatcher(agent="checkout")
        ends = clock.now_ns() + 3600 * 10**9
        await host.controls.add_silence(window, ends_ns=ends, comment="deploy", by="ops")
        quiet = await host.process({**OVERLOAD, "agent_id": "checkout"})
        loud = await host.process({**OVERLOAD, "agent_id": "search"})
        clock.advance(3601)  # the window is over: the same event pages again
        after = await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.wait_for_actions()
        await notifier.stop()
    [message] = got
    assert f"checkout seq {quiet.seq}:" not in message["message"]
    assert f"search seq {loud.seq}: service_overload -> restart_service" in message["message"]
    assert f"checkout seq {after.seq}: service_overload -> restart_service" in message["message"]


def test_a_bad_url_or_policy_is_a_configuration_error(tmp_path: Path) -> None:
    host = Host("memory:")
    with pytest.raises(ConfigurationError, match=r"URL 1 \(nope://...\)"):
        Notifier(host, ["nope://secret@x"])
    with pytest.raises(ConfigurationError):
        Notifier(host, "json://x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        NotifyPolicy(min_priority="urgent")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # each was "(...://...) is not one Apprise knows", json:// and mailto:// included
        ("json://", "(json://...): Apprise knows the scheme, but not the rest of the URL"),
        ("mailto://secret:pw@", "(mailto://...): Apprise knows the scheme, but not the rest"),
        ("", "is empty; give an Apprise URL such as mailto://"),
        ("example.com/hook", "is not a URL (it has no scheme://)"),
        ("nope://secret@x", "(nope://...) is not one Apprise knows"),
    ],
)
def test_a_url_apprise_refuses_is_refused_saying_which_part_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Notifier(Host("memory:"), ["json://127.0.0.1:9/ok", url])
    assert str(caught.value).startswith(f"notification URL 2 {says}"), str(caught.value)
    assert "secret" not in str(caught.value)


async def test_an_action_the_fleet_held_back_is_escalated_to_a_person(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    clock = ManualClock(start_ns=START_NS)
    policy = FleetPolicy(budget=1, budget_window=60.0)
    async with Host(tmp_path / "h.db", durability="normal", clock=clock, fleet=policy) as host:
        notifier = Notifier(host, [url], NotifyPolicy(min_priority="critical"))
        await host.process({**OVERLOAD, "agent_id": "a"})  # high: below the priority noted
        held = await host.process({**OVERLOAD, "agent_id": "b"})
        await notifier.stop()
    assert "restart_service" == held.degraded_from
    [message] = got
    assert [
        f"[held] b seq {held.seq}: restart_service held back, throttle_requests instead:"
        " fleet budget spent: 1 of 1 disruptive actions in the last 60s"
    ] == message["message"].splitlines()


async def test_an_escalation_step_held_for_approval_is_sent_to_a_person(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    clock = ManualClock(start_ns=START_NS)
    gate = ApprovalPolicy(actions=("rollback_deployment",))
    host = Host(tmp_path / "e.db", durability="normal", clock=clock, approvals=gate)

    @host.action(
        "restart_service",
        verify=Verification(within=60.0, probe=lambda call: False),
        escalate=["rollback_deployment"],
    )
    async def restart(call: ActionCall) -> None:
        pass

    async with host:
        notifier = Notifier(host, [url], NotifyPolicy(min_priority="critical"))
        d = await host.process(OVERLOAD)
        await host.wait_for_actions()
        await notifier.stop()
    [message] = got
    assert [
        f"[escalated] default seq {d.seq + 7}: to rollback_deployment (step 1): the probe found"
        " the symptom still there",
        f"[dead letter] default seq {d.seq + 8}: rollback_deployment not run"
        f" (needs_approval; adaptive-runtime retry {d.seq} runs it)",
    ] == message["message"].splitlines()
