"""Approval gates and dead letters: journaled requests, carried out once, across restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli as run_cli
from journal_support import assert_replays

from adaptive_runtime import ConfigurationError, Host, InvalidEventError, ManualClock
from adaptive_runtime.engines.backoff import RetryPolicy
from adaptive_runtime.errors import AlreadyAnsweredError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections.audit import explain
from adaptive_runtime.records import ApprovalGiven, ApprovalPolicy, to_pending
from adaptive_runtime.runtime.actions import ActionCall

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
TIMEOUT = {"type": "timeout", "severity": 0.45, "latency_ms": 4200}
START_NS = 1_764_000_000 * 10**9
POLICY = ApprovalPolicy(actions=("restart_service",), timeout_s=600.0)
WORKER = Path(__file__).with_name("approval_worker.py")


def gated_host(
    path: Path, clock: ManualClock, durability: str = "normal", **kwargs: Any
) -> tuple[Host, list[int]]:
    host = Host(path, durability=durability, clock=clock, approvals=POLICY, **kwargs)  # type: ignore[arg-type]
    ran: list[int] = []

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    @host.action("cache_warmup")
    async def warm(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    return host, ran


def details(path: Path, seq: int) -> list[str]:
    journal = SqliteJournal(path, create=False)
    try:
        return [a.detail for a in explain(journal, seq).attempts]
    finally:
        journal.close()


async def test_an_action_waits_for_approval_then_runs_once(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    host, ran = gated_host(path, ManualClock(start_ns=START_NS))
    async with host:
        gated = await host.process(OVERLOAD)
        free = await host.process(TIMEOUT)  # cache_warmup: not in the policy
        await host.wait_for_actions()
        assert [free.seq] == ran
        assert [gated.seq] == [p.decision_seq for p in host.controls.pending.values()]
        await host.controls.answer(
            gated.seq, approve=True, by="alice", comment="checked the graphs"
        )
        await host.wait_for_actions()
        assert [free.seq, gated.seq] == ran
        assert {} == host.controls.pending
        with pytest.raises(AlreadyAnsweredError, match="approved by alice"):
            await host.controls.answer(gated.seq, approve=True, by="alice")
    assert [
        "awaiting approval: restart_service needs approval",
        "approved by alice: checked the graphs",
        "started",
        "succeeded",
    ] == details(path, gated.seq)
    assert_replays(path)


async def test_a_policy_written_with_lists_gates_as_the_toml_one_does(tmp_path: Path) -> None:
    """ApprovalPolicy(actions=["restart_service"]), as a program writes it, stopped the
    host's start ("this ApprovalPolicySet would not read back as written"); it is kept
    as the tuples a journaled policy reads back as, and gates the same."""
    path = tmp_path / "lists.db"
    policy = ApprovalPolicy(actions=["restart_service"], risks=["critical"], timeout_s=600.0)  # type: ignore[arg-type]
    host = Host(path, durability="normal", clock=ManualClock(), approvals=policy)

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        raise AssertionError("it waits for approval")

    async with host:
        gated = await host.process(OVERLOAD)
        await host.wait_for_actions()
        assert [gated.seq] == [p.decision_seq for p in host.controls.pending.values()]
    assert (
        ApprovalPolicy(actions=("restart_service",), risks=("critical",), timeout_s=600.0) == policy
    )


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: ApprovalPolicy(actions="restart_service"), "actions must be a list of names"),
        (lambda: Host("x.db", approvals=ApprovalPolicy(risks=("extreme",))), "found 'extreme'"),
        (lambda: Host("x.db", approvals=ApprovalPolicy(actions=("",))), "non-empty names"),
    ],
)
def test_a_policy_that_could_never_match_is_refused(make: Any, says: str) -> None:
    """A bare string matched by substring ('start' needed approval under 'restart'), and
    an unknown risk or an empty name gated nothing, silently."""
    with pytest.raises(ConfigurationError, match=says):
        make()


@pytest.mark.parametrize("comment", ["line one\nFAKE LINE", "x" * 1001])
async def test_an_answer_s_comment_is_bounded_and_printable_like_a_silence_s(
    tmp_path: Path, comment: str
) -> None:
    """An approval's comment took any text of any length (a silence's is printable and at
    most 1,000 characters); it is refused, and the request stays pending."""
    path = tmp_path / "a.db"
    host, ran = gated_host(path, ManualClock(start_ns=START_NS))
    async with host:
        gated = await host.process(OVERLOAD)
        await host.wait_for_actions()
        head = host.journal.head()
        with pytest.raises(InvalidEventError, match="comment"):
            await host.controls.answer(gated.seq, approve=True, by="alice", comment=comment)
        assert head == host.journal.head()
        assert [gated.seq] == [p.decision_seq for p in host.controls.pending.values()]
    assert [] == ran


def test_approve_from_the_cli_refuses_a_comment_that_is_not_one_printable_line(
    tmp_path: Path,
) -> None:
    """The CLI's answer took the comment as given, as the library's did."""
    out = cli("approve", "7", "--db", str(tmp_path / "none.db"), "--comment", "ok\nFAKE LINE")
    assert 2 == out.returncode
    assert "--comment must be printable text" in out.stderr


async def test_a_denied_or_unanswered_action_never_runs(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = gated_host(path, clock)
    async with host:
        denied = await host.process(OVERLOAD)
        await host.controls.answer(denied.seq, approve=False, by="bob", comment="not now")
        unanswered = await host.process(OVERLOAD)
        clock.advance(599)
        await host.controls.refresh()
        assert [unanswered.seq] == [p.decision_seq for p in host.controls.pending.values()]
        clock.advance(2)
        await host.controls.refresh()
        await host.wait_for_actions()
        assert {} == host.controls.pending
    assert [] == ran
    assert "denied by bob: not now" in details(path, denied.seq)
    assert "denied by timeout: no answer within 600 s: denied by default" in details(
        path, unanswered.seq
    )


async def test_a_retry_of_an_action_waiting_for_approval_says_how_to_answer_it(
    tmp_path: Path,
) -> None:
    """`retry SEQ` of a decision whose action waits for approval said only "no dead letter
    at seq N; `actions --failed` lists them", as if the seq were wrong; approve of a dead
    letter's seq already named the other list. Now retry and dismiss name it too."""
    path = tmp_path / "r.db"
    host, ran = gated_host(
        path, ManualClock(start_ns=time.time_ns())
    )  # open now, by the CLI's clock
    said = "its restart_service waits for approval: `approve {0}` runs it, `deny {0}` drops it"
    async with host:
        d = await host.process(OVERLOAD)
        head = host.journal.head()
        for request in (host.controls.retry, host.controls.dismiss):
            with pytest.raises(LookupError) as caught:
                await request(d.seq, by="ops")
            assert str(caught.value).strip("'\"").endswith(said.format(d.seq))
        assert head == host.journal.head()
    for command in ("retry", "dismiss"):
        refused = cli(command, str(d.seq), "--db", str(path))
        assert 2 == refused.returncode
        assert f"no dead letter at seq {d.seq}; {said.format(d.seq)}" in refused.stderr
    assert [] == ran


