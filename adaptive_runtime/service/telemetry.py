"""The service's Prometheus metrics, produced with prometheus-client in a registry of its own.

Counts come from the host's commits (a watcher), so they say what was journaled, not
what was asked: decisions by action and priority, events, outcomes, incidents, action
attempts and how they ended. Gauges and the commit latency are read at scrape time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..journal.open import sqlite_path
from ..records import (
    ActionAbandoned,
    ActionFailed,
    ActionStarted,
    ActionSucceeded,
    DecisionMade,
    Entry,
    OutcomeRecorded,
    read_record,
)
from ..runtime.host import Host

__all__ = ["Telemetry"]

PROCESS_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Telemetry:
    """Every metric of one server; `watch` is the host commit watcher that feeds the counts."""

    def __init__(self, host: Host) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "adaptive_runtime_decisions",
            "Decisions journaled, by action and priority.",
            ["action", "priority"],
            registry=r,
        )
        self.events = Counter("adaptive_runtime_events", "Events journaled.", registry=r)
        self.outcomes = Counter(
            "adaptive_runtime_outcomes", "Outcomes journaled, by result.", ["result"], registry=r
        )
        self.incidents = Counter(
            "adaptive_runtime_incidents", "Fleet incidents opened.", registry=r
        )
        self.attempts = Counter(
            "adaptive_runtime_action_attempts", "Action attempts begun.", ["action"], registry=r
        )
        self.failures = Counter(
            "adaptive_runtime_action_failures",
            "Action attempts that failed.",
            ["action"],
            registry=r,
        )
        self.succeeded = Counter(
            "adaptive_runtime_actions_succeeded", "Actions that succeeded.", ["action"], registry=r
        )
        self.abandoned = Counter(
            "adaptive_runtime_actions_abandoned",
            "Actions given up, by reason.",
            ["action", "reason"],
            registry=r,
        )
        self.process_seconds = Histogram(
            "adaptive_runtime_process_seconds",
            "Time to decide and journal the events of one request, by route.",
            ["route"],
            buckets=PROCESS_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "adaptive_runtime_receiver_deliveries",
            "Requests received from each sender (re-sends included).",
            ["receiver"],
            registry=r,
        )
        self.journal_entries = 0
        """The journal's head seq, read (off the event loop) just before each scrape."""
        r.register(_HostCollector(host, self))

    def watch(self, entries: list[Entry]) -> None:
        """Count what one commit journaled."""
        for entry in entries:
            kind = entry.kind
            if kind == "EventReceived":
                self.events.inc()
            elif kind == "FleetIncident":
                self.incidents.inc()
            elif kind in _COUNTED:
                self._count(read_record(entry))

    def _count(self, record: object) -> None:
        if isinstance(record, DecisionMade):
            self.decisions.labels(record.decision.action, record.decision.priority).inc()
        elif isinstance(record, OutcomeRecorded):
            self.outcomes.labels("success" if record.success else "failure").inc()
        elif isinstance(record, ActionStarted):
            self.attempts.labels(record.action).inc()
        elif isinstance(record, ActionFailed):
            self.failures.labels(record.action).inc()
        elif isinstance(record, ActionSucceeded):
            self.succeeded.labels(record.action).inc()
        elif isinstance(record, ActionAbandoned):
            self.abandoned.labels(record.action, record.reason).inc()


_COUNTED = frozenset(
    {
        "DecisionMade",
        "OutcomeRecorded",
        "ActionStarted",
        "ActionFailed",
        "ActionSucceeded",
        "ActionAbandoned",
    }
)
"""The kinds whose bodies the counts read (the others are counted by their kind alone)."""


class _HostCollector(Collector):
    """What is read off the host at scrape time: agents, breakers, commits, journal size."""

    def __init__(self, host: Host, telemetry: Telemetry) -> None:
        self._host = host
        self._telemetry = telemetry

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        host = self._host
        loaded = GaugeMetricFamily(
            "adaptive_runtime_agents_loaded", "Agents whose state is in memory."
        )
        loaded.add_metric([], len(host.loaded_agents()))
        yield loaded
        running = GaugeMetricFamily("adaptive_runtime_actions_running", "Actions running now.")
        running.add_metric([], host.actions.running())
        yield running
        breakers = GaugeMetricFamily(
            "adaptive_runtime_breaker_state",
            "Each loaded agent's breaker per action: 1 for the state it is in.",
            labels=["agent", "action", "state"],
        )
        for agent_id in host.loaded_agents():
            ledger = host.loaded(agent_id)
            if ledger is None:
                continue
            for action, breaker in sorted(ledger.breakers.items()):
                for state in ("closed", "half_open", "open"):
                    breakers.add_metric([agent_id, action, state], float(breaker.status == state))
        yield breakers
        if not host.started:
            return
        worker = host.require_worker()
        commits = CounterMetricFamily(
            "adaptive_runtime_journal_commits", "Journal transactions committed by this host."
        )
        commits.add_metric([], worker.commits)
        yield commits
        bounds, counts, total_ms, _ = worker.commit_latency.histogram()
        cumulative, running_total = [], 0
        for bound, n in zip((*bounds, float("inf")), counts, strict=True):
            running_total += n
            le = "+Inf" if bound == float("inf") else repr(bound / 1000.0)
            cumulative.append((le, running_total))
        latency = HistogramMetricFamily(
            "adaptive_runtime_journal_commit_seconds",
            "Time per journal transaction, fsync included.",
            buckets=cumulative,
            sum_value=total_ms / 1000.0,
        )
        yield latency
        head = GaugeMetricFamily(
            "adaptive_runtime_journal_entries", "Entries in the journal (its head seq)."
        )
        head.add_metric([], self._telemetry.journal_entries)
        yield head
        path = _journal_file(host)
        if path is not None:
            size = GaugeMetricFamily(
                "adaptive_runtime_journal_bytes", "Size of the journal's database file."
            )
            size.add_metric([], _size(path))
            yield size
            wal = GaugeMetricFamily(
                "adaptive_runtime_journal_wal_bytes", "Size of the journal's write-ahead log."
            )
            wal.add_metric([], _size(path + "-wal"))
            yield wal


def _journal_file(host: Host) -> str | None:
    where = host.journal_location
    return None if where is None else sqlite_path(where)


def _size(path: str) -> float:
    try:
        return float(os.stat(path).st_size)
    except OSError:
        return 0.0
