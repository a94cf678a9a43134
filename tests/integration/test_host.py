"""The Host: many agents over one journal, loaded lazily, with shared actions and one bus."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from journal_support import FaultyJournal, answered_in_commit_order, assert_replays, queued_behind

from adaptive_runtime import (
    ActionCall,
    ApprovalPolicy,
    BreakerPolicy,
    ConfigurationError,
    Decision,
    DuplicateEventError,
    FleetPolicy,
    Host,
    InvalidEventError,
    InvalidRulesError,
    LearningPolicy,
    ManualClock,
    RetryPolicy,
    Runtime,
    RuntimeNotStartedError,
    Verification,
)
from adaptive_runtime.errors import AgentOwnedElsewhere
from adaptive_runtime.journal import MemoryJournal, SqliteJournal, has_ownership, is_journal
from adaptive_runtime.projections import rebuild, verify_replay
from adaptive_runtime.records import Rule, RulesChanged, to_pending

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


def host_at(path: Path | str, **kwargs: object) -> Host:
    kwargs.setdefault("clock", ManualClock())
    return Host(path, durability="normal", **kwargs)  # type: ignore[arg-type]


async def test_events_are_routed_by_agent_id_into_one_stream_each(tmp_path: Path) -> None:
    """host.process sends each event to the agent its agent_id names, or to the default."""
    path = tmp_path / "fleet.db"
    async with host_at(path, default_agent="edge") as host:
        for name in ("a", "b", "a", None):
            event = dict(OVERLOAD) if name is None else {**OVERLOAD, "agent_id": name}
            await host.process(event)
        assert ["a", "b", "edge"] == await host.agents()
        assert 2 == host.agent("a").state.decisions
    journal = SqliteJournal(path, create=False)
    try:
        assert {"a": 4, "b": 2, "edge": 2} == {s: journal.stream_head(s) for s in journal.streams()}
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_journal_urls_open_the_same_backends(tmp_path: Path) -> None:
    """A plain path, sqlite:///path and memory: all work; an unknown scheme is refused."""
    for url in (str(tmp_path / "a.db"), f"sqlite:///{tmp_path / 'b.db'}", "memory:"):
        async with host_at(url) as host:
            assert "restart_service" == (await host.process(OVERLOAD)).action
    assert (tmp_path / "b.db").exists()
    with pytest.raises(ConfigurationError, match="unknown journal URL scheme 'mysql'"):
        await host_at("mysql://x/y").start()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://u:s3cret@[::1/db", "Invalid IPv6 URL"),
        ("postgresql://u:s3cret@db:99999/ops", "Port out of range"),
        (
            "postgresql://db/ops?password=s3cret&colour=blue",
            'invalid URI query parameter: "colour"',
        ),
    ],
)
async def test_a_postgresql_url_libpq_cant_read_is_a_configuration_error(
    url: str, said: str
) -> None:
    """A bad port or IPv6 address raised a bare ValueError from the library, and an unknown
    parameter a JournalError ("ProgrammingError", exit 3, as if the server had failed):
    each is now a ConfigurationError that names the URL, its password masked."""
    with pytest.raises(ConfigurationError) as raised:
        await host_at(url).start()
    assert said in str(raised.value)
    assert "can't read the journal URL" in str(raised.value)
    assert "s3cret" not in str(raised.value)


