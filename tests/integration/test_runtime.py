"""The Runtime end to end: journaled decisions, memory across restarts, replay, the bus."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cli_support import cli

from adaptive_runtime import (
    ConfigurationError,
    DuplicateEventError,
    Host,
    InvalidEventError,
    ManualClock,
    NotAJournalError,
    Runtime,
    RuntimeNotStartedError,
)
from adaptive_runtime.errors import AgentOwnedElsewhere
from adaptive_runtime.journal import MemoryJournal, SqliteJournal
from adaptive_runtime.journal.writer import YIELD_EVERY
from adaptive_runtime.projections import (
    STATE_VERSION,
    encode_state,
    rebuild,
    state_at,
    verify_replay,
)

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}
SCENARIO = [
    {"type": "service_overload", "severity": 0.91, "cpu": 96, "memory": 92},
    {"type": "anomaly_detected", "severity": 0.74, "error_rate": 0.6},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "recovery_needed", "severity": 0.30},
]


def runtime_at(path: Path, **kwargs: object) -> Runtime:
    return Runtime(agent_id="agent", path=path, durability="normal", clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


async def test_process_journals_event_and_decision(tmp_path: Path) -> None:
    """process() returns the golden decision with its seqs, and both entries are journaled."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        d = await runtime.process(OVERLOAD)
        assert (d.action, d.confidence, d.reason, d.priority) == (
            "restart_service",
            0.7831,
            "high_resource_pressure",
            "high",
        )
        assert (d.context, d.risk, d.stability, d.pressure, d.rule) == (
            "resource_pressure",
            "high",
            "low",
            0.651,
            "default[2]",
        )
        assert (1, 2) == (d.event_seq, d.seq)
    journal = SqliteJournal(tmp_path / "j.db")
    assert ["EventReceived", "DecisionMade"] == [e.kind for e in journal.read("agent")]


async def test_memory_survives_restart(tmp_path: Path) -> None:
    """A second runtime on the same file sees the first one's events and continues its seqs."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        for event in SCENARIO:
            await runtime.process(event)
    async with runtime_at(tmp_path / "j.db") as again:
        assert 5 == again.state.events
        history = await again.event_history(limit=3)
        assert [h["action"] for h in history] == [
            "run_recovery",
            "cache_warmup",
            "trigger_security_audit",
        ]
        assert history[0]["event"] == {
            "type": "recovery_needed",
            "severity": 0.3,
            "cpu": 0.0,
            "memory": 0.0,
            "error_rate": 0.0,
            "latency_ms": 0.0,
        }
        d = await again.process(OVERLOAD)
        assert (11, 12) == (d.event_seq, d.seq)


async def test_event_with_id_is_processed_once(tmp_path: Path) -> None:
    """The same id twice returns the same decision and appends nothing the second time."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        first = await runtime.process({**OVERLOAD, "id": "evt-1"})
        again = await runtime.process({**OVERLOAD, "id": "evt-1"})
        assert msgspec.msgpack.encode(first) == msgspec.msgpack.encode(again)
        assert 2 == runtime.journal.head().seq
        both = await asyncio.gather(
            runtime.process({**OVERLOAD, "id": "evt-2"}),
            runtime.process({**OVERLOAD, "id": "evt-2"}),
        )
        assert both[0].seq == both[1].seq
        assert 4 == runtime.journal.head().seq
        assert 2 == runtime.metrics()["counters"]["events_deduplicated"]


