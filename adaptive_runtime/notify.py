"""Notifications to people, through Apprise (the `notify` extra): Slack, Teams, email,
PagerDuty, a JSON webhook... any Apprise URL.

A Notifier watches a host's commits and notes what a person should hear of: decisions at
or above a priority, disruptive actions the fleet policy held back (a budget, a floor or
a cooldown paused them: the escalation to a person), steps of an escalation ladder,
approval requests (and approvals that timed out), actions given up (dead letters), and
fleet incidents. A decision a silence covers is not noted: its action is skipped, and
the silence says that a person knows (a maintenance window pages no one). Notes are grouped (one message per flush, every
`group_seconds`) and rate-limited (at most `max_per_hour` messages in any hour, by the
host's clock; what is held back is counted in the next message). A message names the
agent, the seq, the event type, the action and the reason, never an event's attributes,
and the Apprise URLs (which hold credentials) never appear in a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import ConfigurationError
from .records import (
    ALERT_RESOLVED,
    ActionAbandoned,
    ActionAwaitingApproval,
    ActionEscalated,
    ApprovalDecided,
    DecisionMade,
    Entry,
    EventReceived,
    FleetIncident,
    read_as,
    read_record,
)

if TYPE_CHECKING:
    from .runtime.host import Host

__all__ = ["Notifier", "NotifyPolicy"]

log = logging.getLogger("adaptive_runtime.notify")
PRIORITIES = ("low", "normal", "high", "critical")
MAX_LINES = 50
HOUR_NS = 3600 * 10**9
_NOTED = frozenset(
    {
        "DecisionMade",
        "ActionAwaitingApproval",
        "ApprovalDecided",
        "ActionEscalated",
        "ActionAbandoned",
        "FleetIncident",
    }
)


class NotifyPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What is worth a message, and how often messages may go."""

    min_priority: str = "high"
    """Decisions at this priority or above are noted (approvals, dead letters and incidents
    always are)."""
    group_seconds: float = 10.0
    """Notes are gathered this long into one message."""
    max_per_hour: int = 30
    """At most this many messages in any hour."""

    def __post_init__(self) -> None:
        if self.min_priority not in PRIORITIES:
            msg = f"min_priority is one of {', '.join(PRIORITIES)}, not {self.min_priority!r}"
            raise ConfigurationError(msg)
        if (
            not 0 < self.group_seconds <= 3600
            or type(self.max_per_hour) is not int
            or self.max_per_hour < 1
        ):
            msg = "group_seconds is above 0 and at most 3600, max_per_hour a positive int"
            raise ConfigurationError(msg)


def _unusable(index: int, url: str, apprise: Any) -> str:
    """Why Apprise refused a URL, naming it by its place and scheme only: the rest of a
    URL may hold a secret. A known scheme with a bad rest was "not one Apprise knows"."""
    where = f"notification URL {index + 1}"
    example = "an Apprise URL such as mailto://user:password@example.com"
    if not url.strip():
        return f"{where} is empty; give {example}"
    if "://" not in url:
        return f"{where} is not a URL (it has no scheme://); give {example}"
    scheme = url.split("://", 1)[0]
    known: set[str] = set()
    for schema in apprise.Apprise().details()["schemas"]:
        known.update(schema.get("protocols") or ())
        known.update(schema.get("secure_protocols") or ())
    if scheme.lower() in known:
        return (
            f"{where} ({scheme}://...): Apprise knows the scheme, but not the rest of the URL:"
            f" check what {scheme}:// needs (an address, a user, a token) in Apprise's docs"
        )
    return f"{where} ({scheme}://...) is not one Apprise knows"