class _Wrapped:
    """A journal that hands every call on (a metrics or fault-injecting wrapper)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_journal_handing_calls_on_through_getattr_is_taken_on_every_python() -> None:
    """From Python 3.12, isinstance() against the Journal protocol refused such a wrapper
    (members looked up statically); CI runs this on 3.11 and on the newest Python too."""
    wrapped = _Wrapped(MemoryJournal())
    assert is_journal(wrapped)
    assert not has_ownership(wrapped)  # a memory journal is not shared
    async with Host(wrapped, clock=ManualClock()) as host:  # type: ignore[arg-type]
        assert "restart_service" == (await host.process(OVERLOAD)).action
    members = (
        "owner",
        "lease_seconds",
        "claims_are_local",
        "claim",
        "claims",
        "renew",
        "release",
        "orphans",
    )
    assert has_ownership(_Wrapped(type("Claims", (), dict.fromkeys(members))()))
    assert not is_journal(object())
    assert not has_ownership(object())


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        (("resource_pressure", None, 0, "restart\nnow", "r"), "action must be printable text"),
        (("resource_pressure", None, 0, "a", "r" * 300), "reason is 300 characters long"),
        (("resource_pressure", None, 0, "a\udcff", "r"), "action must be printable text"),
    ],
)
async def test_a_rule_whose_decisions_no_record_could_hold_is_refused(
    tmp_path: Path, rule: tuple[object, ...], says: str
) -> None:
    """Its decisions were journaled (a lone surrogate raised UnicodeEncodeError instead),
    and then no import took the journal. Rules journaled before the check still decide."""
    with pytest.raises(InvalidRulesError, match=f"rule 0: {says}"):
        Host(tmp_path / "a.db", rules=[rule])
    path = tmp_path / "old.db"
    journal = SqliteJournal(path)
    old = Rule(context="resource_pressure", risk=None, min_conf=0.0, action="a", reason="r" * 300)
    journal.append([to_pending("default", RulesChanged(rules=(old,), ruleset="old"), 1)])
    journal.close()
    async with host_at(path) as host:
        assert "r" * 300 == (await host.process(OVERLOAD)).reason


@pytest.mark.parametrize(
    ("settings", "error", "says"),
    [
        ({"journal": 5}, ConfigurationError, "journal must be a path, a URL"),
        ({"rules": 5}, InvalidRulesError, "rules must be a list of rules, not int"),
        ({"checkpoint_every": True}, ConfigurationError, "checkpoint_every must be"),
        # named as given: it said "agent_id must be", a setting Host() does not have
        ({"default_agent": ""}, ConfigurationError, "^default_agent must be a non-empty string"),
    ],
)
def test_a_host_setting_of_the_wrong_kind_is_refused_where_it_is_given(
    settings: dict[str, object], error: type[Exception], says: str
) -> None:
    """Host(5) failed at start() with AttributeError, rules=5 raised TypeError, and
    checkpoint_every=True was taken as 1."""
    with pytest.raises(error, match=says):
        Host(**settings)  # type: ignore[arg-type]


async def test_agents_load_lazily_and_idle_ones_are_evicted_then_rebuilt(tmp_path: Path) -> None:
    """Past max_loaded_agents, idle agents are snapshotted and dropped, and reload exactly."""
    path = tmp_path / "fleet.db"
    async with host_at(path, max_loaded_agents=2) as host:
        assert [] == host.loaded_agents()
        for i in range(5):
            await host.agent(f"agent-{i}").process(OVERLOAD)
        assert ["agent-3", "agent-4"] == host.loaded_agents()
        assert 3 == host.metrics()["agents_evicted"]
        assert list(host.journal.snapshots("agent-0"))  # snapshotted before it was dropped
        again = await host.agent("agent-0").load()
        assert (1, 1) == (again.events, again.decisions)
        await host.agent("agent-0").process(OVERLOAD)
        assert 2 == host.agent("agent-0").state.decisions
        full = rebuild(host.journal, "agent-0").state
        assert full == host.agent("agent-0").state
    with pytest.raises(ConfigurationError, match="max_loaded_agents"):
        host_at(path, max_loaded_agents=0)


async def test_a_handle_of_an_unloaded_agent_says_how_to_load_it(tmp_path: Path) -> None:
    """Reading an unloaded agent's state is a clear error, not a silent empty state."""
    async with host_at(tmp_path / "fleet.db") as host:
        with pytest.raises(ConfigurationError, match=r"await agent.load\(\)"):
            _ = host.agent("never-used").state