async def test_bad_event_leaves_journal_unchanged(tmp_path: Path) -> None:
    """Invalid input raises InvalidEventError naming the field; the journal head doesn't move."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        await runtime.process(OVERLOAD)
        head = runtime.journal.head()
        for bad in (
            {"severity": 0.5},
            {"type": "x", "cpu": float("nan")},
            {"type": "x", "extra": 1},
            "not a dict",
            {"type": "x", "n": 10**10000},
            {"type": "x", "cpu": 10**10000},
            {"type": "\ud800"},
            {"type": "x", "id": "e\x00"},
        ):
            with pytest.raises(InvalidEventError):
                await runtime.process(bad)  # type: ignore[arg-type]
        assert head == runtime.journal.head()


async def test_an_event_naming_another_agent_is_refused_by_a_runtime_and_an_agent_handle(
    tmp_path: Path,
) -> None:
    """Runtime("checkout").process({..., "agent_id": "billing"}) was decided and journaled
    for checkout, with "billing" kept as a plain attribute: Host.process routes by that
    field, a runtime took it for its own agent without a word."""
    said = "the event's agent_id names agent 'billing', but this is agent 'checkout'"
    runtime = Runtime("checkout", path=tmp_path / "j.db", durability="normal", clock=ManualClock())
    async with runtime:
        head = runtime.journal.head()
        with pytest.raises(InvalidEventError, match=said) as caught:
            await runtime.process({**OVERLOAD, "agent_id": "billing"})
        assert "agent_id" == caught.value.field
        refused, decided = await runtime.process_many(
            [{**OVERLOAD, "agent_id": "billing"}, {**OVERLOAD, "agent_id": "checkout"}]
        )
        assert isinstance(refused, InvalidEventError)
        assert said in str(refused)
        assert "checkout" == runtime.journal.get(decided.seq).stream  # type: ignore[union-attr]
        assert head.seq + 2 == runtime.journal.head().seq  # the one for checkout only
    async with Host(tmp_path / "h.db", clock=ManualClock()) as host:
        with pytest.raises(
            InvalidEventError, match="names agent 'billing', but this is agent 'web'"
        ):
            await host.agent("web").process({**OVERLOAD, "agent_id": "billing"})
        routed = await host.process({**OVERLOAD, "agent_id": "billing"})  # a host routes it
        assert "billing" == host.journal.get(routed.seq).stream  # type: ignore[union-attr]


@pytest.mark.parametrize("agent_id", ["\ud800", "web\x00"])
async def test_an_agent_id_no_journal_can_store_is_a_configuration_error(
    tmp_path: Path, agent_id: str
) -> None:
    """A lone surrogate raised a bare UnicodeEncodeError from start(); a NUL was taken on
    SQLite, and refused by the server on PostgreSQL. Both are refused up front."""
    with pytest.raises(ConfigurationError, match=r"surrogate|NUL"):
        Runtime(agent_id=agent_id, path=tmp_path / "j.db")
    async with Host(tmp_path / "j.db") as host:
        with pytest.raises(ConfigurationError, match=r"surrogate|NUL"):
            host.agent(agent_id)
        assert 0 == host.journal.head().seq


async def test_not_started_raises() -> None:
    """Using a runtime before start() raises RuntimeNotStartedError."""
    runtime = Runtime(persist=False)
    with pytest.raises(RuntimeNotStartedError, match="start"):
        await runtime.process(OVERLOAD)


async def test_outcomes_adapt_confidence_and_are_journaled(tmp_path: Path) -> None:
    """Failed restarts lower the restart's confidence until throttling wins the walk; the
    record survives a restart, and the explained confidence is the chosen action's own."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        d = await runtime.process(OVERLOAD)
        for _ in range(3):
            await runtime.record_outcome(d, success=False)
        after = await runtime.process(OVERLOAD)
        assert ("throttle_requests", None) == (after.action, after.instead_of)
        assert (0.7831, 1.0) == (after.confidence, after.history_weight)  # throttle is untried
        failed = runtime.state.history.tallies["resource_pressure/high"]["restart_service"]
        assert (0.0, 2.9404) == (failed.successes, round(failed.failures, 4))
        await runtime.record_outcome(after, success=False)
        again_d = await runtime.process(OVERLOAD)
        assert ("scale_up_immediate", "throttle_requests") == (again_d.action, again_d.instead_of)
    async with runtime_at(tmp_path / "j.db") as again:
        assert "scale_up_immediate" == (await again.process(OVERLOAD)).action
        assert 4 == again.state.outcomes
    assert verify_replay(SqliteJournal(tmp_path / "j.db")).ok


async def test_rules_change_is_journaled_and_replayed(tmp_path: Path) -> None:
    """Rules given to the runtime are journaled; a restart without them keeps them."""
    rules = [("resource_pressure", "high", 0.0, "page_oncall", "ops_policy")]
    async with runtime_at(tmp_path / "j.db", rules=rules) as runtime:
        d = await runtime.process(OVERLOAD)
        assert ("page_oncall", "custom[0]") == (d.action, d.rule)
    async with runtime_at(tmp_path / "j.db") as again:
        assert "page_oncall" == (await again.process(OVERLOAD)).action
        ruleset = await again.set_rules([])
        assert "restart_service" == (await again.process(OVERLOAD)).action
        assert ruleset == (await again.process(OVERLOAD)).ruleset
    assert verify_replay(SqliteJournal(tmp_path / "j.db")).ok


