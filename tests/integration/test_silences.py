"""Silences and dry runs: decisions are made and journaled; actions are skipped, saying why."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import cli as run_cli
from journal_support import silence_set_elsewhere

from adaptive_runtime import ApprovalPolicy, BreakerPolicy, Host, ManualClock, RetryPolicy
from adaptive_runtime.errors import InvalidEventError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.projections.audit import explain
from adaptive_runtime.projections.controls import dead_letters
from adaptive_runtime.records import (
    HOST_STREAM,
    ActionSkipped,
    PluginRef,
    PluginsSet,
    SilenceMatcher,
    SilenceSet,
    read_record,
    to_pending,
)
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
START_NS = 1_764_000_000 * 10**9
WORKER = Path(__file__).with_name("silence_worker.py")


def host_with_restart_handler(
    path: Path, clock: ManualClock, **kwargs: object
) -> tuple[Host, list[str]]:
    host = Host(path, durability="normal", clock=clock, **kwargs)  # type: ignore[arg-type]
    ran: list[str] = []

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(str(call.event.get("agent_id")))

    return host, ran


async def fire_after_silence(
    host: Host,
    seconds: int,
    *,
    agent: str | None = "checkout",
    target: str | None = None,
    comment: str = "deploy",
) -> SilenceSet:
    """A silence from the test's start for `seconds`, whose skipped actions run after it."""
    return await host.controls.add_silence(
        SilenceMatcher(agent=agent, target=target),
        ends_ns=START_NS + seconds * 10**9,
        comment=comment,
        by="ops",
        fire_after=True,
    )


def skipped(path: Path) -> list[tuple[str, str]]:
    journal = SqliteJournal(path, create=False)
    try:
        out = []
        for entry in journal.read():
            if entry.kind == "ActionSkipped":
                record = read_record(entry)
                assert isinstance(record, ActionSkipped)
                out.append((entry.stream, record.reason))
        return out
    finally:
        journal.close()


async def test_a_silence_skips_matching_actions_and_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock)
    async with host:
        silence = await host.controls.add_silence(
            SilenceMatcher(agent="checkout", context="resource_pressure"),
            ends_ns=START_NS + 3600 * 10**9,
            comment="deploy window",
            by="ops",
        )
        quiet = await host.process({**OVERLOAD, "agent_id": "checkout"})
        loud = await host.process({**OVERLOAD, "agent_id": "search"})
        await host.wait_for_actions()
        assert ["search"] == ran
        assert ("restart_service", "restart_service") == (quiet.action, loud.action)
        clock.advance(3601)  # the silence is over: new decisions act again
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.wait_for_actions()
        assert ["search", "checkout"] == ran  # and nothing skipped inside it fired late
    reason = f"silenced by {silence.id} (deploy window)"
    assert [("checkout", reason)] == skipped(path)
    journal = SqliteJournal(path, create=False)
    try:
        ex = explain(journal, quiet.seq)
        assert [f"skipped: {reason}"] == [a.detail for a in ex.attempts]
        assert verify_replay(journal).ok
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("matcher", "silenced"),
    [
        (SilenceMatcher(), True),
        (SilenceMatcher(agent="web"), True),
        (SilenceMatcher(agent="db"), False),
        (SilenceMatcher(target="node-7"), True),
        (SilenceMatcher(target="node-8"), False),
        (SilenceMatcher(event_type="service_overload"), True),
        (SilenceMatcher(event_type="timeout"), False),
        (SilenceMatcher(context="resource_pressure", agent="web"), True),
        (SilenceMatcher(context="latency_issue", agent="web"), False),
    ],
)
async def test_every_matcher_field_must_match(
    tmp_path: Path, matcher: SilenceMatcher, silenced: bool
) -> None:
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(tmp_path / "m.db", clock)
    async with host:
        await host.controls.add_silence(
            matcher, ends_ns=START_NS + 60 * 10**9, comment="c", by="ops"
        )
        await host.process({**OVERLOAD, "agent_id": "web", "instance": "node-7"})
        await host.wait_for_actions()
    assert ([] if silenced else ["web"]) == ran