async def test_host_wide_and_per_agent_handlers_with_breakers_per_agent(tmp_path: Path) -> None:
    """A host-wide handler serves every agent, an agent's own wins, and breakers stay per agent."""
    calls: list[tuple[str, str]] = []
    # critical pressure: scale_up_immediate at any confidence; with alternatives off, the
    # walk alone chooses, so a failure does not move the next decision elsewhere
    host = host_at(tmp_path / "fleet.db", learning=LearningPolicy(alternatives=False))
    critical = {
        "type": "service_overload",
        "severity": 0.95,
        "cpu": 99,
        "memory": 99,
        "error_rate": 1.0,
    }

    @host.action(
        "scale_up_immediate",
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=1, reset_after=3600),
    )
    async def everyone(call: ActionCall) -> None:
        calls.append(("host", call.key.split(":")[0]))
        if call.key.startswith("bad:"):
            raise ConnectionError("refused")

    @host.agent("special").action("scale_up_immediate")
    async def special(call: ActionCall) -> None:
        calls.append(("special", call.key.split(":")[0]))

    async with host:
        for agent in ("bad", "good", "special", "bad", "good"):
            await host.agent(agent).process(critical)
            await host.wait_for_actions()
        assert "open" == host.agent("bad").state.breakers["scale_up_immediate"].status
        assert "closed" == host.agent("good").state.breakers["scale_up_immediate"].status
        assert 1 == host.agent("bad").state.actions_skipped  # its second decision was skipped
    assert [
        ("host", "bad"),
        ("host", "good"),
        ("special", "special"),
        ("host", "good"),
    ] == calls


async def test_restart_resumes_unfinished_actions_of_every_agent(tmp_path: Path) -> None:
    """Actions interrupted in three agents resume on the next start, before any agent is used."""
    path = tmp_path / "fleet.db"
    release = asyncio.Event()
    attempts: list[tuple[str, int]] = []

    def register(host: Host) -> None:
        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            attempts.append((call.key.split(":")[0], call.attempt))
            await release.wait()

    first = host_at(path)
    register(first)
    async with first:
        for agent in ("a", "b", "c", "idle"):
            event = OVERLOAD if agent != "idle" else {"type": "timeout", "severity": 0.4}
            await first.agent(agent).process(event)
        await asyncio.sleep(0)
        await first.stop(actions="interrupt")
    release.set()
    second = host_at(path)
    register(second)
    async with second:
        # loaded to resume their actions; the agent with none stays unloaded
        assert ["a", "b", "c"] == sorted(second.loaded_agents())
        await second.wait_for_actions()
        assert all(s.actions_succeeded == 1 for s in [second.agent(a).state for a in "abc"])
    assert sorted([(a, 1) for a in "abc"] + [(a, 2) for a in "abc"]) == sorted(attempts)


async def test_runtime_is_a_host_with_one_agent(tmp_path: Path) -> None:
    """Runtime runs on a Host that serves its agent only."""
    async with Runtime(agent_id="solo", path=tmp_path / "j.db", durability="normal") as runtime:
        assert isinstance(runtime.host, Host)
        assert runtime.host.agent("solo").state is runtime.state
        with pytest.raises(ConfigurationError, match="serves agent 'solo' only"):
            runtime.host.agent("other")


async def test_a_journal_object_stays_the_callers(tmp_path: Path) -> None:
    """A Journal passed in is neither closed nor replaced by the host."""
    journal = MemoryJournal()
    async with Host(journal, clock=ManualClock()) as host:
        await host.process(OVERLOAD)
    assert 2 == journal.head().seq  # still open: the host did not close it


def test_a_journal_object_keeps_its_durability_and_another_given_is_refused(
    tmp_path: Path,
) -> None:
    """Host(SqliteJournal(..., durability="full"), durability="normal") reported "normal"
    while every commit synced at the journal's "full": the setting was dropped in silence."""
    journal = SqliteJournal(tmp_path / "j.db", durability="full")
    try:
        said = (
            "durability='normal', but the journal given was opened at 'full', and a journal"
            " object keeps its own: open it at the one you want, or leave durability out"
        )
        with pytest.raises(ConfigurationError) as host_refused:
            Host(journal, durability="normal")
        with pytest.raises(ConfigurationError) as runtime_refused:
            Runtime("a", journal=journal, durability="normal")
        assert [said, said] == [str(host_refused.value), str(runtime_refused.value)]
        assert "full" == Host(journal).durability == Runtime("a", journal=journal).durability
        assert "full" == Host(journal, durability="full").durability  # the same, said again
    finally:
        journal.close()
    assert "normal" == Host(MemoryJournal()).durability  # what a journal in memory is
    assert "full" == Host(tmp_path / "k.db").durability  # a path: full unless told
    assert "normal" == Runtime("a", path=tmp_path / "k.db", durability="normal").durability


