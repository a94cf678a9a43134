"""Pins for the agent fold, step by step: each record kind's exact effect on the state
(see RELIABILITY.md, "Mutation testing"; replay can't catch a wrong fold, since live and
replayed state come from the same fold)."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_runtime.engines import Outcomes, Policy, decide, parse_event
from adaptive_runtime.engines.learning import Tally
from adaptive_runtime.journal import MemoryJournal
from adaptive_runtime.projections import AgentState, evolve
from adaptive_runtime.projections.agent import OpenAction, apply_patch
from adaptive_runtime.records import (
    ActionAbandoned,
    ActionFailed,
    ActionScheduled,
    ActionStarted,
    ActionSucceeded,
    Breaker,
    DecisionMade,
    Event,
    EventReceived,
    OutcomeRecorded,
    StatePatched,
    to_pending,
)


class Stream:
    """A journal of one agent and the state folded from it, one record at a time."""

    def __init__(self) -> None:
        self.journal = MemoryJournal()
        self.state = AgentState(stream="a")

    def add(self, record: Any, ts: int) -> int:
        [entry] = self.journal.append([to_pending("a", record, ts)])
        evolve(self.state, entry)
        return entry.seq


def _decided(stream: Stream, ts: int = 10) -> int:
    stream.add(EventReceived(Event(type="service_overload")), ts)
    d = decide(Policy(), Outcomes(), parse_event({"type": "service_overload", "severity": 0.9}), ts)
    return stream.add(DecisionMade(d), ts)


def test_an_attempt_started_is_open_and_running_until_its_result() -> None:
    s = Stream()
    seq = _decided(s)
    s.add(ActionScheduled(action="x", breaker=Breaker()), 10)
    assert {seq: OpenAction("x", 0, False, 10, True)} == s.state.open_actions
    s.add(ActionStarted(decision_seq=seq, action="x", attempt=1), 20)
    assert {seq: OpenAction("x", 1, True, 20, True)} == s.state.open_actions
    assert 1 == s.state.action_attempts
    s.add(
        ActionFailed(
            decision_seq=seq, action="x", attempt=1, error="e", breaker=Breaker(), retry_in=None
        ),
        30,
    )
    assert {seq: OpenAction("x", 1, False, 30, False)} == s.state.open_actions  # no retry left
    assert 1 == s.state.action_failures
    s.add(ActionAbandoned(decision_seq=seq, action="x", attempts=1, reason="r"), 40)
    assert ({}, 1) == (s.state.open_actions, s.state.actions_abandoned)


def test_a_failure_schedules_the_retry_after_its_wait() -> None:
    s = Stream()
    seq = _decided(s)
    s.add(ActionScheduled(action="x", breaker=Breaker()), 10)
    s.add(
        ActionFailed(
            decision_seq=seq, action="x", attempt=1, error="e", breaker=Breaker(), retry_in=0.25
        ),
        1_000,
    )
    assert OpenAction("x", 1, False, 1_000 + 250_000_000, True) == s.state.open_actions[seq]
    s.add(ActionSucceeded(decision_seq=seq, action="x", attempt=2, breaker=Breaker()), 2_000)
    assert ({}, 1) == (s.state.open_actions, s.state.actions_succeeded)


def test_results_of_actions_not_open_change_no_open_action() -> None:
    """A failure or an abandon for a decision with no open action (already closed) is
    counted but opens nothing."""
    s = Stream()
    s.add(
        ActionFailed(
            decision_seq=99,
            action="x",
            attempt=1,
            error="e",
            breaker=Breaker("open", 1, 5),
            retry_in=1.0,
        ),
        10,
    )
    assert ({}, 1, Breaker("open", 1, 5)) == (
        s.state.open_actions,
        s.state.action_failures,
        s.state.breakers["x"],
    )
    s.add(ActionSucceeded(decision_seq=99, action="x", attempt=1, breaker=Breaker()), 11)
    assert ({}, Breaker()) == (s.state.open_actions, s.state.breakers["x"])


def test_outcomes_count_and_feed_the_action_s_record() -> None:
    s = Stream()
    seq = _decided(s)
    for ts, success in ((11, True), (12, False)):
        outcome = OutcomeRecorded(
            decision_seq=seq,
            context="resource_pressure",
            risk="high",
            action="scale_up_immediate",
            success=success,
            confidence=0.9,
        )
        s.add(outcome, ts)
    assert (2, 1) == (s.state.outcomes, s.state.successes)
    # the success, faded once by the failure after it (0.98), and the failure
    assert {
        "resource_pressure/high": {"scale_up_immediate": Tally(0.98, 1.0)}
    } == s.state.history.tallies
    assert 2 == s.state.history.outcomes


def test_patches_merge_or_replace() -> None:
    assert {"a": 1, "b": 2} == apply_patch({"a": 1}, StatePatched(values={"b": 2}))
    assert {"b": 2} == apply_patch({"a": 1}, StatePatched(values={"b": 2}, replace=True))
    assert {"b": 2} == apply_patch(None, StatePatched(values={"b": 2}))
    s = Stream()
    s.add(StatePatched(values={"a": 1}), 1)
    s.add(StatePatched(values={"b": 2}), 2)
    s.add(StatePatched(values={"c": 3}, replace=True), 3)
    assert {"c": 3} == s.state.kv


def test_an_entry_folded_again_changes_nothing_and_the_seq_moves_on() -> None:
    s = Stream()
    seq = _decided(s)
    entry = s.journal.get(seq)
    assert entry is not None
    before = (s.state.events, s.state.decisions, dict(s.state.actions), s.state.seq)
    evolve(s.state, entry)
    assert before == (s.state.events, s.state.decisions, dict(s.state.actions), s.state.seq)
    assert (seq, seq, 10) == (s.state.seq, s.state.stream_seq, s.state.ts_ns)
    assert (1, 1, seq) == (s.state.events, s.state.decisions, s.state.last_decision_seq)


def test_every_counter_counts_past_one() -> None:
    from adaptive_runtime.records import ActionSkipped, CheckpointCreated

    s = Stream()
    seqs = [_decided(s), _decided(s)]
    for seq in seqs:
        s.add(ActionScheduled(action="x", breaker=Breaker("half_open", 1, 3)), 10)
        s.add(ActionStarted(decision_seq=seq, action="x", attempt=1), 11)
        s.add(
            ActionFailed(
                decision_seq=seq, action="x", attempt=1, error="e", breaker=Breaker(), retry_in=0.1
            ),
            12,
        )
        s.add(ActionStarted(decision_seq=seq, action="x", attempt=2), 13)
    s.add(ActionSucceeded(decision_seq=seqs[0], action="x", attempt=2, breaker=Breaker()), 14)
    s.add(ActionSucceeded(decision_seq=seqs[1], action="x", attempt=2, breaker=Breaker()), 14)
    s.add(ActionAbandoned(decision_seq=seqs[0], action="x", attempts=2, reason="r"), 15)
    s.add(ActionAbandoned(decision_seq=seqs[1], action="x", attempts=2, reason="r"), 15)
    for _ in range(2):
        s.add(ActionSkipped(action="y", reason="circuit breaker open"), 16)
        s.add(CheckpointCreated(state={}), 17)
    st = s.state
    assert (2, 2, 4, 2, 2, 2, 2, 2) == (
        st.events,
        st.decisions,
        st.action_attempts,
        st.action_failures,
        st.actions_succeeded,
        st.actions_abandoned,
        st.actions_skipped,
        st.checkpoints,
    )


def test_a_scheduled_action_records_its_breaker() -> None:
    s = Stream()
    _decided(s)
    s.add(ActionScheduled(action="x", breaker=Breaker("half_open", 1, 3)), 10)
    assert Breaker("half_open", 1, 3) == s.state.breakers["x"]


def test_outcomes_fade_by_the_journaled_learning_policy() -> None:
    from adaptive_runtime.records import LearningPolicy, RulesChanged

    s = Stream()
    seq = _decided(s)
    s.add(RulesChanged(rules=(), ruleset="h", learning=LearningPolicy(fade=0.5)), 10)
    for success in (True, True):
        outcome = OutcomeRecorded(
            decision_seq=seq, context="c", risk="low", action="a", success=success, confidence=0.5
        )
        s.add(outcome, 11)
    assert {"c/low": {"a": Tally(1.5, 0.0)}} == s.state.history.tallies  # 1 x 0.5 + 1


def test_a_decision_that_can_t_be_read_is_named_by_its_seq() -> None:
    from adaptive_runtime.errors import JournalCorruptError
    from adaptive_runtime.journal import Pending

    s = Stream()
    [entry] = s.journal.append([Pending(stream="a", kind="DecisionMade", ts_ns=1, body=b"\x01")])
    with pytest.raises(JournalCorruptError) as bad:
        evolve(s.state, entry)
    assert bad.value.seq == entry.seq


def test_state_records_have_these_defaults_and_layouts() -> None:
    import msgspec

    from adaptive_runtime.projections.agent import DecisionSummary

    state = AgentState()
    assert ("", 0, 0, 0, 0, None) == (
        state.stream,
        state.seq,
        state.stream_seq,
        state.ts_ns,
        state.last_decision_seq,
        state.learning,
    )
    with pytest.raises(TypeError):
        AgentState("a")  # type: ignore[misc]
    assert (0, False, 0, True) == (
        OpenAction("x").attempt,
        OpenAction("x").running,
        OpenAction("x").due_ns,
        OpenAction("x").retrying,
    )
    summary = DecisionSummary(1, 2, "t", "a", "p", 0.5, "low")
    assert [1, 2, "t", "a", "p", 0.5, "low"] == msgspec.json.decode(msgspec.json.encode(summary))
    assert ["x", 0, False, 0, True, False] == msgspec.json.decode(
        msgspec.json.encode(OpenAction("x"))
    )
    # a snapshot written before `verifying` existed still reads, as not verifying
    old = msgspec.json.decode(b'["x", 2, true, 7, false]', type=OpenAction)
    assert OpenAction("x", 2, True, 7, False, False) == old
    with pytest.raises(AttributeError):
        summary.seq = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        OpenAction("x").attempt = 1  # type: ignore[misc]