async def test_a_silence_to_come_and_one_ended_early(tmp_path: Path) -> None:
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(tmp_path / "w.db", clock)
    async with host:
        later = await host.controls.add_silence(
            SilenceMatcher(),
            starts_ns=START_NS + 60 * 10**9,
            ends_ns=START_NS + 120 * 10**9,
            comment="window",
            by="ops",
        )
        await host.process({**OVERLOAD, "agent_id": "a"})  # before it starts
        clock.advance(90)
        await host.process({**OVERLOAD, "agent_id": "b"})  # inside it
        assert "ops" == await host.controls.end_silence(later.id, by="ops")
        await host.process({**OVERLOAD, "agent_id": "c"})  # ended early
        await host.wait_for_actions()
        # ended again (a client retrying after a lost reply): who ended it, nothing journaled;
        # it was a LookupError, "no silence ... in force or to come", a 404 on the API
        head = host.journal.head()
        assert "ops" == await host.controls.end_silence(later.id, by="someone else")
        assert head == host.journal.head()
        with pytest.raises(LookupError, match="no silence 'sil-0' is in force or to come"):
            await host.controls.end_silence("sil-0", by="ops")
    assert ["a", "c"] == ran


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ends_ns": START_NS - 1}, "ends"),
        ({"comment": ""}, "comment"),
        ({"comment": "x" * 1001}, "comment"),
        ({"by": "\x00"}, "by"),
    ],
)
async def test_a_bad_silence_is_refused_and_journals_nothing(
    tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    clock = ManualClock(start_ns=START_NS)
    args: dict[str, object] = {"ends_ns": START_NS + 10**9, "comment": "c", "by": "ops"} | kwargs
    async with Host(tmp_path / "b.db", durability="normal", clock=clock) as host:
        head = host.journal.head().seq
        with pytest.raises(InvalidEventError) as caught:
            await host.controls.add_silence(SilenceMatcher(), starts_ns=START_NS, **args)  # type: ignore[arg-type]
        assert field == caught.value.field
        assert head == host.journal.head().seq


async def test_a_dry_run_decides_and_journals_and_runs_no_handler(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock, dry_run=True)
    async with host:
        decision = await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.wait_for_actions()
    assert [] == ran
    assert "restart_service" == decision.action
    assert [("checkout", "dry run: the host runs no handler")] == skipped(path)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"USER": "ops"})