async def test_process_many_decides_in_order_in_one_commit_and_isolates_bad_events(
    tmp_path: Path,
) -> None:
    """One commit for the batch; a bad event gets its own error; the rest are decided."""
    from adaptive_runtime import Decision, DuplicateEventError, InvalidEventError

    path = tmp_path / "j.db"
    async with Runtime(agent_id="a", path=path, durability="normal", clock=ManualClock()) as rt:
        first = await rt.process({**OVERLOAD, "id": "known"})
        before = rt.metrics()["commits"]
        results = await rt.process_many(
            [
                OVERLOAD,
                {"type": ""},  # refused
                {**OVERLOAD, "id": "known"},  # journaled before: its decision
                {**OVERLOAD, "id": "twice"},
                {**OVERLOAD, "id": "twice"},  # the same again in this call: the same decision
                {**OVERLOAD, "severity": 0.9, "id": "known"},  # reused with another body
                {"type": "timeout", "severity": 0.4},
                {**OVERLOAD, "severity": 0.9, "id": "twice"},  # another body, in this call
            ]
        )
        assert 1 == rt.metrics()["commits"] - before
    kinds = [type(r) for r in results]
    assert [
        Decision,
        InvalidEventError,
        Decision,
        Decision,
        Decision,
        DuplicateEventError,
        Decision,
        DuplicateEventError,
    ] == kinds
    assert first == results[2]
    assert results[3] == results[4]
    assert [4, 6, 8] == [results[i].seq for i in (0, 3, 6)]  # type: ignore[union-attr]
    # it names the seq the first "twice" got (it said seq 0, before that one was journaled)
    assert 5 == results[7].seq  # type: ignore[union-attr]
    assert "was journaled at seq 5, earlier in this call, with a different body" in str(results[7])
    assert_replays(path)


async def test_process_many_decides_as_process_would(tmp_path: Path) -> None:
    """The same events give byte-identical decisions one by one and as a batch."""
    import msgspec

    events = [
        {"type": "service_overload", "severity": s / 10, "cpu": 90, "memory": 80}
        for s in range(1, 10)
    ]
    async with Runtime(agent_id="a", persist=False, clock=ManualClock()) as one:
        singly = [await one.process(e) for e in events]
    async with Runtime(agent_id="a", persist=False, clock=ManualClock()) as many:
        batched = await many.process_many(events)
    assert [msgspec.msgpack.encode(d) for d in singly] == [
        msgspec.msgpack.encode(d) for d in batched
    ]


async def test_host_process_many_routes_each_event_and_keeps_their_order(tmp_path: Path) -> None:
    """Events for several agents come back in the order they were given."""
    async with host_at(tmp_path / "fleet.db") as host:
        results = await host.process_many(
            [{**OVERLOAD, "agent_id": name} for name in ("b", "a", "b", "c")]
        )
        entries = [host.journal.get(r.seq) for r in results]
        assert [("b", 2), ("a", 2), ("b", 4), ("c", 2)] == [
            (e.stream, e.stream_seq) for e in entries if e is not None
        ]


async def test_an_id_sent_to_two_agents_in_one_call_is_journaled_as_it_came_first(
    tmp_path: Path,
) -> None:
    """Agent a's events were journaled before agent b's whatever their order, so b's
    earlier use of an id was refused as "already journaled by agent 'a'", and a's later
    one taken. As events sent one by one: the first is journaled, the later one refused."""
    async with host_at(tmp_path / "fleet.db") as host:
        results = await host.process_many(
            [
                {**OVERLOAD, "agent_id": "a"},
                {**OVERLOAD, "agent_id": "b", "id": "e-1"},
                {**OVERLOAD, "agent_id": "a", "id": "e-1"},
                {**OVERLOAD, "agent_id": "b", "id": "e-1"},  # a resend: the recorded decision
            ]
        )
        first = results[1]
        assert isinstance(first, Decision)
        assert "b" == host.journal.get(first.seq).stream  # type: ignore[union-attr]
        refused = results[2]
        assert isinstance(refused, DuplicateEventError)
        assert f"already journaled by agent 'b' at seq {first.event_seq}" in str(refused)
        assert first == results[3]
        assert [] == [e for e in host.journal.read("a") if e.event_id is not None]