async def test_an_answer_after_the_timeout_was_journaled_is_told_it_timed_out(
    tmp_path: Path,
) -> None:
    """Once the host had journaled a request's timeout, a late answer was told "no action
    is waiting" (the command line) or "no approval is pending" (the API's 404), as if it
    named the wrong seq. It is now told the request timed out, and when."""
    path = tmp_path / "t.db"
    clock = ManualClock(start_ns=START_NS)
    host, ran = gated_host(path, clock)
    async with host:
        d = await host.process(OVERLOAD)
        clock.advance(POLICY.timeout_s + 1)
        await host.controls.refresh()  # journals the denial by timeout
        head = host.journal.head()
        with pytest.raises(AlreadyAnsweredError, match="timed out unanswered") as late:
            await host.controls.answer(d.seq, approve=True, by="alice")
        assert ("denied", "timeout") == (late.value.answer, late.value.by)
        assert head == host.journal.head()
    said = cli("approve", str(d.seq), "--db", str(path))
    assert 2 == said.returncode
    assert f"the approval request for the decision at seq {d.seq} timed out unanswered" in (
        said.stderr
    )
    assert [] == ran


@pytest.mark.parametrize(
    ("policy", "gated"),
    [
        (ApprovalPolicy(risks=("high",)), True),
        (ApprovalPolicy(risks=("critical",)), False),
        (ApprovalPolicy(below_confidence=0.8), True),
        (ApprovalPolicy(below_confidence=0.5), False),
        (ApprovalPolicy(actions=("rollback_deployment",)), False),
    ],
)
async def test_the_policy_gates_by_name_risk_or_confidence_band(
    tmp_path: Path, policy: ApprovalPolicy, gated: bool
) -> None:
    host = Host(tmp_path / "p.db", durability="normal", clock=ManualClock(), approvals=policy)
    ran: list[int] = []

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append(call.decision.seq)

    async with host:
        d = await host.process(OVERLOAD)  # restart_service, high risk, confidence 0.7831
        await host.wait_for_actions()
    assert ("restart_service", "high") == (d.action, d.risk)
    assert ([] if gated else [d.seq]) == ran


