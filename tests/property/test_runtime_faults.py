"""A live runtime under random calls and journal faults, checked against the journal itself.

Hypothesis drives one Runtime on a SQLite file with process(), process_many() (bad
events and reused ids mixed in), record_outcome() and a moving clock, while the journal
under it sometimes fails a commit before writing, fails after writing (the outcome is
unknown to the caller), or is overtaken by another writer on the agent's stream.

After every step whose state the ledger claims to know (it is not stale):
- the state it folded live equals a rebuild from the journal, byte for byte;
- the inputs it decides from (its view) equal that state: nothing is folded in twice or
  left in from a batch that was never committed.
Every decision it answered is the one journaled at its seq. At the end, replay
re-decides every event to the same bytes, and a restarted runtime starts from the same
state. It runs at the three commit paths: inline (normal), the journal's thread (full),
and the caller's thread (full, commit_on_caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adaptive_runtime import (
    AdaptiveRuntimeError,
    Decision,
    ManualClock,
    Runtime,
)
from adaptive_runtime.errors import JournalUnavailableError
from adaptive_runtime.projections import encode_state, rebuild
from adaptive_runtime.projections.replay import verify_replay
from adaptive_runtime.records import DecisionMade, StatePatched, read_as, to_pending

AGENT = "agent"
TYPES = ["service_overload", "anomaly_detected", "timeout", "auth_failure", "recovery_needed"]

events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "severity": st.sampled_from([0.1, 0.5, 0.82, 0.95]),
        "cpu": st.sampled_from([10, 60, 94]),
    },
    optional={"id": st.sampled_from(["e1", "e2", "e3"])},
)
bad_events = st.sampled_from([{}, {"type": ""}, {"type": "x", "severity": "high"}, [1, 2]])
maybe_bad = st.one_of(events, events, events, bad_events)


class _FaultyJournal:
    """The runtime's journal, with one fault armed for the next commit at most."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed: str | None = None
        self.intrusions = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append_many(
        self, batches: Sequence[Sequence[Any]], expected: Sequence[int | None] | None = None
    ) -> list[Any]:
        fault, self.armed = self.armed, None
        if fault == "before":
            raise JournalUnavailableError("injected: the commit failed before writing")
        if fault == "intrude":
            self.intrusions += 1
            patch = StatePatched(values={"intruder": self.intrusions})
            self.inner.append([to_pending(AGENT, patch, 1)])
        results = self.inner.append_many(batches, expected)
        if fault == "after":
            raise JournalUnavailableError("injected: the commit's answer was lost")
        return results


class RuntimeUnderFaults(RuleBasedStateMachine):
    durability = "normal"
    commit_on_caller = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "j.db"
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.runtime = self._open()
        worker = self.runtime.host._worker
        assert worker is not None
        self.faulty = _FaultyJournal(worker._journal)
        worker._journal = self.faulty
        self.answered: list[Decision] = []

    def _open(self) -> Runtime:
        runtime = Runtime(
            agent_id=AGENT,
            path=self.path,
            durability=self.durability,  # type: ignore[arg-type]
            commit_on_caller=self.commit_on_caller,
            clock=self.clock,
            checkpoint_every=7,
        )
        self.loop.run_until_complete(runtime.start())
        return runtime

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def ledger(self) -> Any:
        return self._run(self.runtime.host.ledger(AGENT))

    # -- steps -----------------------------------------------------------------

    @rule(fault=st.sampled_from(["before", "after", "intrude"]))
    def arm(self, fault: str) -> None:
        self.faulty.armed = fault

    @rule(seconds=st.sampled_from([1.0, 30.0, 600.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(event=maybe_bad)
    def process(self, event: Any) -> None:
        with contextlib.suppress(AdaptiveRuntimeError):
            self.answered.append(self._run(self.runtime.process(event)))

    @rule(batch=st.lists(maybe_bad, min_size=1, max_size=6))
    def process_many(self, batch: list[Any]) -> None:
        try:
            results = self._run(self.runtime.process_many(batch))
        except AdaptiveRuntimeError:
            return
        assert len(batch) == len(results)
        self.answered += [r for r in results if isinstance(r, Decision)]

    @precondition(lambda self: self.answered)
    @rule(pick=st.integers(min_value=0), success=st.booleans())
    def record_outcome(self, pick: int, success: bool) -> None:
        decision = self.answered[pick % len(self.answered)]
        with contextlib.suppress(AdaptiveRuntimeError):
            self._run(self.runtime.record_outcome(decision, success=success))

    # -- what must hold --------------------------------------------------------

    @invariant()
    def a_known_state_is_the_journals(self) -> None:
        ledger = self.ledger
        if ledger.stale:  # it said it does not know: the next call rebuilds first
            return
        rebuilt = encode_state(rebuild(self.faulty.inner, AGENT).state)
        assert rebuilt == encode_state(ledger.state)
        assert rebuilt == encode_state(ledger.view)

    @invariant()
    def each_answer_is_what_was_journaled(self) -> None:
        for decision in self.answered[-8:]:
            entry = self.faulty.inner.get(decision.seq)
            journaled = read_as(entry, DecisionMade).decision
            unsequenced = msgspec.structs.replace(decision, seq=None, event_seq=None)
            assert msgspec.structs.replace(journaled, seq=None, event_seq=None) == unsequenced

    def teardown(self) -> None:
        try:
            journal = self.faulty.inner
            report = verify_replay(journal)
            assert report.ok, report.mismatches[:3]
            assert journal.verify().ok
            final = encode_state(rebuild(journal, AGENT).state)
            self._run(self.runtime.stop())
            again = self._open()
            try:
                assert final == encode_state(self._run(again.host.ledger(AGENT)).state)
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


class RuntimeUnderFaultsFull(RuntimeUnderFaults):
    durability = "full"


class RuntimeUnderFaultsOnCaller(RuntimeUnderFaults):
    durability = "full"
    commit_on_caller = True


TestInlineCommits = RuntimeUnderFaults.TestCase
TestInlineCommits.settings = SETTINGS
TestCommitsOnTheJournalsThread = RuntimeUnderFaultsFull.TestCase
TestCommitsOnTheJournalsThread.settings = SETTINGS
TestCommitsOnTheCallersThread = RuntimeUnderFaultsOnCaller.TestCase
TestCommitsOnTheCallersThread.settings = SETTINGS