async def test_a_host_used_before_start_is_told_to_start_the_host(tmp_path: Path) -> None:
    """It was told to start "a runtime", which a Host's user never made."""
    host = Host(tmp_path / "fleet.db", clock=ManualClock())
    with pytest.raises(RuntimeNotStartedError, match=r"`await host.start\(\)`"):
        await host.process(OVERLOAD)


@pytest.mark.parametrize(
    "named", ["", "~host", "x" * 257, "web\nFAKE LINE", "web\x1b[2J", "web\u202e", "a\tb"]
)
async def test_an_event_naming_no_valid_agent_fails_alone(tmp_path: Path, named: str) -> None:
    """An agent_id that can't name an agent is the event's error (InvalidEventError, 422),
    not the batch's: process_many decides the others, and process() journals nothing."""
    async with host_at(tmp_path / "fleet.db") as host:
        head = host.journal.head()
        with pytest.raises(
            InvalidEventError, match=r"agent_id'? must be|agent ids starting with '~'"
        ):
            await host.process({**OVERLOAD, "agent_id": named})
        assert head == host.journal.head()
        results = await host.process_many(
            [{**OVERLOAD, "agent_id": "a"}, {**OVERLOAD, "agent_id": named}, OVERLOAD]
        )
        assert [Decision, InvalidEventError, Decision] == [type(r) for r in results]
        assert "agent_id" == results[1].field
        assert ["a", "default"] == await host.agents()


async def test_an_agent_another_host_serves_fails_alone_in_process_many(tmp_path: Path) -> None:
    """One agent of a batch served elsewhere raised AgentOwnedElsewhere out of the whole
    call (a 409 for the whole HTTP batch), while the other agents' events were journaled
    unseen: the caller, told nothing was taken, would send them again. Its events now get
    that error each, and the others their decisions."""
    path = tmp_path / "fleet.db"
    async with host_at(path) as serving, host_at(path) as other:
        await serving.agent("x").process(OVERLOAD)
        results = await other.process_many(
            [{**OVERLOAD, "agent_id": "x"}, {**OVERLOAD, "agent_id": "y"}, OVERLOAD]
        )
        assert [AgentOwnedElsewhere, Decision, Decision] == [type(r) for r in results]
        assert 2 == serving.journal.stream_head("x")  # nothing of the refused event
        assert [2, 2] == [serving.journal.stream_head(a) for a in ("y", "default")]


async def test_process_many_on_a_single_agent_runtime_refuses_other_agents_per_event(
    tmp_path: Path,
) -> None:
    """A runtime's host serves one agent; events for another fail alone, with no coroutine
    left unawaited."""
    async with Runtime(agent_id="a", path=tmp_path / "j.db", clock=ManualClock()) as runtime:
        results = await runtime.host.process_many(
            [{**OVERLOAD, "agent_id": "b"}, OVERLOAD | {"agent_id": "a"}]
        )
    assert [ConfigurationError, Decision] == [type(r) for r in results]
    assert "serves agent 'a' only" in str(results[0])