def worker(db: Path, start_s: int, agent: str) -> dict[str, object]:
    """A host in a process of its own, at a given time: one event, its action's fate."""
    out = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(start_s), agent],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_a_silence_set_by_the_cli_that_ends_while_the_runtime_is_down(tmp_path: Path) -> None:
    """The CLI journals a silence; a host started inside it skips; the silence ends while
    no host runs; a host started after it acts on new events and fires nothing late."""
    db = tmp_path / "c.db"
    start = int(time.time()) + 86_400  # the CLI refuses a silence already over: a day ahead
    added = cli(
        "silence", "add", "--db", str(db), "--agent", "checkout",
        "--start", str(start), "--until", str(start + 3600), "--comment", "maintenance",
    )  # fmt: skip
    assert 0 == added.returncode, added.stderr
    silence_id = added.stdout.split()[0]
    assert silence_id.startswith("sil-")
    # no journal was there: one is made, and the note says so (a mistyped --db would have
    # looked like a silence in force while the hosts on the real journal never saw it)
    assert f"there was no journal at {db}, so one was made" in added.stderr
    again = cli("silence", "add", "--db", str(db), "--for", "1h", "--comment", "another")
    assert (0, "") == (again.returncode, again.stderr)
    cli("silence", "end", "--db", str(db), again.stdout.split()[0])
    listed = cli("silence", "list", "--db", str(db), "--all")
    assert f"{silence_id}  to come" in listed.stdout
    assert "agent=checkout" in listed.stdout
    assert "by ops: maintenance" in listed.stdout

    inside = worker(db, start + 60, "checkout")
    assert {"ran": [], "skipped": [f"silenced by {silence_id} (maintenance)"]} == inside
    after = worker(db, start + 7200, "checkout")
    assert {"ran": ["checkout"], "skipped": []} == after
    journal = SqliteJournal(db, create=False)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_a_silence_set_by_another_process_holds_from_its_commit(tmp_path: Path) -> None:
    """A running host read the operators' controls once a second, so an action decided
    in the second after `silence add` returned ran inside the silence (a restart at the
    start of a deploy window). The journal now refuses a batch whose action was planned
    from controls that have moved on, and the host reads them and decides it again."""
    path = tmp_path / "f.db"
    start = int(time.time()) + 86_400  # the CLI refuses a silence already over
    clock = ManualClock(start_ns=(start + 60) * 10**9)
    host, ran = host_with_restart_handler(path, clock)
    async with host:
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.wait_for_actions()
        assert ["checkout"] == ran  # no silence yet
        added = cli(
            "silence", "add", "--db", str(path), "--agent", "checkout",
            "--start", str(start), "--until", str(start + 3600), "--comment", "deploy",
        )  # fmt: skip
        assert 0 == added.returncode, added.stderr
        # decided at once, the loop held by the call above: the host has not looked since
        decision = await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.wait_for_actions()
    assert ["checkout"] == ran
    silence_id = added.stdout.split()[0]
    assert [("checkout", f"silenced by {silence_id} (deploy)")] == skipped(path)
    journal = SqliteJournal(path, create=False)
    try:
        assert "ActionSkipped" == next(journal.read(after=decision.seq)).kind
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_a_silence_for_an_agent_the_journal_has_no_entries_of_says_so(
    tmp_path: Path,
) -> None:
    """`silence add --agent checkuot` (a typo for `checkout`) said "sil-... set" and
    nothing more, like a window in force, while checkout's restarts went on running.
    The silence is still set (one may be set for an agent before it first decides), and
    a note on stderr names the journal's agents."""
    path = tmp_path / "t.db"
    host, _ = host_with_restart_handler(path, ManualClock(start_ns=START_NS))
    async with host:
        await host.process({**OVERLOAD, "agent_id": "checkout"})
    typo = cli(
        "silence", "add", "--db", str(path), "--agent", "checkuot", "--for", "1h",
        "--comment", "deploy",
    )  # fmt: skip
    assert 0 == typo.returncode, typo.stderr
    silence_id = typo.stdout.split()[0]
    assert (
        f"note: agent 'checkuot' has no entries in this journal (its agents are: checkout),"
        f" so this silence holds nothing yet; it holds once 'checkuot' decides. If you"
        f" meant another agent, `silence end {silence_id}` and set it again.\n"
    ) == typo.stderr
    assert "agent=checkuot" in cli("silence", "list", "--db", str(path)).stdout
    meant = cli(
        "silence", "add", "--db", str(path), "--agent", "checkout", "--for", "1h",
        "--comment", "deploy",
    )  # fmt: skip
    assert (0, "") == (meant.returncode, meant.stderr)


async def test_a_silence_for_a_misspelt_event_type_says_so(tmp_path: Path) -> None:
    """`--type timeot` (or `event_type` through the API) set a window that held nothing,
    in silence, while every timeout's action went on running. A type far from every
    built-in one is an event's own, and is set with no note."""
    path = tmp_path / "t.db"
    typo = cli(
        "silence", "add", "--db", str(path), "--type", "timeot", "--for", "1h", "--comment", "x"
    )
    assert 0 == typo.returncode, typo.stderr
    assert (
        "note: this silence is for the event type 'timeot', which the built-in map does not"
        " know: it holds nothing unless events of that type are sent (did you mean"
        f" 'timeout'?). If you meant another, `silence end {typo.stdout.split()[0]}` and set"
        " it again.\n"
    ) in typo.stderr
    for own in ("timeout", "payment_gateway_down"):
        quiet = cli(
            "silence", "add", "--db", str(path), "--type", own, "--for", "1h", "--comment", "x"
        )
        assert (0, True) == (quiet.returncode, "event type" not in quiet.stderr), own
    host, _ = host_with_restart_handler(tmp_path / "p.db", ManualClock(start_ns=START_NS))
    async with host:
        notes = await host.controls.notes_on(SilenceMatcher(event_type="anomaly_detectd"))
    assert [
        "it is for the event type 'anomaly_detectd', which the built-in map does not know: it"
        " holds nothing unless events of that type are sent (did you mean 'anomaly_detected'?)"
    ] == notes