async def test_set_rules_from_a_policy_file_takes_its_learning_and_names_the_host_s_tables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Runtime(rules="policy.toml") took the file's [learning], [fleet] and [approvals]
    tables; set_rules("policy.toml") took its rules alone, and dropped the rest in silence."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rules]]\ncontext = "resource_pressure"\nrisk = "high"\nmin_conf = 0.0\n'
        'action = "page_oncall"\nreason = "ops_policy"\n'
        "[learning]\nprior_strength = 8.0\n[fleet]\nbudget = 3\n"
    )
    async with runtime_at(tmp_path / "j.db") as runtime:
        with caplog.at_level("WARNING", logger="adaptive_runtime"):
            await runtime.set_rules(policy)
        assert 8.0 == runtime.state.learning.prior_strength  # type: ignore[union-attr]
        assert "page_oncall" == (await runtime.process(OVERLOAD)).action
        said = [r.getMessage() for r in caplog.records if "set_rules(" in r.getMessage()]
        assert [
            f"set_rules({str(policy)!r}) applies the file's rules and [learning] table; its"
            " [fleet] table is the host's, taken when the host is made (Host(rules=...)), so"
            " it is not applied here"
        ] == said
        # learning= given beside the file wins over its table, as in Host(rules=..., learning=...)
        await runtime.set_rules(policy, learning={"prior_strength": 2.0})
        assert 2.0 == runtime.state.learning.prior_strength  # type: ignore[union-attr]
    assert verify_replay(SqliteJournal(tmp_path / "j.db")).ok


async def test_state_engine_and_checkpoints_through_runtime(tmp_path: Path) -> None:
    """The original's state and recovery engines work on a runtime, journaled."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        await runtime.state_engine.save_state({"health": "ok", "version": "1.2"})
        assert await runtime.state_engine.patch_state({"last": "ok"}) == {
            "health": "ok",
            "version": "1.2",
            "last": "ok",
        }
        meta = await runtime.recovery_engine.create_checkpoint({"phase": 2})
        assert meta.snapshot_id == runtime.journal.head().seq
    async with runtime_at(tmp_path / "j.db") as again:
        assert await again.state_engine.load_state() == {
            "health": "ok",
            "version": "1.2",
            "last": "ok",
        }
        restored = await again.recovery_engine.restore_latest()
        assert {"phase": 2} == restored["state"]  # type: ignore[index]
        summary = await again.recover()
        assert {"health": "ok", "version": "1.2", "last": "ok"} == summary["state"]


async def test_snapshot_plus_tail_equals_full_replay(tmp_path: Path) -> None:
    """The rebuilt state from a snapshot plus tail equals a full replay and the live state."""
    async with runtime_at(tmp_path / "j.db", checkpoint_every=7) as runtime:
        for i in range(40):
            d = await runtime.process({**SCENARIO[i % 5], "n": i})
            if i % 4 == 0:
                await runtime.record_outcome(d, success=i % 8 == 0)
        live = encode_state(runtime.state)
    journal = SqliteJournal(tmp_path / "j.db")
    from_snapshot = rebuild(journal, "agent")
    assert from_snapshot.snapshot_seq is not None
    full = state_at(journal, "agent", seq=journal.head().seq)
    assert live == encode_state(from_snapshot.state)
    from adaptive_runtime.projections import AgentState, evolve

    scratch = AgentState(stream="agent")
    for entry in journal.read("agent"):
        evolve(scratch, entry)
    assert live == encode_state(scratch) == encode_state(full)
    assert verify_replay(journal).ok


async def test_damaged_snapshot_falls_back_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot that does not decode is skipped with a warning; the state is still exact."""
    async with runtime_at(tmp_path / "j.db", checkpoint_every=2) as runtime:
        for event in SCENARIO:
            await runtime.process(event)
        live = encode_state(runtime.state)
    journal = SqliteJournal(tmp_path / "j.db")
    journal.put_snapshot(
        "agent", journal.head().seq, b"\x00garbage", version=STATE_VERSION, ts_ns=0
    )
    with caplog.at_level(logging.WARNING, logger="adaptive_runtime"):
        rebuilt = rebuild(journal, "agent")
    assert live == encode_state(rebuilt.state)
    assert 1 == len(rebuilt.skipped)
    assert "does not decode" in caplog.text