async def test_commit_on_caller_commits_at_full_without_the_journal_thread(tmp_path: Path) -> None:
    """commit_on_caller=True runs full-durability commits inline; the journal replays the same."""
    path = tmp_path / "j.db"
    before = set(threading.enumerate())
    async with Runtime(
        agent_id="a", path=path, durability="full", clock=ManualClock(), commit_on_caller=True
    ) as runtime:
        assert runtime.host.require_worker().inline
        decisions = [await runtime.process(OVERLOAD) for _ in range(3)]
        # no thread of its own beside the caller's while it runs: an idle one slows fsyncs
        assert before == set(threading.enumerate())
    assert [2, 4, 6] == [d.seq for d in decisions]
    journal = SqliteJournal(path, create=False)
    try:
        assert "full" == journal.durability
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_commit_on_caller_holds_for_a_journal_given_as_an_object(tmp_path: Path) -> None:
    """commit_on_caller=True was ignored, silently, for a journal passed as an object: its
    commits went through the journal's thread. A given journal's commits are otherwise
    still off the loop, even at normal (it may checkpoint where it commits)."""
    for durability, on_caller, inline in [
        ("full", True, True),
        ("normal", True, True),
        ("full", False, False),
        ("normal", False, False),
    ]:
        journal = SqliteJournal(tmp_path / f"{durability}-{on_caller}.db", durability=durability)
        async with Runtime(
            agent_id="a", journal=journal, clock=ManualClock(), commit_on_caller=on_caller
        ) as runtime:
            assert inline == runtime.host.require_worker().inline, (durability, on_caller)
            assert 2 == (await runtime.process(OVERLOAD)).seq
        assert verify_replay(journal).ok
        journal.close()


async def test_each_entry_is_folded_once_among_other_agents(tmp_path: Path) -> None:
    """process() and process_many() fold each entry into its agent's state once, at its seq,
    while other agents' entries sit between; the state is what a rebuild gives."""
    from adaptive_runtime.projections import encode_state, rebuild

    path = tmp_path / "fleet.db"
    async with host_at(path) as host:
        await host.process({**OVERLOAD, "agent_id": "b"})
        await host.process_many([{**OVERLOAD, "agent_id": "a"}] * 3)
        await host.process({**OVERLOAD, "agent_id": "b"})
        await host.process({**OVERLOAD, "agent_id": "a"})
        await host.process_many([{**OVERLOAD, "agent_id": "a"}] * 2)
        live = (await host.ledger("a")).state
        assert (6, 6) == (live.events, live.decisions)
        assert encode_state(rebuild(host.journal, "a").state) == encode_state(live)


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_batch_decided_again_after_a_conflict_is_heard_by_watchers(
    tmp_path: Path, durability: str
) -> None:
    """Entries appended after catching up with another writer reach the host's commit
    hook like any others: its watchers hear the decision, once, in commit order."""
    async with Host(tmp_path / "j.db", durability=durability, clock=ManualClock()) as host:  # type: ignore[arg-type]
        await host.process({**OVERLOAD, "agent_id": "a"})
        journal = FaultyJournal.installed_in(host)
        journal.armed = ("intrude", "a")  # another writer appends to a, just before
        heard: list[tuple[int, str]] = []
        host.watch(lambda entries: heard.extend((e.seq, e.kind) for e in entries))
        decision = await host.process({**OVERLOAD, "agent_id": "a"})
        assert [(decision.event_seq, "EventReceived"), (decision.seq, "DecisionMade")] == [
            h for h in heard if h[1] != "ActionScheduled"
        ]
        assert {"intruder": 1} == (await host.ledger("a")).state.kv


async def test_a_batch_answered_behind_one_whose_answer_was_lost_is_folded_after_it(
    tmp_path: Path,
) -> None:
    """Through the journal's thread: an outcome commits but its answer is lost, and an event
    queued behind it goes to the next transaction, its answer coming before the outcome's
    caller has heard its error. The event was decided from a view that counted the outcome,
    and must not be journaled and folded past an outcome the state never read: it is
    refused unwritten and decided again once the agent has caught up, so the state holds
    the outcome, and replay agrees."""
    from adaptive_runtime.errors import JournalUnavailableError
    from adaptive_runtime.projections import encode_state, rebuild

    async with Host(tmp_path / "j.db", durability="full", clock=ManualClock()) as host:  # type: ignore[arg-type]
        first = await host.process({**OVERLOAD, "agent_id": "a"})
        journal = FaultyJournal.installed_in(host)
        journal.armed = ("after", "a")
        release = journal.hold_next()
        outcome = asyncio.ensure_future(host.agent("a").record_outcome(first, success=False))
        [queued] = await queued_behind(
            host, journal, release, host.process({**OVERLOAD, "agent_id": "a"})
        )
        release.set()
        answered_in_commit_order(host)  # the event's answer comes before the outcome's error
        with pytest.raises(JournalUnavailableError):
            await outcome
        await queued
        await host.process({**OVERLOAD, "agent_id": "a"})
        live = (await host.ledger("a")).state
        assert 1 == live.outcomes
        assert encode_state(rebuild(host.journal, "a").state) == encode_state(live)
    assert_replays(tmp_path / "j.db")