async def test_a_silence_set_in_a_program_that_would_hold_nothing_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`host.controls.add_silence` with a mistyped agent or context: set all the same,
    and a warning logged for each, as the command line and the API note them."""
    clock = ManualClock(start_ns=START_NS)
    host, _ = host_with_restart_handler(tmp_path / "p.db", clock)
    caplog.set_level("WARNING", logger="adaptive_runtime")
    async with host:
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        # an id routed from an event is printable; one given to host.agent() need not be
        await host.agent("x\nFORGED LOG LINE").process(OVERLOAD)
        typo = await host.controls.add_silence(
            SilenceMatcher(agent="checkuot", context="resource_presure"),
            ends_ns=START_NS + 3600 * 10**9,
            comment="deploy window",
            by="ops",
        )
        told = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert [
            # a name's line break is shown escaped: it can't start a line of the log
            f"silence {typo.id} is set, but agent 'checkuot' has no entries in this journal"
            " (its agents are: checkout, x\\nFORGED LOG LINE), so it holds nothing yet; it"
            " holds once 'checkuot' decides",
            f"silence {typo.id} is set, but it is for the context 'resource_presure', which no"
            " event is given (the contexts are anomaly_signal, latency_issue,"
            " resource_pressure, security_signal, self_healing, service_degradation, and"
            " unknown_<type> for any other event type): it holds nothing (did you mean"
            " 'resource_pressure'?)",
        ] == told
        caplog.clear()
        await host.controls.add_silence(
            SilenceMatcher(agent="checkout", context="resource_pressure"),
            ends_ns=START_NS + 3600 * 10**9,
            comment="deploy window",
            by="ops",
        )
        assert [] == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_a_silence_for_a_context_no_event_is_given_says_so(tmp_path: Path) -> None:
    """`silence add --context resource_presure` held nothing, and said only "set". With
    no plugin journaled (whose analysers could give other contexts), a note says so."""
    path = tmp_path / "c.db"
    made = cli("silence", "add", "--db", str(path), "--for", "1h", "--comment", "x")
    assert 0 == made.returncode, made.stderr
    typo = cli(
        "silence", "add", "--db", str(path), "--context", "resource_presure", "--for", "1h",
        "--comment", "deploy",
    )  # fmt: skip
    silence_id = typo.stdout.split()[0]
    assert (
        "note: this silence is for the context 'resource_presure', which no event is given"
        " (the contexts are anomaly_signal, latency_issue, resource_pressure, security_signal,"
        " self_healing, service_degradation, and unknown_<type> for any other event type):"
        " it holds nothing (did you mean 'resource_pressure'?). If you meant another,"
        f" `silence end {silence_id}` and set it again.\n"
    ) == typo.stderr
    for context in ("resource_pressure", "unknown_disk_full"):
        fine = cli(
            "silence", "add", "--db", str(path), "--context", context, "--for", "1h",
            "--comment", "deploy",
        )  # fmt: skip
        assert (0, "") == (fine.returncode, fine.stderr)
    # a plugin journaled by a host may give contexts of its own: no note
    journal = SqliteJournal(path, create=False)
    try:
        plugins = PluginsSet((PluginRef("trading", "0.1.0"),))
        journal.append([to_pending(HOST_STREAM, plugins, START_NS)])
    finally:
        journal.close()
    theirs = cli(
        "silence", "add", "--db", str(path), "--context", "trading_infrastructure",
        "--for", "1h", "--comment", "deploy",
    )  # fmt: skip
    assert (0, "") == (theirs.returncode, theirs.stderr)


def test_cli_silence_errors_are_usage_errors(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    past = cli("silence", "add", "--db", str(db), "--until", "1000", "--comment", "x")
    assert 2 == past.returncode
    assert "a silence must end after it starts" in past.stderr
    bad = cli("silence", "add", "--db", str(db), "--for", "soon", "--comment", "x")
    assert 2 == bad.returncode
    assert "--for takes a length" in bad.stderr
    long = cli("silence", "add", "--db", str(db), "--for", "9999999w", "--comment", "x")
    assert 2 == long.returncode
    assert "--for 9999999w would end past the year 2262" in long.stderr
    ok = cli(
        "silence", "add", "--db", str(db), "--for", "2h", "--type", "timeout", "--comment", "x"
    )
    assert 0 == ok.returncode
    silence_id = ok.stdout.split()[0]
    missing = cli("silence", "end", "--db", str(db), "sil-nope")
    assert 2 == missing.returncode
    assert "no silence 'sil-nope'" in missing.stderr
    assert f"{silence_id}  in force" in cli("silence", "list", "--db", str(db)).stdout
    ended = cli("silence", "end", "--db", str(db), silence_id)
    assert 0 == ended.returncode
    by = ended.stdout.split(" ended by ")[1].strip()  # $USER, else cli
    assert "No silences in force or to come." in cli("silence", "list", "--db", str(db)).stdout
    # ended twice: it said "no silence ...; `silence list --all` shows them", and --all
    # lists no ended silence. The end asked for holds; nothing more is journaled
    head = cli("head", "--db", str(db)).stdout
    again = cli("silence", "end", "--db", str(db), silence_id, "--by", "bob")
    assert (0, f"{silence_id} was ended already, by {by}; nothing more was journaled\n") == (
        again.returncode,
        again.stdout,
    )
    assert head == cli("head", "--db", str(db)).stdout


def test_the_cli_refuses_a_silence_already_over(tmp_path: Path) -> None:
    start = str(int(time.time()) - 7200)
    over = cli(
        "silence", "add", "--db", str(tmp_path / "o.db"), "--start", start, "--for", "1h",
        "--comment", "x",
    )  # fmt: skip
    assert 2 == over.returncode
    assert "would already be over" in over.stderr
    assert not (tmp_path / "o.db").exists()
    # --until 2h meant as "for two hours" is an age: two hours ago; the error says so
    aged = cli("silence", "add", "--db", str(tmp_path / "o.db"), "--until", "2h", "--comment", "x")
    assert 2 == aged.returncode
    assert "--until 2h reads as an age, 2h ago" in aged.stderr
    assert "give --for 2h" in aged.stderr
    assert not (tmp_path / "o.db").exists()
    # --start 30m meant as "in half an hour" is an age too: it began half an hour ago, and
    # --for 1h then ended it half an hour from now
    begun = cli(
        "silence", "add", "--db", str(tmp_path / "o.db"), "--start", "30m", "--for", "1h",
        "--comment", "x",
    )  # fmt: skip
    assert 2 == begun.returncode
    assert "--start 30m reads as an age, 30m ago; a silence from now needs no --start" in (
        begun.stderr
    )
    assert not (tmp_path / "o.db").exists()


async def test_a_silence_that_asks_for_it_runs_what_it_skipped_once_it_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock)
    async with host:
        silence = await fire_after_silence(host, 600)
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.controls.refresh()
        await host.wait_for_actions()
        assert [] == ran  # skipped while it holds
        clock.advance(601)
        await host.controls.refresh()
        await host.wait_for_actions()
        assert ["checkout"] == ran  # run once it ended
        await host.controls.refresh()
        await host.wait_for_actions()
    assert ["checkout"] == ran  # and only once
    journal = SqliteJournal(path, create=False)
    try:
        kinds = [e.kind for e in journal.read()]
        assert 1 == kinds.count("ActionRetried")
        assert "SilenceEnded" in kinds
        assert verify_replay(journal).ok
    finally:
        journal.close()
    assert silence.fire_after


async def test_a_fire_after_silence_ended_early_runs_what_it_skipped(tmp_path: Path) -> None:
    """Ended before its time (by the library, or by the CLI while no host ran), it used to
    drop what it skipped: the end was folded before any host looked at what it owed."""
    path = tmp_path / "early.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock)
    async with host:
        silence = await fire_after_silence(host, 3600)
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        await host.controls.end_silence(silence.id, by="ops")  # the deploy finished early
        await host.wait_for_actions()
        assert ["checkout"] == ran
        await host.controls.refresh()
        await host.wait_for_actions()
        assert ["checkout"] == ran  # once
        later = await fire_after_silence(host, 3600, comment="second deploy")
        await host.process({**OVERLOAD, "agent_id": "checkout", "again": True})
    ended = cli("silence", "end", "--db", str(path), later.id)
    assert [
        f"{later.id} ended by ops",
        "the actions it skipped run now: each host runs those of"
        " the agents it serves within a second, or when it starts",
    ] == ended.stdout.splitlines()
    host, ran = host_with_restart_handler(path, clock)
    async with host:  # the next host to start runs what the ended silence owes
        await host.wait_for_actions()
    assert ["checkout"] == ran
    journal = SqliteJournal(path, create=False)
    try:
        assert 2 == [e.kind for e in journal.read()].count("ActionRetried")
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_every_host_runs_what_a_fire_after_silence_skipped_of_its_agents(
    tmp_path: Path,
) -> None:
    """Two hosts on one journal, each serving one agent: the first to see the silence end
    ran its own agent's action and journaled the end, and the other's was never run."""
    path = tmp_path / "two.db"
    clock = ManualClock(start_ns=START_NS)
    first, ran_first = host_with_restart_handler(path, clock, only_agent="a")
    second, ran_second = host_with_restart_handler(path, clock, only_agent="b")
    async with first, second:
        await fire_after_silence(first, 600, agent=None)
        await second.controls.refresh()
        await first.process({**OVERLOAD, "agent_id": "a"})
        await second.process({**OVERLOAD, "agent_id": "b"})
        clock.advance(601)
        await first.controls.refresh()  # the first sees the end, and journals it
        await second.controls.refresh()
        await first.wait_for_actions()
        await second.wait_for_actions()
    assert (["a"], ["b"]) == (ran_first, ran_second)


async def test_an_action_a_silence_skipped_is_held_by_its_open_breaker_when_it_ends(
    tmp_path: Path,
) -> None:
    """It used to run through the breaker, which would have skipped a decision of it."""
    path = tmp_path / "breaker.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)
    ran: list[str] = []

    @host.action(
        "restart_service",
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=1, reset_after=3600.0),
    )
    async def restart(call: ActionCall) -> None:
        ran.append(call.event["instance"])
        raise RuntimeError("the orchestrator is down")

    async with host:
        await fire_after_silence(host, 600, agent=None, target="node-1", comment="upgrade")
        await host.process({**OVERLOAD, "instance": "node-1"})  # skipped: silenced
        await host.process({**OVERLOAD, "instance": "node-2"})  # runs, fails: breaker open
        await host.wait_for_actions()
        clock.advance(601)
        await host.controls.refresh()
        await host.wait_for_actions()
        letters = await host.read(dead_letters)
    assert ["node-2"] == ran
    assert [
        ("restart_service", "attempts_exhausted", 1),
        ("restart_service", "breaker_open", 0),
    ] == [
        (d.action, d.reason, d.attempts)
        for d in sorted(letters, key=lambda d: d.attempts, reverse=True)
    ]


async def test_what_a_silence_owes_is_not_run_inside_another_one(tmp_path: Path) -> None:
    """A second window, begun before the first ended, covers the decision when the first
    one's skipped action is owed: it is left to a person, not run inside that window."""
    path = tmp_path / "overlap.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock)
    async with host:
        await fire_after_silence(host, 600)
        await host.controls.add_silence(
            SilenceMatcher(agent="checkout"),
            starts_ns=START_NS + 500 * 10**9,
            ends_ns=START_NS + 1200 * 10**9,
            comment="second deploy",
            by="ops",
        )
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        clock.advance(601)
        await host.controls.refresh()
        await host.wait_for_actions()
        [letter] = await host.read(dead_letters)
    assert [] == ran
    assert ("restart_service", "silenced", 0) == (letter.action, letter.reason, letter.attempts)