async def test_time_travel_by_seq_and_time(tmp_path: Path) -> None:
    """state_at gives the state as of a seq, or as of a moment."""
    clock = ManualClock(start_ns=1_000)
    runtime = Runtime(agent_id="agent", path=tmp_path / "j.db", clock=clock, durability="normal")
    async with runtime:
        for event in SCENARIO:
            await runtime.process(event)
            clock.advance(60)
    journal = SqliteJournal(tmp_path / "j.db")
    assert 2 == state_at(journal, "agent", seq=4).events
    assert 3 == state_at(journal, "agent", ts_ns=1_000 + 120 * 10**9).events
    assert 0 == state_at(journal, "agent", ts_ns=0).events


async def test_concurrent_process_calls_share_commits(tmp_path: Path) -> None:
    """64 concurrent process() calls take fewer commits than calls, and all are journaled in order."""
    async with Runtime(
        agent_id="agent", path=tmp_path / "j.db", durability="full", clock=ManualClock()
    ) as runtime:
        decisions = await asyncio.gather(
            *(runtime.process({**SCENARIO[i % 5], "n": i}) for i in range(64))
        )
        assert runtime.metrics()["commits"] < 64
        assert sorted(d.seq for d in decisions) == list(range(2, 129, 2))
    journal = SqliteJournal(tmp_path / "j.db")
    assert journal.verify().ok
    assert verify_replay(journal).ok


async def test_bus_runs_handlers_after_decision_and_counts_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Handlers run after process() returns; a failing one is logged and counted, the others run."""
    seen: list[str] = []
    async with runtime_at(tmp_path / "j.db") as runtime:

        @runtime.bus.subscribe("anomaly_detected")
        async def broken(event: dict[str, object]) -> None:
            raise RuntimeError("handler bug")

        @runtime.bus.subscribe("anomaly_detected")
        def typed(event: dict[str, object]) -> None:
            seen.append(f"typed:{event['severity']}")

        @runtime.bus.subscribe_all
        async def everything(event: dict[str, object]) -> None:
            seen.append(f"all:{event['type']}")

        with caplog.at_level(logging.ERROR, logger="adaptive_runtime"):
            await runtime.process(SCENARIO[1])
            assert [] == seen  # process() doesn't wait for handlers
            await runtime.process(SCENARIO[2])
            await runtime.bus.drain()
        assert ["typed:0.74", "all:anomaly_detected", "all:auth_failure"] == seen
        assert 1 == runtime.bus.errors
        assert "handler bug" in caplog.text
        assert runtime.bus.unsubscribe(everything)
        await runtime.process(SCENARIO[2])
        await runtime.bus.drain()
        assert 3 == len(seen)


async def test_subscribe_without_parentheses_hears_every_event(tmp_path: Path) -> None:
    """`@bus.subscribe` with no parentheses bound the handler's name to the decorator and
    subscribed nothing, silently; a type that is not a string is refused."""
    seen: list[str] = []
    async with runtime_at(tmp_path / "j.db") as runtime:

        @runtime.bus.subscribe
        async def everything(event: dict[str, object]) -> None:
            seen.append(str(event["type"]))

        await runtime.process(SCENARIO[1])
        await runtime.bus.drain()
        assert ["anomaly_detected"] == seen
        assert runtime.bus.unsubscribe(everything)  # the name is still the handler
        with pytest.raises(ConfigurationError, match="subscribe takes an event type"):
            runtime.bus.subscribe(5)  # type: ignore[call-overload]


def test_a_subscription_to_a_misspelt_event_type_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`@bus.subscribe("anomaly_detectd")` waited for ever, in silence. A type close to one
    the built-in map knows is warned of; a type of the application's own is not."""
    caplog.set_level("WARNING", logger="adaptive_runtime")
    runtime = Runtime(persist=False)
    for event_type in ("anomaly_detectd", "anomaly_detected", "payment_gateway_down"):
        runtime.bus.subscribe(event_type)(lambda event: None)
    assert [
        "a handler is subscribed to the event type 'anomaly_detectd', which the built-in map"
        " does not know: its handler runs for none unless events of that type are sent (did"
        " you mean 'anomaly_detected'?)"
    ] == [r.getMessage() for r in caplog.records]


async def test_metrics_belong_to_one_runtime() -> None:
    """Two runtimes count separately."""
    async with Runtime(persist=False) as a, Runtime(persist=False) as b:
        await a.process(OVERLOAD)
        await a.process(OVERLOAD)
        await b.process(OVERLOAD)
        assert (
            a.metrics()["counters"]["events_processed"],
            b.metrics()["counters"]["events_processed"],
        ) == (2, 1)
        assert 2 == a.metrics_summary()["decisions"]