async def test_a_batch_queued_behind_a_refused_one_is_refused_even_where_it_fits(
    tmp_path: Path,
) -> None:
    """Through the journal's thread: another writer appends two entries to b's stream, so
    b's next batch (an event and its decision, two entries) is refused as a conflict. The
    batch queued behind it was built to follow it, and the other writer's entries fill
    exactly its place: it must be refused too, and decided again once b has read them,
    not journaled on a view that never saw them."""
    from adaptive_runtime.projections import encode_state, rebuild
    from adaptive_runtime.records import StatePatched, to_pending

    async with Host(tmp_path / "j.db", durability="full", clock=ManualClock()) as host:  # type: ignore[arg-type]
        await host.process({**OVERLOAD, "agent_id": "b"})
        journal = FaultyJournal.installed_in(host)
        for n in (1, 2):
            journal.inner.append([to_pending("b", StatePatched(values={"other": n}), 1)])
        release = journal.hold_next()
        first = asyncio.ensure_future(host.process({**OVERLOAD, "agent_id": "b"}))
        [second] = await queued_behind(
            host, journal, release, host.process({"type": "timeout", "agent_id": "b"})
        )
        release.set()
        await first
        await second
        live = (await host.ledger("b")).state
        assert {"other": 2} == live.kv
        assert encode_state(rebuild(host.journal, "b").state) == encode_state(live)
    assert_replays(tmp_path / "j.db")


async def test_a_host_takes_up_what_a_dead_host_left_in_a_stream_begun_after_its_start(
    tmp_path: Path,
) -> None:
    """The second host started before the agent's stream existed, so it takes the stream
    to be new and does not read it on first use. The first host began it, left an action
    unfinished and died (its locks gone). The second host's first append for the agent
    meets the first one's entries, catches up, and resumes that action, once."""
    path = tmp_path / "two.db"
    release = asyncio.Event()
    ran: list[tuple[str, int]] = []

    def hosting(name: str) -> Host:
        host = Host(path, durability="normal", clock=ManualClock())

        @host.action("restart_service")
        async def restart(call: ActionCall) -> None:
            ran.append((name, call.decision.seq or 0))
            if name == "first":
                await release.wait()  # still running when it dies

        return host

    second = hosting("second")
    await second.start()
    first = hosting("first")
    await first.start()
    try:
        decision = await first.agent("web").process(OVERLOAD)
        await asyncio.sleep(0)
        assert [("first", decision.seq)] == ran
        first.require_worker().journal._locks.close()  # type: ignore[attr-defined]  # it dies
        later = await second.agent("web").process({"type": "timeout", "severity": 0.2})
        assert later.seq is not None
        assert later.seq > (decision.seq or 0)  # decided after the first host's entries
        await second.stop()
        assert [("first", decision.seq), ("second", decision.seq)] == ran
    finally:
        release.set()
        await first.stop(actions="interrupt")


async def test_taking_up_what_another_host_left_that_fails_is_logged_not_left_unretrieved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found another host's entries in a stream it took to be new, a host takes up what
    that host left in a task of its own; when that failed (the journal away), the task
    ended with the error unretrieved: asyncio's "Task exception was never retrieved"."""
    import gc
    import logging

    from adaptive_runtime.errors import JournalUnavailableError

    async with Host(tmp_path / "j.db", clock=ManualClock()) as host:
        await host.process({**OVERLOAD, "agent_id": "web"})
        ledger = await host.ledger("web")

        async def unavailable(agents: object) -> None:
            raise JournalUnavailableError("the server is away")

        monkeypatch.setattr(host.controls, "take_up", unavailable)
        host._history_found(ledger, ledger.state.seq)
    gc.collect()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [m for m in said if "never retrieved" in m]
    assert any("Taking up what another host left of agent web failed" in m for m in said)


