"""Hostile input against a live runtime: a typed error every time, and the journal never moves."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_runtime import (
    AdaptiveRuntimeError,
    Decision,
    Host,
    InvalidEventError,
    ManualClock,
    Runtime,
)

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.integers(),
    st.just(10**4000),
    st.just("\ud800 lone surrogate"),
    st.just("x" * 20_000),
)
values = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=12,
)
keys = st.one_of(
    st.sampled_from(
        ["type", "severity", "cpu", "memory", "error_rate", "latency_ms", "id", "extra"]
    ),
    st.text(max_size=8),
    st.integers(),
)
hostile = st.one_of(
    values,
    st.dictionaries(keys, values, max_size=8),
    st.just({"type": "x" * 1000}),
    st.just({"type": "ok", "deep": [[[[[[1]]]]]]}),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile, min_size=1, max_size=5))
def test_hostile_events_get_typed_errors_and_leave_the_journal_alone(events: list[object]) -> None:
    """Each event is either decided and journaled, or refused with InvalidEventError and nothing moves."""

    async def run() -> None:
        async with Runtime(persist=False, clock=ManualClock()) as runtime:
            for raw in events:
                head = runtime.journal.head()
                try:
                    decision = await runtime.process(raw)  # type: ignore[arg-type]
                except InvalidEventError:
                    assert head == runtime.journal.head()
                    continue
                assert decision.seq == runtime.journal.head().seq
            assert runtime.journal.verify().ok

    asyncio.run(run())


agent_ids = st.one_of(
    st.sampled_from(["a", "b", "", "~host", "~x", "x" * 300, "\ud800"]),
    st.text(max_size=4),
    leaves,
)
routed = st.one_of(
    hostile,
    st.builds(
        lambda agent, event: {**event, "agent_id": agent},
        agent_ids,
        st.fixed_dictionaries({"type": st.sampled_from(["timeout", "service_overload", ""])}),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(routed, min_size=1, max_size=8))
def test_hostile_batches_fail_event_by_event_across_agents(events: list[object]) -> None:
    """Host.process_many over hostile events for any agent: one result each, a Decision or
    the event's own typed error; the call never fails as a whole, and the chain holds."""

    async def run() -> None:
        async with Host("memory:", clock=ManualClock()) as host:
            results = await host.process_many(events)  # type: ignore[arg-type]
            assert len(events) == len(results)
            for result in results:
                assert isinstance(result, Decision | AdaptiveRuntimeError), result
                if isinstance(result, Decision):
                    assert host.journal.get(result.seq) is not None
            decided = sum(isinstance(r, Decision) for r in results)
            assert 2 * decided == host.journal.head().seq
            assert host.journal.verify().ok

    asyncio.run(run())