def run_worker(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"USER": "carol"})


def test_a_request_past_its_timeout_is_denied_and_a_late_yes_runs_nothing(tmp_path: Path) -> None:
    """A request whose timeout passed while no host ran was listed as waiting, `approve`
    took it, and the next start ran the year-old action. Now the command line says it
    timed out, and a yes journaled after the deadline (by any writer) is a denial."""
    db = tmp_path / "late.db"
    decided = run_worker(db, "decide-long-ago")
    seq = int(decided.stdout.split()[0])
    listed = cli("approvals", "--db", str(db))
    assert "No action is waiting for approval." in listed.stdout
    assert "1 request timed out unanswered: denied by default" in listed.stdout
    assert "approval" not in cli("actions", "--db", str(db)).stdout  # no longer waits
    refused = cli("approve", str(seq), "--db", str(db))
    assert 2 == refused.returncode
    assert f"the approval request for the decision at seq {seq} timed out at" in refused.stderr
    journal = SqliteJournal(db, create=False)  # a late yes that some other writer journaled
    try:
        yes = ApprovalGiven(agent="default", decision_seq=seq, approve=True, by="dave", comment="")
        journal.append([to_pending("~host", yes, time.time_ns())])
    finally:
        journal.close()
    served = run_worker(db, "serve")
    assert {"ran": [], "pending": []} == json.loads(served.stdout), served.stderr
    said = "approved by dave after its timeout: denied by default"
    assert any(said in detail for detail in details(db, seq)), details(db, seq)


async def test_a_host_not_serving_the_agent_lists_no_timed_out_request(tmp_path: Path) -> None:
    """Only the host serving an agent journals its timeouts; another host (only_agent)
    listed a request past its deadline as waiting, and took an answer to it."""
    path, clock = tmp_path / "o.db", ManualClock(start_ns=START_NS)
    host, _ = gated_host(path, clock)
    async with host:
        decision = await host.process(OVERLOAD)
    clock.advance(POLICY.timeout_s + 1)
    other = Host(path, clock=clock, approvals=POLICY, only_agent="elsewhere")
    async with other:
        assert [] == await other.controls.waiting()
        with pytest.raises(LookupError, match="no approval is pending"):
            await other.controls.answer(decision.seq, approve=True, by="ops")


def test_an_approval_pending_across_kill_9_then_approved_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    decided = run_worker(db, "decide-then-die")
    assert -signal.SIGKILL == decided.returncode, decided.stderr
    seq = int(decided.stdout.split()[0])
    listed = cli("approvals", "--db", str(db), "--json")
    assert [seq] == [p["decision_seq"] for p in json.loads(listed.stdout)]
    # `actions` listed nothing unfinished with no word of the request waiting
    assert cli("actions", "--db", str(db)).stdout.endswith(
        "\n1 action waits for approval besides: `approvals` lists them.\n"
    )
    approved = cli("approve", str(seq), "--db", str(db), "--comment", "go")
    assert 0 == approved.returncode, approved.stderr
    assert "approved by carol" in approved.stdout
    first = run_worker(db, "serve")
    assert {"ran": [seq], "pending": []} == json.loads(first.stdout)
    second = run_worker(db, "serve")  # the approval was carried out: nothing runs again
    assert {"ran": [], "pending": []} == json.loads(second.stdout)
    shown = cli("explain", str(seq), "--db", str(db))
    assert "approved by carol: go" in shown.stdout
    again = cli("approve", str(seq), "--db", str(db))
    assert 2 == again.returncode
    assert "was already answered: approved by carol" in again.stderr