async def test_in_memory_runtime_and_injected_journal() -> None:
    """persist=False keeps everything in memory; an injected journal is used as given."""
    journal = MemoryJournal()
    async with Runtime(agent_id="a", journal=journal) as runtime:
        await runtime.process(OVERLOAD)
    assert 2 == journal.head().seq
    async with Runtime(agent_id="a", journal=MemoryJournal()) as other:
        assert 0 == other.state.events


@pytest.mark.parametrize("name", ["memory:", ":memory:"])
async def test_a_journal_in_memory_is_named_ours_or_sqlites_way(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`:memory:`, SQLite's name, opens the memory journal too (SQLite would refuse WAL)."""
    monkeypatch.chdir(tmp_path)  # where a file by that name would be made
    async with Runtime(agent_id="a", path=name) as runtime:
        await runtime.process(OVERLOAD)
        assert isinstance(runtime.journal, MemoryJournal)
        assert 2 == runtime.journal.head().seq
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["memory:x", "memory:prod.db"])
async def test_a_named_memory_journal_is_refused_not_made_a_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`memory:x` made a file named `memory:x` and journaled to disk what was meant to
    stay in memory; it is now refused, saying how to name such a file."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=f"write ./{name}"):
        await Runtime(agent_id="a", path=name).start()
    out = cli("demo", "--db", name)
    assert 2 == out.returncode
    assert "`memory:` takes nothing after it" in out.stderr
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["file:x.db", "file:x.db?mode=ro", "file:///tmp/x.db"])
async def test_a_sqlite_file_uri_is_refused_not_made_a_file_of_that_name(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file:x.db`, SQLite's URI form, made a file named `file:x.db` (and the x.db meant
    was never written); it is now refused, saying what to write instead."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"SQLite's `file:` URIs are not read here"):
        await Runtime(agent_id="a", path=name).start()
    out = cli("demo", "--db", name)
    assert (2, True) == (out.returncode, f"write ./{name}" in out.stderr)
    assert [] == list(tmp_path.iterdir())
    async with Runtime(agent_id="a", path="./file:x.db") as runtime:  # the way to that name
        await runtime.process(OVERLOAD)
    assert (tmp_path / "file:x.db").is_file()


async def test_logs_follow_the_original_format(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The context line reads risk=high stability=low pressure=0.65, under the component's name."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        with caplog.at_level(logging.INFO, logger="adaptive_runtime"):
            await runtime.process(OVERLOAD)
    lines = [(r.name.rpartition(".")[2], r.getMessage()) for r in caplog.records]
    assert ("CONTEXT_ENGINE", "risk=high stability=low pressure=0.65") in lines
    assert ("DECISION_ENGINE", "ACTION: RESTART_SERVICE") in lines


async def test_tight_loop_at_normal_durability_does_not_starve_tasks(tmp_path: Path) -> None:
    """Inline commits never suspend, so process() yields every YIELD_EVERY calls: handlers
    and snapshots still run during a tight loop, at most that many events behind (regression)."""
    seen: list[object] = []
    events = (SCENARIO * 10)[: YIELD_EVERY * 3 + 1]
    runtime = Runtime(
        agent_id="agent",
        path=tmp_path / "j.db",
        durability="normal",
        clock=ManualClock(),
        checkpoint_every=4,
    )
    runtime.bus.subscribe_all(seen.append)
    async with runtime:
        for event in events:
            await runtime.process(event)
        assert len(seen) >= len(events) - YIELD_EVERY
        assert list(runtime.journal.snapshots("agent"))


async def test_calls_made_during_start_wait_for_the_rebuild(tmp_path: Path) -> None:
    """A process() issued while start() is still rebuilding waits, then decides from the rebuilt state."""
    async with runtime_at(tmp_path / "j.db") as first:
        d = await first.process(OVERLOAD)
        for _ in range(3):
            await first.record_outcome(d, success=False)
    runtime = runtime_at(tmp_path / "j.db")
    _, decision = await asyncio.gather(runtime.start(), runtime.process(OVERLOAD))
    assert ("throttle_requests", 3, 7) == (decision.action, runtime.state.outcomes, decision.seq)
    await runtime.stop()


async def test_failed_start_leaves_the_runtime_unstarted(tmp_path: Path) -> None:
    """A start() that fails (not a journal) raises, and later calls say the runtime isn't started."""
    path = tmp_path / "notes.db"
    path.write_text("not a database" * 100)
    runtime = runtime_at(path)
    with pytest.raises(NotAJournalError):
        await runtime.start()
    with pytest.raises(RuntimeNotStartedError, match="first"):
        await runtime.process(OVERLOAD)


async def test_a_stopped_runtime_says_it_was_stopped_and_starts_again(tmp_path: Path) -> None:
    """A call after stop() said "call start() first", as if the runtime had never run; it
    now says the runtime was stopped, and start() again serves the same journal."""
    runtime = runtime_at(tmp_path / "j.db")
    await runtime.start()
    first = await runtime.process(OVERLOAD)
    await runtime.stop()
    with pytest.raises(RuntimeNotStartedError, match="this runtime was stopped: call"):
        await runtime.process(OVERLOAD)
    with pytest.raises(RuntimeNotStartedError, match="was stopped"):
        await runtime.event_history(limit=1)
    await runtime.start()
    again = await runtime.process(OVERLOAD)
    await runtime.stop()
    assert again.seq > first.seq
    # a start() that fails once the journal is open closes it: that host never ran
    host = Host(tmp_path / "j.db", plugins=["not-installed"])
    with pytest.raises(ConfigurationError, match="not installed"):
        await host.start()
    with pytest.raises(RuntimeNotStartedError, match="first"):
        await host.agent("a").process(OVERLOAD)


async def test_event_id_of_another_agent_is_refused(tmp_path: Path) -> None:
    """Event ids are unique across the journal: another agent's id is a DuplicateEventError, not its decision."""
    journal = MemoryJournal()
    async with Runtime(agent_id="a", journal=journal, clock=ManualClock()) as a:
        await a.process({**OVERLOAD, "id": "shared"})
    async with Runtime(agent_id="b", journal=journal, clock=ManualClock()) as b:
        with pytest.raises(DuplicateEventError, match="already journaled by agent 'a'"):
            await b.process({**OVERLOAD, "id": "shared"})
        assert 2 == journal.head().seq


async def test_a_second_runtime_for_one_agent_on_one_file_waits_for_the_first(
    tmp_path: Path,
) -> None:
    """Two live runtimes of one agent each ran its actions: the second resumed actions the
    first was still running, and both carried out an approval. The second is refused while
    the first runs (AgentOwnedElsewhere), and serves the agent once the first has stopped;
    a runtime of another agent shares the file all along."""
    path = tmp_path / "shared.db"
    clock = ManualClock()
    first = Runtime(agent_id="agent", path=path, clock=clock, durability="normal")
    other = Runtime(agent_id="other", path=path, clock=clock, durability="normal")
    async with first, other:
        await first.process(SCENARIO[0])
        second = Runtime(agent_id="agent", path=path, clock=clock, durability="normal")
        with pytest.raises(AgentOwnedElsewhere, match="another Runtime or Host on") as caught:
            await second.start()
        assert "agent" == caught.value.agent
        await other.process(SCENARIO[1])
    async with Runtime(agent_id="agent", path=path, clock=clock, durability="normal") as again:
        await again.process(SCENARIO[2])
        assert 2 == again.state.events
    journal = SqliteJournal(path)
    try:
        assert journal.verify().ok
        assert verify_replay(journal).ok
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"durability": "fast"}, "durability"),
    ],
)
def test_bad_settings_raise_configuration_error(kwargs: dict[str, object], message: str) -> None:
    """A bad constructor argument is a ConfigurationError (also a ValueError) naming it."""
    from adaptive_runtime import ConfigurationError

    with pytest.raises(ConfigurationError, match=message) as caught:
        Runtime(persist=False, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": 123}, "path must be a file path"),
        ({"persist": "no"}, "persist must be True or False, not 'no'"),
        ({"commit_on_caller": "false"}, "commit_on_caller must be True or False"),
        ({"dry_run": 1}, "dry_run must be True or False"),
    ],
)
def test_a_path_or_a_flag_of_the_wrong_kind_is_a_configuration_error(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    """Runtime(path=123) raised a bare TypeError from os.fspath, and a flag given as a
    string was read as its truth: commit_on_caller="false" committed on the caller's
    thread, dry_run=1 ran no handler. Each is now a ConfigurationError naming it."""
    kwargs = {"path": tmp_path / "j.db", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        Runtime("a", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "j.db").exists()


async def test_a_journal_given_twice_is_refused_not_half_ignored(tmp_path: Path) -> None:
    """`Runtime("a", "prod.db", journal="memory:")` journaled in memory and said nothing of
    prod.db (nor did persist=False beside a journal): giving both is now refused."""
    for kwargs in ({"path": tmp_path / "prod.db"}, {"persist": False}):
        with pytest.raises(ConfigurationError, match="give the journal once"):
            Runtime("a", journal="memory:", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "prod.db").exists()
    async with Runtime("a", journal=str(tmp_path / "j.db")) as runtime:
        await runtime.process(OVERLOAD)
    assert (tmp_path / "j.db").exists()


async def test_replay_check_raises_on_a_decision_made_under_other_rules(tmp_path: Path) -> None:
    """verify_replay(...).check() raises ReplayMismatchError naming the first decision that differs."""
    from adaptive_runtime import ReplayMismatchError
    from adaptive_runtime.engines import History, Policy, decide, parse_event
    from adaptive_runtime.records import DecisionMade, EventReceived, to_pending

    journal = MemoryJournal()
    ev = parse_event(OVERLOAD)
    foreign = decide(
        Policy(rules=[("resource_pressure", None, 0, "page_oncall", "x")]), History(), ev, 5
    )
    journal.append(
        [to_pending("a", EventReceived(ev), 5), to_pending("a", DecisionMade(foreign), 5)]
    )
    report = verify_replay(journal)
    assert (False, 1) == (report.ok, len(report.mismatches))
    with pytest.raises(ReplayMismatchError) as caught:
        report.check()
    assert 2 == caught.value.seq
    assert "action" in report.mismatches[0].fields


async def test_an_entry_this_version_cannot_read_is_a_typed_error(tmp_path: Path) -> None:
    """A stream holding an unknown kind (a newer writer, or hostile input) fails start() with its seq."""
    from adaptive_runtime import JournalCorruptError
    from adaptive_runtime.records import Pending

    journal = MemoryJournal()
    async with Runtime(agent_id="a", journal=journal, clock=ManualClock()) as runtime:
        await runtime.process(OVERLOAD)
    journal.append(
        [Pending(stream="a", kind="FromTheFuture", ts_ns=1, body=b"\x93\xa4Nope\x01\x02")]
    )
    with pytest.raises(JournalCorruptError, match=r"seq 3 .*'FromTheFuture'") as caught:
        await Runtime(agent_id="a", journal=journal, clock=ManualClock()).start()
    assert 3 == caught.value.seq
    with pytest.raises(JournalCorruptError):
        verify_replay(journal)


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_a_runtime_used_from_another_event_loop_says_so_and_journals_nothing(
    tmp_path: Path, durability: str
) -> None:
    """Each asyncio.run() makes a new loop; a runtime started in one and used in another
    raised asyncio's "attached to a different loop" while its event was journaled all the
    same (at full). Now it says what to do, and nothing is journaled."""
    path = tmp_path / "j.db"
    runtime = Runtime(agent_id="a", path=path, clock=ManualClock(), durability=durability)
    asyncio.run(runtime.start())
    try:
        with pytest.raises(RuntimeNotStartedError, match="started on another event loop"):
            asyncio.run(runtime.process(OVERLOAD))
    finally:
        asyncio.run(runtime.stop())
    journal = SqliteJournal(path, create=False)
    try:
        assert [] == list(journal.read("a", kind="EventReceived"))
    finally:
        journal.close()


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_stop_from_another_event_loop_snapshots_and_closes_and_start_there_says_what_to_do(
    tmp_path: Path, durability: str
) -> None:
    """asyncio.run(runtime.stop()) after the loop that started it had ended raised
    asyncio's "Event loop is closed" once an event had been processed, leaving the journal
    open; start() there returned as if started, and event_history() met the same error."""
    path = tmp_path / "j.db"
    runtime = Runtime(agent_id="a", path=path, clock=ManualClock(), durability=durability)

    async def decide() -> None:
        await runtime.start()
        await runtime.process(OVERLOAD)

    asyncio.run(decide())
    for call in (runtime.start, runtime.event_history):
        with pytest.raises(RuntimeNotStartedError, match="started on another event loop"):
            asyncio.run(call())  # type: ignore[operator]
    asyncio.run(runtime.stop())  # on a third loop: snapshots, closes
    journal = SqliteJournal(path, create=False)
    try:
        assert [2] == [s.seq for s in journal.snapshots("a")]
    finally:
        journal.close()

    async def again() -> int:
        async with runtime:
            await runtime.process(OVERLOAD)
            return runtime.state.events

    assert 2 == asyncio.run(again())


async def test_a_call_that_reaches_the_journal_after_stop_hears_that_the_runtime_stopped(
    tmp_path: Path,
) -> None:
    """A call already past the runtime's door when stop() closes the journal (its event id
    being looked up, say) was told to call start() "first", as if it never had been: it
    hears that the runtime stopped."""
    runtime = runtime_at(tmp_path / "j.db")
    await runtime.start()
    ledger = await runtime.host.ledger("agent")  # where such a call stands
    await runtime.stop()
    with pytest.raises(RuntimeNotStartedError, match="stopped while this call was on its way"):
        ledger.require_worker()


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (
            lambda r: r.process_many("abc"),
            InvalidEventError,
            "a batch is a list of events, not str",
        ),
        (lambda r: r.process_many(None), InvalidEventError, "not NoneType"),
        (lambda r: r.process_many(OVERLOAD), InvalidEventError, "not dict"),
        (lambda r: r.host.process_many("abc"), InvalidEventError, "not str"),
        (lambda r: r.event_history("5"), ConfigurationError, "limit must be an int from 0"),
        (lambda r: r.stop(actions="later"), ConfigurationError, "'wait' or 'interrupt'"),
        # "no" is true: it waited for the handlers, the opposite of what was meant
        (
            lambda r: r.stop(wait_for_handlers="no"),
            ConfigurationError,
            "wait_for_handlers must be True or False, not 'no'",
        ),
    ],
)
async def test_a_call_of_the_wrong_kind_is_refused_whole(
    tmp_path: Path, call: Any, error: type[Exception], says: str
) -> None:
    """process_many("abc") decided nothing and answered an error per letter, None raised a
    bare TypeError, event_history("5") too, and stop(actions="later") stopped as "wait".
    Nothing is journaled, and the runtime still serves."""
    async with runtime_at(tmp_path / "j.db") as runtime:
        head = runtime.journal.head()
        with pytest.raises(error, match=says):
            await call(runtime)
        assert head == runtime.journal.head()
        assert "restart_service" == (await runtime.process(OVERLOAD)).action


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_stop_cancelled_midway_still_closes_the_journal_and_frees_the_agent(
    tmp_path: Path, durability: str
) -> None:
    """stop() cancelled while it closed the journal (a timeout around it, or a second
    Ctrl-C) left the journal open and the agent's lock held by this process: stop()
    again returned at once, and start() again refused with AgentOwnedElsewhere, "a live
    process on this machine", this one. A stop cancelled at any step now closes
    everything it began to close, then lets the cancellation go on."""
    path = tmp_path / "j.db"
    cancelled = 0
    rounds = 12
    for steps in range(rounds):  # the cancel lands a step later each time, as the stop closes
        runtime = Runtime(agent_id="a", path=path, durability=durability)
        await runtime.start()
        await runtime.process(OVERLOAD)
        stopping = asyncio.ensure_future(runtime.stop())
        while runtime.host.started and not stopping.done():  # up to the closing itself
            await asyncio.sleep(0)
        for _ in range(steps):
            await asyncio.sleep(0)
        stopping.cancel()
        try:
            await stopping
        except asyncio.CancelledError:
            cancelled += 1
        await runtime.stop()
        async with Runtime(agent_id="a", path=path, durability=durability) as again:
            await again.process(OVERLOAD)  # the agent is free, the journal whole
    assert cancelled > 0
    journal = SqliteJournal(path, create=False)
    try:
        assert journal.verify().ok
        assert 2 * rounds == sum(1 for _ in journal.read("a", kind="DecisionMade"))
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("path", "error", "says"),
    [
        ("/proc/adaptive-runtime-test.db", "JournalError", "cannot create the journal"),
        ("/sys/adaptive-runtime-test.db", "JournalError", "cannot create the journal"),
        ("j\x00.db", "ConfigurationError", "can't hold a NUL character"),
    ],
)
async def test_a_journal_path_that_cannot_be_made_is_a_typed_error(
    path: str, error: str, says: str
) -> None:
    """A path in a folder where no file can be made (/proc, /sys, a read-only mount, a
    folder of another user's) raised a bare FileNotFoundError or PermissionError from
    start(), and a NUL in the path a bare ValueError: each is now an AdaptiveRuntimeError
    that says what to fix."""
    from adaptive_runtime.errors import AdaptiveRuntimeError

    runtime = Runtime(agent_id="a", path=path)
    with pytest.raises(AdaptiveRuntimeError, match=says) as caught:
        await runtime.start()
    assert error == type(caught.value).__name__