async def test_names_in_the_set_up_that_no_decision_reaches_are_warned_of_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mistyped action name made a safety setting do nothing, in silence: approvals for
    `restart_servce` let every restart run unasked, a fleet policy counting
    `restart_srvice` held none back, and a ladder step `page_huamn` was owed for ever
    once a check failed. Each is taken (a rule deciding the name may be set later), and
    the host warns of it at start, with the nearest name it knows."""
    host = Host(
        tmp_path / "n.db",
        clock=ManualClock(),
        approvals=ApprovalPolicy(actions=("restart_servce",)),
        fleet=FleetPolicy(disruptive=("restart_srvice", "rollback_deployment"), cooldown=60),
    )
    check = Verification(within=30)

    @host.action("restart_service", verify=check, escalate=["rollback_deployment", "page_huamn"])
    async def restart(call: object) -> None: ...

    @host.action("rollback_deployment")
    async def rollback(call: object) -> None: ...

    @host.action("isolate_componet")
    async def isolate(call: object) -> None: ...

    caplog.set_level("WARNING", logger="adaptive_runtime")
    async with host:
        pass
    assert [
        "the approval policy names 'restart_servce', which no rule decides and no escalation"
        " ladder names: it gates nothing (did you mean 'restart_service'?)",
        "the fleet policy counts 'restart_srvice' as disruptive, but no rule decides it and"
        " no escalation ladder names it: no budget, floor or cooldown holds it (did you mean"
        " 'restart_service'?)",
        "a handler is registered for 'isolate_componet', which no rule decides and no"
        " escalation ladder names: it never runs (did you mean 'isolate_component'?)",
        "the escalation ladder of 'restart_service' names 'page_huamn', which has no handler:"
        " once a check of 'restart_service' fails, that step is owed and never runs",
    ] == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


async def test_a_set_up_whose_names_decisions_reach_is_started_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No false alarm: a handler for a custom rule's action (journaled for the agent by
    an earlier start, not given to this one), a ladder step with its handler, approvals
    for a built-in action and the default disruptive list."""
    path = tmp_path / "q.db"
    async with Host(
        path, rules=[{"context": "resource_pressure", "action": "drain_node", "reason": "drain"}]
    ) as h:
        await h.agent("a").process(OVERLOAD)
    host = Host(
        path,
        approvals=ApprovalPolicy(actions=("rollback_deployment",)),
        fleet=FleetPolicy(cooldown=60),
    )

    @host.action("drain_node", verify=Verification(within=30), escalate=["page_human"])
    async def drain(call: object) -> None: ...

    @host.action("page_human")
    async def page(call: object) -> None: ...

    caplog.set_level("WARNING", logger="adaptive_runtime")
    async with host:
        pass
    assert [] == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


async def test_a_custom_rule_for_a_context_no_event_is_given_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule for `resource_presure` (a typo) never matched, and decisions went to the
    built-in table in silence. Start warns of the rules it is given, and set_rules of
    the rules it journals; a rule for `unknown_<type>` or with no context is fine."""
    typo = {"context": "resource_presure", "action": "drain_node", "reason": "drain"}
    fine = [
        {"context": "unknown_disk_full", "action": "run_recovery", "reason": "disk"},
        {"context": None, "risk": "critical", "action": "page_human", "reason": "any"},
        {"context": "latency_issue", "action": "cache_warmup", "reason": "slow"},
    ]
    caplog.set_level("WARNING", logger="adaptive_runtime")
    async with Host(tmp_path / "r.db", rules=[*fine, typo]) as host:
        told = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert [
            "custom[3] is a rule for the context 'resource_presure', which no event is given"
            " (the contexts are anomaly_signal, latency_issue, resource_pressure,"
            " security_signal, self_healing, service_degradation, and unknown_<type> for any"
            " other event type): it never matches (did you mean 'resource_pressure'?)"
        ] == told
        caplog.clear()
        await host.agent("a").set_rules([typo])
        [again] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert again.startswith("custom[0] is a rule for the context 'resource_presure'")
        caplog.clear()
        await host.agent("a").set_rules(fine)
        assert [] == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