async def test_dead_letters_are_listed_retried_and_dismissed(tmp_path: Path) -> None:
    path = tmp_path / "dl.db"
    clock = ManualClock(start_ns=START_NS)
    host = Host(path, durability="normal", clock=clock)
    healthy = {"now": False}
    ran: list[int] = []

    @host.action("restart_service", retry=RetryPolicy(max_attempts=2, base_delay=1.0))
    async def restart(call: ActionCall) -> None:
        if not healthy["now"]:
            raise ConnectionError("the node does not answer")
        ran.append(call.decision.seq)

    async with host:
        first = await host.process({**OVERLOAD, "agent_id": "a"})
        second = await host.process({**OVERLOAD, "agent_id": "b"})
        await host.wait_for_actions()
        letters = await host.controls.dead_letters()
        assert [(first.seq, "a", 2), (second.seq, "b", 2)] == [
            (d.decision_seq, d.agent, d.attempts) for d in letters
        ]
        healthy["now"] = True
        await host.controls.retry(first.seq, by="ops")
        await host.wait_for_actions()
        assert [first.seq] == ran
        await host.controls.dismiss(second.seq, by="ops")
        assert [] == await host.controls.dead_letters()
        with pytest.raises(AlreadyAnsweredError, match="dismissed by ops"):
            await host.controls.retry(second.seq, by="ops")
        await host.controls.dismiss(second.seq, by="ops")  # sent again: taken already
        await host.controls.retry(first.seq, by="ops")  # sent again, carried out: the same
        await host.wait_for_actions()
        assert [first.seq] == ran  # and nothing ran again
        with pytest.raises(LookupError):
            await host.controls.retry(999, by="ops")  # no such dead letter, ever
    assert "retried by ops" in details(path, first.seq)
    listed = cli("actions", "--failed", "--db", str(path))
    assert "No dead letters" in listed.stdout


async def test_a_retry_and_a_dismissal_at_once_take_one(tmp_path: Path) -> None:
    """Through the host (the HTTP API), a retry and a dismissal sent at once were both
    journaled and both answered as done. Now one is taken, and the other is told which."""
    path = tmp_path / "dl2.db"
    # at "full" every read and append is a hop to the journal's thread: both requests look
    # the letter up before either is journaled, as two HTTP requests at once can
    host = Host(path, durability="full", clock=ManualClock(start_ns=START_NS))
    ran: list[int] = []
    failing = {"now": True}

    @host.action("restart_service", retry=RetryPolicy(max_attempts=1))
    async def restart(call: ActionCall) -> None:
        if failing["now"]:
            raise ConnectionError("the node does not answer")
        ran.append(call.decision.seq)

    async with host:
        decided = await host.process(OVERLOAD)
        await host.wait_for_actions()
        failing["now"] = False
        results = await asyncio.gather(
            host.controls.retry(decided.seq, by="alice"),
            host.controls.dismiss(decided.seq, by="bob"),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, AlreadyAnsweredError)]
        assert ([None], 1) == ([r for r in results if r is None], len(refused)), results
        taken = "dismissed" if results[0] is refused[0] else "retried"
        assert (taken, "bob" if taken == "dismissed" else "alice") == (
            refused[0].answer,
            refused[0].by,
        )
        await host.wait_for_actions()
        assert ([decided.seq] if taken == "retried" else []) == ran
        assert [] == await host.controls.dead_letters()
    assert_replays(path)


def test_a_dead_letter_retried_from_the_cli_runs_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    failed = run_worker(db, "fail")
    seq = int(failed.stdout.split()[0])
    listed = cli("actions", "--failed", "--db", str(db))
    assert "attempts_exhausted" in listed.stdout
    assert 0 == cli("retry", str(seq), "--db", str(db)).returncode
    first = run_worker(db, "serve")
    assert [seq] == json.loads(first.stdout)["ran"]
    second = run_worker(db, "serve")
    assert [] == json.loads(second.stdout)["ran"]
    assert "No dead letters" in cli("actions", "--failed", "--db", str(db)).stdout


