"""A live host under random calls and journal faults, checked against the journal itself.

Hypothesis drives one Host of two agents on a SQLite file with process(),
process_many() (both agents' events, bad events and reused ids mixed in), several
process() and process_many() calls at once (through the journal's thread, the later
ones queued behind a held commit, so that they commit after it even when it fails), record_outcome()
(with or without an id, a few ids reused: a repeat answered with the first, another
decision or result under a used id refused), set_rules() and a moving clock, while the journal under it sometimes fails a commit
before writing, fails after writing (the outcome is unknown to the caller), or is
overtaken by another writer on one agent's stream.

After every step, for each agent whose state its ledger claims to know (it is not stale):
- the state it folded live equals a rebuild from the journal up to the last entry it
  knows, byte for byte (another writer's entry after that is found at its next append);
- the inputs it decides from (its view) equal that state's: nothing is folded in twice or
  left in from a batch that was never committed. Committing inline, the view is the
  state; through the journal's thread, it folded queued batches at provisional seqs, so
  its rules, learning, outcome history, breakers, kv and counts are compared.
Every decision it answered is the one journaled at its seq. At the end, replay
re-decides every event to the same bytes (fleet gating included), and a restarted host
starts from the same states. It runs at the three commit paths: inline (normal), the
journal's thread (full), and the caller's thread (full, commit_on_caller); and inline
and through the journal's thread again, under a fleet policy whose budget, cooldown and
incidents depend on both agents; with a handler for every action, inline and through
the journal's thread (each step waits for the actions it started, and after the restart
every action scheduled has run to its end, each once); inline with one agent loaded at a time, so
that each switch evicts the other; and on PostgreSQL (skipped without a server).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from journal_support import FaultyJournal
from postgres_support import fresh_url, pg_url

from adaptive_runtime import (
    AdaptiveRuntimeError,
    Decision,
    FleetPolicy,
    Host,
    ManualClock,
)
from adaptive_runtime.engines.entries import check_entry
from adaptive_runtime.errors import DuplicateEventError
from adaptive_runtime.projections import AgentState, encode_state, rebuild
from adaptive_runtime.projections.replay import verify_replay
from adaptive_runtime.records import DecisionMade, OutcomeRecorded, read_as

AGENTS = ("a", "b")
ACTIONS = (
    "restart_service",
    "scale_up_immediate",
    "throttle_requests",
    "optimize_resources",
    "rollback_deployment",
    "isolate_component",
    "flag_for_review",
    "trigger_security_audit",
    "cache_warmup",
    "run_recovery",
)
TYPES = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]

events = st.fixed_dictionaries(
    {
        "agent_id": st.sampled_from(AGENTS),
        "type": st.sampled_from(TYPES),
        "severity": st.sampled_from([0.1, 0.5, 0.82, 0.95]),
        "cpu": st.sampled_from([10, 60, 94]),
        "memory": st.sampled_from([20, 88]),  # 88 with high cpu: disruptive actions
    },
    optional={"id": st.sampled_from(["e1", "e2", "e3"])},
)
RULE_SETS: list[list[dict[str, Any]]] = [
    [],
    [
        {
            "context": "resource_pressure",
            "risk": None,
            "min_conf": 0.3,
            "action": "restart_service",
            "reason": "custom_restart",
            "alternatives": ["scale_up_immediate"],
        }
    ],
    [{"context": None, "risk": "low", "min_conf": 0.0, "action": "log_only", "reason": "quiet"}],
]
bad_events = st.sampled_from(
    [{}, {"type": ""}, {"type": "x", "severity": "high"}, {"type": "x", "agent_id": ""}, [1, 2]]
)
maybe_bad = st.one_of(events, events, events, bad_events)
without_id = events.map(lambda event: {k: v for k, v in event.items() if k != "id"})


def _decision_inputs(state: AgentState) -> bytes:
    """What a decision is made from (and the counts), leaving out the seqs of entries."""
    return msgspec.msgpack.encode(
        (
            state.stream_seq,
            state.events,
            state.decisions,
            state.outcomes,
            state.history,
            state.rules,
            state.learning,
            state.kv,
            state.breakers,
        )
    )


class HostUnderFaults(RuleBasedStateMachine):
    durability = "normal"
    commit_on_caller = False
    fleet: FleetPolicy | None = None
    max_loaded_agents = 1000
    faults = ("before", "after", "intrude")
    with_actions = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "j.db"
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.host = self._open()
        self.faulty = FaultyJournal.installed_in(self.host)
        self.answered: list[Decision] = []
        self.ran: list[str] = []

    def _open(self) -> Host:
        host = Host(
            self.where(),
            durability=self.durability,  # type: ignore[arg-type]
            commit_on_caller=self.commit_on_caller,
            clock=self.clock,
            checkpoint_every=7,
            fleet=self.fleet,
            max_loaded_agents=self.max_loaded_agents,
        )
        if self.with_actions:
            for name in ACTIONS:
                host.action(name)(self._handler)
        self.loop.run_until_complete(host.start())
        return host

    def _handler(self, call: Any) -> None:
        self.ran.append(call.key)

    def where(self) -> Any:
        return self.path

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _step(self, coro: Any) -> Any:
        """Run one call, then wait for the actions it started (so each step ends settled)."""
        try:
            return self._run(coro)
        finally:
            if self.with_actions:
                self._run(self.host.wait_for_actions())

    # -- steps -----------------------------------------------------------------

    @rule(fault=st.sampled_from(["before", "after", "intrude"]), agent=st.sampled_from(AGENTS))
    def arm(self, fault: str, agent: str) -> None:
        if fault in self.faults:
            self.faulty.armed = (fault, agent)

    @rule(seconds=st.sampled_from([1.0, 30.0, 600.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(event=maybe_bad)
    def process(self, event: Any) -> None:
        with contextlib.suppress(AdaptiveRuntimeError):
            self.answered.append(self._step(self.host.process(event)))

    @rule(batch=st.lists(maybe_bad, min_size=1, max_size=6))
    def process_many(self, batch: list[Any]) -> None:
        try:
            results = self._step(self.host.process_many(batch))
        except AdaptiveRuntimeError:
            return
        assert len(batch) == len(results)
        self.answered += [r for r in results if isinstance(r, Decision)]

    @rule(
        first=without_id,
        rest=st.lists(
            st.one_of(maybe_bad, st.tuples(st.just("many"), st.lists(maybe_bad, max_size=3))),
            min_size=1,
            max_size=3,
        ),
    )
    def process_at_once(self, first: dict[str, Any], rest: list[Any]) -> None:
        """Several process() (and process_many(), given as ("many", events)) calls in flight
        at once. Through the journal's thread, the first one's commit (or whichever commit
        is next) is held until the others have queued, so that they commit after it, in a
        later transaction, even when it fails."""
        worker = self.host.require_worker()

        def call(item: Any) -> Any:
            if isinstance(item, tuple):
                return self.host.process_many(item[1])
            return self.host.process(item)

        async def together() -> list[Any]:
            release = None if worker.inline else self.faulty.hold_next()
            calls = [asyncio.ensure_future(self.host.process(first))]
            try:
                # until the commit is held, or the call ended without one (nothing to commit)
                while release is not None and not self.faulty.holding.is_set():
                    if calls[0].done():
                        break
                    await asyncio.to_thread(self.faulty.holding.wait, 0.005)
                calls += [asyncio.ensure_future(call(item)) for item in rest]
                for _ in range(50):  # each of them runs up to its wait for the journal
                    await asyncio.sleep(0)
            finally:
                if release is not None:
                    release.set()
            return await asyncio.gather(*calls, return_exceptions=True)

        for result in self._step(together()):
            for one in result if isinstance(result, list) else [result]:
                if isinstance(one, Decision):
                    self.answered.append(one)
                elif not isinstance(one, AdaptiveRuntimeError):
                    raise one

    @rule(agent=st.sampled_from(AGENTS), pick=st.sampled_from(range(len(RULE_SETS))))
    def set_rules(self, agent: str, pick: int) -> None:
        with contextlib.suppress(AdaptiveRuntimeError):
            self._step(self.host.agent(agent).set_rules(RULE_SETS[pick]))

    # No precondition on the answers so far: through the journal's thread, which agent's
    # batch meets an armed fault first varies from run to run, and hypothesis needs the
    # rules it may draw to depend on its draws alone.
    @rule(
        pick=st.integers(min_value=0),
        success=st.booleans(),
        oid=st.sampled_from([None, "o-1", "o-2"]),
    )
    def record_outcome(self, pick: int, success: bool, oid: str | None) -> None:
        if not self.answered:
            return
        decision = self.answered[pick % len(self.answered)]
        agent = self.faulty.inner.get(decision.seq).stream
        outcome = self.host.agent(agent).record_outcome(decision, success=success, id=oid)
        try:
            self._step(outcome)
        except DuplicateEventError:
            # the id holds another outcome: another decision's, or the other result
            assert oid is not None
            assert (decision.seq, success) != self._journaled_under(oid)
        except AdaptiveRuntimeError:
            return
        else:  # journaled now, or earlier (a repeat, maybe after a failure lost its answer)
            assert oid is None or (decision.seq, success) == self._journaled_under(oid)

    def _journaled_under(self, oid: str) -> tuple[int, bool]:
        entry = self.faulty.inner.by_event_id(f"outcome:{oid}")
        assert entry is not None, oid
        record = read_as(entry, OutcomeRecorded)
        return record.decision_seq, record.success

    # -- what must hold --------------------------------------------------------

    @invariant()
    def a_known_state_is_the_journals(self) -> None:
        for agent in AGENTS:
            ledger = self._run(self.host.ledger(agent))
            if ledger.stale:  # it said it does not know: its next call rebuilds first
                continue
            # Up to the last entry it knows: another writer's later entry on its stream is
            # found at its next append (a conflict), not before.
            rebuilt = encode_state(rebuild(self.faulty.inner, agent, upto=ledger.state.seq).state)
            assert rebuilt == encode_state(ledger.state), agent
            if self.host.require_worker().inline:
                assert ledger.view is ledger.state
            else:  # queued batches were folded at provisional seqs; the inputs are exact
                assert _decision_inputs(ledger.view) == _decision_inputs(ledger.state), agent

    @invariant()
    def each_answer_is_what_was_journaled(self) -> None:
        for decision in self.answered[-12:]:
            entry = self.faulty.inner.get(decision.seq)
            journaled = read_as(entry, DecisionMade).decision
            unsequenced = msgspec.structs.replace(decision, seq=None, event_seq=None)
            assert msgspec.structs.replace(journaled, seq=None, event_seq=None) == unsequenced

    def teardown(self) -> None:
        try:
            journal = self.faulty.inner
            try:
                report = verify_replay(journal)
                assert report.ok, report.mismatches[:3]
                assert journal.verify().ok
                for entry in journal.read():  # what the runtime journals, an import takes
                    check_entry(entry.kind, entry.body)
                final = [encode_state(rebuild(journal, agent).state) for agent in AGENTS]
            finally:
                self._run(self.host.stop())
            again = self._open()
            try:
                if self.with_actions:  # start() resumed what was left open: let it finish
                    self._run(again.wait_for_actions())
                    final = [encode_state(rebuild(again.journal, a).state) for a in AGENTS]
                states = [self._run(again.ledger(agent)).state for agent in AGENTS]
                assert final == [encode_state(state) for state in states]
                if self.with_actions:  # every action scheduled has run to its end, once
                    assert [{}, {}] == [state.open_actions for state in states]
                    assert len(self.ran) == len(set(self.ran)), self.ran
            finally:
                self._run(again.stop())
        finally:
            self.loop.close()
            self.dir.cleanup()


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class HostUnderFaultsFull(HostUnderFaults):
    durability = "full"


class HostUnderFaultsOnCaller(HostUnderFaults):
    durability = "full"
    commit_on_caller = True


class HostUnderFaultsWithAFleet(HostUnderFaults):
    # The other writer appends no decisions (StatePatched): the fleet's gating replays the
    # same only while one host makes the decisions (README, fleet safety).
    fleet = FleetPolicy(
        budget=3,
        budget_window=120.0,
        cooldown=60.0,
        correlate_agents=2,
        correlate_window=60.0,
        hold_during_incident=True,
    )


class HostUnderFaultsWithAFleetFull(HostUnderFaultsWithAFleet):
    durability = "full"


class HostUnderFaultsWithActions(HostUnderFaults):
    """A handler for every action: each step waits for the actions it started."""

    with_actions = True


class HostUnderFaultsWithActionsFull(HostUnderFaultsWithActions):
    durability = "full"


class HostUnderFaultsEvicting(HostUnderFaults):
    """One agent loaded at a time: each switch evicts the other (snapshot, then rebuild)."""

    max_loaded_agents = 1


class HostUnderFaultsOnPostgres(HostUnderFaults):
    """On PostgreSQL: never inline, with agent ownership (claims) in force."""

    durability = "full"
    url: str | None = None

    def where(self) -> Any:
        if self.url is None:
            self.url = fresh_url("faults")
        return self.url


def _case(machine: type[HostUnderFaults]) -> Any:
    case = machine.TestCase
    case.settings = SETTINGS
    return case


TestInlineCommits = _case(HostUnderFaults)
TestCommitsOnTheJournalsThread = _case(HostUnderFaultsFull)
TestCommitsOnTheCallersThread = _case(HostUnderFaultsOnCaller)
TestInlineCommitsUnderAFleetPolicy = _case(HostUnderFaultsWithAFleet)
TestJournalsThreadUnderAFleetPolicy = _case(HostUnderFaultsWithAFleetFull)
TestInlineCommitsWithActions = _case(HostUnderFaultsWithActions)
TestJournalsThreadWithActions = _case(HostUnderFaultsWithActionsFull)
TestInlineCommitsEvictingAgents = _case(HostUnderFaultsEvicting)


@pytest.fixture
def _postgres() -> None:
    pg_url()  # skipped, saying how to run it, without a server


@pytest.mark.usefixtures("_postgres")
class TestCommitsOnPostgres(HostUnderFaultsOnPostgres.TestCase):  # type: ignore[name-defined]
    settings = settings(SETTINGS, max_examples=15)