class Notifier:
    """Notes from a host's commits, sent grouped and rate-limited through Apprise."""

    def __init__(self, host: Host, urls: Sequence[str], policy: NotifyPolicy | None = None) -> None:
        try:
            import apprise
        except ImportError:
            raise ConfigurationError(
                "notifications need the notify extra: pip install 'adaptive-runtime[notify]'"
            ) from None
        if isinstance(urls, str) or not urls:
            raise ConfigurationError("urls must be a non-empty list of Apprise URLs")
        self._apprise = apprise.Apprise()
        for index, url in enumerate(urls):
            if not self._apprise.add(url):
                raise ConfigurationError(_unusable(index, url, apprise))
        self.policy = policy or NotifyPolicy()
        self._host = host
        self._rank = PRIORITIES.index(self.policy.min_priority)
        self.notes: list[str] = []
        """Noted and not sent yet."""
        self.held_back = 0
        """Notes dropped from messages because of the rate limit, to be counted in the next."""
        self.sent: list[int] = []
        """When each message of the last hour went (the host's clock)."""
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._unwatch = host.watch(self.watch)

    def watch(self, entries: list[Entry]) -> None:
        """Note what a person should hear of in one commit."""
        events = {e.seq: e for e in entries if e.kind == "EventReceived"}
        for entry in entries:
            if entry.kind == "DecisionMade" and self._silenced(entry, events.get(entry.batch)):
                continue
            note = self._note(entry)
            if note is not None:
                self.notes.append(note)

    def _silenced(self, entry: Entry, event: Entry | None) -> bool:
        """Whether a silence covers the decision (its event commits in the same batch)."""
        controls = self._host.controls
        if event is None or not controls.any_silence:
            return False  # nothing to decode the records for
        decision = read_as(entry, DecisionMade).decision
        attrs = read_as(event, EventReceived).event.attrs
        return controls.silence_covering(entry.stream, attrs, decision, entry.ts_ns) is not None

    def _note(self, entry: Entry) -> str | None:
        if entry.kind not in _NOTED:
            return None
        record, where = read_record(entry), f"{entry.stream} seq {entry.seq}"
        if isinstance(record, DecisionMade):
            d = record.decision
            if d.degraded_from is not None:  # paused by the fleet: a person decides
                return f"[held] {where}: {d.degraded_from} held back, {d.action} instead: {d.fleet}"
            if PRIORITIES.index(d.priority) < self._rank:
                return None
            return (
                f"[{d.priority}] {where}: {d.event_type} -> {d.action}"
                f" (confidence {d.confidence:.2f}, {d.reason})"
            )
        if isinstance(record, ActionAwaitingApproval):
            return (
                f"[approval] {where}: {record.action} waits: {record.reason}"
                f" (adaptive-runtime approve {entry.seq - 1})"
            )
        if isinstance(record, ApprovalDecided):
            if record.by != "timeout":
                return None
            return f"[approval] {where}: {record.action} denied: {record.reason}"
        if isinstance(record, ActionEscalated):
            return f"[escalated] {where}: to {record.action} (step {record.step}): {record.reason}"
        if isinstance(record, ActionAbandoned) and record.reason == ALERT_RESOLVED:
            return None  # the trouble is over: nothing for a person to do
        if isinstance(record, ActionAbandoned) and record.attempts == 0:
            return (  # never run: the operator's controls left it to a person
                f"[dead letter] {where}: {record.action} not run"
                f" ({record.reason}; adaptive-runtime retry {record.decision_seq} runs it)"
            )
        if isinstance(record, ActionAbandoned):
            return (
                f"[dead letter] {where}: {record.action} given up after {record.attempts}"
                f" attempts ({record.reason}; adaptive-runtime retry {record.decision_seq})"
            )
        assert isinstance(record, FleetIncident)
        return f"[incident] {where}: {record.context} across {len(record.agents)} agents ({record.rule})"

    async def flush(self) -> bool:
        """Send what is noted as one message, if the rate limit allows; True if one went."""
        if not self.notes:
            return False
        now = self._host.clock.now_ns()
        self.sent = [t for t in self.sent if t > now - HOUR_NS]
        if len(self.sent) >= self.policy.max_per_hour:
            self.held_back += len(self.notes)
            self.notes.clear()
            return False
        notes, self.notes = self.notes, []
        lines = notes[:MAX_LINES]
        more = len(notes) - len(lines) + self.held_back
        if more:
            lines.append(f"... and {more} more (grouped, or held back by the rate limit)")
        title = f"Adaptive Runtime: {len(notes)} to look at"
        ok = await self._apprise.async_notify(body="\n".join(lines), title=title)
        self.sent.append(now)
        if ok:
            self.held_back = 0
        else:
            self.failures += 1
            log.warning("a notification could not be delivered to every URL (%d lines)", len(lines))
        return bool(ok)

    def start(self) -> None:
        """Flush every group_seconds (the wall clock: it paces delivery, not decisions)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.group_seconds)
            try:
                await self.flush()
            except Exception:
                self.failures += 1
                log.exception("sending a notification failed")

    async def stop(self) -> None:
        """Send what is noted, then stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unwatch()
        with contextlib.suppress(Exception):
            await self.flush()