def test_a_dead_letter_takes_one_retry_or_dismissal(tmp_path: Path) -> None:
    """`retry` by alice and then `dismiss` by bob while no host ran both said they were
    taken; the dismissal took the letter off the list, and the next host dropped the
    retry: alice was told her retry would run, and it never did. Now the second request
    is refused, naming the first, and the retry runs."""
    db = tmp_path / "d.db"
    seq = int(run_worker(db, "fail").stdout.split()[0])
    assert 0 == cli("retry", str(seq), "--db", str(db), "--by", "alice").returncode
    refused = cli("dismiss", str(seq), "--db", str(db), "--by", "bob")
    assert 2 == refused.returncode
    assert (
        f"the dead letter of the decision at seq {seq} was already answered: retried by alice"
        in refused.stderr
    )
    assert 0 == cli("retry", str(seq), "--db", str(db), "--by", "alice").returncode  # a retry
    assert [seq] == json.loads(run_worker(db, "serve").stdout)["ran"]
    again = cli("retry", str(seq), "--db", str(db), "--by", "alice")  # once carried out too
    assert (0, f"seq {seq} was retried by alice already\n") == (again.returncode, again.stdout)
    refused = cli("dismiss", str(seq), "--db", str(db), "--by", "bob")
    assert (2, True) == (refused.returncode, "retried by alice" in refused.stderr)
    journal = SqliteJournal(db, create=False)
    try:
        assert ["DeadLetterRetry"] == [
            e.kind for e in journal.read("~host") if e.kind.startswith("DeadLetter")
        ]
    finally:
        journal.close()


async def test_a_second_answer_is_refused_and_told_the_first_which_stands(tmp_path: Path) -> None:
    """`approve` and then `deny` while no host ran both said they were journaled, and the
    host carried out the first: bob was told his denial was taken, and the action ran.
    Now one answer per request is journaled (under its key), and the second is refused."""
    path = tmp_path / "two.db"
    clock = ManualClock(start_ns=time.time_ns())  # the command line answers at the wall time
    host, ran = gated_host(path, clock)
    async with host:
        gated = await host.process(OVERLOAD)
    assert 0 == cli("approve", str(gated.seq), "--db", str(path), "--by", "alice").returncode
    listed = cli("approvals", "--db", str(path))  # answered: no longer waiting for one
    assert "No action is waiting for approval." in listed.stdout
    assert f"seq {gated.seq} was approved by alice; the host serving" in listed.stdout
    assert [] == json.loads(cli("approvals", "--db", str(path), "--json").stdout)
    refused = cli("deny", str(gated.seq), "--db", str(path), "--by", "bob")
    assert 2 == refused.returncode
    said = f"the approval request for the decision at seq {gated.seq} was already answered:"
    assert f"{said} approved by alice. The first answer stands" in refused.stderr
    journal = SqliteJournal(path, create=False)
    try:
        assert 1 == len(list(journal.read(kind="ApprovalGiven")))
    finally:
        journal.close()
    host, ran = gated_host(path, clock)
    async with host:
        await host.wait_for_actions()
        assert [gated.seq] == ran
        with pytest.raises(AlreadyAnsweredError, match="approved by alice"):  # carried out
            await host.controls.answer(gated.seq, approve=False, by="bob")
    again = cli("deny", str(gated.seq), "--db", str(path), "--by", "bob")
    assert (2, True) == (again.returncode, "approved by alice" in again.stderr)
    same = cli("approve", str(gated.seq), "--db", str(path), "--by", "alice")  # a retry
    assert (0, f"seq {gated.seq} was approved by alice already\n") == (
        same.returncode,
        same.stdout,
    )
    assert_replays(path)