async def test_what_a_silence_owes_is_held_by_one_set_elsewhere_as_it_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second window, journaled by another process while the host was running what the
    first one owed (after its look at the controls, before its commit), did not hold it:
    the owed action ran inside that window. Its batch is journaled against the controls
    it was gated by, refused once they moved on, and gated again."""
    from adaptive_runtime.runtime.ledger import Ledger

    path = tmp_path / "meanwhile.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = host_with_restart_handler(path, clock)
    original = Ledger.load_decision
    set_meanwhile: list[str] = []

    async def load_decision(self: Ledger, seq: int) -> object:
        if not set_meanwhile:  # another process, between the host's look and its commit
            matcher = SilenceMatcher(agent="checkout")
            set_meanwhile.append(silence_set_elsewhere(path, matcher, clock.now_ns(), hours=1))
        return await original(self, seq)

    async with host:
        await fire_after_silence(host, 600)
        await host.process({**OVERLOAD, "agent_id": "checkout"})
        clock.advance(601)
        monkeypatch.setattr(Ledger, "load_decision", load_decision)
        await host.controls.refresh()
        await host.wait_for_actions()
        [letter] = await host.read(dead_letters)
    assert set_meanwhile
    assert [] == ran
    assert ("restart_service", "silenced", 0) == (letter.action, letter.reason, letter.attempts)


async def test_an_action_a_silence_skipped_that_needs_approval_does_not_fire_after_it(
    tmp_path: Path,
) -> None:
    """It used to run when the silence ended, with no one asked."""
    path = tmp_path / "gated.db"
    clock = ManualClock(start_ns=START_NS)
    gate = ApprovalPolicy(actions=("restart_service",))
    host, ran = host_with_restart_handler(path, clock, approvals=gate)
    async with host:
        await fire_after_silence(host, 600)
        d = await host.process({**OVERLOAD, "agent_id": "checkout"})
        clock.advance(601)
        await host.controls.refresh()
        await host.wait_for_actions()
        assert [] == ran  # left to a person, as a dead letter
        [letter] = await host.read(dead_letters)
        assert ("restart_service", "needs_approval", 0) == (
            letter.action,
            letter.reason,
            letter.attempts,
        )
        await host.controls.refresh()  # the silence's end is not carried out twice
        assert 1 == len(await host.read(dead_letters))
        await host.controls.retry(d.seq, by="alice")  # the person's yes
        await host.wait_for_actions()
    assert ["checkout"] == ran
    journal = SqliteJournal(path, create=False)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_a_dry_run_host_starts_no_action_an_operator_or_an_earlier_host_left_owed(
    tmp_path: Path,
) -> None:
    """A dry-run host ran the handler of a dead letter an operator retried (and of an
    approved request, a silence's fire-after, an unfinished action): only decisions
    checked the flag. Now what is owed stays owed, journaled as asked, and the next host
    that runs handlers carries out each once."""
    from adaptive_runtime.engines.backoff import RetryPolicy
    from adaptive_runtime.records import ApprovalPolicy

    path = tmp_path / "owed.db"
    clock = ManualClock(start_ns=START_NS)
    gate = ApprovalPolicy(actions=("scale_up_immediate",), timeout_s=7200.0)
    failing = Host(path, durability="normal", clock=clock, approvals=gate)
    hung = asyncio.Event()  # set once the hung agent's handler runs

    @failing.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=1.0))
    async def broken(call: ActionCall) -> None:
        if call.event.get("agent_id") == "hung":
            hung.set()
            await asyncio.Event().wait()  # still running when the host stops: left unfinished
        raise ConnectionError("the node does not answer")

    @failing.action("scale_up_immediate")
    async def scale_unreached(call: ActionCall) -> None:
        raise AssertionError("it waits for approval")

    await failing.start()
    try:
        dead = await failing.process({**OVERLOAD, "agent_id": "dead"})
        gated = await failing.process({**OVERLOAD, "agent_id": "gated", "severity": 0.99})
        await fire_after_silence(failing, 600, agent="quiet")
        await failing.process({**OVERLOAD, "agent_id": "quiet"})
        await failing.process({**OVERLOAD, "agent_id": "hung"})
        await failing.agent("dead").wait_for_actions()
        # its handler hangs: stopping the host interrupts it. It starts after the commit
        # of its decision, whenever the loop gets to it: wait for that, not for the other
        # agents' actions (the timeout only bounds a failure)
        await asyncio.wait_for(hung.wait(), timeout=30)
        assert "scale_up_immediate" == gated.action
    finally:
        await failing.stop(actions="interrupt")
    clock.advance(601)  # the silence has ended

    dry, ran = host_with_restart_handler(path, clock, dry_run=True)

    @dry.action("scale_up_immediate")
    async def scale(call: ActionCall) -> None:
        ran.append(str(call.event.get("agent_id")))

    async with dry:
        await dry.controls.retry(dead.seq, by="ops")
        await dry.controls.answer(gated.seq, approve=True, by="ops")
        await dry.controls.refresh()
        await dry.wait_for_actions()
        assert [] == ran
    assert [] == ran
    listed = cli("actions", "--db", str(path), "--json")
    assert 0 == listed.returncode, listed.stderr
    owed = sorted((a["agent"], a["action"]) for a in json.loads(listed.stdout))
    assert [
        ("dead", "restart_service"),
        ("gated", "scale_up_immediate"),
        ("hung", "restart_service"),
        ("quiet", "restart_service"),
    ] == owed

    real, ran = host_with_restart_handler(path, clock)

    @real.action("scale_up_immediate")
    async def scale_now(call: ActionCall) -> None:
        ran.append(str(call.event.get("agent_id")))

    async with real:
        for agent in ("dead", "gated", "quiet", "hung"):
            await real.agent(agent).load()
        await real.controls.refresh()
        await real.wait_for_actions()
    assert ["dead", "gated", "hung", "quiet"] == sorted(ran)
    journal = SqliteJournal(path, create=False)
    try:
        assert verify_replay(journal).ok
        assert "retried by ops" in [a.detail for a in explain(journal, dead.seq).attempts]
    finally:
        journal.close()