@pytest.mark.parametrize("first", [True, False], ids=["alice-approves", "alice-denies"])
async def test_two_answers_at_once_take_the_first_and_refuse_the_other(
    tmp_path: Path, first: bool
) -> None:
    """Two people answering through the host (the HTTP API) at once both found the request
    waiting, both answers were journaled and both callers told so; the host carried out
    the first. Now the second is AlreadyAnsweredError (HTTP 409), naming the first."""
    path = tmp_path / "race.db"
    host, ran = gated_host(path, ManualClock(start_ns=START_NS))
    async with host:
        gated = await host.process(OVERLOAD)
        answers = {"alice": first, "bob": not first}
        results = await asyncio.gather(
            *(host.controls.answer(gated.seq, approve=yes, by=by) for by, yes in answers.items()),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, AlreadyAnsweredError)]
        assert [None] == [r for r in results if r is None]  # one answer taken...
        assert 1 == len(refused)  # ...the other told which one
        winner = "bob" if results[0] is refused[0] else "alice"
        assert (gated.seq, answers[winner], winner) == (
            refused[0].decision_seq,
            refused[0].answer == "approved",
            refused[0].by,
        )
        await host.wait_for_actions()
        assert ([gated.seq] if answers[winner] else []) == ran
    verdict = "approved" if answers[winner] else "denied"
    assert details(path, gated.seq)[1].startswith(f"{verdict} by {winner}")
    assert_replays(path)


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_an_approval_request_whose_answer_was_lost_can_be_approved(
    tmp_path: Path, durability: str
) -> None:
    """A gated decision journaled while its caller heard an error (the answer lost): once
    the host has found it, at the agent's next decision, its request is pending here, and
    an approval runs the action once."""
    from journal_support import FaultyJournal

    from adaptive_runtime.errors import JournalUnavailableError

    path = tmp_path / "l.db"
    host, ran = gated_host(path, ManualClock(start_ns=START_NS), durability)
    async with host:
        journal = FaultyJournal.installed_in(host)
        journal.armed = ("after", "default")
        with pytest.raises(JournalUnavailableError):
            await host.process({**OVERLOAD, "id": "lost"})
        assert {} == host.controls.pending
        free = await host.process(TIMEOUT)
        gated = await host.process({**OVERLOAD, "id": "lost"})  # the journaled decision
        assert [gated.seq] == [p.decision_seq for p in host.controls.pending.values()]
        await host.controls.answer(gated.seq, approve=True, by="alice")
        await host.wait_for_actions()
        assert sorted([free.seq, gated.seq]) == sorted(ran)
    assert_replays(path)


async def test_a_host_that_takes_an_agent_over_carries_out_the_approval_its_last_host_left(
    tmp_path: Path,
) -> None:
    """Two hosts on one file: the one serving an agent dies (its locks go, as when its
    process ends) after an operator approved its pending action; the other, which left
    the approval to it while it lived, takes the agent over on its next event for it, and
    runs the approved action, once."""
    path, clock = tmp_path / "two.db", ManualClock(start_ns=START_NS)
    first, ran_first = gated_host(path, clock)
    second, ran_second = gated_host(path, clock)
    await first.start()
    await second.start()
    try:
        decision = await first.agent("web").process(OVERLOAD)
        answer = ApprovalGiven(
            agent="web", decision_seq=decision.seq or 0, approve=True, by="ops", comment=""
        )
        await second.require_worker().append([to_pending("~host", answer, clock.now_ns())])
        await second.controls.refresh()  # web is the first host's: the approval is left to it
        assert [] == ran_second
        first.require_worker().journal._locks.close()  # type: ignore[attr-defined]  # it dies
        await second.agent("web").process({"type": "timeout", "severity": 0.2})
        await second.wait_for_actions()
        assert 1 == ran_second.count(decision.seq)  # beside the new event's own action
        assert [] == ran_first
    finally:
        await second.stop()
    assert any("approved by ops" in d for d in details(path, decision.seq or 0))


async def test_a_host_whose_approval_policy_another_host_replaced_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The approval policy journaled last is every host's: a host whose own was replaced
    by a later host's warns once, at its next look at the controls."""
    path = tmp_path / "two.db"
    mine = ApprovalPolicy(actions=("restart_service",))
    theirs = ApprovalPolicy(actions=("rollback_deployment",))
    a = Host(path, durability="normal", approvals=mine)
    async with a, Host(path, durability="normal", approvals=theirs):
        caplog.clear()
        await a.controls.refresh()
        await a.controls.refresh()
        assert theirs == a.controls.approvals
    told = [r.getMessage() for r in caplog.records if "replaces this host's" in r.getMessage()]
    assert 1 == len(told)
    assert "rollback_deployment" in told[0]
    assert "restart_service" in told[0]
